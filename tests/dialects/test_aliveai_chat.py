"""AliveAI's chat half against a real server, tiny-llama generating: the seed's request
samples, a whole conversation in NDJSON, credits, a stream the client leaves, other accounts;
and one short real reply from SmolLM2."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chat.live_chat import llm_models_dir
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes

# The seed's request samples, as it prints them.
SUBMIT_CHARACTER = {
    "name": "string",
    "bio": "string",
    "shortBio": "string",
    "firstMessage": "string",
    "mediaId": "string",
    "promptId": "string",
}
CREATE_PERSONA = {"name": "string", "bio": "string", "isDefault": True}
CREATE_CHAT = {"chatCharacterId": "string", "firstMessage": "string", "personaId": "string"}
SEND_MESSAGE = {"userMessage": "string"}
UPDATE_CANDIDATE = {"message": "string"}

SERAPHINA = {
    "name": "Seraphina",
    "bio": "Seraphina is a guardian of the forest glade, kind and protective.",
    "shortBio": "Guardian of the glade",
    "firstMessage": "Hello {{user}}, you are safe in my cottage.",
}
OPTIONS = {"aliveai": {"chat_max_tokens": 12}}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = llm_models_dir(tmp_path_factory.mktemp("alivechat-models"))
    data = tmp_path_factory.mktemp("alivechat")
    settings = make_settings(data, models_path=models, worker_threads=1, dialect_options=OPTIONS)
    with LiveServer(settings) as server:
        yield server
        for client in User.opened:
            client.close()
        User.opened.clear()


class User:
    """An account calling /aliveai with `Authorization: Key <API key>`."""

    opened: list[httpx.Client] = []  # closed by the srv fixture

    def __init__(self, srv: LiveServer, credits: int = 20, timeout: float = 60) -> None:
        self.srv = srv
        self.id, self.key = srv.account(credits=credits)
        self.http = httpx.Client(
            base_url=f"{srv.url}/aliveai",
            headers={"Authorization": f"Key {self.key}"},
            timeout=timeout,
        )
        User.opened.append(self.http)

    def ok(self, r: httpx.Response, status: int = 200) -> Any:
        assert r.status_code == status, r.text
        return r.json() if r.content else None

    def character(self, **fields: Any) -> str:
        body = self.ok(self.http.post("/chat-characters", json={**SERAPHINA, **fields}))
        return str(body["chatCharacterId"])

    def chat(self, character_id: str, first: str = "", persona: str | None = None) -> Any:
        body = {"chatCharacterId": character_id, "firstMessage": first, "personaId": persona}
        return self.ok(self.http.post("/chats", json=body))

    def send(self, path: str, body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The NDJSON events of a streamed reply, read line by line as they come."""
        events = []
        with self.http.stream("POST", path, json=body) as r:
            assert r.status_code == 200, r.read()
            assert r.headers["content-type"].startswith("application/x-ndjson")
            for line in r.iter_lines():
                if line.strip():
                    events.append(json.loads(line))
        return events

    def credits(self) -> tuple[int, int]:
        bal = self.srv.services.accounts.balance(self.id)
        return bal.available, bal.held


def not_found(r: httpx.Response, what: str) -> None:
    assert r.status_code == 404, r.text
    assert r.json() == {
        "status": 404,
        "errorType": "NOT_FOUND",
        "code": "not_found",
        "message": f"{what} not found",
    }


