"""AliveAI websockets: one prompt's progress, and a user's queue changes, from the core bus."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import Message

from pixelforge.dialects.aliveai import store
from pixelforge.dialects.aliveai.errors import error_body, error_type
from pixelforge.errors import PixelForgeError, not_found
from pixelforge.jobs import lifecycle
from pixelforge.jobs.events import Event, Subscription
from pixelforge.jobs.status import TERMINAL_EVENTS, EventType
from pixelforge.services import Services
from pixelforge.store.tables import Account
from pixelforge.web.deps import authenticate, get_services

router = APIRouter(prefix="/aliveai", tags=["aliveai"])
_QUEUE_EVENTS = frozenset({EventType.QUEUED, EventType.STARTED, *TERMINAL_EVENTS})


async def _deny(ws: WebSocket, err: PixelForgeError) -> None:
    await ws.send_denial_response(JSONResponse(error_body(err), status_code=err.status))


async def _account(ws: WebSocket) -> tuple[Services, Account] | None:
    """Authorization header (Bearer token or Key) or ?token=, as for every AliveAI call."""
    services = get_services(ws)
    try:
        principal = await run_in_threadpool(authenticate, services, ws, allow_query=True)
    except PixelForgeError as e:
        await _deny(ws, e)
        return None
    return services, principal.account


async def _next(
    ws: WebSocket, recv: asyncio.Task[Message], sub: Subscription, wait_s: float
) -> tuple[Event | None, asyncio.Task[Message]]:
    """The next bus event (None after `wait_s` quiet seconds); WebSocketDisconnect if gone."""
    get = asyncio.ensure_future(sub.get(wait_s))
    while True:
        done, _ = await asyncio.wait({recv, get}, return_when=asyncio.FIRST_COMPLETED)
        if recv in done:
            if recv.result()["type"] == "websocket.disconnect":
                get.cancel()
                raise WebSocketDisconnect()
            recv = asyncio.ensure_future(ws.receive())  # clients have nothing to say here
        if get in done:
            return get.result(), recv


def prompt_event(
    ev: Event, container: dict[str, Any] | None, *, is_system: bool = False
) -> dict[str, Any]:
    """The seed's prompt event: promptId, progress (0-100), isComplete, promptContainer, ..."""
    failed = ev.type in (EventType.FAILED, EventType.CANCELED)
    out: dict[str, Any] = {
        "promptId": ev.job_id,
        "progress": 100 if ev.type == EventType.SUCCEEDED else store.percent(ev.progress),
        "isComplete": ev.type == EventType.SUCCEEDED,
        "promptContainer": container,
        "isError": failed,
        "isSystem": is_system,
        "message": ev.message,
        "errorType": error_type(ev.error_code) if failed else None,
        "queuePosition": ev.queue_position,
        "created": store.iso(ev.ts),
    }
    if ev.preview is not None:
        out["preview"] = ev.preview
    return out


def _snapshot(services: Services, ws: WebSocket, account_id: str, prompt_id: str) -> Any:
    prompt = store.find(services, account_id, prompt_id)
    job = prompt.job
    ev = lifecycle.snapshot(job, queue_position=services.jobs.position(job))
    return ev, store.container(services, ws, prompt)


@router.websocket("/ws/prompts/{promptId}")
async def prompt_events(ws: WebSocket, promptId: str) -> None:
    """The prompt's state now, then each event; closes after the final one."""
    accepted = await _account(ws)
    if accepted is None:
        return
    services, account = accepted
    sub = services.bus.subscribe(account_id=account.id, job_id=promptId)
    try:
        ev, container = await run_in_threadpool(_snapshot, services, ws, account.id, promptId)
    except PixelForgeError as e:
        sub.close()
        await _deny(ws, e)
        return
    await ws.accept()
    recv: asyncio.Task[Message] = asyncio.ensure_future(ws.receive())
    try:
        await ws.send_json(prompt_event(ev, container, is_system=True))
        while not ev.terminal:
            got, recv = await _next(ws, recv, sub, 1.0)
            if got is None:
                # Quiet: the row is the truth (a worker elsewhere publishes on its own bus).
                now_ev, container = await run_in_threadpool(
                    _snapshot, services, ws, account.id, promptId
                )
                if now_ev.terminal:
                    ev = now_ev
                    await ws.send_json(prompt_event(ev, container))
                continue
            ev = got
            if ev.terminal:
                _, container = await run_in_threadpool(
                    _snapshot, services, ws, account.id, promptId
                )
            await ws.send_json(prompt_event(ev, container if ev.terminal else None))
        await ws.close()
    except WebSocketDisconnect:
        pass
    finally:
        recv.cancel()
        sub.close()


@router.websocket("/ws/users/{userId}")
async def user_events(ws: WebSocket, userId: str) -> None:
    """QUEUE_CHANGE with the user's queue whenever one of their prompts is queued, starts or
    ends; a ping every 30 quiet seconds. The prompt's request is stored with its job, so the
    queue sent for its `queued` event already holds it."""
    accepted = await _account(ws)
    if accepted is None:
        return
    services, account = accepted
    if userId != account.id:
        await _deny(ws, not_found(f"user {userId!r}"))
        return
    await ws.accept()
    sub = services.bus.subscribe(account_id=account.id)
    recv: asyncio.Task[Message] = asyncio.ensure_future(ws.receive())
    try:
        while True:
            ev, recv = await _next(ws, recv, sub, 30.0)
            if ev is None:
                await ws.send_json({"eventType": "PING"})
                continue
            if ev.type not in _QUEUE_EVENTS:
                continue
            queue = await run_in_threadpool(store.queue_after, services, account.id, ev.job_id)
            if queue is None:
                continue
            await ws.send_json({"eventType": "QUEUE_CHANGE", "queue": queue, "promptId": ev.job_id})
    except WebSocketDisconnect:
        pass
    finally:
        recv.cancel()
        sub.close()
