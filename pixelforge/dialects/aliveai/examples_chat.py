"""Example bodies for the AliveAI chat routes' OpenAPI document (as this server sends them)."""

from __future__ import annotations

import json
from typing import Any

from pixelforge.dialects.aliveai.examples import CREATED, MEDIA, error

CHARACTER_ID = "chr_Qm2pL8xT1zR9wYc4AVb3k0"
PERSONA_ID = "prs_Vb3k0Qm2pL8xT1zR9wYc4A"
CHAT_ID = "cht_k0Qm2pL8xT1zR9wYc4AVb3"
MESSAGE_ID = "msg_R9wYc4AVb3k0Qm2pL8xT1z"
USER_MESSAGE_ID = "msg_L8xT1zR9wYc4AVb3k0Qm2p"

CHARACTER = {
    "chatCharacterId": CHARACTER_ID,
    "characterName": "Seraphina",
    "characterBio": "Seraphina is a guardian of the forest glade, kind and protective.",
    "shortBio": "Guardian of the glade",
    "firstMessage": {"message": "Hello {{user}}, you are safe in my cottage."},
    "characterImage": {**MEDIA, "promptId": None},
    "created": CREATED,
    "updated": CREATED,
}
PERSONA = {"id": PERSONA_ID, "name": "Ada", "bio": "A curious traveller.", "defaultPersona": True}
MESSAGE = {
    "messageId": MESSAGE_ID,
    "messageType": "CHARACTER",
    "selectedCandidateId": f"{MESSAGE_ID}:0",
    "candidates": [
        {
            "candidateId": f"{MESSAGE_ID}:0",
            "message": "Hello Ada, you are safe in my cottage.",
            "selected": True,
            "status": "COMPLETE",
            "finishReason": None,
        }
    ],
    "created": CREATED,
}
CHAT = {
    "chatId": CHAT_ID,
    "chatCharacterId": CHARACTER_ID,
    "personaId": PERSONA_ID,
    "messages": [MESSAGE],
    "created": CREATED,
    "updated": CREATED,
}
CHAT_ITEM = {
    "chatId": CHAT_ID,
    "chatCharacterId": CHARACTER_ID,
    "personaId": PERSONA_ID,
    "characterName": "Seraphina",
    "characterImage": None,
    "created": CREATED,
    "updated": CREATED,
}
INIT = {
    "type": "init",
    "chatId": CHAT_ID,
    "userMessageId": USER_MESSAGE_ID,
    "userCandidateId": f"{USER_MESSAGE_ID}:0",
    "assistantMessageId": MESSAGE_ID,
    "assistantCandidateId": f"{MESSAGE_ID}:0",
}
STREAM = "".join(
    json.dumps(event) + "\n"
    for event in (
        INIT,
        {"type": "token", "token": "Hello"},
        {"type": "token", "token": " Ada"},
        {"type": "complete", "chatId": CHAT_ID, "message": MESSAGE},
    )
)

CHARACTER_NOT_FOUND = error(404, "not_found", f"character {CHARACTER_ID!r} not found")
PERSONA_NOT_FOUND = error(404, "not_found", f"persona {PERSONA_ID!r} not found")
CHAT_NOT_FOUND = error(404, "not_found", f"chat {CHAT_ID!r} not found")
PERSONA_IN_USE = error(
    409, "conflict", f"persona {PERSONA_ID!r} is used by 1 chat(s); delete those chats first"
)
BUSY = error(
    409, "conflict", "a reply is still being generated in this chat; wait for it or delete it"
)
INSUFFICIENT = error(
    402,
    "insufficient_credits",
    "this job costs 1 credits but only 0 are available; ask an administrator for more "
    "credits or cancel queued jobs",
)


def ndjson_responses(*errors: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """A streamed answer (NDJSON lines) and the errors answered before the stream starts."""
    out: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "init, token..., then complete or error: one JSON object per line",
            "content": {"application/x-ndjson": {"example": STREAM}},
        }
    }
    for body in errors:
        out[body["status"]] = {
            "description": body["code"].replace("_", " "),
            "content": {"application/json": {"example": body}},
        }
    return out
