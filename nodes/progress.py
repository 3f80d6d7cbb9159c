"""Each Wan node's one status line and one progress bar, however many requests it makes, drawn at most
PROGRESS_S apart by one thread for the whole process (not on the prompt's event loop: while a local node
holds that loop, the line still moves). That thread also looks at ComfyUI's interrupt flag while anything is
in flight, a second path for Cancel besides the wrapped interrupt function (nodes/cancel.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from ..api import Progress, get_logger
from .cancel import interrupted, stop_all

log = get_logger("wan.nodes")

# Rough service times, only to move the progress bar while the service gives no progress of its own.
_ESTIMATE_S = {"t2i": 30.0, "edit": 30.0, "sequential": 90.0, "interleave": 120.0}
TICK_S = 0.1          # how often a node in flight looks at ComfyUI's interrupt flag (cheap, one per node)
PROGRESS_S = 0.5      # the least time between two status lines (and two bar updates) of one node


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
class Run:
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


_boards: dict[tuple[int, str], "Board"] = {}   # (id of the prompt's event loop, node id) -> its board
_boards_lock = threading.Lock()
_ticker: threading.Thread | None = None


def _board_of(node_id: str) -> "Board | None":
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    with _boards_lock:
        return _boards.get((id(loop), node_id))


class Board:
    """Everything one node has in flight: one status line and one bar for all of its requests, at most one
    update every PROGRESS_S. Drawn by one thread for the whole process (tick), not on the prompt's event
    loop: while a local node holds that loop (a sampler's step), the line still moves."""

    def __init__(self, key: tuple[int, str]) -> None:
        self.key = key
        self.node_id = key[1]
        self.lock = threading.Lock()
        self.runs: list[Run] = []
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

    def add(self, run: Run) -> None:
        with self.lock:
            self.runs.append(run)
            self.total += 1
            self.model = run.title

    def remove(self, run: Run, outcome: str) -> None:
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
                    return status_line(run.title, run.progress, run.text, run.started)
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


def tick() -> None:
    """The one drawing thread: every TICK_S, looks at ComfyUI's interrupt flag while anything is in flight
    (a second path besides the wrapped interrupt function) and draws the boards that are due."""
    loop = asyncio.new_event_loop()
    while True:
        time.sleep(TICK_S)
        with _boards_lock:
            boards = list(_boards.values())
        try:
            if any(b.runs for b in boards) and interrupted():
                stop_all()
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


def join_board(loop: asyncio.AbstractEventLoop, node_id: str | None, run: Run) -> Board | None:
    global _ticker
    if node_id is None:
        return None
    key = (id(loop), node_id)
    with _boards_lock:
        board = _boards.get(key)
        if board is None or not board.runs:   # (a board with nothing in flight only has its last word left)
            board = _boards[key] = Board(key)
        board.add(run)
        if _ticker is None:
            _ticker = threading.Thread(target=tick, daemon=True, name="wan-progress")
            _ticker.start()
    return board


def status_line(title: str, p: Progress | None, text: str, started: bool = True) -> str:
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
