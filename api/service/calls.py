"""The service's calls, one method each: sync generation, a stream, and a task's create / query / cancel /
wait. No cache and no journal here (that is `resumable.py`); every HTTP detail (retries, THE RULE of never
paying twice) is `transport.py`'s.

Blocking by design (requests): ComfyUI nodes run these in a worker thread and pass a `threading.Event` as
`cancel`. Every wait watches it; a stream being read is closed from a watcher thread when it is set. A sync
call cannot be interrupted mid-request (the service answers only at the end); its paid answer is still
kept when it arrives (see resumable.py).
"""

from __future__ import annotations

import copy
import http.client
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence

import requests
import urllib3

from . import answers
from ..errors import (
    Interrupted, RateLimitError, ServerError, TaskCanceledError, TaskExpiredError, WanConnectionError, WanError,
    WanTimeoutError, api_error,
)
from ..money.billing import NOT_BILLED, Billing, Sent, billing_of, maybe, tag
from ..request.build import WanRequest, json_bytes
from ..request.models import IMAGE_SYNTHESIS, SYNC
from ..result import Emitter, WanResult
from ..secrets import get_logger
from .answers import CANCELED, FAILED, KNOWN_STATES, PENDING, SUCCEEDED, TASK_LIFETIME_S, UNKNOWN, StreamAssembler
from .ratelimit import TokenBucket
from .sse import events
from .transport import Transport
from .waiting import pause

log = get_logger("wan.client")

SYNC_PATH = "services/aigc/multimodal-generation/generation"
ASYNC_PATH = "services/aigc/image-generation/generation"
IMAGE_SYNTHESIS_PATH = "services/aigc/image2image/image-synthesis"
STREAM_HEADERS = {"X-DashScope-Sse": "enable", "Accept": "text/event-stream", "Accept-Encoding": "identity"}

# What a broken connection looks like while a stream is read, across requests, urllib3 1.26-2.x and
# http.client. Anything else (AttributeError, TypeError, ...) is a bug and surfaces as one, never as a
# "maybe billed" cut.
NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


@dataclass(frozen=True)
class PollSchedule:
    """How often a task is queried: notice a finished task within ~0.5 s early on, then back off; and
    densely (every `dense` s) around the time the model's tasks usually take, where it most likely ends.

    What "usually" means comes from the service itself: each finished task's answer says when it was
    submitted and when it ended (`submit_time`, `end_time`, seed 001 "查询任务结果"); the last few of each
    model are kept (TaskDurations). The per-account limiter (ratelimit.py) caps the total across all nodes
    ("Task queries are limited to about 20 per second per account", wan-api-reference.md); this is per task.
    """

    fast: float = 0.5
    fast_until: float = 10.0
    medium: float = 1.0
    medium_until: float = 120.0
    slow: float = 2.0
    dense: float = 0.25
    dense_before: float = 0.1     # the dense window: from this share of a usual duration before it (at least 1 s)
    dense_after: float = 0.2      # to this share after it (at least 2 s)
    # In the window, queries fall on a grid `dense` apart with one this long after the usual end itself (the
    # creation's own trip and the two clocks are within it): a task that takes its usual time is seen at
    # once. Anchored to the task's age, the grid does not drift by each query's own time.
    just_after: float = 0.05

    def base(self, elapsed: float) -> float:
        if elapsed < self.fast_until:
            return self.fast
        if elapsed < self.medium_until:
            return self.medium
        return self.slow

    def window(self, usual: float) -> tuple[float, float]:
        return usual - max(1.0, self.dense_before * usual), usual + max(2.0, self.dense_after * usual)

    def interval(self, elapsed: float, age: float | None = None, usual: Sequence[float] = ()) -> float:
        """The pause before the next query. `elapsed`: since the run started; `age`: since the task was
        created; `usual`: what the model's recent tasks took (seconds from submission to end)."""
        pause = self.base(elapsed)
        if age is None:
            return pause
        grid = [(duration + self.just_after - age) % self.dense for duration in self._holding(age, usual)]
        if grid:   # the nearest grid point of any window the age is in (0: on one now, so the next)
            return min(pause, min(to_next or self.dense for to_next in grid))
        for duration in usual:
            start, _ = self.window(duration)
            if age < start:   # never sleep past the start of a window
                pause = min(pause, max(self.dense, start - age))
        return pause

    def spacing(self, elapsed: float, age: float, usual: Sequence[float] = ()) -> float:
        """The time between two queries around `age`: `dense` in a usual duration's window, else the ordinary
        schedule's (a task's end is noticed within this of it)."""
        if self._holding(age, usual):
            return min(self.base(elapsed), self.dense)
        return self.base(elapsed)

    def _holding(self, age: float, usual: Sequence[float]) -> list[float]:
        """The usual durations whose dense window `age` is in."""
        return [duration for duration in usual if self.window(duration)[0] <= age <= self.window(duration)[1]]


