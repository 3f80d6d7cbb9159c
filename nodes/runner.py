"""Running Wan requests inside ComfyUI without blocking it, and without a thread per request.

Everything slow runs in worker threads (api.Workers: made when needed, reused, daemon threads so one still
waiting on the network never holds ComfyUI's exit): the blocking client (network waits of up to 30
minutes), input encoding (about a second for four 2048² pictures, much more for a `per_image` clip) and
turning results into tensors.

A node fed a list of 200 prompts (or a `per_image` clip of 200 frames) makes 200 requests. Only
WAN_MAX_CONCURRENT of them per account can be generating at once anyway, so only that many get a worker
thread; the others wait in a queue, costing no thread and no file (a worker opens SQLite connections and
lock files; a Mac allows a process 256 open files). Other work (encoding, tensors) shares a few threads.

Each request draws on its node's one status line and bar (nodes/progress.py) and is told of Cancel
(nodes/cancel.py).
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..api import (
    ApiKey, Endpoint, Store, WanClient, WanRequest, WanResult, Workers, errors, get_logger, max_concurrent,
    resolve_api_key, resolve_endpoint,
)
from ..api import state_dir as find_state_dir
from .cancel import hook_interrupts, interrupt_exception, interrupted, track, untrack
from .progress import Run, join_board, show

log = get_logger("wan.nodes")
T = TypeVar("T")

INTERRUPT_GRACE_S = 1.0   # how long a stopped run waits for its client to cancel a PENDING task
# Encoding, tensors, merges: short work, a few threads for all nodes (a list's items take turns).
OTHER_THREADS = 4


# ---- worker threads ----------------------------------------------------------------------------------------

_other_workers = Workers(OTHER_THREADS, "wan-node")
_generation_workers: dict[tuple[str, str], Workers] = {}


def _settle(future: asyncio.Future, job: Future) -> None:
    if future.done():   # the awaiting coroutine was cancelled meanwhile
        return
    if job.cancelled():
        future.cancel()
        return
    exc = job.exception()
    future.set_exception(exc) if exc is not None else future.set_result(job.result())


def _retrieve(future: asyncio.Future) -> None:
    # A future abandoned after an interrupt may still fail later; retrieving its exception here keeps
    # asyncio from logging "Future exception was never retrieved" for a run the user already stopped.
    if not future.cancelled():
        future.exception()


def _awaitable(job: Future) -> asyncio.Future:
    """`job` (a worker's Future) as a future of the running loop. Cancelling it drops the job if no worker
    has taken it yet."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()
    future.add_done_callback(_retrieve)
    future.add_done_callback(lambda f: job.cancel() if f.cancelled() else None)

    def done(_: Future) -> None:
        try:
            loop.call_soon_threadsafe(_settle, future, job)
        except RuntimeError:
            pass   # the loop is gone (the prompt ended, or ComfyUI is exiting): nobody waits for this any more

    job.add_done_callback(done)
    return future


def start_in_thread(work: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
    """Run `work(*args)` on one of a few shared worker threads; the returned future resolves on the loop."""
    return _awaitable(_other_workers.submit(work, *args))


async def in_thread(work: Callable[..., T], *args: Any) -> T:
    """Await `work(*args)` run in a worker thread, so the event loop keeps drawing and noticing Cancel."""
    return await start_in_thread(work, *args)


def generation_workers(base_url: str, key_fingerprint: str) -> Workers:
    """The worker threads of one account at one endpoint: as many as its generation slots."""
    ident = (base_url, key_fingerprint)
    with _lock:
        workers = _generation_workers.get(ident)
        if workers is None:
            workers = _generation_workers[ident] = Workers(max_concurrent(), "wan-generation")
        return workers


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


def client_for(region: str, key: ApiKey | None = None, endpoint: Endpoint | None = None) -> WanClient:
    """The client of this (endpoint, account): made once, reused by every run (its connections stay open).
    `key` and `endpoint`, when the caller has resolved them already (a run picks its account's workers with
    them, and must then send with that same account, whatever was set meanwhile)."""
    key = key or resolve_api_key(region=region, state_folder=state_dir())  # api/config.py: the order of sources
    endpoint = endpoint or resolve_endpoint(None if region in ("", "default") else region)
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


# ---- one run -------------------------------------------------------------------------------------------

async def run(node_id: str | None, req: WanRequest, *, region: str, transport: str) -> WanResult:
    """Send `req` and wait for it, keeping ComfyUI responsive and interruptible."""
    return await run_call(node_id, req.model, req.mode, region, lambda client, cancel, on_progress: client.generate(
        req, transport=transport, cancel=cancel, on_progress=on_progress))


async def run_call(node_id: str | None, title: str, mode: str, region: str,
                   call: Callable[[WanClient, threading.Event, Any], T]) -> T:
    """Run `call(client, cancel, on_progress)` on one of the account's generation workers, drawing its
    progress on the node and turning ComfyUI's Cancel into `cancel`."""
    hook_interrupts()
    if interrupted():   # Cancel pressed while the inputs were prepared: send nothing
        raise interrupt_exception()
    # Which account's workers: the key and the endpoint only (cheap); the client, with its journal, is made
    # in the worker.
    endpoint = resolve_endpoint(None if region in ("", "default") else region)
    key = resolve_api_key(region=region, state_folder=state_dir())
    workers = generation_workers(endpoint.base_url, key.fingerprint)
    loop = asyncio.get_running_loop()
    r = Run(title, mode, loop)
    r.wake = loop.create_future()

    def generate() -> T:
        if r.cancel.is_set():   # stopped while it waited for a worker: nothing was sent, nothing is
            raise errors.Interrupted("stopped by the user while waiting for a generation slot; nothing was sent")
        r.started = True
        return call(client_for(region, key, endpoint), r.cancel, r.update)

    track(r)
    board = join_board(loop, node_id, r)
    job = workers.submit(generate)
    future = _awaitable(job)
    outcome = "failed"
    try:
        await asyncio.wait({future, r.wake}, return_when=asyncio.FIRST_COMPLETED)
        if r.stopped:
            job.cancel()   # still waiting for a worker: dropped, never sent
            said = ""
            try:
                # Give the client a moment to cancel a PENDING task at the service; never wait long.
                await asyncio.wait_for(asyncio.shield(future), INTERRUPT_GRACE_S)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
            except Exception as exc:   # what the client says became of the request (canceled, runs on...)
                said = str(exc)
            show(node_id, f"{title}: interrupted" + (f"\n{said}" if said else ""))
            if said:
                log.warning("%s (node %s): %s", title, node_id, said)
            raise interrupt_exception()
        result = future.result()
        outcome = "done"
        return result
    except asyncio.CancelledError:   # the prompt ended (Cancel, or another node failed)
        outcome = "stopped"
        raise
    finally:
        # However this coroutine ends (done, interrupted, cancelled with the prompt, failed), the worker
        # must not go on polling for up to 30 minutes holding a generation slot, and a request still
        # waiting for a worker is dropped.
        r.cancel.set()
        job.cancel()
        untrack(r)
        if board is not None:
            board.remove(r, "stopped" if r.stopped else outcome)
