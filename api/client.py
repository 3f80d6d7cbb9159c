"""WanClient: send a built `WanRequest` by sync, streaming or async task, and bring back pictures and text.

Blocking by design (requests): ComfyUI nodes run it in a worker thread and pass a `threading.Event` as
`cancel`, which every wait here watches, so an interrupt is noticed within one poll slice. A stream being
read is closed from a watcher thread when `cancel` is set. A sync call cannot be interrupted mid-request
(the service answers only at the end); that is one reason async is the default transport.
"""

from __future__ import annotations

import copy
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import requests

from .config import Endpoint, resolve_api_key, resolve_endpoint
from .download import DownloadedImage, Downloader, url_expiry
from .errors import (
    Interrupted, RateLimitError, WanAPIError, ServerError, StreamCutError, TaskCanceledError, TaskExpiredError, WanConnectionError, WanError,
    WanInputError, WanTimeoutError, api_error,
)
from .models import ASYNC, IMAGE_SYNTHESIS, STREAM, SYNC
from .pricing import estimate
from .ratelimit import TokenBucket, acquire_slot, generation_slots, task_query_limiter
from .request import WanRequest
from .secrets import ApiKey, get_logger
from .sse import SSEParser
from .store import Store
from .transport import RetryPolicy, Timeouts, Transport

log = get_logger("wan.client")

SYNC_PATH = "services/aigc/multimodal-generation/generation"
ASYNC_PATH = "services/aigc/image-generation/generation"
IMAGE_SYNTHESIS_PATH = "services/aigc/image2image/image-synthesis"
TRANSPORTS = ("auto", SYNC, STREAM, ASYNC)


@dataclass(frozen=True)
class PollSchedule:
    """How often a task is queried: notice a finished task within ~0.5 s early on, then back off.

    The per-account limiter (ratelimit.py) caps the total across all nodes; this is per task.
    """

    fast: float = 0.5
    fast_until: float = 10.0
    medium: float = 1.0
    medium_until: float = 120.0
    slow: float = 2.0

    def interval(self, elapsed: float) -> float:
        if elapsed < self.fast_until:
            return self.fast
        if elapsed < self.medium_until:
            return self.medium
        return self.slow


@dataclass
class Progress:
    """What the client is doing, for a status line and a progress bar."""

    kind: str                 # sending | submitted | status | text | image | downloading | retry | done
    elapsed: float
    task_id: str | None = None
    status: str | None = None
    text: str = ""            # the new text (kind == "text")
    images_done: int = 0
    images_total: int = 0
    message: str = ""


OnProgress = Callable[[Progress], None]


@dataclass
class WanResult:
    model: str
    mode: str
    transport: str
    images: list[DownloadedImage]
    # Everything the service returned, in order: {"type": "text", "text": ...} / {"type": "image", "url": ...}
    content: list[dict[str, Any]]
    request_id: str | None = None
    task_id: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)   # wan2.5 partial failures
    actual_prompts: list[str] = field(default_factory=list)         # wan2.5 prompt rewriting
    endpoint: str = ""
    elapsed: float = 0.0
    timings: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False
    region: str | None = None     # None when DASHSCOPE_HTTP_BASE_URL overrides the region

    @property
    def text(self) -> str:
        """The generated text (interleave), or the rewritten prompt(s) where the service rewrote it."""
        texts = [item["text"] for item in self.content if item.get("type") == "text"]
        if texts:
            return "".join(texts) if self.mode != "interleave" else "\n\n".join(t.strip() for t in texts)
        return "\n".join(self.actual_prompts)

    @property
    def urls(self) -> list[str]:
        return [item["url"] for item in self.content if item.get("type") == "image"]

    def info(self) -> dict[str, Any]:
        images = []
        for url, img in zip(self.urls, self.images + [None] * len(self.urls)):
            expires = url_expiry(url)
            images.append({
                "url": url,
                "expires_at": (datetime.fromtimestamp(expires, timezone.utc).isoformat() if expires else None),
                "width": img.width if img else None,
                "height": img.height if img else None,
            })
        return {
            "model": self.model,
            "mode": self.mode,
            "transport": self.transport,
            "request_id": self.request_id,
            "task_id": self.task_id,
            "usage": self.usage,
            "images_billed": self.usage.get("image_count", len(self.images)),
            # A cached answer cost nothing this time; the service billed it once, when it was made.
            "images_billed_this_run": 0 if self.from_cache else self.usage.get("image_count", len(self.images)),
            "cached": self.from_cache,
            "results": images,
            "failures": self.failures,
            "cost_estimate": estimate(self.model, self.region, 0 if self.from_cache else
                                      int(self.usage.get("image_count", len(self.images)) or 0)),
            "endpoint": self.endpoint,
            "elapsed_s": round(self.elapsed, 3),
        }


