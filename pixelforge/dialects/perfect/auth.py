"""Perfect's client auth: the server's RSA key pair and the id_token it decrypts.

A Perfect client holds a client_id and a "client secret" that is the base64 of an RSA public
key (X.509 SubjectPublicKeyInfo, DER). It proves itself by encrypting
`client_id=<client_id>&timestamp=<ms>` with that key; the server decrypts it with the private
half, checks the client_id and the clock, and hands out a 2-hour access token.

Here the key pair is one per server (generated once into the data directory); the client_id
is the account's PixelForge API key, so the secret that identifies a caller stays the API
key, which is per account and revocable.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pixelforge.clock import now
from pixelforge.dialects.perfect.errors import PerfectError
from pixelforge.dialects.perfect.settings import PerfectSettings, key_path
from pixelforge.errors import ErrorCode

KEY_BITS = 2048  # room for an API key in the id_token under either padding
_PLAINTEXT_RE = re.compile(r"^client_id=([\x21-\x7e]{1,200})&timestamp=(\d{10,16})$")


def id_token_error(message: str) -> PerfectError:
    return PerfectError(ErrorCode.unauthorized, message, perfect_code="InvalidIdToken", status=401)


def ensure_key(path: Path) -> None:
    """Generate the key pair once (0600); concurrent starters agree on the first one."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        # link() fails if another process got there first: theirs is kept, ours dropped.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class ServerKey:
    private: rsa.RSAPrivateKey
    client_secret: str  # base64 of the public key's X.509 DER: what clients encrypt with


@lru_cache(maxsize=8)
def _load(path: str, _mtime_ns: int) -> ServerKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ServerKey(private=key, client_secret=base64.b64encode(der).decode())


def server_key(options: PerfectSettings) -> ServerKey:
    path = key_path(options)
    if not path.exists():
        ensure_key(path)
    return _load(str(path), path.stat().st_mtime_ns)


def _decrypt(key: rsa.RSAPrivateKey, blob: bytes) -> bytes:
    # OAEP first: its failure is a clean error. PKCS#1 v1.5 (what Perfect's samples use)
    # answers a wrong padding with random bytes, which the format check below refuses.
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    try:
        return key.decrypt(blob, oaep)
    except ValueError:
        pass
    try:
        return key.decrypt(blob, padding.PKCS1v15())
    except ValueError:
        raise id_token_error("id_token could not be decrypted with this server's key") from None


def read_id_token(options: PerfectSettings, *, client_id: str, id_token: str) -> None:
    """Check an id_token against the client_id it was sent with; 401 InvalidIdToken if not."""
    key = server_key(options)
    try:
        blob = base64.b64decode("".join(id_token.split()), validate=True)
    except (binascii.Error, ValueError):
        raise id_token_error("id_token is not base64") from None
    if len(blob) != key.private.key_size // 8:
        raise id_token_error(
            "id_token was not encrypted with this server's client secret "
            "(fetch it from /perfect/client-credentials)"
        )
    try:
        text = _decrypt(key.private, blob).decode("ascii")
    except UnicodeDecodeError:
        text = ""
    m = _PLAINTEXT_RE.match(text)
    if m is None:
        raise id_token_error(
            "id_token does not decrypt to client_id=<client_id>&timestamp=<milliseconds>"
        )
    if not secrets.compare_digest(m.group(1).encode(), client_id.encode()):
        raise id_token_error("id_token was made for a different client_id")
    skew_s = abs(now() - int(m.group(2)) / 1000)
    if skew_s > options.timestamp_skew_s:
        raise id_token_error(
            f"id_token timestamp is {skew_s:.0f} s away from the server's clock (at most "
            f"{options.timestamp_skew_s:g} s allowed); make a new one with the "
            "current time in milliseconds"
        )
