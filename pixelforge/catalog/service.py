"""The catalog service: seeding from the package's files, lookups, paginated listings, edits."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, TypeVar

from sqlalchemy import false, select
from sqlalchemy.exc import IntegrityError

from pixelforge.catalog.types import LoraTemplate, StylePreset
from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError, not_found
from pixelforge.store.db import Database
from pixelforge.store.tables import LoraTemplateRow, Style, StyleGroup

LORA_TYPES = ("IMAGE", "IMAGE_EDIT", "VIDEO")
Row = TypeVar("Row", StyleGroup, Style, LoraTemplateRow)


@dataclass(frozen=True)
class Page(Generic[Row]):
    items: list[Row]
    next_token: str | None


def _is_id(value: int) -> bool:
    """Whether a number can be a row id (a positive 64-bit integer); others name no row."""
    return 0 < value < 2**63


def _page_size(page_size: int) -> int:
    if not 1 <= page_size <= 100:
        raise PixelForgeError(ErrorCode.invalid_parameter, "page_size: must be between 1 and 100")
    return page_size


_BAD_TOKEN = "starting_token: use next_token from the previous page"
# Style and group ids are INTEGER columns: a longer token cannot come from next_token, and
# past 64 bits the database driver fails (a 500 before this check).
_INT_TOKEN = re.compile(r"[0-9]{1,10}")
_LORA_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a template id (LoraIn.id)


def _after(token: str | None) -> int:
    if token is None or token == "":
        return 0
    if not _INT_TOKEN.fullmatch(token) or int(token) > 2**31 - 1:
        raise PixelForgeError(ErrorCode.invalid_parameter, _BAD_TOKEN)
    return int(token)


def _after_lora(token: str | None) -> str | None:
    if token is None or token == "":
        return None
    if not _LORA_TOKEN.fullmatch(token):
        raise PixelForgeError(ErrorCode.invalid_parameter, _BAD_TOKEN)
    return token


class CatalogService:
    """Implements CatalogView for pipelines and the listings/edits for the API."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- seeding ---------------------------------------------------------------------------
    def seed(self) -> int:
        """Insert the shipped entries that are missing; never overwrite an admin's edits."""
        raw = (resources.files("pixelforge.catalog") / "data" / "styles.json").read_text()
        data = json.loads(raw)
        added = 0
        with self.db.write() as s:
            groups: dict[tuple[str, str], int] = {
                (g.task, g.name): g.id for g in s.scalars(select(StyleGroup))
            }
            for i, g in enumerate(data["groups"]):
                if (g["task"], g["name"]) not in groups:
                    row = StyleGroup(task=g["task"], name=g["name"], title=g["title"], sort=i)
                    s.add(row)
                    s.flush()
                    groups[(g["task"], g["name"])] = row.id
                    added += 1
            have = {(st.task, st.name) for st in s.scalars(select(Style))}
            for i, st in enumerate(data["styles"]):
                task = st.get("task", "text_to_image")
                if (task, st["name"]) in have:
                    continue
                s.add(
                    Style(
                        group_id=groups.get((task, st["group"])),
                        task=task,
                        name=st["name"],
                        title=st["title"],
                        thumb=None,
                        prompt=st["prompt"],
                        negative_prompt=st.get("negative_prompt", ""),
                        model=st.get("model"),
                        params=st.get("params", {}),
                        sort=i,
                    )
                )
                added += 1
        return added

    # -- CatalogView -----------------------------------------------------------------------
    def style(self, name: str, *, task: str = "text_to_image") -> StylePreset | None:
        with self.db.read() as s:
            row = s.scalar(select(Style).where(Style.task == task, Style.name == name))
        if row is None:
            return None
        return StylePreset(
            name=row.name,
            prompt=row.prompt,
            negative_prompt=row.negative_prompt,
            model=row.model,
            params=dict(row.params or {}),
        )

    def lora(self, template_id: str) -> LoraTemplate | None:
        with self.db.read() as s:
            row = s.get(LoraTemplateRow, template_id)
        return None if row is None else _lora(row)

    def style_names(self, *, task: str = "text_to_image") -> list[str]:
        with self.db.read() as s:
            return list(s.scalars(select(Style.name).where(Style.task == task).order_by(Style.id)))

    # -- listings (Perfect-style pages: page_size, starting_token -> next_token) -------------
    def _page(self, q: Any, model: type[Row], page_size: int, token: str | None) -> Page[Row]:
        size = _page_size(page_size)
        q = q.where(model.id > _after(token)).order_by(model.id).limit(size + 1)
        with self.db.read() as s:
            rows = list(s.scalars(q))
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, str(rows[-1].id) if more else None)

    def groups(
        self, *, task: str, page_size: int = 20, token: str | None = None
    ) -> Page[StyleGroup]:
        q = select(StyleGroup).where(StyleGroup.task == task)
        return self._page(q, StyleGroup, page_size, token)

    def styles(
        self,
        *,
        task: str,
        group_id: int | None = None,
        page_size: int = 20,
        token: str | None = None,
    ) -> Page[Style]:
        q = select(Style).where(Style.task == task)
        if group_id is not None:
            # An id beyond 64 bits names no group (and would overflow the database's integer).
            q = q.where(Style.group_id == group_id if _is_id(group_id) else false())
        return self._page(q, Style, page_size, token)

    def loras(
        self, *, type: str | None = None, page_size: int = 20, token: str | None = None
    ) -> tuple[list[LoraTemplateRow], str | None]:
        size = _page_size(page_size)
        q = select(LoraTemplateRow)
        if type is not None:
            q = q.where(LoraTemplateRow.type == type)
        if (after := _after_lora(token)) is not None:
            q = q.where(LoraTemplateRow.id > after)
        with self.db.read() as s:
            rows = list(s.scalars(q.order_by(LoraTemplateRow.id).limit(size + 1)))
        more = len(rows) > size
        rows = rows[:size]
        return rows, (rows[-1].id if more else None)

    # -- admin edits -----------------------------------------------------------------------
    def put_group(self, *, task: str, name: str, title: str, sort: int = 0) -> StyleGroup:
        with self.db.write() as s:
            row = s.scalar(
                select(StyleGroup).where(StyleGroup.task == task, StyleGroup.name == name)
            )
            if row is None:
                row = StyleGroup(task=task, name=name, title=title, sort=sort)
                s.add(row)
            else:
                row.title, row.sort = title, sort
            s.flush()
            return row

    def put_style(self, *, task: str, name: str, fields: dict[str, Any]) -> Style:
        """Create or replace the style (task, name)."""
        with self.db.write() as s:
            group_id = fields.get("group_id")
            if group_id is not None and (
                not _is_id(group_id) or s.get(StyleGroup, group_id) is None
            ):
                raise not_found(f"style group {group_id}")
            row = s.scalar(select(Style).where(Style.task == task, Style.name == name))
            if row is None:
                row = Style(task=task, name=name, **fields)
                s.add(row)
            else:
                for k, v in fields.items():
                    setattr(row, k, v)
            s.flush()
            return row

    def delete_style(self, style_id: int) -> None:
        with self.db.write() as s:
            row = s.get(Style, style_id) if _is_id(style_id) else None
            if row is None:
                raise not_found(f"style {style_id}")
            s.delete(row)

    def put_lora(self, template: LoraTemplate) -> LoraTemplateRow:
        if template.type not in LORA_TYPES:
            raise PixelForgeError(
                ErrorCode.invalid_parameter, f"type: must be one of {', '.join(LORA_TYPES)}"
            )
        try:
            with self.db.write() as s:
                row = s.get(LoraTemplateRow, template.id)
                if row is None:
                    row = LoraTemplateRow(id=template.id, created_at=now())
                    s.add(row)
                row.name, row.type, row.source = template.name, template.type, template.source
                row.weight_name, row.base_family = template.weight_name, template.base_family
                row.trigger, row.default_strength = template.trigger, template.default_strength
                s.flush()
                return row
        except IntegrityError:
            raise PixelForgeError(ErrorCode.conflict, f"LoRA template {template.id!r}") from None

    def delete_lora(self, template_id: str) -> None:
        with self.db.write() as s:
            row = s.get(LoraTemplateRow, template_id)
            if row is None:
                raise not_found(f"LoRA template {template_id!r}")
            s.delete(row)


def _lora(row: LoraTemplateRow) -> LoraTemplate:
    return LoraTemplate(
        id=row.id,
        name=row.name,
        type=row.type,
        source=row.source,
        weight_name=row.weight_name,
        base_family=row.base_family,
        trigger=row.trigger,
        default_strength=row.default_strength,
    )
