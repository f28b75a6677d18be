"""Random, unguessable identifiers with a readable type prefix."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    # 16 random bytes: 128 bits, not enumerable, URL-safe.
    return f"{prefix}_{secrets.token_urlsafe(16)}"
