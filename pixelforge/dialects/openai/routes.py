"""OpenAI's Images API routes: generations, edits, variations under /v1/images.

Requests block until the job ends (at most `max_wait_s`); see docs/dialects/openai.md for the
parameter readings. Errors under /v1/images leave in OpenAI's shape.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from pixelforge.dialects.openai.errors import bad
from pixelforge.dialects.openai.forms import decode, edit_inputs, parse_form, read_form
from pixelforge.dialects.openai.schemas import (
    EDIT_BODY,
    RESPONSES,
    VARIATION_BODY,
    EditIn,
    IdempotencyKey,
    ImagesOut,
    OpenAIImageGenerateIn,
    VariationIn,
)
from pixelforge.dialects.openai.translate import (
    STYLES,
    VARIATION_PROMPT,
    VARIATION_STRENGTH,
    check_prompted,
    core_params,
    ingest,
    parse_size,
    png,
    resolve_model,
    run_images,
)
from pixelforge.models.base import IMAGE_TO_IMAGE, INPAINT, TEXT_TO_IMAGE
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

PREFIX = "/v1/images"
router = APIRouter(tags=["openai"])

# -- routes ----------------------------------------------------------------------------------


@router.post(
    f"{PREFIX}/generations",
    response_model=ImagesOut,
    response_model_exclude_none=True,
    responses=RESPONSES,
    summary="OpenAI: create images from a prompt (text_to_image)",
)
@answers(503, 504)
async def openai_generate(
    body: OpenAIImageGenerateIn,
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


@router.post(
    f"{PREFIX}/edits",
    response_model=ImagesOut,
    response_model_exclude_none=True,
    responses=RESPONSES,
    summary="OpenAI: edit the transparent (or masked) area of an image (inpaint)",
    openapi_extra={"requestBody": EDIT_BODY},
)
@answers(503, 504)
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
    responses=RESPONSES,
    summary="OpenAI: variations of an image (image_to_image, neutral prompt)",
    openapi_extra={"requestBody": VARIATION_BODY},
)
@answers(503, 504)
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
        services, account, png(image.convert("RGB")), reuse=idempotency_key is not None
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
