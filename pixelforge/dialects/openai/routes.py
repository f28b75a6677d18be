"""The OpenAI images dialect: /v1/images/generations, /edits, /variations over core jobs.

Requests block until the job ends (at most `max_wait_s`); see docs/dialects/openai.md for the
parameter readings. Errors under /v1/images leave in OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import base64
import io
import re
import time
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from pixelforge.api.deps import CurrentAccount, ServicesDep
from pixelforge.dialects import common
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.events import TERMINAL
from pixelforge.jobs.service import validation_message
from pixelforge.models.base import IMAGE_TO_IMAGE, INPAINT, TEXT_TO_IMAGE, ModelProfile
from pixelforge.services import Services
from pixelforge.store.tables import Account

NAME = "openai"
PREFIX = "/v1/images"
router = APIRouter(tags=["openai"])
_T = TypeVar("_T", bound=BaseModel)

MAX_N = 4  # the core pipelines make at most 4 images per job
OPENAI_MODELS = ("dall-e-", "gpt-image-", "chatgpt-image-")  # read as "the server's default"
# Steps as a multiple of the model's default.
QUALITY_STEPS = {"low": 0.5, "standard": 1, "medium": 1, "auto": 1, "hd": 2, "high": 2}
QUALITY_STEPS |= {"xhigh": 3, "max": 4}
STYLES = {
    "vivid": (", vivid colors, dramatic lighting, hyper-detailed", ""),
    "natural": ("", "oversaturated, hyperreal, dramatic lighting"),
}
VARIATION_PROMPT = "a high quality image"
VARIATION_STRENGTH = 0.6
_SIZE_RE = re.compile(r"(\d{1,5})x(\d{1,5})")
_PARAM_RE = re.compile(r"^([\w./\[\]]+): ")
# Core parameter names -> the OpenAI parameter a client sent.
_PARAMS = {"num_images": "n", "width": "size", "height": "size", "width/height": "size"}
_ERRORS: dict[ErrorCode, tuple[int | None, str, str | None]] = {  # status, type, code
    ErrorCode.unauthorized: (None, "invalid_request_error", "invalid_api_key"),
    ErrorCode.insufficient_credits: (429, "insufficient_quota", "insufficient_quota"),
    ErrorCode.rate_limited: (None, "requests", "rate_limit_exceeded"),
    ErrorCode.error_nsfw_content_detected: (
        400,
        "invalid_request_error",
        "content_policy_violation",
    ),
    ErrorCode.timeout: (504, "server_error", "timeout"),
}
# Retrying these cannot help (or would run the job again); everything else keeps the default.
_NO_RETRY = {ErrorCode.insufficient_credits, ErrorCode.model_unavailable, ErrorCode.timeout}


class OpenAIError(PixelForgeError):
    """A PixelForge error that names the OpenAI request parameter at fault (and, where OpenAI
    has its own for the case, OpenAI's error code)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        param: str | None,
        openai_code: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(code, message, **kw)
        self.param = param
        self.openai_code = openai_code


def _param(err: PixelForgeError) -> str | None:
    if isinstance(err, OpenAIError):
        return err.param
    if err.status >= 500 or err.code in _ERRORS:
        return None
    m = _PARAM_RE.match(err.message)
    if m is None or m.group(1) == "body":
        return None
    name = m.group(1).removeprefix("params.").split(".")[0].split("[")[0]
    return _PARAMS.get(name, name)


def format_error(err: PixelForgeError) -> Response:
    status, kind, code = _ERRORS.get(err.code, (None, "", err.code.value))
    if isinstance(err, OpenAIError) and err.openai_code:
        code = err.openai_code
    status = status or err.status
    if not kind:
        kind = "server_error" if status >= 500 else "invalid_request_error"
    message = err.message.replace("Extra inputs are not permitted", "not supported here")
    headers = dict(err.headers)
    if err.code in _NO_RETRY:
        headers.setdefault("x-should-retry", "false")
    body = {"error": {"message": message, "type": kind, "param": _param(err), "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def bad(param: str, message: str) -> OpenAIError:
    return OpenAIError(ErrorCode.invalid_parameter, f"{param}: {message}", param=param)


# -- request and response shapes -----------------------------------------------------------

Quality = Literal["low", "medium", "high", "xhigh", "max", "auto", "standard", "hd"]
IdempotencyKey = Annotated[str | None, Header(max_length=200)]


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, max_length=100, examples=["sd-turbo"])
    n: int | None = Field(None, ge=1, le=MAX_N, description=f"1 to {MAX_N}")
    size: str | None = Field(None, max_length=20, examples=["512x512"])
    response_format: Literal["url", "b64_json"] | None = None
    output_format: Literal["png", "webp", "jpeg"] | None = None
    user: str | None = Field(None, description="ignored")
    # PixelForge extensions
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="PixelForge: fixed seed")
    steps: int | None = Field(None, ge=1, le=150, description="PixelForge: overrides quality")
    negative_prompt: str | None = Field(None, max_length=2000, description="PixelForge")


class _Prompted(_Common):
    prompt: str = Field(min_length=1, max_length=2000, examples=["a lighthouse at dusk"])
    quality: Quality | None = None
    background: Literal["transparent", "opaque", "auto"] | None = None
    stream: bool | None = None
    # Accepted and ignored:
    output_compression: int | None = Field(None, ge=0, le=100)
    moderation: Literal["low", "auto"] | None = None
    safety_identifier: str | None = None
    partial_images: int | None = None
    complexity: str | None = None


class GenerateIn(_Prompted):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"prompt": "a lighthouse at dusk", "size": "512x512", "n": 1}]
        }
    )
    style: Literal["vivid", "natural"] | None = None


