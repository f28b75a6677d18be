"""AliveAI request bodies, field for field as the seed names them (camelCase, its enums)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Seed = Annotated[str, Field(pattern=r"^\d{1,18}$", examples=["42"])]
Model = Literal["DEFAULT", "REALISM", "ANIME", "TEMPORARY", "CHARACTER_CREATOR", "ANIMA", "GROK"]
EditModel = Literal["CREATIVE", "REALISM", "QWEN_PRO", "GROK"]
VideoModel = Literal["DEFAULT", "AUDIO", "GROK", "SEEDANCE"]
FaceModel = Literal["REALISM", "CREATIVE"]
LlmModel = Literal["QWEN3_235B", "QWEN3_8B", "GROK", "MISTRAL", "RAW"]
LLM_MODELS: tuple[str, ...] = get_args(LlmModel)
AspectRatio = Literal["DEFAULT", "SQUARE", "PORTRAIT", "LANDSCAPE"]
PROMPT_TYPES = (
    "IMAGE_DEFAULT",
    "VIDEO_EXPRESSION",
    "FACE_IMPROVE",
    "AFTER_FACE_SWAP",
    "EDIT_BREASTS",
    "PORTRAIT",
    "IMAGE_TO_VIDEO",
    "EXTEND_VIDEO",
    "UPSCALE_VIDEO",
    "INPAINT",
    "IMPROVE_EYES",
    "GOOGLE_INPAINT",
    "EDIT_IMAGE",
    "EDIT_VIDEO_INCREASE_FPS",
    "EDIT_UPSCALE_IMAGE",
    "CHARACTER_IMAGE",
    "EDIT_IMPROVE_FACE",
    "CREATE_FACE",
    "EDIT_ENHANCE",
    "EDIT_VAGINA",
    "CHARACTER_TRAINING_DATA",
    "CREATE_CLOTHES",
)
TEMPLATE_TYPES = (
    "IMAGE",
    "IMAGE_EDIT_CREATIVE",
    "IMAGE_EDIT_REALISM",
    "VIDEO",
    "VIDEO_AUDIO",
    "ANIMA",
)


class Body(BaseModel):
    # Unknown fields are ignored, as the seed's server does for fields it has dropped.
    model_config = ConfigDict(extra="ignore")


class LoginRequest(Body):
    email: str = Field(pattern=r"\S", examples=["ada@example.com"])
    password: str = Field(pattern=r"\S")


class TemplateRequest(Body):
    """TemplateRequest / QwenTemplateRequest: a LoRA template id, strength 0-10, extra prompt."""

    id: str = Field(min_length=1, max_length=100)
    strength: float | None = Field(None, ge=0, le=10)
    prompt: str | None = Field(None, max_length=1000)


class PoseRequest(Body):
    type: str | None = Field(None, max_length=50)
    id: str | None = Field(None, max_length=100, description="a pose id: here a photo's mediaId")
    poseStrength: int | None = Field(None, ge=0, le=100)
    posePrompt: str | None = Field(None, max_length=1000)


class ClothesRequest(Body):
    clothesId: str | None = Field(None, max_length=100)
    clothesPrompt: str | None = Field(None, max_length=1000)


class FaceSwapRequest(Body):
    mediaId: str = Field(min_length=1, max_length=64, description="the photo whose face is used")
    faceIndex: int | None = Field(None, ge=0, le=4, description="which face to replace")
    sourceFaceIndex: int | None = Field(None, ge=0, le=4)


class CreatePromptRequest(Body):
    seed: Seed | None = None
    name: str = Field(max_length=200)
    appearance: str = Field(max_length=1500)
    gender: Literal["MALE", "FEMALE", "TRANS"] | None = None
    background: str | None = Field(None, max_length=1000)
    fromLocation: str | None = Field(None, max_length=100)
    faceDetails: str | None = Field(None, max_length=1000)
    faceImproveEnabled: bool = True
    faceModel: FaceModel = "REALISM"
    faceImproveStrength: int = Field(5, ge=0, le=10)
    negativeDetails: str | None = Field(None, max_length=1000)
    scene: str | None = Field(None, max_length=1000)
    pose: PoseRequest | None = None
    faceSwap: FaceSwapRequest | None = None
    model: Model = "DEFAULT"
    modelTemplate: Literal["BUKKAKE", "FEET", "SELFIE", "LESBIAN", "SOCIALMEDIA"] | None = None
    modelTemplates: list[TemplateRequest] | None = Field(None, min_length=1, max_length=10)
    blockExplicitContent: bool | None = None
    # Required in the seed, yet its own request sample leaves it out: MEDIUM then.
    detailLevel: Literal["MEDIUM", "HIGH"] = "MEDIUM"
    aspectRatio: AspectRatio | None = None
    cfg: int = Field(5, ge=1, le=10)
    clothesRequest: ClothesRequest | None = None
    metadata: dict[str, Any] | None = None


class EditImageRequest(Body):
    editModel: EditModel
    seed: Seed | None = None
    mediaId: str = Field(min_length=1, max_length=64)
    createdFromPromptId: str = Field(max_length=64)
    ignoreFace: bool
    restoreFace: bool
    prompt: str | None = Field(None, max_length=400)
    pose: PoseRequest | None = None
    clothesRequest: ClothesRequest | None = None
    modelTemplates: list[TemplateRequest] | None = Field(None, min_length=1, max_length=5)
    maskMediaId: str | None = Field(None, max_length=64)


class ImageToVideoRequest(Body):
    seed: Seed | None = None
    # Required in the seed, yet its own request sample leaves it out: DEFAULT then.
    videoModel: VideoModel = "DEFAULT"
    mediaId: str = Field(min_length=1, max_length=64)
    lastFrameMediaId: str | None = Field(None, max_length=64)
    customImage: bool | None = None
    text: str = Field(min_length=1, max_length=1500)
    scene: str | None = Field(None, min_length=1, max_length=600)
    template: Literal["TITTY_DROP", "SPIN_360", "MISSIONARY", "BOOB_BOUNCE", "BLOWJOB"] | None = (
        None
    )
    createdFromPromptId: str | None = Field(None, max_length=64)
    videoTemplates: list[TemplateRequest] | None = Field(None, min_length=1, max_length=5)
    videoLength: Literal["SHORT", "MEDIUM"] = "SHORT"
    videoFrameRate: Literal["LOW", "MEDIUM", "HIGH"] | None = None
    videoQuality: Literal["V_480P", "V_720P"] | None = None
    motionStrength: int | None = Field(None, ge=0, le=6)


class InpaintRequest(Body):
    seed: str | None = Field(None, max_length=18)
    maskMediaId: str = Field(min_length=1, max_length=64)
    originalMediaId: str = Field(min_length=1, max_length=64)
    createdFromPromptId: str = Field(max_length=64)
    strength: int = Field(ge=1, le=100)
    prompt: str = Field(max_length=200)
    negativePrompt: str | None = Field(None, max_length=200)


class UpscaleImageRequest(Body):
    seed: str | None = Field(None, max_length=18)
    mediaId: str = Field(min_length=1, max_length=64)
    createdFromPromptId: str = Field(max_length=64)
    restoreFace: bool
    prompt: str | None = Field(None, max_length=2000)
    strength: float | None = None
    upscaleModel: Literal["DEFAULT", "ALTERNATIVE", "SKIN_DETAIL", "SEEDVR"] | None = None


class FaceImproveRequest(Body):
    seed: str | None = Field(None, max_length=18)
    mediaId: str = Field(min_length=1, max_length=64)
    faceDetails: str | None = Field(None, max_length=1000)
    negativeFaceDetails: str | None = Field(None, max_length=1000)
    strength: int = Field(ge=1, le=100)
    faceIndex: int | None = None
    createdFromPromptId: str | None = Field(None, max_length=64)
    faceModel: FaceModel | None = None


class AfterFaceSwapRequest(Body):
    seed: str | None = Field(None, max_length=18)
    mediaId: str = Field(min_length=1, max_length=64)
    faceSwap: FaceSwapRequest
    createdFromPromptId: str | None = Field(None, max_length=64)


class CreateClothesRequest(Body):
    seed: Seed | None = None
    mediaId: str = Field(min_length=1, max_length=64)


class UpscaleVideoRequest(Body):
    seed: str | None = Field(None, max_length=18)
    videoUpscaleModel: Literal["DEFAULT", "HIGH_DETAIL"]
    mediaId: str = Field(min_length=1, max_length=64)
    createdFromPromptId: str | None = Field(None, max_length=64)


# -- LLM Resource ------------------------------------------------------------------------------
AttributeName = Annotated[str, StringConstraints(min_length=2, max_length=250)]
AttributeValue = Annotated[str, StringConstraints(max_length=1000)] | int | float | bool
Attributes = Annotated[dict[AttributeName, AttributeValue], Field(max_length=50)]


def _text(low: int, high: int) -> Any:
    return Field(min_length=low, max_length=high, pattern=r"\S")


class LlmBuilderPromptRequest(Body):
    model: LlmModel
    attributes: Attributes = Field(
        default_factory=dict,
        description="name -> value (hairColor, bodyShape, ...); names 2-250 characters",
    )


class LlmBuilderChanges(Body):
    """Update Prompt's newRequest: a builder request (its model may be left out here)."""

    model: LlmModel | None = None
    attributes: Attributes = Field(default_factory=dict)


class CharacterPromptRequest(Body):
    profileId: str = Field(min_length=1, max_length=64, description="a Create Prompt promptId")
    theme: str = _text(1, 500)
    outfit: str = _text(1, 500)
    additionalDetails: str | None = Field(None, max_length=1000)


class GeneratePromptRequest(Body):
    model: Model
    inputPrompt: str = _text(5, 1000)


class UpdatePromptRequest(Body):
    model: LlmModel
    oldRequest: str = _text(1, 2000)
    newRequest: LlmBuilderChanges


class VideoPromptRequest(Body):
    model: VideoModel
    userInput: str = _text(5, 500)
    mediaId: str = Field(min_length=1, max_length=64)
    frameCount: int | None = Field(None, ge=0, le=10_000)
