"""Waiting that stops when the user cancels: the one helper every wait in api/ goes through.

ComfyUI's Cancel reaches the blocking client as a `threading.Event`; every pause (between polls, before a
retry, for a rate-limit token, for a free generation slot) must end as soon as it is set, and say what was
being waited for.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from ..errors import Interrupted

SLICE_S = 0.1   # how often a wait on something other than the event itself looks at the event


def pause(seconds: float, cancel: threading.Event | None, doing: str = "waiting") -> None:
    """Sleep `seconds`, or raise Interrupted as soon as `cancel` is set."""
    if cancel is None:
        time.sleep(max(0.0, seconds))
    elif cancel.wait(max(0.0, seconds)):
        raise Interrupted(f"stopped by the user while {doing}")


def until(attempt: Callable[[float], bool], cancel: threading.Event | None, doing: str) -> None:
    """Call `attempt(timeout)` (e.g. a semaphore's acquire) in short slices until it succeeds, or raise
    Interrupted when `cancel` is set between two slices."""
    while not attempt(SLICE_S):
        if cancel is not None and cancel.is_set():
            raise Interrupted(f"stopped by the user while {doing}")
