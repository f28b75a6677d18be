"""The `db` fixture: a freshly migrated Database on SQLite and on PostgreSQL.

tests/jobs imports it too (`from tests.store.conftest import db`), so every store and queue
test runs on both backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pixelforge.store.db import Database
from pixelforge.store.tables import Base


def _drop_everything(url: str) -> None:
    """Leave the (session-wide) PostgreSQL database empty: no tables, no alembic_version."""
    scratch = Database(url)
    try:
        with scratch.engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        scratch.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)],
)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A Database at the newest migration with empty tables; disposed afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/t.db"
    else:
        url = request.getfixturevalue("pg_url")
        _drop_everything(url)
    database = Database(url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()