class EditIn(_Prompted):
    input_fidelity: Literal["high", "low"] | None = None  # ignored


class VariationIn(_Common):
    prompt: str | None = Field(None, min_length=1, max_length=2000, description="PixelForge")
    strength: float | None = Field(None, gt=0.0, le=1.0, description="PixelForge")


class ImageOut(BaseModel):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "created": 1735689600,
                    "data": [{"url": "https://pf.example/v1/media/med_x/content?exp=1&sig=s"}],
                    "output_format": "png",
                    "size": "512x512",
                }
            ]
        }
    )
    created: int
    data: list[ImageOut]
    output_format: str | None = None
    size: str | None = None


class OpenAIErrorBody(BaseModel):
    message: str = Field(examples=["size: '13x7' is not a size; use WIDTHxHEIGHT or auto"])
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = Field(examples=["size"])
    code: str | None = Field(examples=["invalid_parameter"])


class OpenAIErrorOut(BaseModel):
    error: OpenAIErrorBody


_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": OpenAIErrorOut} for s in (400, 401, 404, 429, 503, 504)
}


# -- readings --------------------------------------------------------------------------------


def parse_size(size: str | None) -> tuple[int, int] | None:
    """WIDTHxHEIGHT as asked (multiples of 8, 64 to 2048 px a side); None for auto."""
    if size in (None, "", "auto"):
        return None
    m = _SIZE_RE.fullmatch(size)
    if m is None:
        raise bad("size", f"{size!r} is not a size; use WIDTHxHEIGHT (e.g. 1024x1024) or auto")
    w, h = int(m.group(1)), int(m.group(2))
    if not (64 <= w <= 2048 and 64 <= h <= 2048) or w % 8 or h % 8:
        raise bad("size", f"{size}: each side must be a multiple of 8 from 64 to 2048 px")
    return w, h


def resolve_model(services: Services, name: str | None, task: str) -> ModelProfile:
    if name is None or name.startswith(OPENAI_MODELS):
        return services.models.profile(None, task=task)
    if services.models.catalog.get(name) is None:
        raise OpenAIError(
            ErrorCode.not_found,
            f"The model '{name}' does not exist on this server; see GET /v1/models",
            param="model",
            openai_code="model_not_found",
        )
    try:
        return services.models.profile(name, task=task)
    except PixelForgeError as e:
        if e.code == ErrorCode.invalid_parameter:
            raise OpenAIError(e.code, e.message, param="model") from None
        raise


