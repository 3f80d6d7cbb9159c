"""Cancel reaches every Wan request of the prompt the moment it is given.

Every Cancel path in ComfyUI (the page's button, POST /interrupt, the job API) goes through
comfy.model_management.interrupt_current_processing(True), which is wrapped here to tell every Wan request in
flight. The global flag alone is not enough: a local node running beside (a sampler) clears it as soon as it
sees it, and while a local node runs, ComfyUI's event loop is busy and no Wan coroutine looks at anything
(the progress thread looks at the flag too: nodes/progress.py). A request told to stop cancels its task at
the service while it is still queued there (nothing billed), closes a stream, keeps an answer already paid
for in the cache; one still waiting for a worker is dropped.
"""

from __future__ import annotations

import threading
from typing import Any

_live: set[Any] = set()          # every request in flight in this process (progress.Run), the running prompt's
_live_lock = threading.Lock()


def stop_all() -> None:
    """The user pressed Cancel: tell every request in flight (from whatever thread ComfyUI called from)."""
    with _live_lock:
        runs = list(_live)
    for run in runs:
        run.stop()


def hook_interrupts() -> None:
    """Wrap comfy.model_management.interrupt_current_processing so that a Cancel reaches the Wan requests
    even when a local node consumes ComfyUI's interrupt flag before any of them looks at it. The wrapper
    keeps the function's behaviour and is installed once (marked), whatever imports this module again."""
    try:
        import comfy.model_management as mm
    except ImportError:   # not inside ComfyUI
        return
    current = mm.interrupt_current_processing
    if getattr(current, "wan_hooked", False):
        return

    def interrupt_current_processing(value: bool = True) -> None:
        current(value)
        if value:
            stop_all()

    interrupt_current_processing.wan_hooked = True            # type: ignore[attr-defined]
    interrupt_current_processing.__wrapped__ = current        # type: ignore[attr-defined]
    interrupt_current_processing.__doc__ = current.__doc__
    mm.interrupt_current_processing = interrupt_current_processing


def interrupted() -> bool:
    import comfy.model_management

    return comfy.model_management.processing_interrupted()


def interrupt_exception() -> BaseException:
    import comfy.model_management

    return comfy.model_management.InterruptProcessingException()


def track(run: Any) -> None:
    """`run` (anything with a stop() method) is told when the user presses Cancel, until untrack(run)."""
    with _live_lock:
        _live.add(run)


def untrack(run: Any) -> None:
    with _live_lock:
        _live.discard(run)
