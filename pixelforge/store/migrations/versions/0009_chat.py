"""Chat: characters (card data as JSON), personas (one default per account), chats, their
messages and each message's candidates.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _account() -> sa.Column[str]:
    return sa.Column(
        "account_id",
        sa.String(40),
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "chat_characters",
        sa.Column("id", sa.String(40), primary_key=True),
        _account(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("avatar_media_id", sa.String(40), nullable=True),
        sa.Column("card_meta", sa.JSON, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("deleted_at", sa.Float, nullable=True),
    )
    op.create_index("ix_chat_characters_account", "chat_characters", ["account_id", "created_at"])
    op.create_table(
        "chat_personas",
        sa.Column("id", sa.String(40), primary_key=True),
        _account(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("avatar_media_id", sa.String(40), nullable=True),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_chat_personas_account", "chat_personas", ["account_id", "created_at"])
    op.create_index(
        "uq_chat_personas_default",
        "chat_personas",
        ["account_id"],
        unique=True,
        sqlite_where=sa.text("is_default"),
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "chats",
        sa.Column("id", sa.String(40), primary_key=True),
        _account(),
        sa.Column(
            "character_id", sa.String(40), sa.ForeignKey("chat_characters.id"), nullable=False
        ),
        sa.Column("persona_id", sa.String(40), sa.ForeignKey("chat_personas.id"), nullable=True),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("sampling", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_chats_account", "chats", ["account_id", "created_at"])
    op.create_index("ix_chats_character", "chats", ["character_id"])
    op.create_index("ix_chats_persona", "chats", ["persona_id"])
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "chat_id",
            sa.String(40),
            sa.ForeignKey("chats.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("selected", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("chat_id", "seq", name="uq_chat_messages_seq"),
    )
    op.create_table(
        "chat_candidates",
        sa.Column(
            "message_id",
            sa.String(40),
            sa.ForeignKey("chat_messages.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("finish_reason", sa.String(16), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("choice", sa.Integer, nullable=False),
        sa.Column("base_len", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_chat_candidates_job", "chat_candidates", ["job_id"])


def downgrade() -> None:
    op.drop_table("chat_candidates")
    op.drop_table("chat_messages")
    op.drop_table("chats")
    op.drop_table("chat_personas")
    op.drop_table("chat_characters")