class TaskDurations:
    """The last few durations (submission to end, as the service reports them) of each model's tasks."""

    KEEP = 4

    def __init__(self) -> None:
        self._seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def record(self, model: str | None, answer: dict[str, Any]) -> None:
        output = answer.get("output") or {}
        try:
            took = (_service_time(output["end_time"]) - _service_time(output["submit_time"])).total_seconds()
        except (KeyError, TypeError, ValueError):
            return   # the answer does not say: nothing learned
        if not model or not 0 < took < TASK_LIFETIME_S:
            return
        with self._lock:
            seen = self._seen.setdefault(model, [])
            seen.append(took)
            del seen[:-self.KEEP]

    def usual(self, model: str | None) -> tuple[float, ...]:
        with self._lock:
            return tuple(self._seen.get(model or "", ()))


def _service_time(stamp: str) -> datetime:
    # "2026-03-26 17:16:22.961": the format of the task answers' times (seed 001).
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")


# Every client of this process learns from every task (a model takes as long whoever asked).
TASK_DURATIONS = TaskDurations()


@dataclass(frozen=True)
class Call:
    """One of the service's calls as it goes on the wire. ServiceCalls sends it under THE RULE and reads the
    answer; the probe (api/probe/) sends the same call once and compares the answers as they came."""

    method: str
    path: str
    read_timeout: str                      # the name of its read timeout in Timeouts
    body: Any = None
    headers: dict[str, str] | None = None
    billable: bool = False
    stream: bool = False


def sync_call(req: WanRequest) -> Call:
    return Call("POST", SYNC_PATH, "sync_read", req.body, billable=True)


def stream_call(req: WanRequest) -> Call:
    body = copy.deepcopy(req.body)
    # The SDK sends only the header; the newest reference also shows parameters.stream. Send both.
    body.setdefault("parameters", {})["stream"] = True
    return Call("POST", SYNC_PATH, "stream_idle", body, STREAM_HEADERS, billable=True, stream=True)


def create_call(req: WanRequest) -> Call:
    path = IMAGE_SYNTHESIS_PATH if req.protocol == IMAGE_SYNTHESIS else ASYNC_PATH
    return Call("POST", path, "create_read", req.body, {"X-DashScope-Async": "enable"}, billable=True)


def query_call(task_id: str) -> Call:
    return Call("GET", f"tasks/{task_id}", "query_read")


def cancel_call(task_id: str) -> Call:
    return Call("POST", f"tasks/{task_id}/cancel", "query_read")


def send_once(transport: Transport, call: Call, headers: dict[str, str | None] | None = None) -> requests.Response:
    """`call` sent once through the transport's session, with its headers (the key's among them) and
    timeouts, and its answer returned as it came, any status, unread: for the probe, which compares answers
    and must see the service's refusals as they are. Never for paid work: no retry, and no billing is
    decided. `headers` go over the call's; a None value drops one (requests leaves out a header set to
    None), as the probe's "no key" does with Authorization."""
    timeouts = transport.timeouts
    return transport.session.request(
        call.method, transport.endpoint.url(call.path), data=None if call.body is None else json_bytes(call.body),
        headers=transport.headers({**(call.headers or {}), **(headers or {})}), stream=call.stream,
        timeout=(timeouts.connect, getattr(timeouts, call.read_timeout)), allow_redirects=False)


def media_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower()


def reader(response: requests.Response) -> Callable[[int], bytes]:
    """`read(n)` returning what has arrived (up to n bytes) without waiting for all n: a stream's frames
    must reach the user as they come. urllib3 has `read1` only from 2.2; before it, the http.client response
    underneath has had it all along (streams are requested with Accept-Encoding: identity, so there is no
    content decoding for urllib3 to do)."""
    raw = response.raw
    if hasattr(raw, "read1"):
        return raw.read1
    return raw._fp.read1


