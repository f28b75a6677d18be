"""The OpenAI images dialect: /v1/images/generations, /edits, /variations over core jobs.

Requests block until the job ends (at most `max_wait_s`); see docs/dialects/openai.md. Errors
under /v1/images leave in OpenAI's shape `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

from pixelforge.dialects.openai.errors import OpenAIErrorOut as ERROR_MODEL
from pixelforge.dialects.openai.errors import format_error
from pixelforge.dialects.openai.routes import PREFIX, router

NAME = "openai"

__all__ = ["ERROR_MODEL", "NAME", "PREFIX", "format_error", "router"]
