"""The words of the job state machine: a job's status and the types of its events."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A job's status as stored in `jobs.status` (see docs/architecture.md for the graph)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


class EventType(StrEnum):
    """The `type` of an event, on every channel (websocket, stream, webhook)."""

    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    PREVIEW = "preview"
    TOKEN = "token"  # a piece of generated text (language-model jobs)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_EVENTS


TERMINAL_EVENTS = frozenset({EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELED})

# The event that announces a row entering each status: a row and its event always agree.
EVENT_FOR_STATUS: dict[JobStatus, EventType] = {
    JobStatus.QUEUED: EventType.QUEUED,
    JobStatus.RUNNING: EventType.STARTED,
    JobStatus.SUCCEEDED: EventType.SUCCEEDED,
    JobStatus.FAILED: EventType.FAILED,
    JobStatus.CANCELED: EventType.CANCELED,
}
