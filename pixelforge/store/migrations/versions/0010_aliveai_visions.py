"""AliveAI visions: character cards written from an image (Create Vision, Update Vision).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aliveai_visions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(40),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("media_id", sa.String(40), nullable=True),
        sa.Column("card", sa.JSON, nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_aliveai_visions_account", "aliveai_visions", ["account_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_aliveai_visions_account", table_name="aliveai_visions")
    op.drop_table("aliveai_visions")
