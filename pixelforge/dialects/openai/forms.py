"""OpenAI's multipart requests: read the form, decode the image and mask."""

from __future__ import annotations

import io
from typing import TypeVar

from fastapi import Request
from PIL import Image
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from pixelforge.dialects.openai.errors import OpenAIError, bad
from pixelforge.dialects.openai.translate import png
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.service import validation_message
from pixelforge.services import Services

_T = TypeVar("_T", bound=BaseModel)

# -- multipart -------------------------------------------------------------------------------


async def read_form(
    request: Request, files: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, list[bytes]]]:
    """Text fields and the named file fields (`image` and `image[]` alike)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad("image", "send this request as multipart/form-data with the image as a file")
    fields: dict[str, str] = {}
    uploads: dict[str, list[bytes]] = {}
    async with request.form(max_files=20, max_fields=100) as form:
        for key, value in form.multi_items():
            name = key.removesuffix("[]")
            if isinstance(value, UploadFile):
                if name not in files:
                    raise bad(name, "not supported here")
                uploads.setdefault(name, []).append(await value.read())
            elif name in files:
                raise bad(name, "send it as a file (multipart file part)")
            else:
                fields[name] = value
    if not uploads.get("image"):
        raise bad("image", "Field required")
    return fields, uploads


def parse_form(model: type[_T], fields: dict[str, str]) -> _T:
    try:
        return model.model_validate({k: v for k, v in fields.items() if v != ""})
    except ValidationError as e:
        raise PixelForgeError(ErrorCode.invalid_parameter, validation_message(e)) from None


def decode(services: Services, data: bytes, param: str) -> Image.Image:
    try:
        valid = services.media.validate(data)
    except PixelForgeError as e:
        raise OpenAIError(e.code, f"{param}: {e.message}", param=param, status=e.status) from None
    img = Image.open(io.BytesIO(valid.data))
    img.load()
    return img


def edit_inputs(
    services: Services, image_data: bytes, mask_data: bytes | None, size: tuple[int, int] | None
) -> tuple[bytes, bytes]:
    """(image PNG, mask PNG with white = repaint) from OpenAI's image and optional mask:
    fully transparent pixels of the mask (or, without one, of the image) are the ones edited."""
    image = decode(services, image_data, "image")
    if mask_data is not None:
        mask_img = decode(services, mask_data, "mask")
        if mask_img.size != image.size:
            raise bad("mask", f"its size {mask_img.size} differs from the image's {image.size}")
        if "A" in mask_img.getbands() or "transparency" in mask_img.info:
            mask = mask_img.convert("RGBA").getchannel("A").point(lambda a: 255 if a == 0 else 0)
        else:  # no alpha: read as a black and white mask, white = repaint
            mask = mask_img.convert("L").point(lambda v: 255 if v >= 128 else 0)
    else:
        if "A" not in image.getbands() and "transparency" not in image.info:
            raise bad("mask", "give a mask, or an image whose transparent areas are to be edited")
        mask = image.convert("RGBA").getchannel("A").point(lambda a: 255 if a == 0 else 0)
        if mask.getextrema()[1] == 0:
            raise bad("mask", "the image has no fully transparent area to edit; give a mask")
    rgb = image.convert("RGB")
    if size is not None:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
        mask = mask.resize(size, Image.Resampling.NEAREST)
    return png(rgb), png(mask.convert("L"))
