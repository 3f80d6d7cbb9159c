"""The resumable layer: the journal and the result cache around the service's calls.

  cache hit?  -> the stored pictures, no request at all
  async       -> resume the journaled task of this request, or create one and journal it at once; wait;
                 the journal learns how it ended (fetched, or failed / canceled / expired: never offered again)
  sync/stream -> send; a paid answer is journaled when it arrives
  then        -> download every paid picture and keep the result in the cache

Paid pictures are kept whatever happens around them: when the user's Cancel lands during a sync request
whose answer still arrives, or after a stream delivered some pictures, they are downloaded and cached all
the same (the next identical run sends nothing and returns them), and the log says so. A cut stream or an
error frame after some pictures raises with those pictures fetched (`exc.partial.images`, and
`exc.partial.incomplete` says what happened).

Keys: the cache and the journal belong to an ACCOUNT at an ENDPOINT (`scope`: the key's fingerprint and the
base URL); a request's cache key is a digest of the scope and its fingerprint.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import uuid
from typing import Any, Callable

from . import answers
from .calls import ServiceCalls
from .download import Downloader
from .errors import Interrupted, TaskCanceledError, TaskExpiredError, WanAPIError, WanError, StreamCutError
from .models import ASYNC, STREAM
from .ratelimit import acquire_slot
from .request import WanRequest
from .result import Emitter, WanResult
from .secrets import get_logger
from .store import Store
from .waiting import until

log = get_logger("wan.client")


def cache_key(scope: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{scope}\n{fingerprint}".encode()).hexdigest()


class Resumable:
    meter = None   # api.ledger.Meter: the daily limit and the ledger (set by WanClient when it has a store)

    def __init__(self, calls: ServiceCalls, downloader: Downloader, store: Store | None, scope: str,
                 slots: threading.BoundedSemaphore) -> None:
        self.calls = calls
        self.downloader = downloader
        self.store = store
        self.scope = scope
        self.slots = slots
        self._inflight: dict[str, threading.Event] = {}
        self._inflight_lock = threading.Lock()

    # ---- the round trip ----------------------------------------------------------------------------

    def generate(self, req: WanRequest, transport: str, cancel: threading.Event | None, emit: Emitter,
                 *, download: bool = True, use_cache: bool = True) -> WanResult:
        fingerprint = req.fingerprint()
        if not (use_cache and download):
            return self._generate(req, transport, fingerprint, cancel, emit, download)
        key = cache_key(self.scope, fingerprint)
        # One identical request at a time: a second one (the graph queued again while an interrupted sync
        # run's answer is still on its way, or repeated frames of a per_image clip) waits for the first and
        # is answered from the cache, instead of paying again.
        while True:
            hit = self.cached(req, fingerprint)
            if hit is not None:
                return hit
            with self._inflight_lock:
                running = self._inflight.get(key)
                if running is None:
                    mine = self._inflight[key] = threading.Event()
                    break
            emit("waiting", message="an identical request is already on its way; waiting for its answer")
            until(running.wait, cancel, "waiting for an identical request already on its way; nothing was sent")
        try:
            return self._generate(req, transport, fingerprint, cancel, emit, download)
        finally:
            with self._inflight_lock:
                del self._inflight[key]
            mine.set()

    def _generate(self, req: WanRequest, transport: str, fingerprint: str, cancel: threading.Event | None,
                  emit: Emitter, download: bool) -> WanResult:
        # The daily limit (api/ledger.py): reserve what this request may bill before anything can be sent
        # (refused here past the limit); settle to what was billed, or release what cannot have been.
        spend = None
        if self.meter is not None:
            resumed = transport == ASYNC and self._journal("resumable", fingerprint, self.scope) is not None
            spend = self.meter.reserve(req, fingerprint, resumed=resumed)
        try:
            if not self.slots.acquire(blocking=False):
                emit("waiting", message="waiting for a free generation slot (WAN_MAX_CONCURRENT)")
                acquire_slot(self.slots, cancel)
            def before_creating() -> None:
                # The journaled task this run meant to fetch is gone: a new task is a new creation, and
                # must pass the daily limit like any other (refused here, before it is sent).
                nonlocal spend
                if spend is not None and spend.resumed:
                    fresh = self.meter.reserve(req, fingerprint, resumed=False)
                    self.meter.ledger.release(spend)
                    spend = fresh

            try:
                if transport == ASYNC:
                    result = self._task(req, fingerprint, cancel, emit, before_creating)
                else:
                    result = self._send(req, transport, fingerprint, cancel, emit)
            finally:
                self.slots.release()
        except BaseException as exc:
            if spend is not None:
                self.meter.failed(spend, exc)
            raise
        if spend is not None:
            self.meter.settled(spend, result)
        if download:
            self._fetch_and_keep(req, fingerprint, result, emit)
        if cancel is not None and cancel.is_set() and result.images and not result.incomplete:
            log.warning("%s %s: the run was stopped by the user, but its answer had already been paid for: "
                        "%d picture(s) kept in the result cache; queue the same graph again to get them "
                        "(nothing will be sent)", req.model, req.mode, len(result.images))
        return result

    def _send(self, req: WanRequest, transport: str, fingerprint: str, cancel: threading.Event | None,
              emit: Emitter) -> WanResult:
        try:
            if transport == STREAM:
                result = self.calls.stream(req, cancel, emit)
            else:
                result = self.calls.sync(req, cancel, emit)
        except (Interrupted, StreamCutError, WanAPIError) as exc:
            partial: WanResult | None = exc.partial
            if partial is None or not partial.urls:
                raise
            # Pictures that arrived before the stream stopped are paid for: fetch them now, so the exception
            # carries them (`exc.partial.images`). When the user stopped the reader, also keep them for the
            # next identical run; a cut or an error is the user's to send again.
            partial.incomplete = str(exc)
            self._journal("record", fingerprint, self.scope, _answer_id(partial), partial.request_id, req.model,
                          req.mode, "fetched")
            interrupted = isinstance(exc, Interrupted)
            try:
                self._fetch_and_keep(req, fingerprint, partial, emit, keep=interrupted)
            except WanError as failed:
                log.warning("the %d picture(s) that had arrived could not be fetched: %s", len(partial.urls), failed)
                raise exc from None
            if interrupted:
                log.warning("%s: stopped by the user mid-stream; the %d picture(s) that had arrived (billed) are "
                            "kept in the result cache: queue the same graph again to get them", req.model,
                            len(partial.images))
            raise
        self._journal("record", fingerprint, self.scope, _answer_id(result), result.request_id, req.model,
                      req.mode, "fetched")
        return result

    def _task(self, req: WanRequest, fingerprint: str, cancel: threading.Event | None, emit: Emitter,
              before_creating: Callable[[], None] = lambda: None) -> WanResult:
        entry = self._journal("resumable", fingerprint, self.scope)
        if entry is not None:
            log.info("resuming task %s (created %.0f s ago) instead of creating a new one", entry.task_id,
                     time.time() - entry.created)
            emit("submitted", task_id=entry.task_id, status="PENDING", message="resumed")
            try:
                return self._finish_task(req, entry.task_id, cancel, emit)
            except (TaskExpiredError, TaskCanceledError):
                pass  # gone at the service: a new task is the only way to the picture
        before_creating()
        task_id, request_id = self.calls.create_task(req, cancel, emit)
        self._journal("record", fingerprint, self.scope, task_id, request_id, req.model, req.mode)
        emit("submitted", task_id=task_id, status="PENDING")
        return self._finish_task(req, task_id, cancel, emit)

    def _finish_task(self, req: WanRequest, task_id: str, cancel: threading.Event | None,
                     emit: Emitter) -> WanResult:
        """Wait for the task and read its answer; the journal learns how it ended whichever way it did."""
        try:
            data = self.calls.wait_task(task_id, cancel, emit)
            result = answers.task_result(req, data, task_id, ASYNC, self.calls.endpoint)
        except WanError as exc:
            # A failed query knows nothing of the task it was about; the daily limit must (the task may be
            # running, and billing, whatever became of our query).
            if exc.task_id is None:
                exc.task_id = task_id
            state = _ended_state(exc)
            if state:
                self._journal("update", task_id, state)
            raise
        # A task that succeeded with no picture has nothing to fetch: never offer it again.
        self._journal("update", task_id, "succeeded" if result.urls else "fetched")
        return result

    # ---- pictures and the cache --------------------------------------------------------------------

    def _fetch_and_keep(self, req: WanRequest, fingerprint: str, result: WanResult, emit: Emitter,
                        keep: bool | None = None) -> None:
        """Download every paid picture (the user's Cancel does not stop this: they are paid for), then keep
        the result in the cache unless it is incomplete (a cut stream is the user's to send again)."""
        urls = result.urls
        if urls and not result.images:
            emit("downloading", images_done=0, images_total=len(urls))
            started = time.monotonic()
            result.images = self.downloader.fetch_all(
                urls, on_done=lambda done: emit("downloading", images_done=done, images_total=len(urls)))
            result.timings["download_s"] = round(time.monotonic() - started, 3)
        if keep is None:
            keep = not result.incomplete
        if keep and result.images and self.store is not None:
            self._keep(fingerprint, result)

    def _keep(self, fingerprint: str, result: WanResult) -> None:
        meta = {"model": result.model, "mode": result.mode, "transport": result.transport,
                "content": result.content, "urls": [img.url for img in result.images],
                "request_id": result.request_id, "task_id": result.task_id, "usage": result.usage,
                "failures": result.failures, "actual_prompts": result.actual_prompts, "endpoint": result.endpoint,
                "incomplete": result.incomplete}
        try:
            self.store.cache.put(cache_key(self.scope, fingerprint), meta, [img.data for img in result.images])
        except OSError as exc:  # a full disk must not cost the user the pictures already in hand
            log.warning("could not keep the result in the cache: %s", exc)
        if result.task_id:
            self._journal("update", result.task_id, "fetched")

    def cached(self, req: WanRequest, fingerprint: str | None = None) -> WanResult | None:
        if self.store is None:
            return None
        hit = self.store.cache.get(cache_key(self.scope, fingerprint or req.fingerprint()))
        if hit is None:
            return None
        meta, files = hit
        images = [self.downloader.decode(url, data) for url, data in zip(meta["urls"], files)]
        log.info("answered %s %s from the result cache (no request sent)", req.model, req.mode)
        return WanResult(model=meta["model"], mode=meta["mode"], transport=meta["transport"], images=images,
                         content=meta["content"], request_id=meta.get("request_id"), task_id=meta.get("task_id"),
                         usage=meta.get("usage") or {}, failures=meta.get("failures") or [],
                         actual_prompts=meta.get("actual_prompts") or [], endpoint=meta.get("endpoint", ""),
                         from_cache=True, incomplete=meta.get("incomplete") or "")

    def _journal(self, method: str, *args: Any) -> Any:
        """A journal call that never fails a run: the pictures in hand matter more than the bookkeeping."""
        if self.store is None:
            return None
        try:
            return getattr(self.store.journal, method)(*args)
        except sqlite3.Error as exc:
            log.warning("the task journal could not be %s (%s); the run goes on", _JOURNAL_VERBS[method], exc)
            return None


_JOURNAL_VERBS = {"record": "written", "update": "updated", "resumable": "read"}


def _answer_id(result: WanResult) -> str:
    """A journal id for a sync or stream answer (the journal's ids are task ids; these have none)."""
    return f"request:{result.request_id or uuid.uuid4().hex}"


def _ended_state(exc: WanError) -> str | None:
    """How a task ended, for the journal; None while it may still deliver (interrupted while RUNNING, or a
    query that failed on our side)."""
    if isinstance(exc, Interrupted):
        return "canceled" if exc.task_canceled else None
    if isinstance(exc, TaskExpiredError):
        return "expired"
    if isinstance(exc, TaskCanceledError):
        return "canceled"
    return "failed" if answers.ends_task(exc) else None