def core_params(body: _Common, profile: ModelProfile, *, quality: str | None) -> dict[str, Any]:
    """The fields every generation pipeline shares, from the OpenAI request."""
    params: dict[str, Any] = {"model": profile.id, "num_images": body.n or 1}
    if body.steps is not None:
        params["steps"] = body.steps
    elif quality is not None:
        params["steps"] = min(150, max(1, round(profile.default_steps * QUALITY_STEPS[quality])))
    if body.seed is not None:
        params["seed"] = body.seed
    if body.negative_prompt:
        params["negative_prompt"] = body.negative_prompt
    if body.output_format is not None:
        params["output_format"] = "jpg" if body.output_format == "jpeg" else body.output_format
    return params


def check_prompted(body: _Prompted) -> None:
    if body.stream:
        raise bad("stream", "streaming is not supported here; omit stream")
    if body.background == "transparent":
        raise bad("background", "transparent backgrounds are not supported; use opaque or auto")


# -- running ---------------------------------------------------------------------------------


async def run_images(
    services: Services,
    request: Request,
    response: Response,
    account: Account,
    pipeline: str,
    params: dict[str, Any],
    *,
    key: str | None,
    body: _Common,
    revised_prompt: str | None = None,
) -> ImagesOut:
    """Submit, block until the job ends, and answer in OpenAI's shape."""
    submitted = await common.submit(services, account, pipeline, params, idempotency_key=key)
    if not submitted.created:
        response.headers["Idempotent-Replayed"] = "true"
    job = await common.wait(services, submitted.job, services.settings.max_wait_s)
    if job.status not in TERMINAL:
        await _time_out(services, account, job.id, key=key)
    if job.status != "succeeded":
        raise common.job_error(job, fallback=f"the job ended {job.status}")
    rows = await common.outputs(services, job)
    b64 = body.response_format == "b64_json" or (
        body.response_format is None and (body.model or "").startswith("gpt-image")
    )
    data = []
    for row in rows:
        out = ImageOut(revised_prompt=revised_prompt)
        if b64:
            raw = await run_in_threadpool(services.media.read_bytes, row)
            out.b64_json = base64.b64encode(raw).decode("ascii")
        else:
            out.url = common.media_url(services, request, row)
        data.append(out)
    first = rows[0] if rows else None
    return ImagesOut(
        created=int(job.finished_at or time.time()),
        data=data,
        output_format=first.content_type.removeprefix("image/") if first else None,
        size=f"{first.width}x{first.height}" if first and first.width else None,
    )


async def _time_out(services: Services, account: Account, job_id: str, *, key: str | None) -> None:
    wait = f"{services.settings.max_wait_s:g} s"
    if key is None:
        # Nothing could pick this job up again through this API: stop it, charge nothing.
        await run_in_threadpool(lambda: services.jobs.cancel(account_id=account.id, job_id=job_id))
        message = (
            f"the image was not ready within {wait}; job {job_id} was canceled and nothing "
            "was charged. Send an Idempotency-Key header to be able to retry and collect it"
        )
        raise PixelForgeError(ErrorCode.timeout, message, status=504)
    message = (
        f"the image was not ready within {wait}; job {job_id} goes on. Retry with the same "
        "Idempotency-Key to collect it"
    )
    raise PixelForgeError(
        ErrorCode.timeout, message, status=504, headers={"x-should-retry": "true"}
    )


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def ingest(services: Services, account: Account, data: bytes, *, reuse: bool) -> str:
    """Store a prepared input PNG; its media id. With an idempotency key an identical earlier
    upload is reused, so a retried request has the same params and maps to the same job."""
    return (await common.ingest_image(services, account, data=data, reuse_identical=reuse)).id


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
    return _png(rgb), _png(mask.convert("L"))


# -- routes ----------------------------------------------------------------------------------


