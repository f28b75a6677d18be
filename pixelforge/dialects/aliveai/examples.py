"""Example bodies for the AliveAI routes' OpenAPI document (responses as this server sends)."""

from __future__ import annotations

from typing import Any

from pixelforge.dialects.aliveai.store import REQUEST_KEYS

PROMPT_ID = "job_a8Zr0cK1d2Q9xw3mP0vUoQ"
MEDIA_ID = "med_3q2xJ0cQ9h1b7m0PZrUo8A"
MEDIA_URL = (
    f"https://pixelforge.example/v1/media/{MEDIA_ID}/content"
    "?exp=1735693200&sig=kX2vQ8mZr1T0bYc4LpN7sWfA3eHjU6dG"
)
CREATED = "2025-01-01T00:00:00Z"

ME = {
    "id": "acc_Vb3k0Qm2pL8xT1zR9wYc4A",
    "credits": 42,
    "email": "ada@example.com",
    "apiKey": "pf_3kQm2pL8_xT1zR9wYc4AVb3k0Qm2pL8x",
    "emailConfirmed": True,
    "hasPurchase": False,
    "approved": True,
    "premiumExpiration": None,
    "created": CREATED,
}
UPLOAD = {"mediaId": MEDIA_ID, "mediaType": "IMAGE"}
TEMPLATE = {
    "id": "viking-armour",
    "name": "Viking armour",
    "description": "",
    "prompts": ["armour"],
    "modelId": "sd15",
    "host": None,
    "templateType": "IMAGE",
    "isPublic": True,
    "strength": 10.0,
    "supportedModels": [],
    "medias": [],
    "public": True,
}
MEDIA = {
    "id": MEDIA_ID,
    "mediaUrl": MEDIA_URL,
    "mediaType": "IMAGE",
    "width": 512,
    "height": 512,
}
REQUEST = {
    "name": "Marcielle Strongmaid",
    "appearance": "a strong viking woman, blonde hair, hazel eyes",
    "gender": "FEMALE",
    "fromLocation": "NORWAY",
    "model": "DEFAULT",
    "detailLevel": "MEDIUM",
    "seed": "42",
}
CONTAINER: dict[str, Any] = {
    "promptId": PROMPT_ID,
    **{key: REQUEST if key == "originalPrompt" else None for key in REQUEST_KEYS.values()},
    "isFavorite": False,
    "medias": [MEDIA],
    "promptType": "IMAGE_DEFAULT",
    "status": "COMPLETED",
    "progress": 100,
    "queuePosition": None,
    "isComplete": True,
    "isError": False,
    "errorType": None,
    "message": None,
    "created": CREATED,
}
CREATE = {"promptId": PROMPT_ID, "seed": "42", "promptContainer": CONTAINER}
QUEUE = {
    "queue": [
        {
            "promptId": PROMPT_ID,
            "promptType": "IMAGE_DEFAULT",
            "status": "PENDING",
            "queuePosition": 1,
            "progress": 0,
            "created": CREATED,
        }
    ]
}
PROMPTS = {"prompts": [CONTAINER], "hasNextPage": False, "totalPageCount": 1}
PROMPT_TEXT = {
    "promptText": "a 30 year old woman with long wavy red hair and an athletic build, freckled "
    "face, green eyes, confident smile, standing on a windy cliff at sunset, warm rim light"
}
VIDEO_PROMPT = {
    "promptText": "the woman slowly turns her head toward the camera and smiles, her hair "
    "moving in the breeze, slow push-in camera, warm golden light",
    "negPrompt": "blurry, distorted face, extra limbs, flickering, sudden cuts",
}
CLOTHES = {"clothesId": PROMPT_ID, "clothesPrompt": "", "clothesImageUrl": MEDIA_URL}


def error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"status": status, "errorType": code.upper(), "code": code, "message": message}


NOT_FOUND = error(404, "not_found", f"prompt {PROMPT_ID!r} not found")
INVALID = error(400, "invalid_parameter", "seed: must be a numeric string of at most 18 digits")


def responses(ok: Any = None, *errors: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """`responses=` with examples: the 200 body (None: no body, as a 204 has) and error
    bodies, each under its own status."""
    out: dict[int | str, dict[str, Any]] = {}
    if ok is not None:
        out[200] = {"content": {"application/json": {"example": ok}}}
    for body in errors:
        out[body["status"]] = {
            "description": body["code"].replace("_", " "),
            "content": {"application/json": {"example": body}},
        }
    return out