def streamed(events: list[dict[str, Any]]) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(init, the tokens joined, complete) of a stream that ended well."""
    init, *tokens, done = events
    assert init["type"] == "init" and done["type"] == "complete", events
    # (A random-weight model may end its reply at once: no token then.)
    assert {t["type"] for t in tokens} <= {"token"}
    return init, "".join(t["token"] for t in tokens), done


def test_the_seeds_samples_replayed(srv: LiveServer) -> None:
    user = User(srv)
    r = user.http.post("/chat-characters", json=SUBMIT_CHARACTER)
    not_found(r, "avatar: media 'string'")  # "string" is no media of this account
    assert user.ok(user.http.get("/chat-characters")) == []
    upload = user.http.post(
        "/upload", files={"image": ("a.png", png_bytes(_pixels()), "image/png")}
    )
    media_id = user.ok(upload)["mediaId"]
    created = user.ok(
        user.http.post("/chat-characters", json={**SUBMIT_CHARACTER, "mediaId": media_id})
    )
    assert set(created) == {"chatCharacterId"}
    cid = created["chatCharacterId"]
    got = user.ok(user.http.get(f"/chat-characters/{cid}"))
    assert {
        k: got[k] for k in ("chatCharacterId", "characterName", "characterBio", "shortBio")
    } == {
        "chatCharacterId": cid,
        "characterName": "string",
        "characterBio": "string",
        "shortBio": "string",
    }
    assert got["firstMessage"] == {"message": "string"}
    image = got["characterImage"]
    assert image["id"] == media_id and image["promptId"] == "string"
    assert httpx.get(image["mediaUrl"]).status_code == 200
    # The card holds the seed's fields where a card keeps them.
    card = user_card(srv, user, cid)
    assert card["description"] == "string" and card["creator_notes"] == "string"
    assert card["first_mes"] == "string" and card["extensions"]["aliveai"]["promptId"] == "string"

    update = {**SUBMIT_CHARACTER, "name": "Sera", "firstMessage": "Welcome back."}
    del update["mediaId"]
    changed = user.ok(user.http.put(f"/chat-characters/{cid}", json=update))
    assert changed["characterName"] == "Sera" and changed["firstMessage"] == {
        "message": "Welcome back."
    }
    assert changed["characterImage"]["id"] == media_id  # no mediaId: the image stays

    persona = user.ok(user.http.post("/chat-personas", json=CREATE_PERSONA))
    assert persona == {**persona, "name": "string", "bio": "string", "defaultPersona": True}
    assert set(persona) == {"id", "name", "bio", "defaultPersona"}
    updated = user.ok(user.http.put(f"/chat-personas/{persona['id']}", json=CREATE_PERSONA))
    assert updated == persona

    not_found(user.http.post("/chats", json=CREATE_CHAT), "character 'string'")
    chat = user.ok(
        user.http.post("/chats", json={**CREATE_CHAT, "chatCharacterId": cid, "personaId": ""})
    )
    [first] = chat["messages"]
    assert chat["chatCharacterId"] == cid and chat["personaId"] == persona["id"]
    assert first["messageType"] == "CHARACTER" and first["candidates"][0]["message"] == "string"
    init, text, done = streamed(user.send(f"/chats/{chat['chatId']}/messages", SEND_MESSAGE))
    reply = done["message"]
    assert reply["messageId"] == init["assistantMessageId"]
    assert reply["candidates"][0]["message"] == text
    url = f"/chats/{chat['chatId']}/messages/{reply['messageId']}/candidates"
    edited = user.ok(user.http.put(f"{url}/{init['assistantCandidateId']}", json=UPDATE_CANDIDATE))
    assert edited["candidates"][0]["message"] == "string"
    for_chat = user.ok(user.http.get(f"/chat-personas/chats/{chat['chatId']}"))
    assert for_chat == persona


def _pixels() -> Any:
    import numpy as np

    return np.full((32, 32, 3), 120, np.uint8)


def user_card(srv: LiveServer, user: User, character_id: str) -> dict[str, Any]:
    with srv.client(user.key) as native:
        data: dict[str, Any] = native.get(f"/v1/characters/{character_id}").json()["data"]
    return data


def test_a_whole_conversation_swipes_edits_regenerates_and_deletes(srv: LiveServer) -> None:
    user = User(srv, credits=10)
    cid = user.character()
    mine = user.ok(user.http.post("/chat-personas", json={"name": "Ada", "isDefault": False}))
    assert mine["defaultPersona"] is True  # the account's first persona is its default
    bio = "A curious traveller from the north."
    ada = user.ok(
        user.http.put(
            f"/chat-personas/{mine['id']}", json={"name": "Ada", "bio": bio, "isDefault": True}
        )
    )
    other = user.ok(user.http.post("/chat-personas", json={"name": "Bo", "isDefault": False}))
    assert other["defaultPersona"] is False
    # The default is moved, not unset.
    r = user.http.put(f"/chat-personas/{ada['id']}", json={"name": "Ada", "isDefault": False})
    assert r.status_code == 409 and r.json()["errorType"] == "CONFLICT", r.text
    chat = user.chat(cid)  # no personaId: the default persona
    chat_id, [greeting] = chat["chatId"], chat["messages"]
    assert chat["personaId"] == ada["id"]
    assert user.ok(user.http.get(f"/chat-personas/chats/{chat_id}"))["name"] == "Ada"
    assert greeting["candidates"][0]["message"] == "Hello Ada, you are safe in my cottage."

    before = user.credits()
    init, text, done = streamed(user.send(f"/chats/{chat_id}/messages", {"userMessage": "Hi!"}))
    assert user.credits() == (before[0] - 1, 0)  # one credit per reply
    assert set(init) == {
        "type",
        "chatId",
        "userMessageId",
        "userCandidateId",
        "assistantMessageId",
        "assistantCandidateId",
    }
    assert init["chatId"] == chat_id and done["chatId"] == chat_id
    reply_id = init["assistantMessageId"]
    assert init["assistantCandidateId"] == f"{reply_id}:0"
    full = user.ok(user.http.get(f"/chats/{chat_id}"))
    _, said, answered = full["messages"]
    assert said["messageId"] == init["userMessageId"] and said["messageType"] == "USER"
    assert said["selectedCandidateId"] == init["userCandidateId"]
    assert said["candidates"][0]["message"] == "Hi!"
    assert answered == done["message"] and answered["candidates"][0]["message"] == text
    assert answered["candidates"][0]["status"] == "COMPLETE"
    # The character's bio and the persona's bio were the model's context.
    job_id = srv.services.jobs.search(account_id=user.id, statuses=("succeeded",))[0][0].id
    sent = json.dumps(srv.services.jobs.get(account_id=user.id, job_id=job_id).params)
    assert "guardian of the forest glade" in sent and bio in sent and "Hi!" in sent

    # Regenerate: a second candidate, selected; Get Chat shows both, the selected one marked.
    url = f"/chats/{chat_id}/messages/{reply_id}"
    again, text2, done2 = streamed(user.send(f"{url}/regenerate"))
    assert again["assistantCandidateId"] == f"{reply_id}:1"
    assert again["userMessageId"] == init["userMessageId"]
    swiped = done2["message"]
    assert swiped["selectedCandidateId"] == f"{reply_id}:1"
    assert [c["selected"] for c in swiped["candidates"]] == [False, True]
    assert swiped["candidates"][1]["message"] == text2
    back = user.ok(
        user.http.put(f"{url}/selected-candidate", params={"candidateId": f"{reply_id}:0"})
    )
    assert back["selectedCandidateId"] == f"{reply_id}:0" and back["candidates"][0]["selected"]
    for bad in (f"{reply_id}:2", f"{greeting['messageId']}:0", "nope"):
        r = user.http.put(f"{url}/selected-candidate", params={"candidateId": bad})
        not_found(r, f"candidate {bad!r} of message {reply_id!r}")
    edited = user.ok(user.http.put(f"{url}/candidates/{reply_id}:1", json={"message": "Edited."}))
    assert edited["candidates"][1]["message"] == "Edited." and edited[
        "selectedCandidateId"
    ].endswith(":0")
    # Only the most recent character message can be regenerated.
    r = user.http.post(f"/chats/{chat_id}/messages/{greeting['messageId']}/regenerate")
    assert r.status_code == 409 and r.json()["errorType"] == "CONFLICT", r.text
    streamed(user.send(f"/chats/{chat_id}/messages", {"userMessage": "Tell me more."}))
    assert len(user.ok(user.http.get(f"/chats/{chat_id}"))["messages"]) == 5
    assert user.credits() == (before[0] - 3, 0)

    # Delete Messages: the message and all after it.
    r = user.http.delete(f"/chats/{chat_id}/messages/{said['messageId']}")
    assert r.status_code == 204, r.text
    left = user.ok(user.http.get(f"/chats/{chat_id}"))["messages"]
    assert [m["messageId"] for m in left] == [greeting["messageId"]]
    listed = user.ok(user.http.get("/chats"))
    assert [c["chatId"] for c in listed] == [chat_id] and listed[0]["characterName"] == "Seraphina"
    # A persona a chat uses is not deleted; nor is the only one.
    r = user.http.delete(f"/chat-personas/{ada['id']}")
    assert r.status_code == 409 and "used by 1 chat" in r.json()["message"]
    assert user.http.delete(f"/chats/{chat_id}").status_code == 204
    assert user.http.delete(f"/chat-personas/{ada['id']}").status_code == 204
    r = user.http.delete(f"/chat-personas/{other['id']}")
    assert r.status_code == 409 and "last persona" in r.json()["message"]
    assert user.ok(user.http.get("/chat-personas")) == [{**other, "defaultPersona": True}]


def test_a_stream_the_client_leaves_is_not_charged_and_keeps_its_text(srv: LiveServer) -> None:
    user = User(srv, credits=5)
    cid = user.character(bio="Kit.", shortBio="Kit.", firstMessage="Hi.")
    # Chats made natively with long greedy replies (the dialect's own chats reply in 12
    # tokens here), continued through the dialect.
    with srv.client(user.key) as native:
        body = {"character_id": cid, "temperature": 0}
        too_long = native.post("/v1/chats", json={**body, "max_tokens": 600}).json()["id"]
        chat_id = native.post("/v1/chats", json={**body, "max_tokens": 300}).json()["id"]
    # A generation that fails ends its stream with an error event in the seed's error shape.
    events = user.send(f"/chats/{too_long}/messages", {"userMessage": "a"})
    assert [e["type"] for e in events] == ["init", "error"]
    assert events[1] == {
        **events[1],
        "chatId": too_long,
        "status": 400,
        "errorType": "CONTEXT_LENGTH_EXCEEDED",
        "code": "context_length_exceeded",
    }
    assert "tiny-llama" in events[1]["message"]
    pieces: list[str] = []
    with user.http.stream("POST", f"/chats/{chat_id}/messages", json={"userMessage": "a"}) as r:
        lines = r.iter_lines()
        init = json.loads(next(lines))
        while len(pieces) < 3:
            event = json.loads(next(lines))
            assert event["type"] == "token", event
            pieces.append(event["token"])
        busy = user.http.post(f"/chats/{chat_id}/messages", json={"userMessage": "b"})
        assert busy.status_code == 409 and busy.json()["errorType"] == "CONFLICT"
    deadline = time.monotonic() + 30
    while True:
        last = user.ok(user.http.get(f"/chats/{chat_id}"))["messages"][-1]
        [cand] = last["candidates"]
        if cand["status"] != "GENERATING" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert last["messageId"] == init["assistantMessageId"]
    assert cand["status"] == "INCOMPLETE" and cand["finishReason"] == "cancelled"
    assert cand["message"].startswith("".join(pieces))
    assert user.credits() == (5, 0)


def test_other_accounts_records_are_not_found_in_the_seed_shape(srv: LiveServer) -> None:
    owner, other = User(srv), User(srv)
    cid = owner.character()
    persona = owner.ok(owner.http.post("/chat-personas", json={"name": "Ada", "isDefault": True}))
    chat = owner.chat(cid, first="Hi there.")
    chat_id, msg = chat["chatId"], chat["messages"][0]["messageId"]
    assert chat["messages"][0]["candidates"][0]["message"] == "Hi there."
    murl = f"/chats/{chat_id}/messages/{msg}"

    assert other.ok(other.http.get(f"/chat-characters/{cid}")) is None  # the seed: null
    not_found(other.http.put(f"/chat-characters/{cid}", json=SERAPHINA), f"character {cid!r}")
    not_found(other.http.delete(f"/chat-characters/{cid}"), f"character {cid!r}")
    body = {"name": "x", "isDefault": True}
    not_found(
        other.http.put(f"/chat-personas/{persona['id']}", json=body), f"persona {persona['id']!r}"
    )
    not_found(other.http.delete(f"/chat-personas/{persona['id']}"), f"persona {persona['id']!r}")
    not_found(
        other.http.post("/chats", json={**CREATE_CHAT, "chatCharacterId": cid}),
        f"character {cid!r}",
    )
    for r in (
        other.http.get(f"/chat-personas/chats/{chat_id}"),
        other.http.get(f"/chats/{chat_id}"),
        other.http.delete(f"/chats/{chat_id}"),
        other.http.post(f"/chats/{chat_id}/messages", json=SEND_MESSAGE),
        other.http.post(f"{murl}/regenerate"),
        other.http.put(f"{murl}/selected-candidate", params={"candidateId": f"{msg}:0"}),
        other.http.put(f"{murl}/candidates/{msg}:0", json=UPDATE_CANDIDATE),
        other.http.delete(murl),
    ):
        not_found(r, f"chat {chat_id!r}")
    for path in ("/chat-characters", "/chat-personas", "/chats"):
        assert other.ok(other.http.get(path)) == []
    assert len(owner.ok(owner.http.get(f"/chats/{chat_id}"))["messages"]) == 1
    assert other.credits() == (20, 0)

    # Bad input: the seed's limits, in its error shape.
    for path, bad in (
        ("/chat-characters", {**SERAPHINA, "name": "x" * 51}),
        ("/chat-characters", {**SERAPHINA, "shortBio": ""}),
        ("/chat-personas", {"name": "x" * 21, "isDefault": True}),
        ("/chat-personas", {"name": "Ada", "bio": "x" * 151, "isDefault": True}),
        (f"/chats/{chat_id}/messages", {"userMessage": ""}),
        (f"/chats/{chat_id}/messages", {"userMessage": "x" * 4001}),
    ):
        r = owner.http.post(path, json=bad)
        assert r.status_code == 400 and r.json()["errorType"] == "INVALID_PARAMETER", (path, r.text)

    # A deleted character: gone from the list and null, its chat readable, closed to replies.
    assert owner.http.delete(f"/chat-characters/{cid}").status_code == 204
    assert owner.ok(owner.http.get("/chat-characters")) == []
    assert owner.ok(owner.http.get(f"/chat-characters/{cid}")) is None
    assert owner.ok(owner.http.get(f"/chats/{chat_id}"))["chatCharacterId"] == cid
    r = owner.http.post(f"/chats/{chat_id}/messages", json=SEND_MESSAGE)
    assert r.status_code == 409 and "deleted" in r.json()["message"]
    assert owner.credits() == (20, 0)


@pytest.mark.slow
def test_smollm2_replies_in_english_through_the_dialect(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    # The default catalog: SmolLM2 from its wheel, converted once into pytest's cache and
    # read from there by later runs (without the cache plugin: converted here).
    cache = getattr(pytestconfig, "cache", None)
    models = cache.mkdir("aliveai-chat-smollm2") if cache is not None else tmp_path / "models"
    settings = make_settings(
        tmp_path / "data",
        models_path=models,
        worker_threads=1,
        dialect_options={"aliveai": {"chat_max_tokens": 24, "chat_temperature": 0}},
    )
    with LiveServer(settings) as server:
        user = User(server, credits=3, timeout=300)  # a first run converts the GGUF
        try:
            cid = user.character(
                name="Mia",
                bio="Mia is a friendly baker in a small town who loves to chat about bread.",
                firstMessage="Hi! I'm Mia. Welcome to my bakery!",
            )
            chat = user.chat(cid)
            events = user.send(
                f"/chats/{chat['chatId']}/messages",
                {"userMessage": "Hello Mia! How are you today?"},
            )
            _, text, done = streamed(events)
        finally:
            user.http.close()
            User.opened.remove(user.http)
    assert done["message"]["candidates"][0]["message"] == text
    words = re.findall(r"[A-Za-z']+", text)
    assert len(words) >= 3, text
    common = {
        "i",
        "i'm",
        "you",
        "the",
        "a",
        "to",
        "and",
        "am",
        "is",
        "my",
        "thank",
        "thanks",
        "great",
        "good",
        "well",
        "hello",
        "hi",
        "today",
        "doing",
    }
    assert common & {w.lower() for w in words}, text
    assert user.credits() == (2, 0)
