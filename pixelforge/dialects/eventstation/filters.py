"""Eventstation's filters: curated (integer ids) and custom (UUID) pipeline + prompt recipes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError, not_found
from pixelforge.services import Services
from pixelforge.store.db import Database
from pixelforge.store.tables import FilterRow

# What "{gender}" becomes for gender 0 (male), 1 (female), 2 (boy), 3 (girl).
DEFAULT_GENDER_WORDS = ("man", "woman", "boy", "girl")
EDITABLE = (
    "name",
    "description",
    "thumb",
    "pipeline",
    "persons",
    "prompt",
    "negative_prompt",
    "gender_words",
    "params",
    "sort",
)


def normalize_id(value: str | int) -> str | None:
    """The canonical id ('7', or a lower-case UUID), or None if it is neither."""
    text = str(value).strip()
    if text.isascii() and text.isdigit():
        return str(int(text))
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def public_id(filter_id: str) -> int | str:
    """Curated ids leave as integers, custom ones as UUID strings."""
    return int(filter_id) if filter_id.isdigit() else filter_id


@dataclass(frozen=True)
class Filter:
    id: str
    name: str
    description: str
    thumb: str | None
    pipeline: str
    persons: int
    prompt: str
    negative_prompt: str
    gender_words: tuple[str, ...]
    params: dict[str, Any]
    sort: int
    created_at: float
    updated_at: float

    def gender_word(self, gender: int) -> str:
        return self.gender_words[gender]

    def render(
        self, *, genders: list[int], prompt: str | None, negative: str | None
    ) -> tuple[str, str]:
        """The prompt with the gender words and the user's prompt filled in; the negatives."""
        text = self.prompt or "{prompt}"
        user = (prompt or "").strip()
        if "{prompt}" in text:
            text = text.replace("{prompt}", user)
        elif user:
            text = f"{text}, {user}"
        # After the user's prompt is in, so "{gender}" works there too.
        words = [self.gender_word(g) for g in genders]
        text = text.replace("{gender_2}", words[1] if len(words) > 1 else words[0])
        text = text.replace("{gender}", words[0])
        # A template like "x, {prompt}, y" with no user prompt leaves ", ," behind.
        text = ", ".join(p.strip() for p in text.split(",") if p.strip())
        merged = ", ".join(p for p in (self.negative_prompt, (negative or "").strip()) if p)
        return text, merged


def _entry(row: FilterRow) -> Filter:
    return Filter(
        id=row.id,
        name=row.name,
        description=row.description,
        thumb=row.thumb,
        pipeline=row.pipeline,
        persons=row.persons,
        prompt=row.prompt,
        negative_prompt=row.negative_prompt,
        gender_words=tuple(row.gender_words or DEFAULT_GENDER_WORDS),
        params=dict(row.params or {}),
        sort=row.sort,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check(fields: dict[str, Any]) -> None:
    words = fields.get("gender_words")
    if words is not None and len(words) != len(DEFAULT_GENDER_WORDS):
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            "gender_words: give four words, for gender 0 (male), 1 (female), 2 (boy), 3 (girl)",
        )
    if "persons" in fields and fields["persons"] not in (1, 2):
        raise PixelForgeError(ErrorCode.invalid_parameter, "persons: must be 1 or 2")


class FilterService:
    """Lookups for the dialect, edits for administrators, seeding from the package's file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def seed(self) -> int:
        """Insert the shipped filters that were never there; edits and deletions are kept."""
        raw = (
            resources.files("pixelforge.dialects.eventstation") / "data" / "filters.json"
        ).read_text()
        data = json.loads(raw)
        words = data.get("gender_words")
        added = 0
        try:
            with self.db.write() as s:
                have = set(s.scalars(select(FilterRow.id)))
                for i, f in enumerate(data["filters"]):
                    fid = normalize_id(f["id"])
                    if fid is None or fid in have:
                        continue
                    t = now()
                    s.add(
                        FilterRow(
                            id=fid,
                            name=f["name"],
                            description=f.get("description", ""),
                            thumb=f.get("thumb"),
                            pipeline=f["pipeline"],
                            persons=f.get("persons", 1),
                            prompt=f.get("prompt", ""),
                            negative_prompt=f.get("negative_prompt", ""),
                            gender_words=f.get("gender_words", words),
                            params=f.get("params", {}),
                            sort=f.get("sort", i),
                            created_at=t,
                            updated_at=t,
                            deleted_at=None,
                        )
                    )
                    added += 1
        except IntegrityError:
            return 0  # another process seeded the same rows first
        return added

    def get(self, filter_id: str | int) -> Filter | None:
        fid = normalize_id(filter_id)
        if fid is None:
            return None
        with self.db.read() as s:
            row = s.get(FilterRow, fid)
        return None if row is None or row.deleted_at is not None else _entry(row)

    def require(self, filter_id: str | int) -> Filter:
        entry = self.get(filter_id)
        if entry is None:
            raise not_found(f"filter {filter_id}")
        return entry

    def all(self) -> list[Filter]:
        q = select(FilterRow).where(FilterRow.deleted_at.is_(None))
        with self.db.read() as s:
            rows = list(s.scalars(q))
        # Curated integer ids in numeric order, then custom ones; `sort` first.
        rows.sort(key=lambda r: (r.sort, not r.id.isdigit(), int(r.id) if r.id.isdigit() else 0))
        return [_entry(r) for r in rows]

    def create(self, *, fields: dict[str, Any], filter_id: str | int | None = None) -> Filter:
        """A new filter; without an id it gets a new UUID (a custom filter)."""
        fid = str(uuid.uuid4()) if filter_id is None else normalize_id(filter_id)
        if fid is None:
            raise PixelForgeError(
                ErrorCode.invalid_parameter, "id: must be a non-negative integer or a UUID"
            )
        _check(fields)
        t = now()
        with self.db.write() as s:
            row = s.get(FilterRow, fid)
            if row is not None and row.deleted_at is None:
                raise PixelForgeError(ErrorCode.conflict, f"filter {fid} already exists")
            if row is None:
                row = FilterRow(id=fid, created_at=t)
                s.add(row)
            # A deleted id is taken over whole: nothing of the old filter is kept.
            row.description, row.thumb, row.persons = "", None, 1
            row.prompt, row.negative_prompt, row.gender_words = "", "", None
            row.params, row.sort, row.deleted_at = {}, 0, None
            row.created_at = t
            for key in EDITABLE:
                if key in fields:
                    setattr(row, key, fields[key])
            row.updated_at = t
            s.flush()
            return _entry(row)

    def update(self, filter_id: str | int, fields: dict[str, Any]) -> Filter:
        _check(fields)
        fid = normalize_id(filter_id)
        with self.db.write() as s:
            row = None if fid is None else s.get(FilterRow, fid)
            if row is None or row.deleted_at is not None:
                raise not_found(f"filter {filter_id}")
            for key in EDITABLE:
                if key in fields:
                    setattr(row, key, fields[key])
            row.updated_at = now()
            s.flush()
            return _entry(row)

    def delete(self, filter_id: str | int) -> None:
        fid = normalize_id(filter_id)
        with self.db.write() as s:
            row = None if fid is None else s.get(FilterRow, fid)
            if row is None or row.deleted_at is not None:
                raise not_found(f"filter {filter_id}")
            row.deleted_at = now()


def filters_of(services: Services) -> FilterService:
    """The dialect's filters, set up by its on_startup."""
    return services.extension("eventstation", FilterService)
