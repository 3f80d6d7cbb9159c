"""Running Wan requests inside ComfyUI without blocking it, and without a thread per request.

Everything slow runs in worker threads (api.Workers: made when needed, reused, daemon threads so one still
waiting on the network never holds ComfyUI's exit): the blocking client (network waits of up to 30
minutes), input encoding (about a second for four 2048² pictures, much more for a `per_image` clip) and
turning results into tensors.

A node fed a list of 200 prompts (or a `per_image` clip of 200 frames) makes 200 requests. Only
WAN_MAX_CONCURRENT of them per account can be generating at once anyway, so only that many get a worker
thread; the others wait in a queue, costing no thread and no file (a worker opens SQLite connections and
lock files; a Mac allows a process 256 open files). Other work (encoding, tensors) shares a few threads.

Each node has one status line and one progress bar however many requests it makes, drawn at most
PROGRESS_S apart. Cancel reaches every request of the prompt the moment it is given: every Cancel path in
ComfyUI (the page's button, POST /interrupt, the job API) goes through
comfy.model_management.interrupt_current_processing(True), which is wrapped here to tell every Wan request in
flight. The global flag alone is not enough: a local node running beside (a sampler) clears it as soon as it
sees it, and while a local node runs, ComfyUI's event loop is busy and no Wan coroutine looks at anything. A
request told to stop cancels its task at the service while it is still queued there (nothing billed),
closes a stream, keeps an answer already paid for in the cache; one still waiting for a worker is dropped.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..api import (
    Progress, Store, WanClient, WanRequest, WanResult, Workers, errors, get_logger, max_concurrent,
    resolve_api_key, resolve_endpoint,
)
from ..api import state_dir as find_state_dir

log = get_logger("wan.nodes")
T = TypeVar("T")

# Rough service times, only to move the progress bar while the service gives no progress of its own.
_ESTIMATE_S = {"t2i": 30.0, "edit": 30.0, "sequential": 90.0, "interleave": 120.0}
INTERRUPT_GRACE_S = 1.0
TICK_S = 0.1          # how often a node in flight looks at ComfyUI's interrupt flag (cheap, one per node)
PROGRESS_S = 0.5      # the least time between two status lines (and two bar updates) of one node
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


# ---- Cancel ----------------------------------------------------------------------------------------------

_live: set["_Run"] = set()          # every request in flight in this process (the running prompt's)
_live_lock = threading.Lock()


def _stop_all() -> None:
    """The user pressed Cancel: tell every request in flight (from whatever thread ComfyUI called from)."""
    with _live_lock:
        runs = list(_live)
    for run in runs:
        run.stop()


def _hook_interrupts() -> None:
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
            _stop_all()

    interrupt_current_processing.wan_hooked = True            # type: ignore[attr-defined]
    interrupt_current_processing.__wrapped__ = current        # type: ignore[attr-defined]
    interrupt_current_processing.__doc__ = current.__doc__
    mm.interrupt_current_processing = interrupt_current_processing


def _interrupted() -> bool:
    import comfy.model_management

    return comfy.model_management.processing_interrupted()


def _interrupt_exception() -> BaseException:
    import comfy.model_management

    return comfy.model_management.InterruptProcessingException()


# ---- progress ------------------------------------------------------------------------------------------

def _send_text(node_id: str, text: str) -> None:
    try:
        from server import PromptServer

        PromptServer.instance.send_progress_text(text, node_id)
    except Exception:  # no server (node-level tests) or no client connected
        pass


def _bar(loop: asyncio.AbstractEventLoop, node_id: str, value: float, total: float) -> None:
    """The node's progress bar, through ComfyUI's V3 API (a coroutine), run on the ticker's own loop."""
    try:
        from comfy_api.latest import ComfyAPI

        # ComfyUI 0.3.75's ComfyAPI() lacks its `execution` attribute (later versions set it in __init__);
        # the class it would hold is the same singleton either way.
        execution = getattr(ComfyAPI(), "execution", None) or ComfyAPI.Execution()
        loop.run_until_complete(execution.set_progress(value, total, node_id=node_id))
    except Exception:  # outside ComfyUI (node-level tests without a server)
        pass


def show(node_id: str | None, text: str) -> None:
    """A status text on the node (ComfyUI's progress text). While the node has requests in flight the text
    goes out with the node's next status update (at most one per PROGRESS_S), else at once."""
    if node_id is None:
        return
    board = _board_of(node_id)
    if board is not None:
        board.post(text)
    else:
        _send_text(node_id, text)


