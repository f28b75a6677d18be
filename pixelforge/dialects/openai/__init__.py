"""The OpenAI dialect: Images (/v1/images/generations, /edits, /variations), Chat Completions
(/v1/chat/completions) and the legacy Completions (/v1/completions) over core jobs.

An OpenAI client reaches it with `base_url=http://HOST:PORT/v1`; the model list is the native
`GET /v1/models`, which is already in OpenAI's shape. Images requests block until the job ends
(at most `max_wait_s`); chat and completions stream when asked (see docs/dialects/openai.md).
Errors under these paths leave in OpenAI's shape `{"error": {"message", "type", "param",
"code"}}`.
"""

from __future__ import annotations

from fastapi import APIRouter

from pixelforge.dialects.openai.errors import OpenAIErrorOut as ERROR_MODEL
from pixelforge.dialects.openai.errors import format_error
from pixelforge.dialects.openai.routes import PREFIX
from pixelforge.dialects.openai.routes import router as images_router
from pixelforge.dialects.openai.routes_chat import CHAT_PREFIX, COMPLETIONS_PREFIX
from pixelforge.dialects.openai.routes_chat import router as chat_router

NAME = "openai"
PREFIXES = (PREFIX, CHAT_PREFIX, COMPLETIONS_PREFIX)
router = APIRouter()
router.include_router(images_router)
router.include_router(chat_router)

__all__ = ["ERROR_MODEL", "NAME", "PREFIX", "PREFIXES", "format_error", "router"]
