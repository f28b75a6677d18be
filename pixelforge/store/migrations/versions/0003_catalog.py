"""Catalog: style groups, styles and LoRA templates.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "catalog_style_groups",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("sort", sa.Integer, nullable=False),
        sa.UniqueConstraint("task", "name", name="uq_style_groups_task_name"),
    )
    op.create_table(
        "catalog_styles",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "group_id",
            _ID,
            sa.ForeignKey("catalog_style_groups.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("thumb", sa.String(500), nullable=True),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("negative_prompt", sa.Text, nullable=False),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("sort", sa.Integer, nullable=False),
        sa.UniqueConstraint("task", "name", name="uq_styles_task_name"),
    )
    op.create_index("ix_styles_group", "catalog_styles", ["group_id"])
    op.create_table(
        "catalog_lora_templates",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("weight_name", sa.String(200), nullable=True),
        sa.Column("base_family", sa.String(64), nullable=True),
        sa.Column("trigger", sa.String(200), nullable=False),
        sa.Column("default_strength", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("catalog_lora_templates")
    op.drop_index("ix_styles_group", table_name="catalog_styles")
    op.drop_table("catalog_styles")
    op.drop_table("catalog_style_groups")