@dataclass(eq=False)
class _Run:
    """One request on its way: its cancel event, what the client last reported, and how to wake its waiter."""

    title: str                 # what the node's line names: the model, or the node
    mode: str                  # for the bar's estimate of the service time
    loop: asyncio.AbstractEventLoop
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Progress | None = None
    text: str = ""
    started: bool = False      # a worker has taken it
    stopped: bool = False      # the user pressed Cancel
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: asyncio.Future | None = None

    def update(self, p: Progress) -> None:   # from the worker thread
        with self.lock:
            self.progress = p
            if p.kind == "text":
                self.text += p.text

    def stop(self) -> None:                   # from any thread
        self.stopped = True
        self.cancel.set()
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            pass   # its loop is gone: the cancel event is all that matters now

    def _wake(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)


_boards: dict[tuple[int, str], "_Board"] = {}   # (id of the prompt's event loop, node id) -> its board
_boards_lock = threading.Lock()
_ticker: threading.Thread | None = None


def _board_of(node_id: str) -> "_Board | None":
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    with _boards_lock:
        return _boards.get((id(loop), node_id))


class _Board:
    """Everything one node has in flight: one status line and one bar for all of its requests, at most one
    update every PROGRESS_S. Drawn by one thread for the whole process (_tick), not on the prompt's event
    loop: while a local node holds that loop (a sampler's step), the line still moves."""

    def __init__(self, key: tuple[int, str]) -> None:
        self.key = key
        self.node_id = key[1]
        self.lock = threading.Lock()
        self.runs: list[_Run] = []
        self.total = 0
        self.finished = 0
        self.started = time.monotonic()
        self.quiet_since = self.started
        self.last_update = 0.0
        self.posted: str | None = None     # a text to show with the next update (e.g. a request's summary)
        self.outcomes: dict[str, int] = {}
        self.model = ""
        self.shown = ""
        self.bar: tuple[float, float] | None = None

    def add(self, run: _Run) -> None:
        with self.lock:
            self.runs.append(run)
            self.total += 1
            self.model = run.title

    def remove(self, run: _Run, outcome: str) -> None:
        """`outcome`: done, stopped (Cancel) or failed."""
        with self.lock:
            self.runs.remove(run)
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            self.finished += 1
            self.quiet_since = time.monotonic()

    def post(self, text: str) -> None:
        with self.lock:
            self.posted = text

    def _line(self) -> str:
        if self.total == 1:
            if self.runs:
                run = self.runs[0]
                with run.lock:
                    return _status_line(run.title, run.progress, run.text, run.started)
            return self.posted or f"{self.model}: {next(iter(self.outcomes), 'done')}"
        running = sum(1 for r in self.runs if r.started)
        waiting = len(self.runs) - running
        line = f"{self.model}: {self.outcomes.get('done', 0)} of {self.total} done"
        if running:
            line += f", {running} on their way"
        if waiting:
            line += f", {waiting} waiting for a generation slot (WAN_MAX_CONCURRENT)"
        for outcome in ("stopped", "failed"):
            if self.outcomes.get(outcome):
                line += f", {self.outcomes[outcome]} {outcome}"
        if self.posted:
            line += "\n" + self.posted
        return line

    def _progress(self) -> tuple[float, float]:
        now = time.monotonic()
        parts = float(self.finished)
        for run in self.runs:
            p = run.progress
            if p is not None and p.kind == "downloading" and p.images_total:
                parts += 0.9 + 0.1 * p.images_done / p.images_total
            elif run.started:
                # An asymptotic bar: moves while waiting, never claims to be done before it is.
                estimate = _ESTIMATE_S.get(run.mode, 30.0)
                parts += 0.9 * (1 - 2 ** (-(now - self.started) / estimate))
        return round(100 * parts / max(1, self.total), 1), 100.0

    def update(self, loop: asyncio.AbstractEventLoop, now: float) -> bool:
        """Draw if due; False once the board has nothing more to say (its last word shown)."""
        if now - self.last_update < PROGRESS_S:
            return True
        self.last_update = now
        with self.lock:
            live = bool(self.runs)
            line = self._line()
            bar = self._progress() if live else None
            over = not live and now - self.quiet_since >= PROGRESS_S
        if line != self.shown:
            _send_text(self.node_id, line)
            self.shown = line
        if bar is not None and bar != self.bar:   # never after its runs: the bar may be the next prompt's
            self.bar = bar
            _bar(loop, self.node_id, *bar)
        return not over


