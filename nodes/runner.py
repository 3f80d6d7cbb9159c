"""Running one Wan request inside ComfyUI without blocking it.

The blocking client runs in a worker thread of our own pool (ComfyUI's default executor has only a few
threads on a small machine, which would serialise parallel Wan nodes). The event loop meanwhile wakes
every 0.1 s to draw progress and to watch ComfyUI's interrupt flag; on interrupt it sets the client's
cancel event (a PENDING task is then canceled at the service, a stream closed) and raises ComfyUI's
interrupt exception within about a second.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import WanClient, WanRequest, WanResult
from ..api.client import Progress
from ..api.secrets import get_logger
from ..api.store import ENV_STATE_DIR, Store, default_state_dir

log = get_logger("wan.nodes")

# Wide enough for a fan-out of many Wan nodes at once; the threads mostly wait on the network.
_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="wan-node")

# Rough service times, only to move the progress bar while the service gives no progress of its own.
_ESTIMATE_S = {"t2i": 30.0, "edit": 30.0, "sequential": 90.0, "interleave": 120.0}
INTERRUPT_GRACE_S = 1.0


@dataclass
class _Status:
    progress: Progress | None = None
    text: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, p: Progress) -> None:
        with self.lock:
            self.progress = p
            if p.kind == "text":
                self.text += p.text


_store: Store | None = None
_store_lock = threading.Lock()


def state_dir() -> Path:
    """WAN_STATE_DIR, else ComfyUI's user directory (user/wan_image), where the journal and cache live."""
    env = os.environ.get(ENV_STATE_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    try:
        import folder_paths

        return Path(folder_paths.get_user_directory()) / "wan_image"
    except Exception:
        return default_state_dir()


def shared_store() -> Store:
    global _store
    with _store_lock:
        folder = state_dir()
        if _store is None or _store.folder != folder:
            _store = Store(folder)
        return _store


def make_client(region: str) -> WanClient:
    return WanClient(region=None if region in ("", "default") else region, store=shared_store())


def _interrupted() -> bool:
    import comfy.model_management

    return comfy.model_management.processing_interrupted()


def _show(node_id: str | None, text: str) -> None:
    if node_id is None:
        return
    try:
        from server import PromptServer

        PromptServer.instance.send_progress_text(text, node_id)
    except Exception:  # no server (node-level tests) or no client connected
        pass


async def _bar(value: float, total: float) -> None:
    try:
        from comfy_api.latest import ComfyAPI

        await ComfyAPI().execution.set_progress(value, total)
    except Exception:  # outside an executing context (node-level tests)
        pass


def _status_line(req: WanRequest, p: Progress | None, text: str) -> str:
    if p is None:
        return f"{req.model}: sending…"
    t = f"{p.elapsed:.0f} s"
    if p.kind in ("sending",):
        return f"{req.model}: sending… {t}"
    if p.kind == "submitted" or (p.kind == "status" and p.status == "PENDING"):
        return f"{req.model}: queued at the service — {t}\ntask {p.task_id}"
    if p.kind == "status":
        return f"{req.model}: running — {t}\ntask {p.task_id}"
    if p.kind in ("retry", "waiting"):
        return f"{req.model}: {p.message} — {t}"
    if p.kind in ("text", "image"):
        tail = text[-600:]
        return f"{req.model}: streaming — {t}\n{tail}"
    if p.kind == "downloading":
        return f"{req.model}: downloading {p.images_done}/{p.images_total} — {t}"
    return f"{req.model}: {p.kind} — {t}"


async def run(node_cls: Any, req: WanRequest, *, region: str, transport: str) -> WanResult:
    """Send `req` and wait for it, keeping ComfyUI responsive and interruptible."""
    node_id = getattr(getattr(node_cls, "hidden", None), "unique_id", None)
    client = make_client(region)
    status = _Status()
    cancel = threading.Event()
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(
        _POOL, lambda: client.generate(req, transport=transport, cancel=cancel, on_progress=status.update))
    estimate = _ESTIMATE_S.get(req.mode, 30.0)
    started = time.monotonic()
    shown = ""
    while True:
        done, _ = await asyncio.wait({future}, timeout=0.1)
        if done:
            break
        if _interrupted():
            cancel.set()
            # Give the client a moment to cancel a PENDING task at the service; never wait long.
            try:
                await asyncio.wait_for(asyncio.shield(future), INTERRUPT_GRACE_S)
            except BaseException:
                pass
            _show(node_id, f"{req.model}: interrupted")
            import comfy.model_management

            raise comfy.model_management.InterruptProcessingException()
        with status.lock:
            p, text = status.progress, status.text
        line = _status_line(req, p, text)
        if line != shown:
            _show(node_id, line)
            shown = line
        elapsed = time.monotonic() - started
        if p is not None and p.kind == "downloading" and p.images_total:
            await _bar(90 + 10 * p.images_done / p.images_total, 100)
        else:
            # An asymptotic bar: moves while waiting, never claims to be done before it is.
            await _bar(90 * (1 - 2 ** (-elapsed / estimate)), 100)
    result = future.result()
    await _bar(100, 100)
    return result

