"""jobs.poll_timeout_s / last_polled_at: jobs abandoned when their client stops polling.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("poll_timeout_s", sa.Float, nullable=True))
        batch.add_column(sa.Column("last_polled_at", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("last_polled_at")
        batch.drop_column("poll_timeout_s")
