"""Persistence: SQLAlchemy tables, Alembic migrations, the database handle and the media store."""
