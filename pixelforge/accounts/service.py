"""Accounts and API keys: creation, authentication, login tokens and credit grants."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pixelforge.accounts import ledger
from pixelforge.accounts.tokens import (
    hash_password,
    issue_access_token,
    verify_access_token,
    verify_password,
)
from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError, not_found
from pixelforge.ids import new_id
from pixelforge.store.db import Database
from pixelforge.store.tables import Account, ApiKey

KEY_PREFIX = "pf"
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
# Verified against when the email is unknown, so login time does not reveal which emails exist.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


@dataclass(frozen=True)
class NewKey:
    id: str
    prefix: str
    plaintext: str  # shown once, never stored


def _hash_secret(secret: str) -> str:
    # Key secrets are 256 random bits: a fast hash is enough, and lookups stay cheap.
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_key(text: str) -> tuple[str, str] | None:
    parts = text.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL_RE.match(email) or len(email) > 320:
        raise PixelForgeError(ErrorCode.invalid_parameter, f"email: {email!r} is not an email")
    return email


class AccountService:
    def __init__(self, db: Database, *, token_key: bytes, token_ttl_s: int) -> None:
        self.db = db
        self.token_key = token_key
        self.token_ttl_s = token_ttl_s

    # -- accounts ----------------------------------------------------------------------
    def create_account(
        self,
        *,
        email: str,
        password: str | None = None,
        credits: int = 0,
        is_admin: bool = False,
        block_explicit: bool = False,
    ) -> tuple[Account, NewKey]:
        email = normalise_email(email)
        if password is not None and len(password) < 8:
            raise PixelForgeError(
                ErrorCode.invalid_parameter, "password: must be at least 8 characters"
            )
        if credits < 0:
            raise PixelForgeError(ErrorCode.invalid_parameter, "credits: must not be negative")
        account = Account(
            id=new_id("acc"),
            email=email,
            password_hash=hash_password(password) if password else None,
            is_admin=is_admin,
            disabled=False,
            block_explicit=block_explicit,
            created_at=now(),
        )
        try:
            with self.db.write() as s:
                s.add(account)
                s.flush()
                if credits:
                    ledger.grant(s, account_id=account.id, amount=credits, note="initial")
                key = self._add_key(s, account.id, "default")
        except IntegrityError:
            raise PixelForgeError(
                ErrorCode.conflict, f"an account with email {email!r} already exists"
            ) from None
        return account, key

    def find(self, id_or_email: str) -> Account:
        with self.db.read() as s:
            acc = s.scalar(
                select(Account).where(
                    or_(Account.id == id_or_email, Account.email == id_or_email.strip().lower())
                )
            )
        if acc is None:
            raise not_found(f"account {id_or_email!r}")
        return acc

    def list_accounts(self, *, limit: int = 100, offset: int = 0) -> list[Account]:
        with self.db.read() as s:
            q = select(Account).order_by(Account.created_at).limit(limit).offset(offset)
            return list(s.scalars(q))

    def ensure_admin(self) -> NewKey | None:
        """Create the first admin on a fresh database; the key is returned (shown) once."""
        with self.db.read() as s:
            if s.scalar(select(Account.id).where(Account.is_admin.is_(True)).limit(1)):
                return None
        try:
            _, key = self.create_account(email="admin@localhost", is_admin=True)
        except PixelForgeError:  # another process won the race
            return None
        return key

    def update(
        self, account_id: str, *, block_explicit: bool | None = None, disabled: bool | None = None
    ) -> Account:
        with self.db.write() as s:
            acc = s.get(Account, account_id)
            if acc is None:
                raise not_found(f"account {account_id!r}")
            if block_explicit is not None:
                acc.block_explicit = block_explicit
            if disabled is not None:
                acc.disabled = disabled
            return acc

    def grant_credits(self, *, account_id: str, amount: int, note: str = "") -> ledger.Balance:
        with self.db.write() as s:
            if s.get(Account, account_id) is None:
                raise not_found(f"account {account_id!r}")
            ledger.grant(s, account_id=account_id, amount=amount, note=note)
            s.flush()
            return ledger.balance(s, account_id)

    def balance(self, account_id: str) -> ledger.Balance:
        with self.db.read() as s:
            return ledger.balance(s, account_id)

    # -- keys ------------------------------------------------------------------------------
    def _add_key(self, s: Session, account_id: str, name: str) -> NewKey:
        prefix = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        row = ApiKey(
            id=new_id("key"),
            account_id=account_id,
            prefix=prefix,
            secret_hash=_hash_secret(secret),
            name=name,
            created_at=now(),
        )
        s.add(row)
        return NewKey(id=row.id, prefix=prefix, plaintext=f"{KEY_PREFIX}_{prefix}_{secret}")

    def create_key(self, *, account_id: str, name: str = "") -> NewKey:
        with self.db.write() as s:
            if s.get(Account, account_id) is None:
                raise not_found(f"account {account_id!r}")
            return self._add_key(s, account_id, name)

    def list_keys(self, account_id: str) -> list[ApiKey]:
        with self.db.read() as s:
            q = select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.created_at)
            return list(s.scalars(q))

    def revoke_key(self, *, key_id: str, account_id: str | None = None) -> None:
        """Revoke; with account_id, only that account's key (others answer 404)."""
        with self.db.write() as s:
            row = s.get(ApiKey, key_id)
            if row is None or (account_id is not None and row.account_id != account_id):
                raise not_found(f"API key {key_id!r}")
            if row.revoked_at is None:
                self._keep_admin_reachable(s, row)
                row.revoked_at = now()

    @staticmethod
    def _keep_admin_reachable(s: Session, row: ApiKey) -> None:
        """An admin account keeps one live key, password or not: the bootstrap admin has no
        password and there is no password reset, so its last key is the way back in."""
        # Locking the account row serialises two concurrent revokes of its last two keys.
        owner = s.scalar(select(Account).where(Account.id == row.account_id).with_for_update())
        if owner is None or not owner.is_admin:
            return
        live = s.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(ApiKey.account_id == owner.id, ApiKey.revoked_at.is_(None), ApiKey.id != row.id)
        )
        if not live:
            raise PixelForgeError(
                ErrorCode.conflict,
                "this is the last active API key of an admin account; create another key "
                "before revoking it",
            )

    # -- authentication --------------------------------------------------------------------
    def authenticate_key(self, plaintext: str) -> tuple[Account, str]:
        """(account, key id) for a live key; 401 otherwise."""
        parsed = parse_api_key(plaintext)
        if parsed is None:
            raise PixelForgeError(ErrorCode.unauthorized, "malformed API key")
        prefix, secret = parsed
        with self.db.read() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
            ok = row is not None and hmac.compare_digest(row.secret_hash, _hash_secret(secret))
            if not ok or row is None or row.revoked_at is not None:
                raise PixelForgeError(ErrorCode.unauthorized, "invalid or revoked API key")
            account = s.get(Account, row.account_id)
        if account is None or account.disabled:
            raise PixelForgeError(ErrorCode.unauthorized, "account disabled")
        return account, row.id

    def authenticate_token(self, token: str) -> Account:
        account_id = verify_access_token(key=self.token_key, token=token)
        with self.db.read() as s:
            account = s.get(Account, account_id)
        if account is None or account.disabled:
            raise PixelForgeError(ErrorCode.unauthorized, "account disabled or deleted")
        return account

    def login(self, *, email: str, password: str) -> str:
        with self.db.read() as s:
            acc = s.scalar(select(Account).where(Account.email == email.strip().lower()))
        stored = acc.password_hash if acc is not None and acc.password_hash else _DUMMY_HASH
        if not verify_password(stored, password) or acc is None or acc.disabled:
            raise PixelForgeError(ErrorCode.unauthorized, "wrong email or password")
        return issue_access_token(key=self.token_key, account_id=acc.id, ttl_s=self.token_ttl_s)
