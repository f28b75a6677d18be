"""Context assembly: a card, a persona and a history into pinned/unpinned chat messages."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pixelforge.chat.context import (
    DEFAULT_SYSTEM_PROMPT,
    NEW_CHAT_MARKER,
    ContextInput,
    apply_macros,
    assemble,
    estimate_tokens,
)
from pixelforge.errors import ErrorCode, PixelForgeError

HISTORY = (
    {"role": "assistant", "content": "Welcome, traveller."},
    {"role": "user", "content": "Where am I?"},
)


def card(**fields: Any) -> dict[str, Any]:
    """A V3 `data` object with every text field empty unless given."""
    base: dict[str, Any] = {
        "name": "Seraphina",
        "description": "",
        "personality": "",
        "scenario": "",
        "first_mes": "Welcome, {{user}}.",
        "mes_example": "",
        "creator_notes": "Not for the prompt.",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": [],
        "tags": ["fantasy"],
        "creator": "someone",
        "character_version": "1",
        "extensions": {},
        "group_only_greetings": [],
    }
    return {**base, **fields}


def run(data: dict[str, Any], history: Any = HISTORY, **ctx: Any) -> list[dict[str, Any]]:
    return assemble(ContextInput(card=data, history=history, **{"persona_name": "Ann", **ctx}))


def system_text(messages: list[dict[str, Any]]) -> str:
    assert messages[0]["role"] == "system" and messages[0]["pin"] is True
    return str(messages[0]["content"])


def assert_well_formed(messages: list[dict[str, Any]]) -> None:
    for m in messages:
        assert set(m) == {"role", "content", "pin"}
        assert m["role"] in ("system", "user", "assistant")
        assert isinstance(m["content"], str) and m["content"].strip()
        assert isinstance(m["pin"], bool)


# --- Macros ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{char}} meets {{user}}.", "Sera meets Ann."),
        ("{{CHAR}} / {{User}} / {{ char }}", "Sera / Ann / Sera"),
        ("<USER> and <BOT>, <user> and <char>", "Ann and Sera, Ann and Sera"),
        ("a{{// a note for the author}}b{{comment: hidden}}c{{hidden_key: key}}", "abc"),
        ("{{original}} {{random:a,b}} {{unknown}}", "{{original}} {{random:a,b}} {{unknown}}"),
        ("no macros", "no macros"),
    ],
)
def test_apply_macros(text: str, expected: str) -> None:
    assert apply_macros(text, char="Sera", user="Ann") == expected


def test_macros_replace_in_one_pass() -> None:
    # A persona literally named "{{char}}" is not expanded again.
    assert apply_macros("{{user}} & {{char}}", char="Sera", user="{{char}}") == "{{char}} & Sera"


# --- The system message ------------------------------------------------------------------------


def test_without_a_card_system_prompt_the_default_template_is_used() -> None:
    messages = run(card())
    assert system_text(messages) == (
        "Write Seraphina's next reply in a fictional chat between Seraphina and Ann."
    )
    assert "{{char}}" in DEFAULT_SYSTEM_PROMPT


def test_a_card_system_prompt_replaces_the_default_and_original_brings_it_back() -> None:
    replaced = system_text(run(card(system_prompt="You are {{char}}. Be terse.")))
    assert replaced == "You are Seraphina. Be terse."
    kept = system_text(run(card(system_prompt="{{original}} Never break character.")))
    assert kept == (
        "Write Seraphina's next reply in a fictional chat between Seraphina and Ann."
        " Never break character."
    )


def test_the_character_and_persona_sections_in_order() -> None:
    data = card(
        description="{{char}} guards the forest.",
        personality="kind, stern",
        scenario="{{user}} wakes up in the glade.",
    )
    text = system_text(
        run(data, persona_description="A lost traveller.", extra_system="Reply briefly.")
    )
    assert text.split("\n\n") == [
        "Write Seraphina's next reply in a fictional chat between Seraphina and Ann.",
        "Reply briefly.",
        "Seraphina guards the forest.",
        "Seraphina's personality: kind, stern",
        "Scenario: Ann wakes up in the glade.",
        "About Ann: A lost traveller.",
    ]


def test_empty_fields_are_left_out_and_no_message_is_empty() -> None:
    data = card(description="  ", personality="", scenario="\n", post_history_instructions=" ")
    data.pop("mes_example")
    messages = run(data, persona_description="   ", extra_system="")
    assert_well_formed(messages)
    assert [m["role"] for m in messages] == ["system", "assistant", "user"]
    assert "personality" not in system_text(messages)


def test_nickname_stands_for_char_and_metadata_stays_out() -> None:
    text = system_text(run(card(nickname="Sera", description="{{char}} smiles.")))
    assert "Sera smiles." in text and "Seraphina" not in text
    assert "Not for the prompt" not in text and "someone" not in text and "fantasy" not in text


def test_the_greeting_is_not_added_the_history_carries_it() -> None:
    messages = run(card(), history=())
    assert [m["role"] for m in messages] == ["system"]


def test_a_blank_persona_name_is_user_and_a_nameless_card_is_character() -> None:
    data = card(name="")
    text = system_text(assemble(ContextInput(card=data, persona_name=" ")))
    assert text == "Write Character's next reply in a fictional chat between Character and User."


# --- Example dialogue ------------------------------------------------------------------------


def test_example_dialogue_becomes_unpinned_turns_before_the_history() -> None:
    examples = (
        "<START>\n{{user}}: Hello?\n{{char}}: Who goes there, {{user}}?\n*She draws her bow.*\n"
        "<START>\n<USER>: Again.\n<BOT>: Yes.\nSeraphina: Named line.\nAnn: Named user."
    )
    messages = run(card(mes_example=examples))
    assert messages[1:] == [
        {"role": "user", "content": "Hello?", "pin": False},
        {
            "role": "assistant",
            "content": "Who goes there, Ann?\n*She draws her bow.*",
            "pin": False,
        },
        {"role": "user", "content": "Again.", "pin": False},
        {"role": "assistant", "content": "Yes.", "pin": False},
        {"role": "assistant", "content": "Named line.", "pin": False},
        {"role": "user", "content": "Named user.", "pin": False},
        {"role": "system", "content": NEW_CHAT_MARKER, "pin": True},
        {"role": "assistant", "content": "Welcome, traveller.", "pin": False},
        {"role": "user", "content": "Where am I?", "pin": False},
    ]


def test_example_text_before_a_tag_is_the_characters_and_empty_turns_vanish() -> None:
    messages = run(card(mes_example="<start>\n*A glade.*\n{{user}}:\n{{char}}: Hm."), history=())
    assert messages[1:] == [
        {"role": "assistant", "content": "*A glade.*", "pin": False},
        {"role": "assistant", "content": "Hm.", "pin": False},
        {"role": "system", "content": NEW_CHAT_MARKER, "pin": True},
    ]


def test_example_lines_may_use_the_name_or_the_nickname() -> None:
    data = card(nickname="Sera", mes_example="Seraphina: One.\nSera: Two {{char}}.\nAnn: Three.")
    assert run(data, history=())[1:4] == [
        {"role": "assistant", "content": "One.", "pin": False},
        {"role": "assistant", "content": "Two Sera.", "pin": False},
        {"role": "user", "content": "Three.", "pin": False},
    ]


def test_no_examples_no_marker() -> None:
    messages = run(card(mes_example="<START>\n\n<START>"))
    assert all(m["content"] != NEW_CHAT_MARKER for m in messages)


# --- History and what follows it ---------------------------------------------------------------


def test_history_is_literal_and_unpinned() -> None:
    history = [{"role": "user", "content": "I typed {{char}} and <BOT> on purpose."}]
    messages = run(card(), history=history)
    assert messages[-1] == {"role": "user", "content": history[0]["content"], "pin": False}


@pytest.mark.parametrize(
    "item",
    [
        {"role": "system", "content": "x"},
        {"role": "user"},
        {"role": "user", "content": 3},
        "hello",
    ],
)
def test_a_malformed_history_item_is_a_clear_400(item: Any) -> None:
    with pytest.raises(PixelForgeError) as caught:
        run(card(), history=[{"role": "user", "content": "ok"}, item])
    assert caught.value.code == ErrorCode.invalid_parameter
    assert "history[1]" in caught.value.message


def test_post_history_instructions_follow_the_history_pinned() -> None:
    data = card(post_history_instructions="{{original}}Stay in character as {{char}}.")
    messages = run(data)
    assert messages[-1] == {
        "role": "system",
        "content": "Stay in character as Seraphina.",
        "pin": True,
    }
    assert messages[-2]["content"] == "Where am I?"


# --- The lorebook inside the context ----------------------------------------------------------


def _book(*entries: dict[str, Any], **fields: Any) -> dict[str, Any]:
    full = [
        {"keys": [], "extensions": {}, "enabled": True, "insertion_order": i, **e}
        for i, e in enumerate(entries)
    ]
    return {"entries": full, "extensions": {}, **fields}


def test_lore_is_placed_before_and_after_the_character() -> None:
    book = _book(
        {"keys": ["where"], "content": "The glade of {{char}}.", "position": "before_char"},
        {"keys": ["nowhere"], "content": "Unused."},
        {"constant": True, "content": "Magic is rare.", "position": "after_char"},
    )
    text = system_text(run(card(description="Desc.", character_book=book)))
    assert text.split("\n\n")[1:] == ["The glade of Seraphina.", "Desc.", "Magic is rare."]


def test_depth_entries_sit_inside_the_history_pinned() -> None:
    book = _book(
        {"constant": True, "content": "@@depth 0\nAt the end."},
        {"constant": True, "content": "@@depth 1\n@@role user\nBefore the last."},
        {"constant": True, "content": "@@depth 99\nBefore the oldest."},
    )
    data = card(character_book=book, post_history_instructions="Post.")
    assert run(data)[1:] == [
        {"role": "system", "content": "Before the oldest.", "pin": True},
        {"role": "assistant", "content": "Welcome, traveller.", "pin": False},
        {"role": "user", "content": "Before the last.", "pin": True},
        {"role": "user", "content": "Where am I?", "pin": False},
        {"role": "system", "content": "At the end.", "pin": True},
        {"role": "system", "content": "Post.", "pin": True},
    ]


def test_the_token_budget_override_reaches_the_lorebook() -> None:
    book = _book(
        {"constant": True, "content": "Kept " + "w " * 10, "priority": 2},
        {"constant": True, "content": "Dropped " + "w " * 10, "priority": 1},
        token_budget=1000,
    )
    text = system_text(run(card(character_book=book), token_budget=15))
    assert "Kept" in text and "Dropped" not in text
    assert "Dropped" in system_text(run(card(character_book=book)))
    assert estimate_tokens("Kept " + "w " * 10) == 11


# --- Card shapes and determinism ---------------------------------------------------------------


def test_unknown_fields_and_a_whole_card_are_accepted() -> None:
    data = card(description="D.", assets=[{"type": "icon"}], x_future={"nested": [1, 2]})
    data["character_book"] = _book({"constant": True, "content": "L.", "x_new": 1}, x_more=True)
    whole = {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}
    assert run(data) == run(whole)
    assert system_text(run(data)).endswith("D.\n\nL.")


def test_a_card_field_of_the_wrong_type_is_a_clear_400() -> None:
    with pytest.raises(PixelForgeError) as caught:
        run(card(description=["not", "text"]))
    assert caught.value.code == ErrorCode.invalid_parameter
    assert "description" in caught.value.message


def test_output_is_deterministic_and_does_not_touch_the_input() -> None:
    data = card(
        description="{{char}} guards the forest.",
        mes_example="<START>\n{{user}}: Hi\n{{char}}: Hello",
        post_history_instructions="Stay.",
        character_book=_book(
            {"keys": ["where"], "content": "Lore A."},
            {"constant": True, "content": "@@depth 1\nLore B."},
            recursive_scanning=True,
            token_budget=100,
        ),
    )
    before = copy.deepcopy(data)
    first = run(data)
    assert_well_formed(first)
    assert all(run(copy.deepcopy(data)) == first for _ in range(3))
    assert json.loads(json.dumps(first)) == first
    assert data == before
