"""Prompt helpers: templates that ask a chat model to write an image or video prompt, and the
readers that take a usable prompt out of whatever the model answered.

Pure: a template is chat messages plus sampling settings (`Template.params` gives the `chat`
pipeline's params) and a fallback built from the input alone, which the reader answers with
when the model's text holds no prompt. Running a template is `chat/prompt_jobs.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

KINDS = ("character-builder", "character", "prompt", "update", "video")
MAX_PROMPT = 1500  # what the longest prompt fields downstream take (appearance, video text)
MAX_NEGATIVE = 1000
DEFAULT_NEGATIVE = (
    "blurry, low quality, distorted face, deformed hands, extra limbs, flickering, "
    "jittery motion, sudden cuts, watermark, text, static frame"
)
FORMAT = (
    "Answer with the prompt only, no title and no explanation: one paragraph of "
    "comma-separated visual details in English, at most 80 words."
)


@dataclass(frozen=True)
class Reading:
    """What was read from the model's answer; `fallback`: the model gave nothing usable."""

    text: str
    negative: str | None = None
    fallback: bool = False


@dataclass(frozen=True)
class Template:
    """One helper's request to a chat model: system message, few-shot pairs, the input."""

    kind: str
    messages: tuple[dict[str, str], ...]
    fallback: str
    max_tokens: int = 160
    temperature: float = 0.7
    # (needle, phrase): an answer that never mentions the needle gets the phrase put first, so
    # what the caller asked for (an attribute, the outfit) is in the prompt even when a small
    # model left it out.
    required: tuple[tuple[str, str], ...] = ()

    def params(
        self,
        model: str | None,
        *,
        window: int | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """The `chat` pipeline's params. The answer takes at most `max_tokens` (and, when the
        model's context `window` is known, a quarter of it); the examples are dropped first
        when the rest does not fit (the system message and the input stay)."""
        limit = min(self.max_tokens, max_tokens or self.max_tokens)
        if window:
            limit = min(limit, max(16, window // 4))
        return {
            "model": model,
            "messages": [dict(m) for m in self.messages],
            "max_tokens": limit,
            "temperature": self.temperature,
            "top_p": 0.9,
            "repetition_penalty": 1.1,
            "trim": True,
            "seed": seed,
        }

    def read(self, raw: str, *, cut: bool = False) -> Reading:
        """The answer read; `cut`: it ran out of tokens, so its unfinished last phrase goes."""
        reading = (
            read_video(raw, self.fallback)
            if self.kind == "video"
            else read_text(raw, self.fallback)
        )
        if reading.fallback:
            return reading
        text = _finished(reading.text) if cut else reading.text
        lowered = text.lower()
        missing = [phrase for needle, phrase in self.required if needle.lower() not in lowered]
        return replace(reading, text=_clip(_join(*missing, text), MAX_PROMPT))


def _template(
    kind: str,
    system: str,
    examples: tuple[tuple[str, str], ...],
    user: str,
    fallback: str,
    **kw: Any,
) -> Template:
    messages = [{"role": "system", "content": system}]
    for question, answer in examples:
        messages += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    messages.append({"role": "user", "content": user})
    return Template(kind, tuple(messages), _clip(fallback, MAX_PROMPT), **kw)


# -- the five helpers --------------------------------------------------------------------------
def character_builder(attributes: Mapping[str, str], *, style: str | None = None) -> Template:
    """A prompt showing one character made of these attributes (name -> value)."""
    system = (
        "You write prompts for an image generator. The user lists the attributes of one "
        "character; write a prompt that shows that character, using every attribute and "
        "adding fitting details (face, expression, pose, setting, light). " + FORMAT
    )
    example = (
        _attribute_lines({"hairColor": "red", "bodyShape": "athletic", "age": "30"}),
        "a 30 year old woman with long wavy red hair and an athletic build, freckled face, "
        "green eyes, confident smile, standing on a windy cliff at sunset, warm rim light, "
        "photo, 50mm lens, sharp focus",
    )
    user = _attribute_lines(attributes) if attributes else "No attributes: invent a character."
    fallback = _join("portrait of a character", *_attribute_phrases(attributes), style)
    required = _required(attributes)
    return _template(
        "character-builder", _styled(system, style), (example,), user, fallback, required=required
    )


def character(description: str, *, theme: str, outfit: str, details: str | None = None) -> Template:
    """A prompt showing a known character in a new scene (theme) and outfit."""
    system = (
        "You write prompts for an image generator. Keep the character's look exactly as "
        "described, dress them in the outfit and set the scene from the theme. " + FORMAT
    )
    example = (
        "Character: Mara, a woman, short black hair, brown eyes, tall\nTheme: winter "
        "market\nOutfit: red wool coat and scarf",
        "Mara, a tall woman with short black hair and brown eyes, wearing a red wool coat and "
        "a knitted scarf, browsing a snowy winter market, string lights, steam from food "
        "stalls, soft evening light, candid photo",
    )
    user = f"Character: {description}\nTheme: {theme}\nOutfit: {outfit}"
    if details:
        user += f"\nAlso: {details}"
    fallback = _join(description, f"wearing {outfit}", theme, details)
    required = ((outfit, f"wearing {outfit}"), (theme, theme))
    return _template("character", system, (example,), user, fallback, required=required)


def image_prompt(idea: str, *, style: str | None = None) -> Template:
    """An extended image prompt from a short idea."""
    system = (
        "You write prompts for an image generator. Turn the user's idea into a detailed "
        "prompt: subject, appearance, clothing, pose, setting, light, camera. " + FORMAT
    )
    example = (
        "a knight in the rain",
        "a weary knight in dented steel armour standing in heavy rain, wet hair across his "
        "forehead, muddy battlefield behind him, grey storm clouds, dramatic side light, "
        "cinematic photo, shallow depth of field",
    )
    fallback = _join(idea, style)
    return _template("prompt", _styled(system, style), (example,), idea, fallback)


def update(old_prompt: str, changes: Mapping[str, str]) -> Template:
    """The old prompt rewritten with these attribute changes (name -> new value)."""
    system = (
        "You update prompts for an image generator. Keep everything in the old prompt the "
        "changes do not touch, replace what they change and add what is new. Answer with "
        "the whole updated prompt only, no explanation, in English."
    )
    example = (
        "Old prompt: a woman with long blonde hair in a blue dress, sitting in a cafe\n"
        "Changes:\n- hair color: black",
        "a woman with long black hair in a blue dress, sitting in a cafe",
    )
    lines = _attribute_lines(changes) if changes else "none: polish the prompt, keep its content"
    user = f"Old prompt: {old_prompt}\nChanges:\n{lines}"
    fallback = _join(old_prompt, *_attribute_phrases(changes))
    return _template("update", system, (example,), user, fallback, required=_required(changes))


def video(
    idea: str, *, image: str | None = None, frames: int | None = None, speech: bool = False
) -> Template:
    """A video prompt (motion, camera, mood) and a negative prompt, for animating a still."""
    length = f"about {max(1, round(frames / 24))} seconds" if frames else "a few seconds"
    system = (
        "You write scripts for a model that animates a still image into a video of "
        f"{length}. Describe what moves and how, the camera movement and the mood"
        + ("; add one short line of speech in quotes if someone talks" if speech else "")
        + ". Answer in exactly two lines:\nPROMPT: <the video prompt>\n"
        "NEGATIVE: <what the video must avoid>"
    )
    example = (
        "Idea: she turns to the camera and smiles\nThe image shows: a woman in a yellow "
        "dress on a beach",
        "PROMPT: the woman in the yellow dress slowly turns her head toward the camera and "
        "smiles, her hair moving in the sea breeze, waves rolling in behind her, slow push-in "
        "camera, warm golden light\nNEGATIVE: blurry, distorted face, extra limbs, "
        "flickering, sudden cuts",
    )
    user = f"Idea: {idea}" + (f"\nThe image shows: {image}" if image else "")
    return _template("video", system, (example,), user, _join(idea, image), max_tokens=200)


# -- reading the answers -----------------------------------------------------------------------
_FENCE = re.compile(r"```[A-Za-z]*")
_PREAMBLE = re.compile(
    r"^\s*(?:sure|certainly|of course|okay|ok|here(?:'s| is| are)|below is)\b[^\n]*?:\s*$", re.I
)
_LABEL = re.compile(
    r"^\s*[*#_]*\s*(?:(?:final|updated|extended|new|image|video|positive)\s+)?"
    r"(?:prompt(?:\s*text)?|script)\s*[*_]*\s*[:\uff1a]\s*[*_]*",
    re.I,
)
_NEGATIVE = re.compile(
    r"(?:^|\n|\.\s)\s*[*#_]*\s*(?:negative(?:\s*prompt)?|neg\s*prompt|avoid)\s*[*_]*\s*[:\uff1a]",
    re.I,
)
_WORD = re.compile(r"[^\W\d_]{2,}")


def read_text(raw: str, fallback: str) -> Reading:
    """The prompt in a model's answer: without code fences, a chatty first line, a
    `Prompt:` label, a negative part or a closing explanation; the fallback when nothing
    with at least three words is left."""
    text = _FENCE.sub("", raw)
    cut = _NEGATIVE.search(text)
    text = text[: cut.start()] if cut else text
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    for paragraph in paragraphs:
        lines = [ln for ln in paragraph.splitlines() if ln.strip()]
        if lines and _PREAMBLE.match(lines[0]):
            lines = lines[1:]
        found = _tidy(" ".join(_LABEL.sub("", ln.strip().lstrip("-*• ")) for ln in lines))
        if len(_WORD.findall(found)) >= 3:
            return Reading(_clip(found, MAX_PROMPT))
    return Reading(fallback, fallback=True)


def read_video(raw: str, fallback: str) -> Reading:
    """`PROMPT: ... NEGATIVE: ...` read into its two parts; a missing negative part is the
    default one, a missing prompt the fallback."""
    text = _FENCE.sub("", raw)
    cut = _NEGATIVE.search(text)
    prompt = read_text(text[: cut.start()] if cut else text, fallback)
    negative = ""
    if cut:
        rest = [p for p in re.split(r"\n\s*\n", text[cut.end() :]) if p.strip()]
        negative = _tidy(" ".join(rest[0].splitlines())) if rest else ""
    if len(_WORD.findall(negative)) < 1:
        negative = DEFAULT_NEGATIVE
    return Reading(prompt.text, _clip(negative, MAX_NEGATIVE), prompt.fallback)


# -- small helpers -----------------------------------------------------------------------------
def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip("\"'\u201c\u201d\u2018\u2019*`_ ").strip()


def _clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut after a whole word or phrase."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    at = max(cut.rfind(","), cut.rfind(" "))
    return (cut[:at] if at > limit // 2 else cut).rstrip(" ,;")


def _finished(text: str) -> str:
    """The text up to its last finished phrase (a comma or full stop in its second half)."""
    end = max(text.rfind(mark) for mark in ".,;!")
    return text[:end].rstrip(" ,;") if end > len(text) // 2 else text


def _required(attributes: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (str(v).strip(), f"{attribute_name(k)}: {v}")
        for k, v in attributes.items()
        if str(v).strip()
    )


def _join(*parts: str | None) -> str:
    return ", ".join(p.strip() for p in parts if p and p.strip())


def attribute_name(key: str) -> str:
    """`hairColor` or `hair_color` -> `hair color`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key).replace("_", " ").replace("-", " ")
    return re.sub(r"\s+", " ", spaced).strip().lower()


def _attribute_phrases(attributes: Mapping[str, str]) -> list[str]:
    return [f"{attribute_name(k)}: {v}" for k, v in attributes.items() if str(v).strip()]


def _attribute_lines(attributes: Mapping[str, str]) -> str:
    return "\n".join(f"- {p}" for p in _attribute_phrases(attributes))


def _styled(system: str, style: str | None) -> str:
    return f"{system} Style: {style}." if style else system
