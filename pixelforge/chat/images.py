"""In-chat images: the chat model writes an image prompt from the character and the recent
messages (one `chat` job, `chat/prompt_jobs.py`), then one image job draws it: `image_to_image`
on the character's avatar (its reference image, so the look stays the same) when it has one,
else `text_to_image`. The image is appended to the chat as an assistant message whose
candidate holds the media (`media_id`; its text is the image prompt); regenerating adds a
candidate to that message.

Credits: each job is charged by the core on its success only. Both costs are checked against
the balance before anything runs (402, nothing stored). When the image job fails or runs past
the wait, nothing is stored (no message, no candidate): only the prompt job, which succeeded,
was charged. Image messages are left out of the model's context (`ReplyService._history`).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool

from pixelforge.chat import messages as msgs
from pixelforge.chat.context import apply_macros
from pixelforge.chat.messages import COMPLETE, Message
from pixelforge.chat.prompt_jobs import Disconnected, job_failure, run_template
from pixelforge.chat.prompts import FORMAT, Template
from pixelforge.chat.service import ChatService, ChatView, new_candidate
from pixelforge.chat.store import claim_avatar
from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.status import JobStatus
from pixelforge.jobs.waiting import wait_for_end
from pixelforge.models.base import CHAT
from pixelforge.store.tables import Account

RECENT = 8  # the last messages the prompt is written from
MAX_TURN = 400  # characters of one message shown to the prompt writer
MAX_DESCRIPTION = 1500
MAX_HINT = 500
MAX_CONTEXT = MAX_DESCRIPTION + RECENT * MAX_TURN  # characters, hint included
STRENGTH = 0.75  # image_to_image: keeps the avatar's look, repaints the scene


@dataclass(frozen=True)
class Drawn:
    """A finished image: its prompt, its media item and the image job."""

    prompt: str
    media_id: str
    job_id: str


def image_prompt(view: ChatView, hint: str | None, *, budget: int = MAX_CONTEXT) -> Template:
    """The template that asks the chat model for a prompt showing the chat's current scene;
    the description, the recent messages (newest kept first) and the hint take at most
    `budget` characters."""
    char, user = view.character.name, view.user_name
    description = view.character.data.get("description")
    about = apply_macros(description, char=char, user=user) if isinstance(description, str) else ""
    hint = (hint or "")[: budget // 2]
    left = budget - len(hint)
    lines: list[str] = []
    for m in reversed([m for m in view.messages if m.text.strip() and not m.is_image][-RECENT:]):
        name = char if m.row.role == "assistant" else user
        line = f"{name}: {m.text.strip()[:MAX_TURN]}"
        if len(line) > left:
            break
        lines.insert(0, line)
        left -= len(line)
    system = (
        "Write a prompt for an image generator showing the character in the chat's current "
        "scene: look, expression, pose, clothes, setting, light. " + FORMAT
    )
    parts = [f"Character: {char}", about[: min(MAX_DESCRIPTION, left)]]
    if lines:
        parts += ["Recent chat:", *lines]
    if hint:
        parts.append(f"The picture shows: {hint}")
    fallback = ", ".join(p for p in (f"portrait of {char}", hint) if p)
    user_text = "\n".join(p for p in parts if p)
    messages = ({"role": "system", "content": system}, {"role": "user", "content": user_text})
    return Template("chat-image", messages, fallback)


def _fit(window: int | None) -> tuple[int, int | None]:
    """(characters of chat context, answer cap) for a chat model's context window: a small
    window (a tiny test model) gets a short context and a short answer."""
    if not window or window >= 2048:
        return MAX_CONTEXT, None
    return min(MAX_CONTEXT, max(0, window * 2 - 900)), max(16, window // 8)


class ChatImages(ChatService):
    """ChatService plus in-chat images (see the module's docstring)."""

    async def create_image(
        self,
        account: Account,
        chat_id: str,
        *,
        hint: str | None,
        model: str | None,
        wait_s: float,
        disconnected: Disconnected | None = None,
    ) -> Message:
        """A new image message at the end of the chat."""
        view = await run_in_threadpool(self._ready, account.id, chat_id)
        drawn = await self._draw(account, view, hint, model, wait_s, disconnected)
        return await run_in_threadpool(self._append, account.id, chat_id, drawn)

    async def regenerate_image(
        self,
        account: Account,
        chat_id: str,
        message_id: str,
        *,
        hint: str | None,
        model: str | None,
        wait_s: float,
        disconnected: Disconnected | None = None,
    ) -> Message:
        """A new candidate (selected) for an image message; 409 for a text message."""
        view = await run_in_threadpool(self._ready, account.id, chat_id)
        self._image_message(view.messages, message_id)
        drawn = await self._draw(account, view, hint, model, wait_s, disconnected)
        return await run_in_threadpool(self._add_candidate, account.id, chat_id, message_id, drawn)

    # -- the two jobs ------------------------------------------------------------------

    async def _draw(
        self,
        account: Account,
        view: ChatView,
        hint: str | None,
        model: str | None,
        wait_s: float,
        disconnected: Disconnected | None,
    ) -> Drawn:
        services = self.services
        profile = await run_in_threadpool(
            lambda: services.models.profile(view.row.model, task=CHAT)
        )
        budget, max_tokens = _fit(int(profile.extra.get("context_length") or 0) or None)
        template = image_prompt(view, hint[:MAX_HINT] if hint else None, budget=budget)
        avatar = await run_in_threadpool(self._reference, account.id, view)
        pipeline = "image_to_image" if avatar else "text_to_image"
        await run_in_threadpool(self._afford, account.id, template, pipeline, model, avatar)
        answer = await run_template(
            self.services,
            account,
            template,
            model=view.row.model,
            wait_s=wait_s,
            max_tokens=max_tokens,
            meta={"chat_id": view.row.id, "chat_image": "prompt"},
            disconnected=disconnected,
        )
        prompt = answer.reading.text
        params = self._image_params(prompt, model, avatar)
        submitted = await run_in_threadpool(
            lambda: self.services.jobs.submit(
                account_id=account.id,
                pipeline=pipeline,
                params=params,
                block_explicit=account.block_explicit,
                meta={"chat_id": view.row.id, "chat_image": "image"},
            )
        )
        job = await wait_for_end(self.services.jobs, self.services.bus, submitted.job, wait_s)
        if not JobStatus(job.status).terminal:
            await run_in_threadpool(self._cancel, account.id, {job.id})
            raise PixelForgeError(
                ErrorCode.timeout,
                f"the image was not ready within {wait_s:g} s; job {job.id} was canceled and "
                "nothing was stored",
                status=504,
            )
        if job.status != JobStatus.SUCCEEDED:
            raise job_failure(job)
        outputs = await run_in_threadpool(self.services.jobs.outputs, job.id)
        if not outputs:
            raise PixelForgeError(ErrorCode.internal_error, f"job {job.id} produced no image")
        return Drawn(prompt=prompt, media_id=outputs[0].id, job_id=job.id)

    @staticmethod
    def _image_params(prompt: str, model: str | None, avatar: str | None) -> dict[str, object]:
        params: dict[str, object] = {"prompt": prompt[:2000], "model": model}
        if avatar:
            params.update(image=avatar, strength=STRENGTH)
        return params

    def _reference(self, account_id: str, view: ChatView) -> str | None:
        """The character's avatar when it is still readable (else the image is drawn from
        the prompt alone)."""
        media_id = view.character.avatar_media_id
        if media_id is None:
            return None
        try:
            self.services.media.get(account_id=account_id, media_id=media_id)
        except PixelForgeError:
            return None
        return media_id

    def _afford(
        self,
        account_id: str,
        template: Template,
        pipeline: str,
        model: str | None,
        avatar: str | None,
    ) -> None:
        """402 unless the balance covers both jobs, 4xx for an image model that cannot draw
        (so a prompt is never paid for an image that could not be made)."""
        self.services.models.profile(model, task=pipeline)  # an unknown image model: 4xx now
        jobs = self.services.jobs
        costs = 0
        for name, params in (
            ("chat", template.params(None)),
            (pipeline, self._image_params("x", model, avatar)),
        ):
            costs += jobs.registry.get(name).cost(jobs.validate_params(name, dict(params)))
        available = self.services.accounts.balance(account_id).available
        if costs > available:
            raise PixelForgeError(
                ErrorCode.insufficient_credits,
                f"an in-chat image costs up to {costs} credits (its prompt and its image) but "
                f"only {available} are available",
            )

    # -- storing -----------------------------------------------------------------------

    @staticmethod
    def _image_message(messages: list[Message], message_id: str) -> Message:
        msg = ChatService._find(messages, message_id)
        if not msg.is_image:
            raise PixelForgeError(
                ErrorCode.conflict,
                f"message {message_id!r} is not an image message; only those get new images",
            )
        return msg

    def _append(self, account_id: str, chat_id: str, drawn: Drawn) -> Message:
        with self.db.write() as s:
            chat = self._row(account_id, chat_id, s, lock=True)
            messages = msgs.load(s, chat_id)
            self._idle(messages)
            claim_avatar(s, account_id, drawn.media_id)  # kept as long as an avatar
            seq = messages[-1].row.seq + 1 if messages else 0
            msg = self._add_message(s, chat_id, seq, "assistant", [drawn.prompt])
            c = msg.candidates[0]
            c.media_id, c.job_id = drawn.media_id, drawn.job_id
            chat.updated_at = now()
        return self.message(account_id, chat_id, msg.id)

    def _add_candidate(
        self, account_id: str, chat_id: str, message_id: str, drawn: Drawn
    ) -> Message:
        with self.db.write() as s:
            chat = self._row(account_id, chat_id, s, lock=True)
            msg = self._image_message(msgs.load(s, chat_id), message_id)
            claim_avatar(s, account_id, drawn.media_id)
            c = new_candidate(
                message_id, len(msg.candidates), drawn.prompt, COMPLETE, job_id=drawn.job_id
            )
            c.media_id = drawn.media_id
            s.add(c)
            msg.row.selected = c.idx
            chat.updated_at = now()
        return self.message(account_id, chat_id, message_id)
