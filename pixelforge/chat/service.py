"""Chats: create (with the character's greeting), read, list, delete, and the edits of
their messages (select a candidate, edit one, delete from a message on). Generation is in
`chat/replies.py`."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pixelforge.chat import messages as msgs
from pixelforge.chat.context import apply_macros
from pixelforge.chat.messages import COMPLETE, GENERATING, Message
from pixelforge.chat.store import CharacterService, PersonaService, check_text, page
from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError, not_found
from pixelforge.ids import new_id
from pixelforge.models.base import CHAT
from pixelforge.services import Services
from pixelforge.store.tables import (
    CharacterRow,
    ChatCandidateRow,
    ChatMessageRow,
    ChatRow,
    Job,
    PersonaRow,
)

MAX_CONTENT = 32_000  # characters in one message
BUILTIN_USER = "User"  # the persona of a chat that has none


@dataclass
class ChatView:
    row: ChatRow
    character: CharacterRow
    persona: PersonaRow | None
    messages: list[Message]

    @property
    def user_name(self) -> str:
        return self.persona.name if self.persona else BUILTIN_USER


def check_content(text: str, field: str = "content") -> str:
    check_text(text, field)
    if not text.strip():
        raise PixelForgeError(ErrorCode.invalid_parameter, f"{field}: must not be empty")
    if len(text) > MAX_CONTENT:
        raise PixelForgeError(
            ErrorCode.invalid_parameter, f"{field}: at most {MAX_CONTENT} characters"
        )
    return text


def _conflict(message: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.conflict, message)


def new_candidate(
    message_id: str,
    idx: int,
    text: str,
    status: str,
    *,
    job_id: str | None = None,
    choice: int = 0,
) -> ChatCandidateRow:
    return ChatCandidateRow(
        message_id=message_id,
        idx=idx,
        text=text,
        status=status,
        finish_reason=None,
        error_code=None,
        job_id=job_id,
        choice=choice,
        base_len=0,
        created_at=now(),
    )


class ChatService:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.db = services.db
        self.characters = CharacterService(services.db)
        self.personas = PersonaService(services.db)

    # -- chats -------------------------------------------------------------------------

    def create(
        self,
        account_id: str,
        *,
        character_id: str,
        persona_id: str | None,
        model: str | None,
        sampling: dict[str, Any],
        first_message: str | None = None,
    ) -> ChatView:
        """A chat opened by the character's greeting (first_mes, alternate greetings as
        further candidates), or by `first_message` in their place when given. No persona: the
        account's default, else the built-in User."""
        if first_message is not None:
            check_text(first_message, "first_message")
        character = self._character(account_id, character_id)
        persona = (
            self.personas.get(account_id, persona_id)
            if persona_id
            else self.personas.default(account_id)
        )
        if model is not None:
            profile = self.services.models.catalog.get(model)
            if profile is None or CHAT not in profile.tasks:
                raise PixelForgeError(
                    ErrorCode.invalid_parameter, f"model: {model!r} is not a chat model"
                )
        t = now()
        row = ChatRow(
            id=new_id("cht"),
            account_id=account_id,
            character_id=character.id,
            persona_id=persona.id if persona else None,
            model=model,
            sampling=sampling,
            created_at=t,
            updated_at=t,
        )
        view = ChatView(row, character, persona, [])
        # {{char}} is the nickname when the card has one (V3), as in the context.
        nickname = character.data.get("nickname")
        char = nickname if isinstance(nickname, str) and nickname.strip() else character.name
        texts = [first_message] if first_message else self._greetings(character.data)
        greetings = [apply_macros(g, char=char, user=view.user_name) for g in texts]
        with self.db.write() as s:
            s.add(row)
            s.flush()
            if greetings:
                view.messages.append(self._add_message(s, row.id, 0, "assistant", greetings))
        return view

    @staticmethod
    def _greetings(data: dict[str, Any]) -> list[str]:
        first = data.get("first_mes")
        alts = data.get("alternate_greetings")
        out = [first] if isinstance(first, str) and first.strip() else []
        if isinstance(alts, list):
            out.extend(a for a in alts if isinstance(a, str) and a.strip())
        return out

    def get(self, account_id: str, chat_id: str) -> ChatView:
        """The chat with its messages, generating candidates settled first."""
        self._row(account_id, chat_id)
        msgs.settle(self.db, chat_id)
        with self.db.read() as s:
            row = self._row(account_id, chat_id, s)
            character = s.get(CharacterRow, row.character_id)
            persona = s.get(PersonaRow, row.persona_id) if row.persona_id else None
            assert character is not None  # a foreign key, and characters are only soft-deleted
            return ChatView(row, character, persona, msgs.load(s, chat_id))

    def list_chats(
        self, account_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[ChatRow], str | None]:
        with self.db.read() as s:
            return page(
                s,
                select(ChatRow).where(ChatRow.account_id == account_id),
                ChatRow,
                limit=limit,
                cursor=cursor,
            )

    def delete(self, account_id: str, chat_id: str) -> None:
        """Delete the chat and its messages; a reply still generating is canceled."""
        with self.db.write() as s:
            self._row(account_id, chat_id, s, lock=True)
            running = msgs.generating_jobs(msgs.load(s, chat_id))
            self._delete_messages(s, chat_id, 0)
            s.execute(delete(ChatRow).where(ChatRow.id == chat_id))
        self._cancel(account_id, running)

    # -- message edits -----------------------------------------------------------------

    def message(self, account_id: str, chat_id: str, message_id: str) -> Message:
        """One message, settled."""
        return self._find(self.get(account_id, chat_id).messages, message_id)

    def select(self, account_id: str, chat_id: str, message_id: str, index: int) -> Message:
        with self.db.write() as s:
            self._row(account_id, chat_id, s, lock=True).updated_at = now()
            msg = self._find(msgs.load(s, chat_id), message_id)
            if not 0 <= index < len(msg.candidates):
                raise PixelForgeError(
                    ErrorCode.invalid_parameter,
                    f"selected: message {message_id!r} has candidates 0..{len(msg.candidates) - 1}",
                )
            msg.row.selected = index
        return self.message(account_id, chat_id, message_id)

    def edit(
        self, account_id: str, chat_id: str, message_id: str, index: int, text: str
    ) -> Message:
        check_content(text, "text")
        with self.db.write() as s:
            self._row(account_id, chat_id, s, lock=True).updated_at = now()
            msg = self._find(msgs.load(s, chat_id), message_id)
            if not 0 <= index < len(msg.candidates):
                raise not_found(f"candidate {index} of message {message_id!r}")
            c = msg.candidates[index]
            if c.status == GENERATING:
                raise _conflict(f"candidate {index} is still being generated; edit it after")
            c.text = text
        return self.message(account_id, chat_id, message_id)

    def delete_from(self, account_id: str, chat_id: str, message_id: str) -> None:
        """Delete the message and every later one (a reply among them is canceled)."""
        with self.db.write() as s:
            self._row(account_id, chat_id, s, lock=True).updated_at = now()
            messages = msgs.load(s, chat_id)
            msg = self._find(messages, message_id)
            running = msgs.generating_jobs([m for m in messages if m.row.seq >= msg.row.seq])
            self._delete_messages(s, chat_id, msg.row.seq)
        self._cancel(account_id, running)

    # -- internals ---------------------------------------------------------------------

    def _character(self, account_id: str, character_id: str) -> CharacterRow:
        character = self.characters.get(account_id, character_id, deleted=True)
        if character.deleted_at is not None:
            raise _conflict(
                f"character {character_id!r} was deleted: its chats can be read, not continued"
            )
        return character

    def _row(
        self, account_id: str, chat_id: str, s: Session | None = None, *, lock: bool = False
    ) -> ChatRow:
        if s is None:
            with self.db.read() as s2:
                return self._row(account_id, chat_id, s2)
        q = select(ChatRow).where(ChatRow.id == chat_id)
        row = s.scalar(q.with_for_update() if lock else q)
        if row is None or row.account_id != account_id:
            raise not_found(f"chat {chat_id!r}")
        return row

    def _ready(self, account_id: str, chat_id: str) -> ChatView:
        """The chat, ready for a new generation: its character exists, nothing generating."""
        view = self.get(account_id, chat_id)
        self._character(account_id, view.character.id)
        self._idle(view.messages)
        return view

    @staticmethod
    def _idle(messages: list[Message]) -> None:
        if any(m.generating for m in messages):
            raise _conflict(
                "a reply is still being generated in this chat; wait for it or delete it"
            )

    @staticmethod
    def _find(messages: list[Message], message_id: str) -> Message:
        for m in messages:
            if m.id == message_id:
                return m
        raise not_found(f"message {message_id!r}")

    def _last_assistant(self, messages: list[Message], message_id: str, what: str) -> Message:
        msg = self._find(messages, message_id)
        if msg is not messages[-1] or msg.row.role != "assistant":
            raise _conflict(f"only the chat's last message, an assistant reply, can {what}")
        if msg.is_image:
            raise _conflict(f"message {message_id!r} is an image: use images/regenerate")
        return msg

    @staticmethod
    def _add_message(
        s: Session,
        chat_id: str,
        seq: int,
        role: str,
        texts: list[str],
        *,
        status: str = COMPLETE,
        job: Job | None = None,
        id: str | None = None,
    ) -> Message:
        row = ChatMessageRow(
            id=id or new_id("msg"),
            chat_id=chat_id,
            seq=seq,
            role=role,
            selected=0,
            created_at=now(),
        )
        s.add(row)
        s.flush()
        job_id = job.id if job else None
        cands = [
            new_candidate(row.id, i, t, status, job_id=job_id, choice=i)
            for i, t in enumerate(texts)
        ]
        s.add_all(cands)
        return Message(row, cands)

    @staticmethod
    def _delete_messages(s: Session, chat_id: str, from_seq: int) -> None:
        doomed = select(ChatMessageRow.id).where(
            ChatMessageRow.chat_id == chat_id, ChatMessageRow.seq >= from_seq
        )
        s.execute(delete(ChatCandidateRow).where(ChatCandidateRow.message_id.in_(doomed)))
        s.execute(
            delete(ChatMessageRow).where(
                ChatMessageRow.chat_id == chat_id, ChatMessageRow.seq >= from_seq
            )
        )

    def _cancel(self, account_id: str, job_ids: set[str]) -> None:
        for job_id in job_ids:
            with suppress(PixelForgeError):  # already gone
                self.services.jobs.cancel(account_id=account_id, job_id=job_id)
