"""Characters and personas: the account's own records, with their rules (one default
persona, soft-deleted characters, avatars the account owns)."""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError, human_size, not_found
from pixelforge.ids import new_id
from pixelforge.jobs.service import json_depth
from pixelforge.store.db import Database
from pixelforge.store.tables import CharacterRow, ChatRow, Media, PersonaRow

MAX_CARD_BYTES = 2 * 1024 * 1024  # a card with a large lorebook stays well under this
MAX_CARD_DEPTH = 32
MAX_NAME = 200
MAX_DESCRIPTION = 32_000
# An avatar outlives the upload retention: the media item is kept as long as this.
AVATAR_RETENTION_S = 100 * 365 * 86400.0


def encode_cursor(created_at: float, row_id: str) -> str:
    raw = json.dumps([created_at, row_id]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        return float(created), str(row_id)
    except (ValueError, TypeError):
        raise PixelForgeError(
            ErrorCode.invalid_parameter, "cursor: not a cursor returned by this API"
        ) from None


def page(
    s: Session, q: Any, model: Any, *, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """A newest-first page of `q` over `model` (with created_at and id), and the next cursor."""
    if cursor:
        created, row_id = decode_cursor(cursor)
        q = q.where(
            or_(model.created_at < created, and_(model.created_at == created, model.id < row_id))
        )
    rows = list(s.scalars(q.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None)


def check_text(text: str, field: str) -> str:
    """Refuse NUL characters: PostgreSQL text cannot hold them, and no chat text needs one."""
    if "\x00" in text:
        raise PixelForgeError(
            ErrorCode.invalid_parameter, f"{field}: must not contain NUL characters (\\u0000)"
        )
    return text


def _nul_field(value: object, path: str) -> str | None:
    """The path of the first string (key or value) inside `value` holding a NUL, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in str(k):
                return path
            if (found := _nul_field(v, f"{path}.{k}")) is not None:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            if (found := _nul_field(v, f"{path}[{i}]")) is not None:
                return found
    return None


def check_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise PixelForgeError(ErrorCode.invalid_parameter, f"{field}: must be a non-empty string")
    check_text(name, field)
    if len(name) > MAX_NAME:
        raise PixelForgeError(
            ErrorCode.invalid_parameter, f"{field}: at most {MAX_NAME} characters"
        )
    return name


def check_card_data(data: object) -> dict[str, Any]:
    """The card's `data` object: JSON, bounded in size and depth, with a name."""
    if not isinstance(data, dict):
        raise PixelForgeError(ErrorCode.invalid_parameter, "data: must be a JSON object")
    check_name(data.get("name"))
    if json_depth(data) > MAX_CARD_DEPTH:
        raise PixelForgeError(
            ErrorCode.invalid_parameter, f"data: nested more than {MAX_CARD_DEPTH} levels deep"
        )
    try:
        size = len(json.dumps(data, allow_nan=False).encode())
    except (TypeError, ValueError):
        raise PixelForgeError(
            ErrorCode.invalid_parameter, "data: must be JSON (NaN and Infinity are not)"
        ) from None
    if size > MAX_CARD_BYTES:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"data: {human_size(size)} as JSON, over the {human_size(MAX_CARD_BYTES)} limit",
        )
    if (field := _nul_field(data, "data")) is not None:
        check_text("\x00", field)
    return data


def claim_avatar(s: Session, account_id: str, media_id: str | None) -> str | None:
    """Check that the account owns `media_id` and keep it past the upload retention."""
    if media_id is None:
        return None
    m = s.get(Media, media_id)
    if m is None or m.account_id != account_id or m.expires_at <= now():
        raise not_found(f"avatar: media {media_id!r}")
    m.expires_at = max(m.expires_at, now() + AVATAR_RETENTION_S)
    return media_id


class CharacterService:
    """Characters of an account. A deleted one is hidden from `get` and `list`; its chats
    stay readable (see ChatService)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_from_card(
        self,
        account_id: str,
        data: dict[str, Any],
        avatar_media_id: str | None,
        *,
        card_meta: dict[str, Any] | None = None,
    ) -> CharacterRow:
        """A new character holding `data` (a card's V3 `data` object) as given; `card_meta`:
        what an imported card file had beside `data` (see CharacterRow.card_meta)."""
        data = check_card_data(data)
        t = now()
        with self.db.write() as s:
            row = CharacterRow(
                id=new_id("chr"),
                account_id=account_id,
                name=data["name"],
                data=data,
                avatar_media_id=claim_avatar(s, account_id, avatar_media_id),
                card_meta=card_meta,
                created_at=t,
                updated_at=t,
                deleted_at=None,
            )
            s.add(row)
        return row

    def get(self, account_id: str, id: str, *, deleted: bool = False) -> CharacterRow:
        """The account's character; 404 if deleted (unless `deleted`) or someone else's."""
        with self.db.read() as s:
            row = s.get(CharacterRow, id)
        if row is None or row.account_id != account_id or (row.deleted_at and not deleted):
            raise not_found(f"character {id!r}")
        return row

    def list(
        self, account_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[CharacterRow], str | None]:
        q = select(CharacterRow).where(
            CharacterRow.account_id == account_id, CharacterRow.deleted_at.is_(None)
        )
        with self.db.read() as s:
            return page(s, q, CharacterRow, limit=limit, cursor=cursor)

    def update(
        self,
        account_id: str,
        id: str,
        *,
        fields: dict[str, Any],
        avatar: str | None,
        set_avatar: bool,
    ) -> CharacterRow:
        """Set the given card fields (others kept) and, when `set_avatar`, the avatar."""
        with self.db.write() as s:
            row = s.scalar(select(CharacterRow).where(CharacterRow.id == id).with_for_update())
            if row is None or row.account_id != account_id or row.deleted_at:
                raise not_found(f"character {id!r}")
            if fields:
                data = check_card_data({**row.data, **fields})
                row.data = data
                row.name = data["name"]
            if set_avatar:
                row.avatar_media_id = claim_avatar(s, account_id, avatar)
            row.updated_at = now()
        return row

    def delete(self, account_id: str, id: str) -> None:
        with self.db.write() as s:
            row = s.scalar(select(CharacterRow).where(CharacterRow.id == id).with_for_update())
            if row is None or row.account_id != account_id or row.deleted_at:
                raise not_found(f"character {id!r}")
            row.deleted_at = row.updated_at = now()


class PersonaService:
    """Personas of an account: exactly one is the default once there is any."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        account_id: str,
        *,
        name: str,
        description: str = "",
        avatar: str | None = None,
        is_default: bool = False,
    ) -> PersonaRow:
        """A new persona; the account's first is its default whatever `is_default` says."""
        check_name(name)
        check_text(description, "description")
        t = now()
        for attempt in range(2):
            try:
                with self.db.write() as s:
                    first = self._default(s, account_id) is None
                    if is_default and not first:
                        self._unset_default(s, account_id)
                    row = PersonaRow(
                        id=new_id("prs"),
                        account_id=account_id,
                        name=name,
                        description=description,
                        avatar_media_id=claim_avatar(s, account_id, avatar),
                        is_default=is_default or first,
                        created_at=t,
                        updated_at=t,
                    )
                    s.add(row)
                return row
            except IntegrityError:
                # A concurrent first persona became the default first (PostgreSQL): retry.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, account_id: str, id: str) -> PersonaRow:
        with self.db.read() as s:
            row = s.get(PersonaRow, id)
        if row is None or row.account_id != account_id:
            raise not_found(f"persona {id!r}")
        return row

    def default(self, account_id: str) -> PersonaRow | None:
        with self.db.read() as s:
            return self._default(s, account_id)

    def list(
        self, account_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[PersonaRow], str | None]:
        q = select(PersonaRow).where(PersonaRow.account_id == account_id)
        with self.db.read() as s:
            return page(s, q, PersonaRow, limit=limit, cursor=cursor)

    def update(self, account_id: str, id: str, changes: dict[str, Any]) -> PersonaRow:
        """Apply `changes` (name, description, avatar, is_default: true) in one transaction."""
        with self.db.write() as s:
            row = self._locked(s, account_id, id)
            if "name" in changes:
                row.name = check_name(changes["name"])
            if "description" in changes:
                row.description = check_text(changes["description"] or "", "description")
            if "avatar" in changes:
                row.avatar_media_id = claim_avatar(s, account_id, changes["avatar"])
            if changes.get("is_default") is False and row.is_default:
                raise PixelForgeError(
                    ErrorCode.conflict,
                    "an account always has one default persona: make another persona the "
                    "default instead of unsetting this one",
                )
            if changes.get("is_default") and not row.is_default:
                self._unset_default(s, account_id)
                s.flush()
                row.is_default = True
            row.updated_at = now()
        return row

    def delete(self, account_id: str, id: str) -> None:
        """Refused (409) for the account's last persona and for one a chat uses."""
        with self.db.write() as s:
            row = self._locked(s, account_id, id)
            count = s.scalar(select(func.count()).where(PersonaRow.account_id == account_id))
            if (count or 0) <= 1:
                raise PixelForgeError(
                    ErrorCode.conflict,
                    f"persona {id!r} is the account's last persona; create another first",
                )
            used = s.scalar(select(func.count()).where(ChatRow.persona_id == id))
            if used:
                raise PixelForgeError(
                    ErrorCode.conflict,
                    f"persona {id!r} is used by {used} chat(s); delete those chats first",
                )
            was_default = row.is_default
            s.delete(row)
            s.flush()
            if was_default:
                heir = s.scalar(
                    select(PersonaRow)
                    .where(PersonaRow.account_id == account_id)
                    .order_by(PersonaRow.created_at, PersonaRow.id)
                    .limit(1)
                )
                if heir is not None:
                    heir.is_default = True

    @staticmethod
    def _locked(s: Session, account_id: str, id: str) -> PersonaRow:
        row = s.scalar(select(PersonaRow).where(PersonaRow.id == id).with_for_update())
        if row is None or row.account_id != account_id:
            raise not_found(f"persona {id!r}")
        return row

    @staticmethod
    def _default(s: Session, account_id: str) -> PersonaRow | None:
        return s.scalar(
            select(PersonaRow).where(PersonaRow.account_id == account_id, PersonaRow.is_default)
        )

    @staticmethod
    def _unset_default(s: Session, account_id: str) -> None:
        s.execute(
            update(PersonaRow)
            .where(PersonaRow.account_id == account_id, PersonaRow.is_default)
            .values(is_default=False)
        )
