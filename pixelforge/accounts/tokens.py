"""Short-lived signed access tokens (JWT, HS256 only) and password hashing."""

from __future__ import annotations

import hashlib
import hmac

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError

_ALGORITHM = "HS256"  # fixed: never taken from the token header
_hasher = PasswordHasher()


def derive_key(secret: str, purpose: str) -> bytes:
    """A separate key per purpose, so a token key never signs URLs and vice versa."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def issue_access_token(*, key: bytes, account_id: str, ttl_s: int) -> str:
    issued = int(now())
    claims = {"sub": account_id, "iat": issued, "exp": issued + ttl_s, "typ": "access"}
    return jwt.encode(claims, key, algorithm=_ALGORITHM)


def verify_access_token(*, key: bytes, token: str) -> str:
    """The account id in a valid, unexpired access token; otherwise 401."""
    try:
        claims = jwt.decode(
            token, key, algorithms=[_ALGORITHM], options={"require": ["exp", "sub", "iat"]}
        )
    except jwt.ExpiredSignatureError:
        raise PixelForgeError(
            ErrorCode.unauthorized, "access token expired; log in again"
        ) from None
    except jwt.PyJWTError:
        raise PixelForgeError(ErrorCode.unauthorized, "invalid access token") from None
    if claims.get("typ") != "access" or not isinstance(claims.get("sub"), str):
        raise PixelForgeError(ErrorCode.unauthorized, "invalid access token")
    return str(claims["sub"])


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
