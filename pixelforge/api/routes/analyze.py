"""Face analysis of an uploaded image, answered at once: no job, no credits."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.safety.images import open_image
from pixelforge.vision.face import FaceRequirements, analyze_faces, angle_problem
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.errors import ErrorOut

router = APIRouter(prefix="/v1/analyze", tags=["analyze"])

# The checks report what a portrait pipeline with Perfect Corp's limits would refuse.
PORTRAIT = FaceRequirements(exactly_one=True)


class AnalyzeFaceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(
        min_length=1,
        max_length=64,
        description="Media id of an image you uploaded.",
        examples=["med_3q2xJ0cQ9h1b7m0PZrUo8A"],
    )


class FaceOut(BaseModel):
    box: list[int] = Field(
        description="x, y, width, height in pixels, around the whole face mesh",
        examples=[[178, 71, 93, 107]],
    )
    score: float | None = Field(
        description="detector confidence 0-1; null when only the face mesh found the face",
        examples=[0.91],
    )
    pitch: float = Field(description="degrees; > 0 looks down", examples=[4.7])
    yaw: float = Field(description="degrees; > 0 turned toward the image's left", examples=[0.8])
    roll: float = Field(description="degrees; > 0 tilted clockwise", examples=[3.1])
    landmarks_count: int = Field(description="face mesh points found", examples=[478])


class FaceChecks(BaseModel):
    error_no_face: bool = Field(description="no face was found")
    error_multiple_people: bool = Field(description="more than one face was found")
    error_large_face_angle: bool = Field(
        description=(
            "the largest face is turned beyond -10 < pitch < 10, -45 < yaw < 45, "
            "-15 < roll < 15 (degrees)"
        )
    )


class FaceAnalysisOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "object": "face_analysis",
                    "image": "med_3q2xJ0cQ9h1b7m0PZrUo8A",
                    "width": 512,
                    "height": 512,
                    "faces": [
                        {
                            "box": [178, 71, 93, 107],
                            "score": 0.91,
                            "pitch": 4.7,
                            "yaw": 0.8,
                            "roll": 3.1,
                            "landmarks_count": 478,
                        }
                    ],
                    "checks": {
                        "error_no_face": False,
                        "error_multiple_people": False,
                        "error_large_face_angle": False,
                    },
                }
            ]
        }
    )
    object: str = "face_analysis"
    image: str
    width: int
    height: int
    faces: list[FaceOut] = Field(description="largest first")
    checks: FaceChecks = Field(
        description="which errors a one-person portrait pipeline would return for this image"
    )


@router.post(
    "/face",
    response_model=FaceAnalysisOut,
    summary="Find faces, their boxes and head angles (free, no job)",
    responses={404: {"model": ErrorOut}, 400: {"model": ErrorOut}},
)
def analyze_face(
    body: AnalyzeFaceIn, account: CurrentAccount, services: ServicesDep
) -> FaceAnalysisOut:
    row = services.media.get(account_id=account.id, media_id=body.image)
    img = open_image(services.media.read_bytes(row))
    faces = analyze_faces(img)
    return FaceAnalysisOut(
        image=row.id,
        width=img.width,
        height=img.height,
        faces=[
            FaceOut(
                box=list(f.box),
                score=None if f.score is None else round(f.score, 3),
                pitch=f.pitch,
                yaw=f.yaw,
                roll=f.roll,
                landmarks_count=len(f.landmarks),
            )
            for f in faces
        ],
        checks=FaceChecks(
            error_no_face=not faces,
            error_multiple_people=len(faces) > 1,
            error_large_face_angle=bool(faces) and angle_problem(faces[0], PORTRAIT) is not None,
        ),
    )