class ServiceCalls:
    def __init__(self, transport: Transport, *, poll: PollSchedule, task_limiter: TokenBucket,
                 max_wait: float, query_failure_budget: float) -> None:
        self.transport = transport
        self.endpoint = transport.endpoint.label
        self.poll = poll
        self.task_limiter = task_limiter
        self.max_wait = max_wait
        self.query_failure_budget = query_failure_budget

    def _send(self, call: Call, cancel: threading.Event | None = None, emit: Emitter | None = None,
              sent: Sent | None = None) -> requests.Response:
        return self.transport.request(
            call.method, call.path, json_body=call.body, headers=call.headers, billable=call.billable,
            stream=call.stream, read_timeout=getattr(self.transport.timeouts, call.read_timeout), cancel=cancel,
            on_retry=emit.retry if emit is not None else None, sent=sent)

    # ---- sync and streaming ----------------------------------------------------------------------------

    def sync(self, req: WanRequest, cancel: threading.Event | None, emit: Emitter) -> WanResult:
        sent = Sent()
        try:
            emit("sending")
            response = self._send(sync_call(req), cancel, emit, sent)
            return answers.sync_result(req, answers.json_object(response, self.endpoint), SYNC, self.endpoint,
                                       response.status_code)
        except BaseException as exc:
            raise tag(exc, billing_of(exc, sent))

    def stream(self, req: WanRequest, cancel: threading.Event | None, emit: Emitter,
               on_picture: Callable[[WanResult], None] | None = None) -> WanResult:
        """Read a stream to its end. `on_picture(result so far)` is called as each picture's frame arrives
        (the caller writes the paid answer down then, not when the stream ends)."""
        sent = Sent()
        try:
            return self._stream(req, cancel, emit, on_picture, sent)
        except BaseException as exc:
            raise tag(exc, billing_of(exc, sent))

    def _stream(self, req: WanRequest, cancel: threading.Event | None, emit: Emitter,
                on_picture: Callable[[WanResult], None] | None, sent: Sent) -> WanResult:
        emit("sending")
        response = self._send(stream_call(req), cancel, emit, sent)
        if media_type(response) == "application/json":
            # The service may answer a stream request with one JSON body: that is a sync answer, and its
            # pictures are paid for.
            with response:
                return answers.sync_result(req, answers.json_object(response, self.endpoint), SYNC, self.endpoint,
                                           response.status_code)
        assembler = StreamAssembler(req, self.endpoint, emit, on_picture)
        with _CloseOnCancel(response, cancel) as watch:
            try:
                for event in events(reader(response)):
                    assembler.take(event)
                    if assembler.finished:
                        break
            except WanError:
                raise
            except Exception as exc:
                if watch.fired:  # the watcher closed the response under the reader: whatever it raised
                    raise self._stopped(assembler) from None
                if not isinstance(exc, NETWORK_ERRORS):
                    raise
                if _is_timeout(exc):
                    raise assembler.cut(f"no data for {self.transport.timeouts.stream_idle:.0f} s "
                                        "(idle-read timeout)") from None
                raise assembler.cut(f"the stream broke ({type(exc).__name__})") from None
        if watch.fired and not assembler.finished:
            raise self._stopped(assembler)
        if not assembler.finished:
            raise assembler.cut("the stream ended before its final frame")
        return assembler.result

    @staticmethod
    def _stopped(assembler: StreamAssembler) -> Interrupted:
        result = assembler.result
        exc = Interrupted(f"stopped by the user while the stream was running; {len(result.urls)} picture(s) had "
                          "arrived (billed)", request_id=result.request_id)
        exc.partial = result
        # The service does not know we stopped reading: it may go on making (and billing) the rest.
        exc.billing = maybe("stopped by the user mid-stream", pictures=result.images_billed)
        return exc

    # ---- async tasks -----------------------------------------------------------------------------------

    def create_task(self, req: WanRequest, cancel: threading.Event | None, emit: Emitter) -> tuple[str, str | None]:
        """Create the task (billable). Returns (task_id, request_id)."""
        sent = Sent()
        try:
            emit("sending")
            response = self._send(create_call(req), cancel, emit, sent)
            data = answers.json_object(response, self.endpoint)
            task_id = (data.get("output") or {}).get("task_id")
            if not task_id:
                error = api_error(data.get("code"), data.get("message") or "the service created no task",
                                  status=response.status_code, request_id=answers.request_id_of(data),
                                  endpoint=self.endpoint)
                # An error answer is the service's "no"; a success answer without a task id may hide one.
                error.billing = NOT_BILLED if data.get("code") else maybe("created, but no task id came back")
                raise error
        except BaseException as exc:
            raise tag(exc, billing_of(exc, sent))
        log.info("created task %s for %s (%s)", task_id, req.model, req.mode)
        return task_id, answers.request_id_of(data)

    def get_task(self, task_id: str, cancel: threading.Event | None = None) -> dict[str, Any]:
        """One task query (rate-limited per account, retried as idempotent)."""
        self.task_limiter.acquire(cancel)
        response = self._send(query_call(task_id), cancel)
        return answers.json_object(response, self.endpoint)

    def cancel_task(self, task_id: str) -> bool:
        """Cancel a PENDING task. True if the service canceled it; False if it was too late."""
        try:
            self._send(cancel_call(task_id))
            return True
        except WanError as exc:
            log.info("cancel of task %s refused: %s", task_id, exc)
            return False

    def wait_task(self, task_id: str, cancel: threading.Event | None, emit: Emitter,
                  cancel_pending_on_interrupt: bool = True, created_at: float | None = None,
                  model: str | None = None) -> dict[str, Any]:
        """Poll until the task ends. SUCCEEDED -> the task's JSON; otherwise a WanError carrying its billing.

        Interrupted while PENDING: the task is canceled at the service (nothing is billed). Interrupted
        while RUNNING: the task is left to finish; `Interrupted.task_id` says which, so it can be fetched.

        UNKNOWN ("the task does not exist or its status is unknown", seed 001 line 936) is not "gone": the
        task is given up only when it is older than the 24 hours a task id lives (`created_at`, wall clock),
        or when the service has answered UNKNOWN without a break for `query_failure_budget` seconds, the
        same patience as for failing queries: either way the service could not tell us about the task for
        that long. Until then it is polled on, and what it may bill stays counted as unsure.

        `model`: the task's model, whose usual duration tightens the poll schedule (PollSchedule).
        """
        waited_from = time.monotonic()
        usual = TASK_DURATIONS.usual(model)
        status = PENDING
        failing_since: float | None = None
        unknown_since: float | None = None
        warned: set[str] = set()
        while True:
            try:
                try:
                    data = self.get_task(task_id, cancel)
                except (WanConnectionError, ServerError, RateLimitError) as exc:
                    # The task lives on at the service whatever our network does: a paid result is worth
                    # waiting for. Keep polling through transient faults for a while before giving up.
                    now = time.monotonic()
                    failing_since = failing_since or now
                    if now - failing_since > self.query_failure_budget:
                        exc.task_id = exc.task_id or task_id
                        exc.billing = maybe(f"its queries failed for {self.query_failure_budget:.0f} s",
                                            final=False)
                        raise
                    emit("retry", task_id=task_id, status=status, message=f"task query failed ({exc.code or exc})")
                    pause(self.poll.medium, cancel)
                    continue
                failing_since = None
                seen = answers.task_status(data)
                if seen == SUCCEEDED:
                    TASK_DURATIONS.record(model, data)
                    return data
                if seen == FAILED:
                    raise answers.task_failure(data, task_id, self.endpoint)
                if seen == CANCELED:
                    error = TaskCanceledError("the task was canceled", task_id=task_id, endpoint=self.endpoint)
                    error.billing = NOT_BILLED
                    raise error
                if seen == UNKNOWN:
                    self._unknown(task_id, created_at, unknown_since)
                    unknown_since = unknown_since or time.monotonic()
                    emit("status", task_id=task_id, status=status,
                         message="the service does not know the task's status yet; asking again")
                else:
                    unknown_since = None
                    if seen is None or seen not in KNOWN_STATES:
                        # Not a state the reference names (or no state at all): say so, and keep the task
                        # alive; it may still finish, and it is paid for if it does.
                        shown = seen or "(no task_status in the answer)"
                        if shown not in warned:
                            warned.add(shown)
                            log.warning("task %s: the service reports status %s, which this pack does not know; "
                                        "waiting on", task_id, shown)
                        emit("status", task_id=task_id, status=shown, message=f"unknown task status {shown}")
                    else:
                        status = seen
                        emit("status", task_id=task_id, status=status)
                if time.monotonic() - waited_from > self.max_wait:
                    error = WanTimeoutError(f"task still {seen or status} after {self.max_wait:.0f} s; it may still "
                                            "finish and be billed", task_id=task_id, endpoint=self.endpoint)
                    error.billing = maybe(f"still {seen or status} after {self.max_wait:.0f} s", final=False)
                    raise error
                age = time.time() - created_at if created_at is not None else time.monotonic() - waited_from
                pause(self.poll.interval(time.monotonic() - emit.started, age, usual), cancel)
            except Interrupted:
                raise self._interrupt(task_id, status, cancel_pending_on_interrupt) from None

    def _unknown(self, task_id: str, created_at: float | None, unknown_since: float | None) -> None:
        """Raise TaskExpiredError when an UNKNOWN answer means the task is gone (see wait_task)."""
        why = None
        if created_at is not None and time.time() - created_at > TASK_LIFETIME_S:
            why = "the task was created more than 24 hours ago (task ids and result URLs live 24 hours)"
        elif unknown_since is not None and time.monotonic() - unknown_since > self.query_failure_budget:
            why = f"the service has answered UNKNOWN for {self.query_failure_budget:.0f} s"
        if why is None:
            return
        error = TaskExpiredError(f"the service does not know this task: {why}", task_id=task_id,
                                 endpoint=self.endpoint)
        # Whether it ran (and billed) before it was lost, nobody can say.
        error.billing = maybe("the service stopped knowing the task")
        raise error

    def _interrupt(self, task_id: str, status: str, cancel_pending: bool) -> Interrupted:
        if status == PENDING and cancel_pending:
            if self.cancel_task(task_id):
                exc = Interrupted("stopped by the user; the task was still queued and has been canceled at the "
                                  "service, so nothing is billed", task_id=task_id)
                exc.task_canceled = True
                exc.billing = NOT_BILLED
                return exc
            status = "RUNNING"   # the service refused the cancel: it had started meanwhile
        how = "will finish at the service (and be billed)" if cancel_pending or status != PENDING else \
            "was left at the service (another run may be waiting for it; it is billed if it runs)"
        exc = Interrupted(f"stopped by the user; the task was {status} and {how}; its pictures are fetched into "
                          "the result cache when it ends: add a \"Wan Recent Results\" node (pick 1) to get them",
                          task_id=task_id)
        exc.billing = maybe(f"interrupted while {status}", final=False)
        return exc


