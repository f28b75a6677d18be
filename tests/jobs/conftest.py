"""Job tests run on both backends: the `db` fixture of tests/store (SQLite and PostgreSQL)."""

from tests.store.conftest import db  # noqa: F401
