"""Schema, migrations, the credit ledger and API keys, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from pixelforge.accounts import ledger
from pixelforge.accounts.service import AccountService
from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.store.db import Database
from pixelforge.store.tables import Account, ApiKey, Base, LedgerEntry


def _accounts(db: Database) -> AccountService:
    return AccountService(db, token_key=b"t" * 32, token_ttl_s=3600)


def _account(db: Database, email: str = "a@example.com", credits: int = 0) -> str:
    account, _ = _accounts(db).create_account(email=email, credits=credits)
    return account.id


def _entries(db: Database, job_id: str) -> list[str]:
    with db.read() as s:
        q = select(LedgerEntry.kind).where(LedgerEntry.job_id == job_id).order_by(LedgerEntry.id)
        return list(s.scalars(q))


def _schema(db: Database) -> dict[str, Any]:
    """Tables, columns, indexes and unique constraints as the database reports them."""
    insp = inspect(db.engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = (
            [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
            sorted((i["name"] or "", tuple(i["column_names"])) for i in insp.get_indexes(table)),
            sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
        )
    return out


# -- migrations --------------------------------------------------------------------------------


def test_migrations_create_exactly_the_model_tables(db: Database) -> None:
    tables = set(inspect(db.engine).get_table_names())
    assert tables - {"alembic_version"} == set(Base.metadata.tables)
    assert "alembic_version" in tables


def test_autogenerate_finds_no_difference_between_migrations_and_models(db: Database) -> None:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def _head_revision() -> str:
    from importlib import resources

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("pixelforge.store") / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def test_migrate_twice_is_a_noop(db: Database) -> None:
    account_id = _account(db, credits=7)
    before = _schema(db)
    db.migrate()
    assert _schema(db) == before
    with db.read() as s:
        heads = s.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert heads == [_head_revision()]
    assert _accounts(db).balance(account_id).available == 7


# -- the credit ledger -------------------------------------------------------------------------


def test_ledger_balance_is_grants_minus_captures_minus_open_holds(db: Database) -> None:
    acc = _account(db)
    with db.write() as s:
        ledger.grant(s, account_id=acc, amount=100, note="start")
        ledger.grant(s, account_id=acc, amount=20)
    assert _accounts(db).balance(acc) == ledger.Balance(available=120, held=0)

    with db.write() as s:
        for job in ("job_a", "job_b", "job_c"):
            ledger.hold(s, account_id=acc, job_id=job, amount=10)
    assert _accounts(db).balance(acc) == ledger.Balance(available=90, held=30)

    with db.write() as s:
        assert ledger.capture(s, job_id="job_a") is True
        assert ledger.void(s, job_id="job_b") is True
    # 120 granted - 10 captured - 10 still held (job_c); job_b's hold is released.
    assert _accounts(db).balance(acc) == ledger.Balance(available=100, held=10)
    assert _entries(db, "job_a") == ["hold", "capture"]
    assert _entries(db, "job_b") == ["hold", "void"]
    assert _entries(db, "job_c") == ["hold"]

    with db.write() as s:
        # Settled jobs stay settled, whichever way they were settled.
        assert ledger.void(s, job_id="job_a") is False
        assert ledger.capture(s, job_id="job_b") is False
        # No hold, nothing to settle.
        assert ledger.capture(s, job_id="job_unknown") is False
    assert _accounts(db).balance(acc) == ledger.Balance(available=100, held=10)


def test_grant_must_be_positive(db: Database) -> None:
    acc = _account(db)
    with pytest.raises(PixelForgeError) as err, db.write() as s:
        ledger.grant(s, account_id=acc, amount=0)
    assert err.value.code == ErrorCode.invalid_parameter


def test_second_capture_is_refused_by_code_and_by_the_unique_key(db: Database) -> None:
    acc = _account(db, credits=10)
    with db.write() as s:
        ledger.hold(s, account_id=acc, job_id="job_1", amount=4)
    with db.write() as s:
        assert ledger.capture(s, job_id="job_1") is True
    with db.write() as s:
        assert ledger.capture(s, job_id="job_1") is False
    assert _entries(db, "job_1") == ["hold", "capture"]

    # Even a writer that skips the check cannot charge twice.
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(
            LedgerEntry(
                account_id=acc, job_id="job_1", kind="capture", amount=4, note="", created_at=now()
            )
        )
        s.flush()
    assert _entries(db, "job_1") == ["hold", "capture"]
    assert _accounts(db).balance(acc) == ledger.Balance(available=6, held=0)


def test_hold_more_than_available_is_insufficient_credits(db: Database) -> None:
    acc = _account(db, credits=10)
    with db.write() as s:
        ledger.hold(s, account_id=acc, job_id="job_1", amount=7)
    with pytest.raises(PixelForgeError) as err, db.write() as s:
        ledger.hold(s, account_id=acc, job_id="job_2", amount=4)
    assert err.value.code == ErrorCode.insufficient_credits
    assert err.value.status == 402
    assert "3" in err.value.message  # says what is available
    assert _entries(db, "job_2") == []
    # Exactly what is left can still be held.
    with db.write() as s:
        ledger.hold(s, account_id=acc, job_id="job_3", amount=3)
    assert _accounts(db).balance(acc) == ledger.Balance(available=0, held=10)


def test_concurrent_holds_never_overdraw(db: Database) -> None:
    acc = _account(db, credits=50)
    n = 10
    barrier = threading.Barrier(n)

    def attempt(i: int) -> str:
        barrier.wait(timeout=10)
        try:
            with db.write() as s:
                ledger.hold(s, account_id=acc, job_id=f"job_{i}", amount=10)
        except PixelForgeError as e:
            return e.code.value
        return "ok"

    with ThreadPoolExecutor(n) as pool:
        outcomes = list(pool.map(attempt, range(n)))
    assert sorted(outcomes) == ["insufficient_credits"] * 5 + ["ok"] * 5
    assert _accounts(db).balance(acc) == ledger.Balance(available=0, held=50)
    with db.read() as s:
        holds = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "hold")).all()
    assert len(holds) == 5


# -- accounts and API keys ---------------------------------------------------------------------


def test_api_key_create_authenticate_revoke(db: Database) -> None:
    svc = _accounts(db)
    account, first = svc.create_account(email="  Key.User@Example.com ")
    assert account.email == "key.user@example.com"
    assert first.plaintext.startswith(f"pf_{first.prefix}_")

    got, key_id = svc.authenticate_key(first.plaintext)
    assert (got.id, key_id) == (account.id, first.id)

    second = svc.create_key(account_id=account.id, name="ci")
    assert second.prefix != first.prefix
    assert svc.authenticate_key(second.plaintext)[1] == second.id
    assert {k.id for k in svc.list_keys(account.id)} == {first.id, second.id}

    svc.revoke_key(key_id=first.id, account_id=account.id)
    with pytest.raises(PixelForgeError) as err:
        svc.authenticate_key(first.plaintext)
    assert err.value.code == ErrorCode.unauthorized
    # The other key is untouched.
    assert svc.authenticate_key(second.plaintext)[0].id == account.id


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # right prefix, wrong secret
        lambda k: "pf_00000000_" + k.split("_", 2)[2],  # unknown prefix
        lambda k: k.replace("pf_", "sk_", 1),  # not one of ours
        lambda k: "",
    ],
    ids=["wrong-secret", "unknown-prefix", "foreign", "empty"],
)
def test_bad_api_keys_are_unauthorized(db: Database, mangle: Any) -> None:
    _, key = _accounts(db).create_account(email="b@example.com")
    with pytest.raises(PixelForgeError) as err:
        _accounts(db).authenticate_key(mangle(key.plaintext))
    assert err.value.code == ErrorCode.unauthorized


def test_revoke_of_another_accounts_key_is_not_found(db: Database) -> None:
    svc = _accounts(db)
    owner, key = svc.create_account(email="owner@example.com")
    other, _ = svc.create_account(email="other@example.com")
    with pytest.raises(PixelForgeError) as err:
        svc.revoke_key(key_id=key.id, account_id=other.id)
    assert err.value.code == ErrorCode.not_found
    assert svc.authenticate_key(key.plaintext)[0].id == owner.id


def test_only_prefix_and_sha256_of_the_secret_are_stored(db: Database) -> None:
    account, key = _accounts(db).create_account(email="c@example.com")
    _, prefix, secret = key.plaintext.split("_", 2)
    assert prefix == key.prefix
    with db.read() as s:
        row = s.get(ApiKey, key.id)
        assert row is not None
        values = {c.key: getattr(row, c.key) for c in ApiKey.__table__.columns}
        raw_rows = s.execute(text("SELECT * FROM api_keys")).all()
    assert row.prefix == prefix
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.account_id == account.id
    for column, value in values.items():
        assert secret not in str(value), f"api_keys.{column} holds the secret"
        assert key.plaintext not in str(value), f"api_keys.{column} holds the key"
    for raw in raw_rows:
        for value in raw:
            assert secret not in str(value)


def test_duplicate_email_is_conflict(db: Database) -> None:
    svc = _accounts(db)
    svc.create_account(email="dup@example.com", credits=5)
    with pytest.raises(PixelForgeError) as err:
        svc.create_account(email=" DUP@example.com", credits=5)
    assert err.value.code == ErrorCode.conflict
    assert err.value.status == 409
    with db.read() as s:
        assert len(s.scalars(select(Account)).all()) == 1
        # The losing attempt left neither a grant nor a key behind.
        assert len(s.scalars(select(LedgerEntry)).all()) == 1
        assert len(s.scalars(select(ApiKey)).all()) == 1
