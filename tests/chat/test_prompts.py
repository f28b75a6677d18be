"""The prompt helpers' templates and readers (no model): what the chat job gets, and what is
read back from answers that follow the format, half follow it, or do not at all."""

from __future__ import annotations

import pytest

from pixelforge.chat import prompts


def test_a_template_is_system_example_and_input_with_the_settings_of_the_job() -> None:
    t = prompts.character_builder({"hairColor": "blonde", "age": "30"}, style="anime")
    params = t.params("tiny-llama")
    roles = [m["role"] for m in params["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert params["messages"][0]["content"].endswith("Style: anime.")
    assert params["messages"][-1]["content"] == "- hair color: blonde\n- age: 30"
    assert params["model"] == "tiny-llama" and params["trim"] is True
    assert params["max_tokens"] == 160
    assert t.params(None, window=512)["max_tokens"] == 128  # a quarter of a small window
    assert t.params(None, window=8192, max_tokens=40)["max_tokens"] == 40
    assert t.params(None, max_tokens=999)["max_tokens"] == 160  # never above the template's
    assert t.fallback == "portrait of a character, hair color: blonde, age: 30, anime"


def test_each_kind_puts_its_input_in_the_last_message() -> None:
    character = prompts.character("Mara, short black hair", theme="beach", outfit="hat")
    assert character.messages[-1]["content"] == (
        "Character: Mara, short black hair\nTheme: beach\nOutfit: hat"
    )
    assert prompts.image_prompt("a cat").messages[-1]["content"] == "a cat"
    update = prompts.update("a woman, blue dress", {"dress_color": "green"})
    assert update.messages[-1]["content"].endswith("Changes:\n- dress color: green")
    assert "polish" in prompts.update("a woman", {}).messages[-1]["content"]
    video = prompts.video("she waves", image="a woman on a beach", frames=120, speech=True)
    assert video.messages[-1]["content"] == "Idea: she waves\nThe image shows: a woman on a beach"
    system = video.messages[0]["content"]
    assert "about 5 seconds" in system and "speech" in system and "NEGATIVE:" in system
    assert video.max_tokens == 200
    assert "speech" not in prompts.video("she waves").messages[0]["content"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a red fox in the snow, soft light, photo", "a red fox in the snow, soft light, photo"),
        (
            'Sure! Here is your prompt:\n\n"a red fox in the snow, soft light"\n\n'
            "This prompt captures a calm winter mood.",
            "a red fox in the snow, soft light",
        ),
        ("**Prompt:** a red fox in the snow\nNegative prompt: blurry", "a red fox in the snow"),
        ("```\nImage prompt: a red fox\nin the snow\n```", "a red fox in the snow"),
        ("- a red fox\n- snow\n- soft light", "a red fox snow soft light"),
    ],
)
def test_reading_a_prompt_out_of_an_answer(raw: str, expected: str) -> None:
    assert prompts.read_text(raw, "FALLBACK") == prompts.Reading(expected)


@pytest.mark.parametrize("raw", ["", "   \n", "ok", "Sure! Here is the prompt:", "12 34 !!"])
def test_an_answer_without_a_prompt_reads_as_the_fallback(raw: str) -> None:
    assert prompts.read_text(raw, "a fox") == prompts.Reading("a fox", fallback=True)


def test_long_answers_are_cut_after_a_whole_word() -> None:
    reading = prompts.read_text("word, " * 400, "x")
    assert len(reading.text) <= prompts.MAX_PROMPT and reading.text.endswith("word")


def test_reading_a_video_answer_into_prompt_and_negative() -> None:
    t = prompts.video("she waves")
    both = t.read("PROMPT: she waves at the camera, slow pan\nNEGATIVE: blur, extra limbs")
    assert both == prompts.Reading("she waves at the camera, slow pan", "blur, extra limbs")
    # No format followed: the whole answer is the prompt, the negative the default one.
    loose = t.read("She slowly waves at the camera while the wind moves her hair.")
    assert loose.text == "She slowly waves at the camera while the wind moves her hair."
    assert loose.negative == prompts.DEFAULT_NEGATIVE and not loose.fallback
    # A negative part only: the prompt falls back to the input.
    only = t.read("NEGATIVE: blur")
    assert only == prompts.Reading("she waves", "blur", fallback=True)
    empty_negative = t.read("PROMPT: she waves at the camera slowly\nNEGATIVE:")
    assert empty_negative.negative == prompts.DEFAULT_NEGATIVE


def test_attribute_names_read_as_words() -> None:
    assert prompts.attribute_name("hairColor") == "hair color"
    assert prompts.attribute_name("body_shape") == "body shape"
    assert prompts.attribute_name("eye-colour") == "eye colour"


def test_what_was_asked_for_is_put_first_when_the_model_left_it_out() -> None:
    builder = prompts.character_builder({"hairColor": "blonde", "bodyShape": "curvy"})
    # SmolLM2-135M's real answer to this request: the attributes ignored.
    reading = builder.read("A 45-year-old man with curly brown hair, a curvy figure, leather")
    assert reading.text == (
        "hair color: blonde, A 45-year-old man with curly brown hair, a curvy figure, leather"
    )
    assert builder.read("a Blonde woman, curvy, smiling").text == "a Blonde woman, curvy, smiling"
    character = prompts.character("Mara", theme="beach party", outfit="red bikini")
    assert character.read("Mara dancing at a beach party at dusk").text == (
        "wearing red bikini, Mara dancing at a beach party at dusk"
    )
    update = prompts.update("a woman in a cafe", {"location": "library"})
    assert update.read("a woman reading in a quiet room").text.startswith("location: library, ")
    assert builder.read("ok").fallback  # the fallback already holds every attribute


def test_an_answer_cut_by_the_token_limit_loses_its_unfinished_phrase() -> None:
    t = prompts.image_prompt("a lighthouse")
    raw = "a lighthouse on a cliff, stormy sea, beams of light in the fog, so far everything seems"
    assert (
        t.read(raw, cut=True).text
        == "a lighthouse on a cliff, stormy sea, beams of light in the fog"
    )
    assert t.read(raw).text == raw
    # A single long phrase stays whole rather than losing most of it.
    assert t.read("a lighthouse, on a cliff in the storm at night", cut=True).text == (
        "a lighthouse, on a cliff in the storm at night"
    )
