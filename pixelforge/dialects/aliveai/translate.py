"""AliveAI requests -> core pipeline params (one function per endpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pixelforge.dialects.aliveai import schemas as sc
from pixelforge.dialects.aliveai.errors import not_available
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.services import Services

MAX_SEED = 2**32 - 1
MAX_PROMPT = 2000
MAX_LORAS = 4
_GENDER = {"MALE": "man", "FEMALE": "woman", "TRANS": "transgender person"}
_PRIVATE = "is not available on private servers"
_FPS = {"LOW": 7, "MEDIUM": 12, "HIGH": 24}
_UPSCALERS = {
    "DEFAULT": "realesrgan-x4plus",
    "SKIN_DETAIL": "realesrgan-x4plus",
    "ALTERNATIVE": "realesr-animevideov3",
}
_FACE_MODELS = {"REALISM": "realesrgan-x4plus", "CREATIVE": "realesr-animevideov3"}
CLOTHES_PIPELINE = "extract_clothes"


@dataclass(frozen=True)
class Plan:
    pipeline: str
    params: dict[str, Any]
    prompt_type: str
    block_explicit: bool | None = None


def invalid(message: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.invalid_parameter, message)


def core_seed(seed: str | None) -> int:
    """The seed as the core takes it (0 = random); above 2^32-1 it is reduced modulo."""
    if not seed:
        return 0
    if not seed.isdigit():
        raise invalid("seed: must be a numeric string of at most 18 digits")
    n = int(seed)
    return n if n <= MAX_SEED else n % MAX_SEED


def join(*parts: str | None) -> str:
    return ", ".join(p.strip() for p in parts if p and p.strip())[:MAX_PROMPT]


def character_of(request: dict[str, Any]) -> str:
    """A character as a Create Prompt request describes it (empty for other requests)."""
    where, face = request.get("fromLocation"), request.get("faceDetails")
    return join(
        request.get("name"),
        _GENDER.get(request.get("gender") or ""),
        request.get("appearance"),
        f"from {where}" if where else None,
        f"face: {face}" if face else None,
    )


def model_for(services: Services, task: str, alias: str) -> str | None:
    """A model profile named `aliveai-...` serves that AliveAI model; else the task's default."""
    profile = services.models.catalog.get(alias)
    return alias if profile is not None and task in profile.tasks else None


def _default_profile(services: Services, model: str | None, task: str) -> Any:
    catalog = services.models.catalog
    return catalog.get(model or catalog.default_for(task))


def loras(
    services: Services, templates: list[sc.TemplateRequest] | None, kind: str, field: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Core LoRA refs (strength 0-10 -> 0-1) and the templates' extra prompts."""
    templates = templates or []
    if len(templates) > MAX_LORAS:
        raise invalid(f"{field}: at most {MAX_LORAS} templates run together on this server")
    refs, prompts = [], []
    for i, t in enumerate(templates):
        tpl = services.catalog.lora(t.id)
        if tpl is None or tpl.type != kind:
            raise invalid(f"{field}[{i}].id: {t.id!r} is not a {kind} template; see /loras")
        strength = tpl.default_strength if t.strength is None else t.strength / 10
        refs.append({"id": t.id, "strength": min(strength, 2.0)})
        if t.prompt:
            prompts.append(t.prompt)
    return refs, prompts


def create_prompt(services: Services, body: sc.CreatePromptRequest) -> Plan:
    if body.model in ("ANIMA", "GROK"):
        raise not_available(f"model {body.model} {_PRIVATE}")
    if body.faceSwap is not None:
        raise not_available("faceSwap: not chained here; run After Face Swap on the result")
    templates = list(body.modelTemplates or [])
    if body.modelTemplate is not None:
        templates.append(sc.TemplateRequest(id=body.modelTemplate))
    refs, extra = loras(services, templates, "IMAGE", "modelTemplates")
    clothes = body.clothesRequest if body.model == "CHARACTER_CREATOR" else None
    if clothes is not None and clothes.clothesId:
        raise not_available("clothesRequest.clothesId: no clothes library here; use clothesPrompt")
    pose = body.pose or sc.PoseRequest()
    prompt = join(
        body.name,
        _GENDER.get(body.gender or ""),
        body.appearance,
        f"from {body.fromLocation}" if body.fromLocation else None,
        body.scene,
        f"background: {body.background}" if body.background else None,
        f"face: {body.faceDetails}" if body.faceDetails else None,
        pose.posePrompt,
        *extra,
        clothes.clothesPrompt if clothes else None,
    )
    task = "pose_transfer" if pose.id else "text_to_image"
    model = model_for(services, task, f"aliveai-{body.model.lower().replace('_', '-')}")
    params: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": body.negativeDetails or None,
        "model": model,
        "guidance": float(body.cfg),
        "seed": core_seed(body.seed),
        "loras": refs,
    }
    if body.detailLevel == "HIGH":
        profile = _default_profile(services, model, task)
        params["steps"] = min(150, 2 * (profile.default_steps if profile else 20))
    if pose.id:
        params["pose_image"] = pose.id
        if pose.poseStrength is not None:
            params["controlnet_scale"] = pose.poseStrength / 50
    elif body.aspectRatio not in (None, "DEFAULT"):
        params["aspect_ratio"] = body.aspectRatio.lower()
    return Plan(task, params, "IMAGE_DEFAULT", body.blockExplicitContent)


