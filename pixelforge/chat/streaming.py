"""A reply as a stream of events: init, the candidates' text pieces as they are decoded,
then the settled message (or the error that ended the job)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import anyio.to_thread

from pixelforge.chat.replies import Generation, ReplyService
from pixelforge.errors import PixelForgeError
from pixelforge.jobs.status import EventType
from pixelforge.jobs.streams import JobStream, follow_job


class ReplyStream:
    """A generation followed from before its job was submitted. `close()` (always called)
    cancels the job if the reader left before it ended: what was generated stays, settled
    as incomplete, and is not charged."""

    def __init__(self, stack: AsyncExitStack, stream: JobStream, gen: Generation) -> None:
        self._stack = stack
        self._stream = stream
        self.gen = gen

    @classmethod
    async def open(
        cls, replies: ReplyService, account_id: str, prepare: Callable[[], Generation]
    ) -> ReplyStream:
        """Subscribe, then run `prepare` (which submits the job) in a worker thread."""
        services = replies.services
        stack = AsyncExitStack()
        stream = await stack.enter_async_context(
            follow_job(services.jobs, services.bus, account_id)
        )
        try:
            gen = await anyio.to_thread.run_sync(prepare)
        except BaseException:
            await stack.aclose()
            raise
        return cls(stack, stream, gen)

    async def events(self, replies: ReplyService, account_id: str) -> AsyncIterator[dict[str, Any]]:
        gen = self.gen
        yield {
            "type": "init",
            "chat_id": gen.chat_id,
            "message_id": gen.message_id,
            "job_id": gen.job.id,
            "candidates": gen.n,
            "first_index": gen.offset,
        }
        last = None
        async for ev in self._stream.events(gen.job.id):
            last = ev
            if ev.type == EventType.TOKEN and ev.delta:
                yield {"type": "token", "index": gen.offset + (ev.index or 0), "delta": ev.delta}
        read = partial(replies.message, account_id, gen.chat_id, gen.message_id)
        try:
            message = await anyio.to_thread.run_sync(read)
        except PixelForgeError as e:  # the chat or message was deleted meanwhile
            yield {"type": "error", "code": e.code.value, "message": e.message}
            return
        if last is not None and last.type == EventType.FAILED:
            yield {
                "type": "error",
                "code": last.error_code or "error_inference",
                "message": last.message or "the generation failed",
            }
        else:
            yield {"type": "complete", "message": message.to_dict()}

    async def close(self) -> None:
        await self._stack.aclose()