@router.post(
    f"{PREFIX}/generations",
    response_model=ImagesOut,
    response_model_exclude_none=True,
    responses=_RESPONSES,
    summary="OpenAI: create images from a prompt (text_to_image)",
)
async def openai_generate(
    body: GenerateIn,
    request: Request,
    response: Response,
    account: CurrentAccount,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> ImagesOut:
    check_prompted(body)
    size = parse_size(body.size)
    profile = await run_in_threadpool(resolve_model, services, body.model, TEXT_TO_IMAGE)
    params = core_params(body, profile, quality=body.quality)
    prompt, revised = body.prompt, None
    if body.style is not None:
        suffix, negative = STYLES[body.style]
        prompt = revised = body.prompt + suffix
        if negative and not body.negative_prompt:
            params["negative_prompt"] = negative
    params["prompt"] = prompt
    if size is not None:
        params["width"], params["height"] = size
    return await run_images(
        services,
        request,
        response,
        account,
        "text_to_image",
        params,
        key=idempotency_key,
        body=body,
        revised_prompt=revised,
    )


_EDIT_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image", "prompt"],
                "properties": {
                    "image": {"type": "string", "format": "binary"},
                    "mask": {"type": "string", "format": "binary"},
                    "prompt": {"type": "string"},
                    "model": {"type": "string"},
                    "n": {"type": "integer"},
                    "size": {"type": "string"},
                    "response_format": {"type": "string", "enum": ["url", "b64_json"]},
                },
            },
            "example": {"prompt": "a red door", "size": "512x512", "n": "1"},
        }
    }
}
_VARIATION_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {"type": "string", "format": "binary"},
                    "model": {"type": "string"},
                    "n": {"type": "integer"},
                    "size": {"type": "string"},
                    "response_format": {"type": "string", "enum": ["url", "b64_json"]},
                },
            },
            "example": {"size": "512x512", "n": "2"},
        }
    }
}


@router.post(
    f"{PREFIX}/edits",
    response_model=ImagesOut,
    response_model_exclude_none=True,
    responses=_RESPONSES,
    summary="OpenAI: edit the transparent (or masked) area of an image (inpaint)",
    openapi_extra={"requestBody": _EDIT_BODY},
)
async def openai_edit(
    request: Request,
    response: Response,
    account: CurrentAccount,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> ImagesOut:
    fields, files = await read_form(request, ("image", "mask"))
    body = parse_form(EditIn, fields)
    check_prompted(body)
    if len(files["image"]) > 1:
        raise bad("image", "this server edits one image per request; send the others separately")
    if len(files.get("mask", [])) > 1:
        raise bad("mask", "give one mask")
    size = parse_size(body.size)
    profile = await run_in_threadpool(resolve_model, services, body.model, INPAINT)
    mask_data = files["mask"][0] if files.get("mask") else None
    image_png, mask_png = await run_in_threadpool(
        edit_inputs, services, files["image"][0], mask_data, size
    )
    reuse = idempotency_key is not None
    params = core_params(body, profile, quality=body.quality)
    params["prompt"] = body.prompt
    params["image"] = await ingest(services, account, image_png, reuse=reuse)
    params["mask"] = await ingest(services, account, mask_png, reuse=reuse)
    return await run_images(
        services, request, response, account, "inpaint", params, key=idempotency_key, body=body
    )


@router.post(
    f"{PREFIX}/variations",
    response_model=ImagesOut,
    response_model_exclude_none=True,
    responses=_RESPONSES,
    summary="OpenAI: variations of an image (image_to_image, neutral prompt)",
    openapi_extra={"requestBody": _VARIATION_BODY},
)
async def openai_variation(
    request: Request,
    response: Response,
    account: CurrentAccount,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> ImagesOut:
    fields, files = await read_form(request, ("image",))
    body = parse_form(VariationIn, fields)
    if len(files["image"]) > 1:
        raise bad("image", "give one image")
    size = parse_size(body.size)
    profile = await run_in_threadpool(resolve_model, services, body.model, IMAGE_TO_IMAGE)
    image = await run_in_threadpool(decode, services, files["image"][0], "image")
    params = core_params(body, profile, quality=None)
    params["prompt"] = body.prompt or VARIATION_PROMPT
    params["strength"] = body.strength or VARIATION_STRENGTH
    params["image"] = await ingest(
        services, account, _png(image.convert("RGB")), reuse=idempotency_key is not None
    )
    if size is not None:
        params["width"], params["height"] = size
    return await run_images(
        services,
        request,
        response,
        account,
        "image_to_image",
        params,
        key=idempotency_key,
        body=body,
    )
