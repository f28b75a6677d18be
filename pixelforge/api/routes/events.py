"""Websocket progress: one job's events, or every event of the caller's account."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import Message

from pixelforge.errors import PixelForgeError
from pixelforge.jobs import lifecycle
from pixelforge.jobs.events import Event, Subscription
from pixelforge.jobs.status import TERMINAL_STATUSES
from pixelforge.services import Services
from pixelforge.store.tables import Account, Job
from pixelforge.web.deps import authenticate, get_services

router = APIRouter(tags=["events"])


class _Listener:
    """Waits for the next event while noticing a client that went away."""

    def __init__(self, ws: WebSocket, sub: Subscription) -> None:
        self.ws = ws
        self.sub = sub
        self._recv: asyncio.Task[Message] = asyncio.ensure_future(ws.receive())

    async def next(self, wait_s: float) -> Event | None:
        """The next event, None after `wait_s` quiet seconds; WebSocketDisconnect if gone."""
        get = asyncio.ensure_future(self.sub.get(wait_s))
        while True:
            done, _ = await asyncio.wait({self._recv, get}, return_when=asyncio.FIRST_COMPLETED)
            if self._recv in done:
                if self._recv.result()["type"] == "websocket.disconnect":
                    get.cancel()
                    raise WebSocketDisconnect()
                # Clients have nothing to say on these sockets; ignore what they send.
                self._recv = asyncio.ensure_future(self.ws.receive())
            if get in done:
                return get.result()

    def close(self) -> None:
        self._recv.cancel()
        self.sub.close()


def _snapshot(services: Services, job: Job) -> Event:
    """The job's current state as an event (what a late subscriber needs first)."""
    return lifecycle.snapshot(job, queue_position=services.jobs.position(job))


async def _accept(ws: WebSocket) -> tuple[Services, Account] | None:
    services = get_services(ws)
    try:
        account = await run_in_threadpool(authenticate, services, ws, allow_query=True)
    except PixelForgeError as e:
        await ws.send_denial_response(JSONResponse(e.to_dict(), status_code=e.status))
        return None
    return services, account.account


@router.websocket("/v1/jobs/{job_id}/events")
async def job_events(ws: WebSocket, job_id: str) -> None:
    """Sends the current state, then every event; closes after the final one."""
    accepted = await _accept(ws)
    if accepted is None:
        return
    services, account = accepted
    try:
        job = await run_in_threadpool(services.jobs.get, account_id=account.id, job_id=job_id)
    except PixelForgeError as e:
        await ws.send_denial_response(JSONResponse(e.to_dict(), status_code=e.status))
        return
    await ws.accept()
    listener = _Listener(ws, services.bus.subscribe(account_id=account.id, job_id=job_id))
    try:
        snap = await run_in_threadpool(_snapshot, services, job)
        await ws.send_json(snap.public())
        last_status = job.status
        while last_status not in TERMINAL_STATUSES:
            ev = await listener.next(1.0)
            if ev is not None:
                await ws.send_json(ev.public())
                if ev.terminal:
                    break
                continue
            # Quiet for a second: the row is the truth (a worker in another process
            # publishes on its own bus), so check whether the job ended meanwhile.
            job = await run_in_threadpool(services.jobs.get, account_id=account.id, job_id=job_id)
            if job.status != last_status and job.status in TERMINAL_STATUSES:
                await ws.send_json((await run_in_threadpool(_snapshot, services, job)).public())
            last_status = job.status
        await ws.close()
    except WebSocketDisconnect:
        pass
    finally:
        listener.close()


@router.websocket("/v1/events")
async def account_events(ws: WebSocket) -> None:
    """Every event of the caller's jobs (queued, started, progress, final) until disconnect."""
    accepted = await _accept(ws)
    if accepted is None:
        return
    services, account = accepted
    await ws.accept()
    listener = _Listener(ws, services.bus.subscribe(account_id=account.id))
    try:
        while True:
            ev = await listener.next(30.0)
            if ev is None:
                await ws.send_json({"type": "ping"})
                continue
            await ws.send_json(ev.public())
    except WebSocketDisconnect:
        pass
    finally:
        listener.close()
