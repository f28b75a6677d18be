"""AliveAI's chat request bodies (Chat Character, Chat Persona and Chat Resources), field for
field as the seed names them, with its length limits."""

from __future__ import annotations

from pydantic import Field

from pixelforge.dialects.aliveai.schemas import Body


class CharacterRequest(Body):
    """Submit Character and Update Character."""

    name: str = Field(min_length=1, max_length=50, description="Display name of the character.")
    bio: str = Field(
        min_length=1,
        max_length=15000,
        description="Long-form bio used as system context (the card's description).",
    )
    shortBio: str = Field(
        min_length=1, max_length=1000, description="Short bio shown in lists and previews."
    )
    firstMessage: str = Field(
        min_length=1,
        max_length=15000,
        description="Default first message the character sends when a new chat is started.",
    )
    mediaId: str | None = Field(
        None, max_length=64, description="A media you own (Upload File, a prompt's media)."
    )
    promptId: str | None = Field(
        None, max_length=64, description="The prompt that produced mediaId (stored only)."
    )


class PersonaRequest(Body):
    """Create Persona and Update Persona."""

    name: str = Field(min_length=1, max_length=20, description="Display name of the persona.")
    bio: str | None = Field(
        None, max_length=150, description="Sent to the character as part of the chat context."
    )
    isDefault: bool = Field(description="true: this persona becomes the default.")


class CreateChatRequest(Body):
    """Create Chat With Custom First Message."""

    chatCharacterId: str = Field(min_length=1, max_length=64)
    firstMessage: str = Field(
        max_length=15000,
        description="Opening message attributed to the character (empty: the character's own).",
    )
    personaId: str | None = Field(
        None, max_length=64, description="The persona to chat as (absent or empty: the default)."
    )


class SendMessageRequest(Body):
    userMessage: str = Field(min_length=1, max_length=4000, pattern=r"\S")


class UpdateCandidateRequest(Body):
    message: str = Field(min_length=1, max_length=20000, pattern=r"\S")
