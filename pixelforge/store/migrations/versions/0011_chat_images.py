"""In-chat images: a chat candidate may hold a media item (an image message's candidate).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_candidates") as batch:
        batch.add_column(sa.Column("media_id", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chat_candidates") as batch:
        batch.drop_column("media_id")
