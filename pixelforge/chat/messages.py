"""A chat's messages as stored (each with its candidates) and settling: a candidate still
marked generating takes what its job produced once the job has ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pixelforge.jobs.status import JobStatus
from pixelforge.store.db import Database
from pixelforge.store.tables import ChatCandidateRow, ChatMessageRow, Job

COMPLETE, GENERATING, INCOMPLETE, FAILED = "complete", "generating", "incomplete", "failed"


@dataclass
class Message:
    row: ChatMessageRow
    candidates: list[ChatCandidateRow] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def chosen(self) -> ChatCandidateRow:
        return self.candidates[min(self.row.selected, len(self.candidates) - 1)]

    @property
    def text(self) -> str:
        return self.chosen.text if self.candidates else ""

    @property
    def is_image(self) -> bool:
        """An in-chat image message (`chat/images.py`): its candidates hold media."""
        return any(c.media_id is not None for c in self.candidates)

    @property
    def generating(self) -> bool:
        return any(c.status == GENERATING for c in self.candidates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "chat.message",
            "id": self.row.id,
            "role": self.row.role,
            "created_at": self.row.created_at,
            "selected": self.row.selected,
            "content": self.text,
            "candidates": [candidate_dict(c) for c in self.candidates],
        }


def candidate_dict(c: ChatCandidateRow) -> dict[str, Any]:
    return {
        "index": c.idx,
        "text": c.text,
        "status": c.status,
        "finish_reason": c.finish_reason,
        "error_code": c.error_code,
        "job_id": c.job_id,
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "media_id": c.media_id,
        "kind": "image" if c.media_id is not None else "text",
    }


def load(s: Session, chat_id: str, *, lock: bool = False) -> list[Message]:
    """The chat's messages in order, each with its candidates in index order."""
    q = select(ChatMessageRow).where(ChatMessageRow.chat_id == chat_id)
    if lock:
        q = q.with_for_update()
    messages = [Message(r) for r in s.scalars(q.order_by(ChatMessageRow.seq))]
    by_id = {m.id: m for m in messages}
    if by_id:
        cq = (
            select(ChatCandidateRow)
            .where(ChatCandidateRow.message_id.in_(list(by_id)))
            .order_by(ChatCandidateRow.message_id, ChatCandidateRow.idx)
        )
        for c in s.scalars(cq):
            by_id[c.message_id].candidates.append(c)
    return messages


def generating_jobs(messages: list[Message]) -> set[str]:
    return {
        c.job_id
        for m in messages
        for c in m.candidates
        if c.status == GENERATING and c.job_id is not None
    }


def settle(db: Database, chat_id: str) -> bool:
    """Settle the chat's generating candidates whose jobs have ended; True if any was."""
    with db.read() as s:
        waiting = generating_jobs(load(s, chat_id))
        if not waiting:
            return False
        jobs = s.scalars(select(Job).where(Job.id.in_(list(waiting))))
        ended = {j.id: j for j in jobs if JobStatus(j.status).terminal}
    if not ended:
        return False
    with db.write() as s:
        q = select(ChatCandidateRow).where(
            ChatCandidateRow.job_id.in_(list(ended)), ChatCandidateRow.status == GENERATING
        )
        for c in s.scalars(q.with_for_update()):
            apply_job(c, ended[c.job_id or ""])
    return True


def apply_job(c: ChatCandidateRow, job: Job) -> None:
    """The candidate as its ended job left it: the text (appended to where a continuation
    started), why it stopped, the token counts."""
    result = job.result or {}
    choices = result.get("choices") or []
    choice = next((ch for ch in choices if ch.get("index") == c.choice), None) or {}
    usage = result.get("usage") or {}
    base = c.text[: c.base_len]
    c.text = base + str(choice.get("text") or "")
    if usage.get("prompt_tokens") is not None:
        c.prompt_tokens = int(usage["prompt_tokens"])
    if choice.get("completion_tokens") is not None:
        prior = (c.completion_tokens or 0) if c.base_len else 0
        c.completion_tokens = prior + int(choice["completion_tokens"])
    status = JobStatus(job.status)
    if status == JobStatus.SUCCEEDED:
        c.status, c.finish_reason = COMPLETE, str(choice.get("finish_reason") or "stop")
    elif status == JobStatus.CANCELED:
        c.status, c.finish_reason = INCOMPLETE, "cancelled"
    else:
        c.status, c.finish_reason = FAILED, None
        c.error_code = job.error_code or "error_inference"
