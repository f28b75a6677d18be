"""The credit ledger: append-only grant/hold/capture/void entries; balances are derived."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.store.tables import Account, LedgerEntry

GRANT, HOLD, CAPTURE, VOID = "grant", "hold", "capture", "void"
# Amounts are BIGINT and balances are sums of them: these bounds keep every sum far inside
# 64 bits (SQLite raises "integer overflow" past it) while no real account comes near them.
MAX_GRANT = 10**12
MAX_GRANTED_TOTAL = 10**15


@dataclass(frozen=True)
class Balance:
    available: int
    held: int


def balance(session: Session, account_id: str) -> Balance:
    rows = session.execute(
        select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.amount), 0))
        .where(LedgerEntry.account_id == account_id)
        .group_by(LedgerEntry.kind)
    ).all()
    sums = {kind: int(total) for kind, total in rows}
    held = sums.get(HOLD, 0) - sums.get(CAPTURE, 0) - sums.get(VOID, 0)
    available = sums.get(GRANT, 0) - sums.get(CAPTURE, 0) - held
    return Balance(available=available, held=held)


def grant(session: Session, *, account_id: str, amount: int, note: str = "") -> None:
    if amount <= 0:
        raise PixelForgeError(ErrorCode.invalid_parameter, "amount: must be a positive integer")
    if amount > MAX_GRANT:
        raise PixelForgeError(ErrorCode.invalid_parameter, f"amount: at most {MAX_GRANT:,}")
    granted = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.account_id == account_id, LedgerEntry.kind == GRANT
        )
    )
    if int(granted or 0) + amount > MAX_GRANTED_TOTAL:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"amount: the account's grants would exceed {MAX_GRANTED_TOTAL:,} credits in all",
        )
    session.add(
        LedgerEntry(
            account_id=account_id,
            job_id=None,
            kind=GRANT,
            amount=amount,
            note=note,
            created_at=now(),
        )
    )


def hold(session: Session, *, account_id: str, job_id: str, amount: int) -> None:
    """Reserve `amount` for a job, or raise insufficient_credits. Call inside db.write()."""
    # Serialise holds per account on PostgreSQL (SQLite's BEGIN IMMEDIATE already does).
    # FOR NO KEY UPDATE: a plain FOR UPDATE would deadlock with the FOR KEY SHARE lock that
    # the job row's foreign key takes on the same account row in a concurrent submit.
    session.execute(
        select(Account.id).where(Account.id == account_id).with_for_update(key_share=True)
    )
    available = balance(session, account_id).available
    if amount > available:
        raise PixelForgeError(
            ErrorCode.insufficient_credits,
            f"this job costs {amount} credits but only {available} are available; "
            "ask an administrator for more credits or cancel queued jobs",
        )
    session.add(
        LedgerEntry(
            account_id=account_id,
            job_id=job_id,
            kind=HOLD,
            amount=amount,
            note="",
            created_at=now(),
        )
    )


def _settle(session: Session, *, job_id: str, kind: str) -> bool:
    entries = session.scalars(select(LedgerEntry).where(LedgerEntry.job_id == job_id)).all()
    by_kind = {e.kind: e for e in entries}
    held = by_kind.get(HOLD)
    if held is None or CAPTURE in by_kind or VOID in by_kind:
        return False
    session.add(
        LedgerEntry(
            account_id=held.account_id,
            job_id=job_id,
            kind=kind,
            amount=held.amount,
            note="",
            created_at=now(),
        )
    )
    # Flush now so the unique (job_id, kind) constraint fires inside the caller's transaction.
    session.flush()
    return True


def capture(session: Session, *, job_id: str) -> bool:
    """Charge the job's hold. False when already settled; the unique key forbids a second."""
    return _settle(session, job_id=job_id, kind=CAPTURE)


def void(session: Session, *, job_id: str) -> bool:
    """Release the job's hold without charging. False when already settled."""
    return _settle(session, job_id=job_id, kind=VOID)
