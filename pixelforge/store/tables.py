"""The tables. Times are UTC epoch seconds (float) so SQLite and PostgreSQL agree exactly."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Default for this account's jobs: refuse explicit outputs (NSFW gate).
    block_explicit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[float] = mapped_column(Float)
    # When a worker last took one of this account's jobs: the fair queue's tie-breaker.
    last_served_at: Mapped[float | None] = mapped_column(Float)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_api_keys_account", "account_id"),)


class LedgerEntry(Base):
    """Append-only. kind: grant | hold | capture | void. Amounts are positive."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        # At most one hold, one capture, one void per job: a second capture cannot exist.
        UniqueConstraint("job_id", "kind", name="uq_ledger_job_kind"),
        Index("ix_ledger_account", "account_id"),
    )


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    pipeline: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    cost: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    attempt_token: Mapped[str | None] = mapped_column(String(40))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    block_explicit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    # Set for clients that must keep polling (Perfect's 10 s rule): a job not polled within
    # poll_timeout_s of last_polled_at (or created_at) is abandoned: canceled, not charged.
    poll_timeout_s: Mapped[float | None] = mapped_column(Float)
    last_polled_at: Mapped[float | None] = mapped_column(Float)
    # The submitter's own fields (the native API's `metadata`, a dialect's request as sent),
    # stored with the job in one transaction; the core keeps them and acts on none of them.
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))

    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_jobs_account_idem"),
        Index("ix_jobs_status_priority", "status", "priority", "created_at"),
        Index("ix_jobs_account_created", "account_id", "created_at"),
        Index("ix_jobs_account_started", "account_id", "started_at"),
    )


class StyleGroup(Base):
    """A group of styles for one task (Perfect's style groups; AiArt's presets' families)."""

    __tablename__ = "catalog_style_groups"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    sort: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (UniqueConstraint("task", "name", name="uq_style_groups_task_name"),)


class Style(Base):
    """A style preset: a prompt template with `{prompt}`, negatives, preferred model/params."""

    __tablename__ = "catalog_styles"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalog_style_groups.id", ondelete="SET NULL")
    )
    task: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    thumb: Mapped[str | None] = mapped_column(String(500))
    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sort: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        UniqueConstraint("task", "name", name="uq_styles_task_name"),
        Index("ix_styles_group", "group_id"),
    )


class LoraTemplateRow(Base):
    """A LoRA users can apply by id, typed as AliveAI does (IMAGE, IMAGE_EDIT, VIDEO)."""

    __tablename__ = "catalog_lora_templates"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(500))
    weight_name: Mapped[str | None] = mapped_column(String(200))
    base_family: Mapped[str | None] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(200), default="")
    default_strength: Mapped[float] = mapped_column(Float, default=1.0)
    created_at: Mapped[float] = mapped_column(Float)


class Media(Base):
    """An upload or a result. kind: upload | result."""

    __tablename__ = "media"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_media_account", "account_id", "created_at"),
        Index("ix_media_expires", "expires_at"),
        Index("ix_media_job", "job_id"),
    )


class AliveaiVisionRow(Base):
    """A character card AliveAI's Create Vision wrote from an image (Update Vision rewrites
    it): the card as answered, the source image (an upload, gone after its retention) and the
    last job that wrote it."""

    __tablename__ = "aliveai_visions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    media_id: Mapped[str | None] = mapped_column(String(40))
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    job_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_aliveai_visions_account", "account_id", "created_at"),)


class FilterRow(Base):
    """A curated filter (Eventstation's filter ids): a pipeline, a prompt template, params.

    `id` is the public id: a decimal integer for the shipped, curated filters or a UUID for
    custom ones. A deleted filter keeps its row (`deleted_at`) so reseeding at startup does
    not bring back what an administrator removed."""

    __tablename__ = "catalog_filters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    thumb: Mapped[str | None] = mapped_column(String(500))
    pipeline: Mapped[str] = mapped_column(String(64))
    persons: Mapped[int] = mapped_column(Integer, default=1)
    # "{gender}", "{gender_2}" and "{prompt}" are filled in per request.
    prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    gender_words: Mapped[list[str] | None] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sort: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    deleted_at: Mapped[float | None] = mapped_column(Float)


class CharacterRow(Base):
    """A chat character: the card's V3 `data` object as given (unknown fields kept), its
    name copied out for listing, an avatar (a media id). Soft-deleted (`deleted_at`) so the
    chats that use it still read."""

    __tablename__ = "chat_characters"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    avatar_media_id: Mapped[str | None] = mapped_column(String(40))
    # For a character imported from a card file: the spec it came as and the card's unknown
    # top-level fields, so an export gives them back ({"spec", "spec_version", "extra_top"}).
    card_meta: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    deleted_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_chat_characters_account", "account_id", "created_at"),)


class PersonaRow(Base):
    """Who the user plays in a chat. Exactly one per account is the default (the partial
    unique index allows at most one; the service keeps at least one)."""

    __tablename__ = "chat_personas"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    avatar_media_id: Mapped[str | None] = mapped_column(String(40))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_chat_personas_account", "account_id", "created_at"),
        Index(
            "uq_chat_personas_default",
            "account_id",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )


class ChatRow(Base):
    """A conversation with one character as one persona (None: the built-in "User")."""

    __tablename__ = "chats"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    character_id: Mapped[str] = mapped_column(ForeignKey("chat_characters.id"))
    persona_id: Mapped[str | None] = mapped_column(ForeignKey("chat_personas.id"))
    model: Mapped[str | None] = mapped_column(String(100))
    # Sampling settings as given (temperature, top_p, top_k, repetition_penalty, max_tokens, stop).
    sampling: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_chats_account", "account_id", "created_at"),
        Index("ix_chats_character", "character_id"),
        Index("ix_chats_persona", "persona_id"),
    )


class ChatMessageRow(Base):
    """One turn of a chat, in `seq` order; its text is its selected candidate's."""

    __tablename__ = "chat_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    chat_id: Mapped[str] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    selected: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("chat_id", "seq", name="uq_chat_messages_seq"),)


class ChatCandidateRow(Base):
    """One alternative text of a message (a swipe). status: complete | generating |
    incomplete | failed. A generating candidate is settled from its job's row
    (`choice` is its index among the job's choices; `base_len` the length of the text a
    continuation started from). `media_id`: the image of an in-chat image message's
    candidate (its text is then the image prompt); None for text."""

    __tablename__ = "chat_candidates"

    message_id: Mapped[str] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(40))
    choice: Mapped[int] = mapped_column(Integer, default=0)
    base_len: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    media_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_chat_candidates_job", "job_id"),)