def _is_timeout(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TimeoutError) or "timed out" in str(exc).lower() or "Timeout" in type(exc).__name__:
            return True
        exc = exc.__context__ or exc.__cause__  # type: ignore[assignment]
    return False


class _CloseOnCancel:
    """Closes a streaming response when `cancel` is set, so a blocked read returns at once."""

    def __init__(self, response: requests.Response, cancel: threading.Event | None) -> None:
        self.response = response
        self.cancel = cancel
        self.fired = False
        self._done = threading.Event()

    def __enter__(self) -> "_CloseOnCancel":
        if self.cancel is not None:
            threading.Thread(target=self._watch, daemon=True, name="wan-stream-cancel").start()
        return self

    def _watch(self) -> None:
        while not self._done.is_set():
            if self.cancel.wait(0.1):  # type: ignore[union-attr]
                if not self._done.is_set():
                    self.fired = True
                    _shut_down(self.response)
                    self.response.close()
                return

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self.response.close()


def _shut_down(response: requests.Response) -> None:
    """Unblock a read waiting for the next frame: close() alone waits for that read (the service meanwhile
    goes on generating, and billing, pictures). Shutting the socket down ends the read at once."""
    raw = response.raw
    shutdown = getattr(raw, "shutdown", None)   # urllib3 >= 2.3
    try:
        if shutdown is not None:
            shutdown()
            return
        sock = getattr(getattr(raw, "_connection", None), "sock", None) or \
            getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
        sock = getattr(sock, "_sock", sock)
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass   # already closed