class WanClient:
    def __init__(self, api_key: ApiKey | str | None = None, region: str | None = None, *,
                 endpoint: Endpoint | None = None, retry: RetryPolicy | None = None,
                 timeouts: Timeouts | None = None, poll: PollSchedule | None = None,
                 downloader: Downloader | None = None, task_limiter: TokenBucket | None = None,
                 max_wait: float = 30 * 60.0, query_failure_budget: float = 120.0,
                 store: "Store | None" = None) -> None:
        key = api_key if isinstance(api_key, ApiKey) else ApiKey(api_key) if api_key else resolve_api_key()
        self.endpoint = endpoint or resolve_endpoint(region)
        self.transport = Transport(self.endpoint, key, retry or RetryPolicy(), timeouts or Timeouts())
        self.poll = poll or PollSchedule()
        self.downloader = downloader or Downloader()
        self.max_wait = max_wait
        self.query_failure_budget = query_failure_budget
        self.store = store
        # Tasks belong to an account at one endpoint: the journal keys them by this (never by the key).
        self.account = f"{key.fingerprint}@{self.endpoint.base_url}"
        # Slots, query bucket and daily limit are shared through the store's folder by every process on it.
        shared = store.folder if store is not None else None
        self.slots = generation_slots(self.endpoint.base_url, key.fingerprint, shared)
        self.task_limiter = task_limiter or task_query_limiter(self.endpoint.base_url, key.fingerprint, shared)
        from .ledger import open_ledger  # here, so that `python -m api.ledger` finds it not yet imported

        self.ledger = open_ledger(shared) if shared is not None else None

    def __repr__(self) -> str:
        return f"WanClient({self.endpoint.label}, key={self.transport.api_key.masked})"

    # ---- the whole round trip ----------------------------------------------------------------------

    def generate(self, req: WanRequest, *, transport: str = "auto", cancel: threading.Event | None = None,
                 on_progress: OnProgress | None = None, download: bool = True, use_cache: bool = True) -> WanResult:
        """The whole round trip. With a `store`: an identical request already fetched is answered from the
        result cache (no request at all), and an identical async task created earlier and not yet fetched
        is resumed instead of created again."""
        chosen = self.choose_transport(req, transport)
        started = time.monotonic()
        emit = _Emitter(on_progress, started)
        fingerprint = req.fingerprint()
        if self.store is not None and use_cache and download:
            cached = self.cached(req, fingerprint)
            if cached is not None:
                cached.elapsed = time.monotonic() - started
                emit("done", images_done=len(cached.images), images_total=len(cached.images), message="cached")
                return cached
        # The daily limit (api/ledger.py): reserve what this request may bill before anything is sent
        # (refused here past the limit); settle to what was billed, release if nothing was.
        spend = None
        if self.ledger is not None:
            resumed = chosen == ASYNC and self.store.journal.resumable(fingerprint, self.account) is not None
            spend = self.ledger.reserve(self.transport.api_key.fingerprint, self.endpoint.label, req.model,
                                        req.max_billable_images, region=self.endpoint.region,
                                        fingerprint=fingerprint, resumed=resumed)
        try:
            if not self.slots.acquire(blocking=False):
                emit("waiting", message="waiting for a free generation slot (WAN_MAX_CONCURRENT)")
                acquire_slot(self.slots, cancel)
            try:
                if chosen == ASYNC:
                    result = self._async(req, fingerprint, cancel, on_progress, emit, started)
                elif chosen == STREAM:
                    result = self._stream(req, cancel, emit)
                else:
                    result = self._sync(req, cancel, emit)
            finally:
                self.slots.release()
        except BaseException as exc:
            if spend is not None:
                self.ledger.settle_error(spend, exc)
            raise
        if spend is not None:
            self.ledger.settle_result(spend, result)
        result.transport = chosen
        result.endpoint = self.endpoint.label
        result.region = self.endpoint.region
        if download:
            self.download_all(result, cancel=cancel, emit=emit)
            self._keep(req, fingerprint, result)
        result.elapsed = time.monotonic() - started
        emit("done", images_done=len(result.images), images_total=len(result.urls))
        return result

    def _async(self, req: WanRequest, fingerprint: str, cancel: threading.Event | None,
               on_progress: OnProgress | None, emit: "_Emitter", started: float) -> WanResult:
        journal = self.store.journal if self.store is not None else None
        entry = journal.resumable(fingerprint, self.account) if journal is not None else None
        data = None
        if entry is not None:
            task_id = entry.task_id
            log.info("resuming task %s (created %.0f s ago) instead of creating a new one", task_id,
                     time.time() - entry.created)
            emit("submitted", task_id=task_id, status="PENDING", message="resumed")
            try:
                data = self._wait_journaled(task_id, cancel, on_progress, started)
            except (TaskExpiredError, TaskCanceledError):
                data = None  # gone at the service: a new task is the only way to the picture
        if data is None:
            task_id, request_id = self.submit(req, cancel=cancel, on_progress=on_progress)
            if journal is not None:
                journal.record(fingerprint, self.account, task_id, request_id, req.model, req.mode)
            emit("submitted", task_id=task_id, status="PENDING")
            data = self._wait_journaled(task_id, cancel, on_progress, started)
        result = self._result_from_task(req, data, task_id)
        if journal is not None:
            journal.update(task_id, "succeeded", result.urls)
        return result

    def _wait_journaled(self, task_id: str, cancel: threading.Event | None, on_progress: OnProgress | None,
                        started: float) -> dict[str, Any]:
        try:
            return self.wait_task(task_id, cancel=cancel, on_progress=on_progress, started=started)
        except (Interrupted, TaskExpiredError, TaskCanceledError, WanAPIError) as exc:
            # A RUNNING task that was interrupted stays journaled as "created": the next identical run
            # picks it up. Everything else that ended the task is written down, so it is not offered again.
            state = _journal_state(exc)
            if self.store is not None and state:
                self.store.journal.update(task_id, state)
            raise

    # ---- the result cache --------------------------------------------------------------------------------

    def cached(self, req: WanRequest, fingerprint: str | None = None) -> WanResult | None:
        if self.store is None:
            return None
        hit = self.store.cache.get(fingerprint or req.fingerprint())
        if hit is None:
            return None
        meta, files = hit
        images = [self.downloader.decode(url, data) for url, data in zip(meta["urls"], files)]
        result = WanResult(model=meta["model"], mode=meta["mode"], transport=meta["transport"], images=images,
                           content=meta["content"], request_id=meta.get("request_id"),
                           task_id=meta.get("task_id"), usage=meta.get("usage") or {},
                           failures=meta.get("failures") or [], actual_prompts=meta.get("actual_prompts") or [],
                           endpoint=meta.get("endpoint", ""), from_cache=True)
        log.info("answered %s %s from the result cache (no request sent)", req.model, req.mode)
        return result

    def _keep(self, req: WanRequest, fingerprint: str, result: WanResult) -> None:
        if self.store is None or not result.images:
            return
        meta = {"model": result.model, "mode": result.mode, "transport": result.transport,
                "content": result.content, "urls": [img.url for img in result.images],
                "request_id": result.request_id, "task_id": result.task_id, "usage": result.usage,
                "failures": result.failures, "actual_prompts": result.actual_prompts, "endpoint": result.endpoint}
        try:
            self.store.cache.put(fingerprint, meta, [img.data for img in result.images])
            if result.task_id:
                self.store.journal.update(result.task_id, "fetched")
        except OSError as exc:  # a full disk must not cost the user the pictures already in hand
            log.warning("could not keep the result in the cache: %s", exc)

    @staticmethod
    def choose_transport(req: WanRequest, transport: str) -> str:
        if transport not in TRANSPORTS:
            raise WanInputError("transport", f"{transport!r} is not one of {', '.join(TRANSPORTS)}")
        if transport == "auto":
            return req.transports[0]
        if transport not in req.transports:
            raise WanInputError("transport", f"{req.model} {req.mode} works over "
                                             f"{', '.join(req.transports)}, not {transport}")
        return transport

    # ---- async tasks -----------------------------------------------------------------------------------

    def submit(self, req: WanRequest, *, cancel: threading.Event | None = None,
               on_progress: OnProgress | None = None) -> tuple[str, str | None]:
        """Create the task (billable). Returns (task_id, request_id)."""
        path = IMAGE_SYNTHESIS_PATH if req.protocol == IMAGE_SYNTHESIS else ASYNC_PATH
        response = self.transport.request(
            "POST", path, json_body=req.body, headers={"X-DashScope-Async": "enable"}, billable=True,
            read_timeout=self.transport.timeouts.create_read, cancel=cancel,
            on_retry=_retry_reporter(on_progress))
        data = _json(response, self.endpoint.label)
        output = data.get("output") or {}
        task_id = output.get("task_id")
        if not task_id:
            raise api_error(data.get("code"), data.get("message") or "the service created no task",
                            status=response.status_code, request_id=data.get("request_id"),
                            endpoint=self.endpoint.label)
        log.info("created task %s for %s (%s)", task_id, req.model, req.mode)
        return task_id, data.get("request_id")

    def get_task(self, task_id: str, *, cancel: threading.Event | None = None) -> dict[str, Any]:
        """One task query (rate-limited per account, retried as idempotent)."""
        self.task_limiter.acquire(cancel)
        response = self.transport.request("GET", f"tasks/{task_id}", billable=False,
                                          read_timeout=self.transport.timeouts.query_read, cancel=cancel)
        return _json(response, self.endpoint.label)

    def cancel_task(self, task_id: str) -> bool:
        """Cancel a PENDING task. True if the service canceled it; False if it was too late."""
        try:
            self.transport.request("POST", f"tasks/{task_id}/cancel", billable=False,
                                   read_timeout=self.transport.timeouts.query_read)
            return True
        except WanError as exc:
            log.info("cancel of task %s refused: %s", task_id, exc)
            return False

    def wait_task(self, task_id: str, *, cancel: threading.Event | None = None,
                  on_progress: OnProgress | None = None, started: float | None = None,
                  cancel_pending_on_interrupt: bool = True) -> dict[str, Any]:
        """Poll until the task ends. SUCCEEDED -> the task's JSON; otherwise a WanError.

        Interrupted while PENDING: the task is canceled at the service (nothing is billed). Interrupted
        while RUNNING: the task is left to finish; `Interrupted.task_id` says which, so it can be fetched.
        """
        started = time.monotonic() if started is None else started
        emit = _Emitter(on_progress, started)
        waited_from = time.monotonic()
        status = "PENDING"
        failing_since: float | None = None
        while True:
            try:
                data = self.get_task(task_id, cancel=cancel)
                failing_since = None
            except Interrupted:
                raise self._interrupt(task_id, status, cancel_pending_on_interrupt) from None
            except (WanConnectionError, ServerError, RateLimitError) as exc:
                # The task lives on at the service whatever our network does: a paid result is worth
                # waiting for. Keep polling through transient faults for a while before giving up.
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > self.query_failure_budget:
                    raise
                emit("retry", task_id=task_id, status=status, message=f"task query failed ({exc.code or exc})")
                if cancel is not None and cancel.wait(self.poll.medium):
                    raise self._interrupt(task_id, status, cancel_pending_on_interrupt) from None
                if cancel is None:
                    time.sleep(self.poll.medium)
                continue
            output = data.get("output") or {}
            status = output.get("task_status") or "UNKNOWN"
            elapsed = time.monotonic() - started
            if status == "SUCCEEDED":
                return data
            if status == "FAILED":
                raise api_error(output.get("code") or data.get("code"),
                                output.get("message") or data.get("message"), status=200,
                                request_id=data.get("request_id"), task_id=task_id,
                                endpoint=self.endpoint.label, task_failed=True)
            if status == "CANCELED":
                raise TaskCanceledError("the task was canceled", task_id=task_id, endpoint=self.endpoint.label)
            if status == "UNKNOWN":
                raise TaskExpiredError("the service does not know this task", task_id=task_id,
                                       endpoint=self.endpoint.label)
            emit("status", task_id=task_id, status=status)
            if time.monotonic() - waited_from > self.max_wait:
                raise WanTimeoutError(f"task still {status} after {self.max_wait:.0f} s; it may still finish "
                                      "and be billed", maybe_billed=True, task_id=task_id,
                                      endpoint=self.endpoint.label)
            delay = self.poll.interval(elapsed)
            if cancel is not None:
                if cancel.wait(delay):
                    raise self._interrupt(task_id, status, cancel_pending_on_interrupt)
            else:
                time.sleep(delay)

    def _interrupt(self, task_id: str, status: str, cancel_pending: bool) -> Interrupted:
        if status == "PENDING" and cancel_pending and self.cancel_task(task_id):
            exc = Interrupted("stopped by the user; the task was still queued and has been canceled at the "
                              "service, so nothing is billed", task_id=task_id)
            exc.task_canceled = True
            return exc
        return Interrupted(f"stopped by the user; the task was {status} and will finish at the service (and "
                           "be billed); queue the same graph again to fetch its result", task_id=task_id)

    def _result_from_task(self, req: WanRequest, data: dict[str, Any], task_id: str) -> WanResult:
        output = data.get("output") or {}
        result = WanResult(model=req.model, mode=req.mode, transport=ASYNC, images=[], content=[],
                           request_id=data.get("request_id"), task_id=task_id, usage=data.get("usage") or {})
        if req.protocol == IMAGE_SYNTHESIS:
            self._take_synthesis_results(result, output)
        else:
            result.content = _content_of(output)
        return result

    def _take_synthesis_results(self, result: WanResult, output: dict[str, Any]) -> None:
        for index, item in enumerate(output.get("results") or []):
            if item.get("url"):
                result.content.append({"type": "image", "url": item["url"]})
                if item.get("actual_prompt"):
                    result.actual_prompts.append(item["actual_prompt"])
            else:
                result.failures.append({"index": index, "code": item.get("code"),
                                        "message": item.get("message")})
        if not result.urls and result.failures:
            first = result.failures[0]
            raise api_error(first["code"], first["message"], status=200, request_id=result.request_id,
                            task_id=result.task_id, endpoint=self.endpoint.label, task_failed=True)

    # ---- sync and streaming ----------------------------------------------------------------------------

    def _sync(self, req: WanRequest, cancel: threading.Event | None, emit: "_Emitter") -> WanResult:
        emit("sending")
        response = self.transport.request(
            "POST", SYNC_PATH, json_body=req.body, billable=True, read_timeout=self.transport.timeouts.sync_read,
            cancel=cancel, on_retry=emit.retry)
        data = _json(response, self.endpoint.label)
        if data.get("code"):
            raise api_error(data.get("code"), data.get("message"), status=response.status_code,
                            request_id=data.get("request_id"), endpoint=self.endpoint.label)
        return WanResult(model=req.model, mode=req.mode, transport=SYNC, images=[],
                         content=_content_of(data.get("output") or {}), request_id=data.get("request_id"),
                         usage=data.get("usage") or {})

    def _stream(self, req: WanRequest, cancel: threading.Event | None, emit: "_Emitter") -> WanResult:
        body = copy.deepcopy(req.body)
        # The SDK sends only the header; the newest reference also shows parameters.stream. Send both.
        body.setdefault("parameters", {})["stream"] = True
        emit("sending")
        response = self.transport.request(
            "POST", SYNC_PATH, json_body=body, billable=True, stream=True,
            headers={"X-DashScope-Sse": "enable", "Accept": "text/event-stream"},
            read_timeout=self.transport.timeouts.stream_idle, cancel=cancel, on_retry=emit.retry)
        result = WanResult(model=req.model, mode=req.mode, transport=STREAM, images=[], content=[])
        parser = SSEParser()
        finished = False
        with _CloseOnCancel(response, cancel) as watch:
            try:
                while not finished:
                    chunk = response.raw.read1(65536)
                    for event in parser.feed(chunk) if chunk else parser.finish():
                        finished = self._take_stream_event(result, event, emit) or finished
                    if not chunk:
                        break
            except WanError:
                raise
            except Exception as exc:
                # requests', urllib3's (ProtocolError, ReadTimeoutError) and socket errors alike: none of
                # them derive from one base, and a response closed by the watcher raises its own.
                if watch.fired:
                    raise Interrupted("stopped by the user while the stream was running; what had arrived "
                                      "is billed", request_id=result.request_id) from None
                if _is_timeout(exc):
                    raise self._cut(result, f"no data for {self.transport.timeouts.stream_idle:.0f} s "
                                            "(idle-read timeout)") from None
                raise self._cut(result, f"the stream broke ({type(exc).__name__})") from None
        if watch.fired:
            raise Interrupted("stopped by the user while the stream was running", request_id=result.request_id)
        if not finished:
            raise self._cut(result, "the stream ended before its final frame")
        return result

    def _take_stream_event(self, result: WanResult, event: Any, emit: "_Emitter") -> bool:
        try:
            data = event.json() or {}
        except ValueError:
            raise self._cut(result, "a stream frame was not valid JSON") from None
        result.request_id = data.get("request_id") or data.get("requestId") or result.request_id
        if event.event == "error" or (event.status is not None and event.status >= 400) or data.get("code"):
            error = api_error(data.get("code"), data.get("message"), status=event.status,
                              request_id=result.request_id, endpoint=self.endpoint.label)
            # Pictures that arrived before the error were generated, and are billed: keep them with the error.
            error.partial = result
            raise error
        if data.get("usage"):
            result.usage = data["usage"]
        output = data.get("output") or {}
        for item in _content_of(output):
            # Each frame carries only what is new: a piece of text to append, or a finished image.
            if item["type"] == "text":
                last = result.content[-1] if result.content else None
                if last and last["type"] == "text":
                    last["text"] += item["text"]
                else:
                    result.content.append(dict(item))
                emit("text", text=item["text"])
            else:
                result.content.append(dict(item))
                emit("image", images_done=len(result.urls))
        return bool(output.get("finished"))

    def _cut(self, result: WanResult, why: str) -> StreamCutError:
        return StreamCutError(f"{why}; {len(result.urls)} image(s) and {len(result.text)} characters of text "
                              "had arrived", partial=result, maybe_billed=True, request_id=result.request_id,
                              endpoint=self.endpoint.label)

    # ---- results ---------------------------------------------------------------------------------------

    def download_all(self, result: WanResult, *, cancel: threading.Event | None = None,
                     emit: "_Emitter | None" = None) -> None:
        urls = result.urls
        if not urls:
            return
        emit = emit or _Emitter(None, time.monotonic())
        emit("downloading", images_done=0, images_total=len(urls))
        done = 0
        lock = threading.Lock()

        def fetch(url: str) -> DownloadedImage:
            nonlocal done
            image = self.downloader.fetch(url, cancel=cancel)
            with lock:
                done += 1
                emit("downloading", images_done=done, images_total=len(urls))
            return image

        started = time.monotonic()
        if len(urls) == 1:
            result.images = [fetch(urls[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(4, len(urls)), thread_name_prefix="wan-dl") as pool:
                result.images = list(pool.map(fetch, urls))
        result.timings["download_s"] = round(time.monotonic() - started, 3)


# ---- helpers ---------------------------------------------------------------------------------------------

def _journal_state(exc: Exception) -> str | None:
    if isinstance(exc, Interrupted):
        return "canceled" if exc.task_canceled else None
    if isinstance(exc, TaskExpiredError):
        return "expired"
    if isinstance(exc, TaskCanceledError):
        return "canceled"
    # Only the task's own FAILED status (answered with HTTP 200) ends it; an error of the query itself (the
    # service or the network failing while we ask) leaves the task to be picked up by the next run.
    if getattr(exc, "status", None) == 200 and getattr(exc, "task_id", None):
        return "failed"
    return None


def _content_of(output: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for choice in output.get("choices") or []:
        message = (choice or {}).get("message") or {}
        for item in message.get("content") or []:
            if not isinstance(item, dict):
                continue
            if item.get("image"):
                items.append({"type": "image", "url": item["image"]})
            elif item.get("text") is not None and item.get("type", "text") == "text":
                items.append({"type": "text", "text": item["text"]})
    return items


def _json(response: requests.Response, endpoint: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise WanConnectionError(f"the service answered HTTP {response.status_code} with something that is not "
                                 "JSON", endpoint=endpoint) from None
    if not isinstance(data, dict):
        raise WanConnectionError("the service answered with unexpected JSON", endpoint=endpoint)
    return data


def _is_timeout(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TimeoutError) or "timed out" in str(exc).lower() or "Timeout" in type(exc).__name__:
            return True
        exc = exc.__context__ or exc.__cause__  # type: ignore[assignment]
    return False


class _Emitter:
    def __init__(self, callback: OnProgress | None, started: float) -> None:
        self.callback = callback
        self.started = started

    def __call__(self, kind: str, **fields: Any) -> None:
        if self.callback is not None:
            try:
                self.callback(Progress(kind=kind, elapsed=time.monotonic() - self.started, **fields))
            except Exception:  # a broken progress display must not break a paid generation
                log.exception("progress callback failed")

    def retry(self, attempt: int, wait: float, why: str) -> None:
        self("retry", message=f"{why}; retry {attempt} in {wait:.1f} s")


def _retry_reporter(on_progress: OnProgress | None) -> Callable[[int, float, str], None] | None:
    if on_progress is None:
        return None
    return _Emitter(on_progress, time.monotonic()).retry


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
                    self.response.close()
                return

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self.response.close()
