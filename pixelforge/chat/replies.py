"""Replies: a new user turn, regenerate, continue. Each generation is one `chat` job.

The job is submitted first (a refused submit, e.g. 402, stores nothing), then the messages
that wait for it are written in one transaction (if that is refused, the job is canceled).
Candidates are settled from the job's row whenever the chat is read, so nothing generated
is lost to a restart or a cut stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from pixelforge.chat import messages as msgs
from pixelforge.chat.context import ContextInput, assemble
from pixelforge.chat.messages import GENERATING, Message
from pixelforge.chat.service import ChatService, ChatView, check_content, new_candidate
from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.ids import new_id
from pixelforge.store.tables import Job


@dataclass(frozen=True)
class Generation:
    """A submitted reply: job choice i fills candidate `offset + i` of `message_id`."""

    chat_id: str
    message_id: str
    job: Job
    offset: int
    n: int


class ReplyService(ChatService):
    """ChatService plus the operations that generate text."""

    # -- generation --------------------------------------------------------------------

    def post_message(
        self, account_id: str, chat_id: str, *, content: str, n: int, sampling: dict[str, Any]
    ) -> Generation:
        """The user's turn and the assistant's reply (n candidates) that a job writes."""
        check_content(content)
        view = self._ready(account_id, chat_id)
        history = [*self._history(view.messages), {"role": "user", "content": content}]
        reply_id = new_id("msg")
        job = self._submit(account_id, view, reply_id, history, n=n, sampling=sampling)

        def record(s: Session, messages: list[Message]) -> int:
            self._idle(messages)
            seq = messages[-1].row.seq + 1 if messages else 0
            self._add_message(s, chat_id, seq, "user", [content])
            texts = [""] * n
            self._add_message(
                s, chat_id, seq + 1, "assistant", texts, status=GENERATING, job=job, id=reply_id
            )
            return 0

        return self._record(account_id, chat_id, job, reply_id, record, n=n)

    def regenerate(
        self, account_id: str, chat_id: str, message_id: str, *, n: int, sampling: dict[str, Any]
    ) -> Generation:
        """New candidates for the chat's last message, which must be the assistant's."""
        view = self._ready(account_id, chat_id)
        self._last_assistant(view.messages, message_id, "regenerate")
        job = self._submit(
            account_id, view, message_id, self._history(view.messages[:-1]), n=n, sampling=sampling
        )

        def record(s: Session, messages: list[Message]) -> int:
            msg = self._last_assistant(messages, message_id, "regenerate")
            self._idle(messages)
            offset = len(msg.candidates)
            for i in range(n):
                s.add(
                    new_candidate(message_id, offset + i, "", GENERATING, job_id=job.id, choice=i)
                )
            msg.row.selected = offset
            return offset

        return self._record(account_id, chat_id, job, message_id, record, n=n)

    def continue_(
        self, account_id: str, chat_id: str, message_id: str, *, sampling: dict[str, Any]
    ) -> Generation:
        """More text for the selected candidate of the last (assistant) message."""
        view = self._ready(account_id, chat_id)
        msg = self._last_assistant(view.messages, message_id, "continue")
        if not msg.text.strip():
            raise PixelForgeError(
                ErrorCode.conflict,
                f"message {message_id!r}: the selected candidate has no text to continue; "
                "regenerate it instead",
            )
        history = self._history(view.messages[:-1])
        history.append({"role": "assistant", "content": msg.text})
        job = self._submit(
            account_id, view, message_id, history, n=1, sampling=sampling, continue_last=True
        )

        def record(s: Session, messages: list[Message]) -> int:
            c = self._last_assistant(messages, message_id, "continue").chosen
            self._idle(messages)
            c.status, c.job_id, c.choice, c.base_len = GENERATING, job.id, 0, len(c.text)
            c.finish_reason = c.error_code = None
            return c.idx

        return self._record(account_id, chat_id, job, message_id, record, n=1)

    def _submit(
        self,
        account_id: str,
        view: ChatView,
        message_id: str,
        history: list[dict[str, str]],
        *,
        n: int,
        sampling: dict[str, Any],
        continue_last: bool = False,
    ) -> Job:
        persona = view.persona
        messages = assemble(
            ContextInput(
                card=view.character.data,
                persona_name=view.user_name,
                persona_description=persona.description if persona else "",
                history=history,
            )
        )
        if continue_last:
            # The text to continue must come last (after any post-history instructions).
            last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
            messages.append(messages.pop(last))
        params: dict[str, Any] = {
            **view.row.sampling,
            **sampling,
            "model": view.row.model,
            "messages": messages,
            "trim": True,
            "n": n,
        }
        if continue_last:
            params["continue_last"] = True
        submitted = self.services.jobs.submit(
            account_id=account_id,
            pipeline="chat",
            params=params,
            meta={"chat_id": view.row.id, "message_id": message_id},
        )
        return submitted.job

    def _record(
        self,
        account_id: str,
        chat_id: str,
        job: Job,
        message_id: str,
        write: Callable[[Session, list[Message]], int],
        *,
        n: int,
    ) -> Generation:
        """Store what waits for `job`; if that is refused, the job is canceled."""
        try:
            with self.db.write() as s:
                chat = self._row(account_id, chat_id, s, lock=True)
                offset = write(s, msgs.load(s, chat_id))
                chat.updated_at = now()
        except BaseException:
            self._cancel(account_id, {job.id})
            raise
        return Generation(chat_id=chat_id, message_id=message_id, job=job, offset=offset, n=n)

    @staticmethod
    def _history(messages: list[Message]) -> list[dict[str, str]]:
        """The turns the model sees; in-chat images are left out (chat/images.py)."""
        return [
            {"role": m.row.role, "content": m.text} for m in messages if m.text and not m.is_image
        ]
