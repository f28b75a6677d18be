"""Test-only fault injection: the process kills itself at one named phase of a job's life."""

from __future__ import annotations

import os

from pixelforge.settings import FaultPhase


class FaultPoints:
    """Armed by `PIXELFORGE_TEST_FAULT=<phase>` (Settings.test_fault) in tests/faults only.

    Reaching the armed phase ends the process at once, as a SIGKILL or a power cut would: no
    `finally`, no rollback, no shutdown. Unarmed (always, outside those tests) it does nothing.
    The phases, in order: accepted (the job and its hold committed, the client not answered),
    claimed (the claim committed, nothing run), running (at the pipeline's first progress),
    capture (outputs, status and capture written, not committed), committed (committed, the
    event not sent).
    """

    def __init__(self, armed: FaultPhase | None = None) -> None:
        self.armed = armed

    def reached(self, phase: FaultPhase) -> None:
        if phase == self.armed:
            os.write(2, f"test fault: process killed at phase {phase!r}\n".encode())
            os._exit(137)
