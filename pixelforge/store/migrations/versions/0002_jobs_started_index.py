"""Index jobs.started_at: fair scheduling looks up each account's latest start.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_account_started", "jobs", ["account_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_account_started", table_name="jobs")
