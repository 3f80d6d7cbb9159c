"""Running one Wan request inside ComfyUI without blocking it.

Everything slow runs in worker threads: the blocking client (network waits of up to 30 minutes), input
encoding (about a second for four 2048² pictures, much more for a `per_image` clip) and turning results into
tensors. The event loop meanwhile wakes every 0.1 s to draw progress and to watch ComfyUI's interrupt flag;
on interrupt it sets the client's cancel event (a PENDING task is then canceled at the service, a stream
closed; a paid answer still arriving is kept in the cache) and raises ComfyUI's interrupt exception within
about a second.

The workers are daemon threads: one still waiting on the network must not hold ComfyUI's exit. Clients are
kept per (endpoint, account), so their HTTP connections are reused from run to run.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..api import Progress, Store, WanClient, WanRequest, WanResult, get_logger, resolve_api_key, resolve_endpoint
from ..api import state_dir as find_state_dir

log = get_logger("wan.nodes")
T = TypeVar("T")

# Rough service times, only to move the progress bar while the service gives no progress of its own.
_ESTIMATE_S = {"t2i": 30.0, "edit": 30.0, "sequential": 90.0, "interleave": 120.0}
INTERRUPT_GRACE_S = 1.0


# ---- worker threads ----------------------------------------------------------------------------------------

def _settle(future: asyncio.Future, ok: bool, value: Any) -> None:
    if not future.done():  # the awaiting coroutine may have been cancelled meanwhile
        future.set_result(value) if ok else future.set_exception(value)


def _retrieve(future: asyncio.Future) -> None:
    # A future abandoned after an interrupt may still fail later; retrieving its exception here keeps
    # asyncio from logging "Future exception was never retrieved" for a run the user already stopped.
    if not future.cancelled():
        future.exception()


def start_in_thread(work: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
    """Run `work(*args)` in a new daemon thread; the returned future resolves on the running loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()
    future.add_done_callback(_retrieve)

    def target() -> None:
        try:
            outcome = (True, work(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine as is
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(_settle, future, *outcome)
        except RuntimeError:
            pass  # the loop is gone (ComfyUI is exiting): nobody waits for this any more

    threading.Thread(target=target, daemon=True, name="wan-node").start()
    return future


async def in_thread(work: Callable[..., T], *args: Any) -> T:
    """Await `work(*args)` run in a worker thread, so the event loop keeps drawing and noticing Cancel."""
    return await start_in_thread(work, *args)


# ---- the state folder and clients --------------------------------------------------------------------------

def state_dir() -> Path:
    """WAN_STATE_DIR, else ComfyUI's user directory (user/wan_image): api.state_dir decides, we add the host."""
    try:
        import folder_paths

        host = Path(folder_paths.get_user_directory()) / "wan_image"
    except Exception:  # not inside ComfyUI
        host = None
    return find_state_dir(host)


_store: Store | None = None
_clients: dict[tuple[str, str], WanClient] = {}
_lock = threading.Lock()


def shared_store() -> Store:
    global _store
    with _lock:
        folder = state_dir()
        if _store is None or _store.folder != folder:
            _store = Store(folder)
        return _store


def client_for(region: str) -> WanClient:
    """The client of this (endpoint, account): made once, reused by every run (its connections stay open)."""
    key = resolve_api_key(region=region, state_folder=state_dir())  # api/config.py: the order of sources
    endpoint = resolve_endpoint(None if region in ("", "default") else region)
    store = shared_store()
    ident = (endpoint.base_url, key.fingerprint)
    with _lock:
        client = _clients.get(ident)
        if client is None or client.store is not store:
            if client is not None:
                client.close()
            client = _clients[ident] = WanClient(key, endpoint=endpoint, store=store)
        return client


@atexit.register
def _close_clients() -> None:
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


# ---- progress ------------------------------------------------------------------------------------------

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


def _interrupted() -> bool:
    import comfy.model_management

    return comfy.model_management.processing_interrupted()


def show(node_id: str | None, text: str) -> None:
    """A status text on the node (ComfyUI's progress text)."""
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
        state = "running" if p.status == "RUNNING" else f"status {p.status}"
        return f"{req.model}: {state} — {t}\ntask {p.task_id}"
    if p.kind in ("retry", "waiting"):
        return f"{req.model}: {p.message} — {t}"
    if p.kind in ("text", "image"):
        tail = text[-600:]
        return f"{req.model}: streaming — {t}\n{tail}"
    if p.kind == "downloading":
        return f"{req.model}: downloading {p.images_done}/{p.images_total} — {t}"
    return f"{req.model}: {p.kind} — {t}"


# ---- one run -------------------------------------------------------------------------------------------

async def run(node_id: str | None, req: WanRequest, *, region: str, transport: str) -> WanResult:
    """Send `req` and wait for it, keeping ComfyUI responsive and interruptible."""
    if _interrupted():   # Cancel pressed while the inputs were prepared: send nothing
        import comfy.model_management

        raise comfy.model_management.InterruptProcessingException()
    status = _Status()
    cancel = threading.Event()
    # client_for opens the state folder's SQLite journal the first time: worker-thread work too.
    future = start_in_thread(lambda: client_for(region).generate(req, transport=transport, cancel=cancel,
                                                                 on_progress=status.update))
    estimate = _ESTIMATE_S.get(req.mode, 30.0)
    started = time.monotonic()
    shown = ""
    try:
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
                show(node_id, f"{req.model}: interrupted")
                import comfy.model_management

                raise comfy.model_management.InterruptProcessingException()
            with status.lock:
                p, text = status.progress, status.text
            line = _status_line(req, p, text)
            if line != shown:
                show(node_id, line)
                shown = line
            elapsed = time.monotonic() - started
            if p is not None and p.kind == "downloading" and p.images_total:
                await _bar(90 + 10 * p.images_done / p.images_total, 100)
            else:
                # An asymptotic bar: moves while waiting, never claims to be done before it is.
                await _bar(90 * (1 - 2 ** (-elapsed / estimate)), 100)
        result = future.result()
    finally:
        # However this coroutine ends (done, interrupted, cancelled by ComfyUI, failed), the worker must
        # not go on polling for up to 30 minutes holding a generation slot.
        cancel.set()
    await _bar(100, 100)
    return result
