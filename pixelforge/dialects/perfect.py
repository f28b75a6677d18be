"""The perfect dialect (placeholder until its module lands; mounts no routes yet)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from pixelforge.errors import PixelForgeError

NAME = "perfect"
PREFIX = "/perfect"
router = APIRouter()


def format_error(err: PixelForgeError) -> Response:
    return JSONResponse(err.to_dict(), status_code=err.status, headers=err.headers)