def _tick() -> None:
    """The one drawing thread: every TICK_S, looks at ComfyUI's interrupt flag while anything is in flight
    (a second path besides the wrapped interrupt function) and draws the boards that are due."""
    loop = asyncio.new_event_loop()
    while True:
        time.sleep(TICK_S)
        with _boards_lock:
            boards = list(_boards.values())
        try:
            if any(b.runs for b in boards) and _interrupted():
                _stop_all()
        except Exception:  # not inside ComfyUI
            pass
        now = time.monotonic()
        for board in boards:
            try:
                going = board.update(loop, now)
            except Exception as exc:  # drawing must never stop the thread that watches for Cancel
                log.debug("progress update failed: %s", exc)
                going = True
            if not going:
                with _boards_lock:
                    if _boards.get(board.key) is board and not board.runs:
                        del _boards[board.key]


def _join_board(loop: asyncio.AbstractEventLoop, node_id: str | None, run: _Run) -> _Board | None:
    global _ticker
    if node_id is None:
        return None
    key = (id(loop), node_id)
    with _boards_lock:
        board = _boards.get(key)
        if board is None or not board.runs:   # (a board with nothing in flight only has its last word left)
            board = _boards[key] = _Board(key)
        board.add(run)
        if _ticker is None:
            _ticker = threading.Thread(target=_tick, daemon=True, name="wan-progress")
            _ticker.start()
    return board


def _status_line(title: str, p: Progress | None, text: str, started: bool = True) -> str:
    if not started:
        return f"{title}: waiting for a free generation slot (WAN_MAX_CONCURRENT); nothing was sent"
    if p is None:
        return f"{title}: sending…"
    t = f"{p.elapsed:.0f} s"
    if p.kind in ("sending",):
        return f"{title}: sending… {t}"
    if p.kind == "submitted" or (p.kind == "status" and p.status == "PENDING"):
        return f"{title}: queued at the service — {t}\ntask {p.task_id}"
    if p.kind == "status":
        state = "running" if p.status == "RUNNING" else f"status {p.status}"
        return f"{title}: {state} — {t}\ntask {p.task_id}"
    if p.kind in ("retry", "waiting"):
        return f"{title}: {p.message} — {t}"
    if p.kind in ("text", "image"):
        tail = text[-600:]
        return f"{title}: streaming — {t}\n{tail}"
    if p.kind == "downloading":
        return f"{title}: downloading {p.images_done}/{p.images_total} — {t}"
    return f"{title}: {p.kind} — {t}"


# ---- one run -------------------------------------------------------------------------------------------

async def run(node_id: str | None, req: WanRequest, *, region: str, transport: str) -> WanResult:
    """Send `req` and wait for it, keeping ComfyUI responsive and interruptible."""
    return await run_call(node_id, req.model, req.mode, region, lambda client, cancel, on_progress: client.generate(
        req, transport=transport, cancel=cancel, on_progress=on_progress))


async def run_call(node_id: str | None, title: str, mode: str, region: str,
                   call: Callable[[WanClient, threading.Event, Any], T]) -> T:
    """Run `call(client, cancel, on_progress)` on one of the account's generation workers, drawing its
    progress on the node and turning ComfyUI's Cancel into `cancel`."""
    _hook_interrupts()
    if _interrupted():   # Cancel pressed while the inputs were prepared: send nothing
        raise _interrupt_exception()
    # Which account's workers: the key and the endpoint only (cheap); the client, with its journal, is made
    # in the worker.
    endpoint = resolve_endpoint(None if region in ("", "default") else region)
    key = resolve_api_key(region=region, state_folder=state_dir())
    workers = generation_workers(endpoint.base_url, key.fingerprint)
    loop = asyncio.get_running_loop()
    r = _Run(title, mode, loop)
    r.wake = loop.create_future()

    def generate() -> T:
        if r.cancel.is_set():   # stopped while it waited for a worker: nothing was sent, nothing is
            raise errors.Interrupted("stopped by the user while waiting for a generation slot; nothing was sent")
        r.started = True
        return call(client_for(region), r.cancel, r.update)

    with _live_lock:
        _live.add(r)
    board = _join_board(loop, node_id, r)
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
            raise _interrupt_exception()
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
        with _live_lock:
            _live.discard(r)
        if board is not None:
            board.remove(r, "stopped" if r.stopped else outcome)