def edit_image(services: Services, body: sc.EditImageRequest) -> Plan:
    if body.editModel in ("QWEN_PRO", "GROK"):
        raise not_available(f"editModel {body.editModel} {_PRIVATE}")
    if body.pose is not None and body.pose.id:
        raise not_available(
            "pose.id: Edit Image takes pose.posePrompt; poses by id need Create Prompt"
        )
    refs, extra = loras(services, body.modelTemplates, "IMAGE_EDIT", "modelTemplates")
    prompt = join(
        body.prompt,
        body.pose.posePrompt if body.pose else None,
        body.clothesRequest.clothesPrompt if body.clothesRequest else None,
        *extra,
    )
    if not prompt:
        raise invalid("prompt: describe the edit (or give pose.posePrompt or a template prompt)")
    params: dict[str, Any] = {
        "prompt": prompt,
        "image": body.mediaId,
        "seed": core_seed(body.seed),
        "loras": refs,
    }
    if body.maskMediaId:  # a masked edit repaints only the mask: the inpaint pipeline
        return Plan("inpaint", {**params, "mask": body.maskMediaId}, "EDIT_IMAGE")
    params["model"] = model_for(services, "edit", f"aliveai-edit-{body.editModel.lower()}")
    return Plan("edit", params, "EDIT_IMAGE")


def image_to_video(services: Services, body: sc.ImageToVideoRequest) -> Plan:
    if body.videoModel == "AUDIO":
        raise not_available("videoModel AUDIO: this server makes videos without sound")
    if body.videoModel != "DEFAULT":
        raise not_available(f"videoModel {body.videoModel} {_PRIVATE}")
    if body.lastFrameMediaId:
        raise not_available("lastFrameMediaId: the video model here animates from one frame")
    if body.template or body.videoTemplates:
        raise not_available("videoTemplates: the video model here takes no templates")
    model = model_for(services, "image_to_video", "aliveai-video-default")
    params: dict[str, Any] = {"image": body.mediaId, "model": model, "seed": core_seed(body.seed)}
    if body.videoLength == "MEDIUM":
        profile = _default_profile(services, model, "image_to_video")
        frames = int((profile.extra if profile else {}).get("num_frames", 25))
        params["frames"] = min(50, 2 * frames)
    if body.videoFrameRate:
        params["fps"] = _FPS[body.videoFrameRate]
    if body.motionStrength is not None:
        params["motion_bucket_id"] = min(255, 127 + 20 * body.motionStrength)
    return Plan("image_to_video", params, "IMAGE_TO_VIDEO")


def inpaint(body: sc.InpaintRequest) -> Plan:
    params = {
        "prompt": body.prompt,
        "negative_prompt": body.negativePrompt or None,
        "image": body.originalMediaId,
        "mask": body.maskMediaId,
        "strength": body.strength / 100,
        "seed": core_seed(body.seed),
    }
    return Plan("inpaint", params, "INPAINT")


def upscale_image(body: sc.UpscaleImageRequest) -> Plan:
    core_seed(body.seed)
    name = body.upscaleModel or "DEFAULT"
    if name not in _UPSCALERS:
        raise not_available(f"upscaleModel {name} {_PRIVATE}")
    params = {"image": body.mediaId, "scale": 2, "model": _UPSCALERS[name]}
    return Plan("upscale", params, "EDIT_UPSCALE_IMAGE")


def face_improve(body: sc.FaceImproveRequest) -> Plan:
    core_seed(body.seed)
    params: dict[str, Any] = {"image": body.mediaId, "face_boost": body.strength / 100}
    if body.faceModel:
        params["model"] = _FACE_MODELS[body.faceModel]
    return Plan("enhance", params, "FACE_IMPROVE")


def after_face_swap(body: sc.AfterFaceSwapRequest) -> Plan:
    core_seed(body.seed)
    params = {
        "source": body.faceSwap.mediaId,
        "target": body.mediaId,
        "source_index": body.faceSwap.sourceFaceIndex or 0,
        "target_index": body.faceSwap.faceIndex or 0,
    }
    return Plan("face_swap", params, "AFTER_FACE_SWAP")


def create_clothes(services: Services, body: sc.CreateClothesRequest) -> Plan:
    if CLOTHES_PIPELINE not in services.registry.names():
        raise not_available("Create Clothes: the extract_clothes pipeline is not installed here")
    fields = services.registry.get(CLOTHES_PIPELINE).Params.model_fields
    params: dict[str, Any] = {"image": body.mediaId}
    if "seed" in fields:
        params["seed"] = core_seed(body.seed)
    return Plan(CLOTHES_PIPELINE, params, "CREATE_CLOTHES")
