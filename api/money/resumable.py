"""The round trip around the service's calls: one creation per request, every payment written down at once,
every paid picture kept.

  lock        one identical request at a time, across threads and processes (request_lock.py)
  cache hit?  -> the stored pictures, no request at all (a picture that no longer decodes is dropped and
                 fetched again from the journal's record)
  journal?    -> a task of this request not yet ended: poll it; a paid answer whose URLs live: download it
  create      reserve under the daily limit; send (async: create the task and write its record; sync and
              stream: the record is written the moment the answer, or a frame, says what was made); the
              lock is released once that record is written
  then        download (begun as the answer arrives, beside the writing of its record), write the files to the
              cache while they decode, settle the ledger, put the cache entry in place once they have decoded,
              mark the record fetched: each step can be done again from the record, and bookkeeping (ledger,
              cache) never fails a run

Whether a request was billed is its Billing (billing.py), put on the result or the exception where the fact
was known; the journal, the ledger, the cache and the node read it.

Paid pictures are kept whatever happens around them. After the user's Cancel, a task still queued at the
service is canceled there (calls.py); one already RUNNING is followed to its end in the background and its
pictures are downloaded into the cache; a sync answer still arriving is kept; pictures a stream delivered
before it was stopped are kept. The WanRecentResults node (recent.py) lists and serves all of them.

Keys: the cache and the journal belong to an ACCOUNT at an ENDPOINT (`scope`: the key's fingerprint and the
base URL); a request's cache key is a digest of the scope and its fingerprint.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from typing import Any, Callable, TypeVar

from ..errors import DownloadError, Interrupted, TaskCanceledError, TaskExpiredError, WanError
from ..request.build import WanRequest
from ..request.models import ASYNC, MODELS, STREAM
from ..result import Emitter, WanResult
from ..secrets import get_logger
from ..service import answers
from ..service.calls import ServiceCalls
from ..service.download import Downloader, Fetching
from ..service.ratelimit import acquire_slot
from .billing import Billing, Sent, billing_of, maybe
from .journal import CREATED, FETCHED, PAID, Answer, new_answer_id
from .request_lock import RequestLocks
from .store import Store

log = get_logger("wan.client")
T = TypeVar("T")

RECENT_NODE = "Wan Recent Results"
# A result's bodies usually arrive within milliseconds of its answer; past this, the bookkeeping that waits
# for them (the ledger's settlement) is done first.
SLOW_RESULT_HOST_S = 1.0


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
        self.locks = RequestLocks(store.folder if store is not None else None)
        self._followed: set[str] = set()
        self._followed_lock = threading.Lock()

    # ---- the round trip ----------------------------------------------------------------------------

    def generate(self, req: WanRequest, transport: str, cancel: threading.Event | None, emit: Emitter,
                 *, download: bool = True, use_cache: bool = True) -> WanResult:
        fingerprint = req.fingerprint()
        key = cache_key(self.scope, fingerprint)
        while True:
            held = self.locks.acquire(key, cancel, lambda: emit(
                "waiting", message="an identical request is already on its way (here or in another ComfyUI on "
                                   "this folder); waiting for its answer"))
            try:
                if use_cache:
                    hit = self._from_cache(req.model, req.mode, key)
                    if hit is not None:
                        return hit
                rec = self._find(fingerprint) if (use_cache and download) else None
                if rec is not None and rec.state == CREATED and rec.task_id:
                    held.release()
                    log.info("resuming task %s (created %.0f s ago) instead of creating a new one", rec.task_id,
                             time.time() - rec.created)
                    emit("submitted", task_id=rec.task_id, status="PENDING", message="resumed")
                    try:
                        return self._finish(rec, self._wait(rec, cancel, emit), emit)
                    except (TaskExpiredError, TaskCanceledError):
                        continue   # gone at the service: a new task is the only way to the picture (look again)
                if rec is not None and rec.state in (PAID, FETCHED):
                    if rec.urls_alive():
                        held.release()
                        return self.deliver(rec, emit)
                    log.warning("%s %s: the pictures of this request (paid %s) are no longer in the result cache "
                                "and their result URLs have expired: sending it anew (billed)", req.model,
                                req.mode, time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.created)))
                    emit("waiting", message="the earlier pictures are gone (URLs expired): sending anew")
                return self._create(req, transport, fingerprint, key, cancel, emit, download, held)
            finally:
                held.release()

    def _create(self, req: WanRequest, transport: str, fingerprint: str, key: str,
                cancel: threading.Event | None, emit: Emitter, download: bool, held: Any) -> WanResult:
        rec = Answer(id=new_answer_id(), account=self.scope, fingerprint=fingerprint, model=req.model,
                     mode=req.mode, transport=transport, prompt=req.prompt, created=time.time(), state=CREATED,
                     max_pictures=req.max_billable_images)
        # The daily limit (api/ledger/): reserve what this request may bill before anything can be sent (refused
        # here past the limit); settled below to what its Billing says.
        spend = self.meter.reserve(req, fingerprint, rec.id) if self.meter else None
        # Until the billable call starts, an error cannot have cost anything; after it, an error nobody
        # tagged (a bug reading a SUCCEEDED answer, say) may have (billing.py).
        sent = Sent()
        try:
            if not self.slots.acquire(blocking=False):
                emit("waiting", message="waiting for a free generation slot (WAN_MAX_CONCURRENT)")
                acquire_slot(self.slots, cancel)
            fetching = None
            try:
                sent.reached = True
                if transport == ASYNC:
                    result = self._task(req, rec, cancel, emit, held, spend)
                else:
                    result, fetching = self._send(req, transport, rec, cancel, emit, held, download)
            finally:
                self.slots.release()
        except BaseException as exc:
            billing = billing_of(exc, sent)
            if spend is None or not spend.done:   # (a task's wait settles itself, before any follower starts)
                self._settle(rec, billing, spend)
            partial = getattr(exc, "partial", None)
            if isinstance(partial, WanResult) and partial.urls:
                return self._keep_partial(req, key, rec, partial, exc, emit)
            raise
        if not download:
            self._settle(rec, result.billing, spend)
            return result
        # The ledger is settled while the pictures decode, after their files are in the cache (that write is
        # the longer one, so it goes first).
        result = self._fetch_and_keep(rec, result, emit, cache_key(self.scope, fingerprint), fetching,
                                      meanwhile=lambda: self._settle(rec, result.billing, spend))
        if cancel is not None and cancel.is_set() and result.images:
            log.warning("%s %s: the run was stopped by the user, but its answer had already been paid for: %d "
                        "picture(s) kept in the result cache; a %r node (or the same graph queued again) gets "
                        "them, sending nothing", req.model, req.mode, len(result.images), RECENT_NODE)
        return result

    # ---- sync and stream ---------------------------------------------------------------------------

    def _send(self, req: WanRequest, transport: str, rec: Answer, cancel: threading.Event | None, emit: Emitter,
              held: Any, download: bool) -> tuple[WanResult, Fetching | None]:
        """The answer, and its pictures' downloads already begun (the paid record and the ledger are written
        while they download: each needs the other's bytes no more than a round trip needs an fsync)."""
        if transport == STREAM:
            def on_picture(so_far: WanResult) -> None:
                # Each picture is paid the moment its frame arrives: written down now, still "incomplete"
                # (a process killed mid-stream leaves a record the recent-results list can still serve).
                so_far.incomplete = "the stream was still arriving"
                self._book("written", lambda j: j.paid(rec, so_far, maybe(
                    "the stream was still arriving", pictures=so_far.images_billed, final=False)))
                so_far.incomplete = ""
            result = self.calls.stream(req, cancel, emit, on_picture)
        else:
            result = self.calls.sync(req, cancel, emit)
        fetching = None
        stopped: BaseException | None = None
        if download:
            try:
                fetching = self._start_fetching(result, emit)
            except BaseException as exc:   # nothing may come between a paid answer and its record
                log.warning("the downloads could not begin before the answer was written down (%s); they begin "
                            "after it", exc)
                stopped = None if isinstance(exc, Exception) else exc
        if self._book("written", lambda j: j.paid(rec, result, result.billing)):
            # Written: an identical request waiting on the lock finds it. Not written: the lock is kept until
            # the pictures are in the cache, or the waiter, finding no record, would pay again.
            held.release()
        if stopped is not None:
            raise stopped
        return result, fetching

    def _keep_partial(self, req: WanRequest, key: str, rec: Answer, partial: WanResult, exc: BaseException,
                      emit: Emitter) -> WanResult:
        """Pictures that arrived before a stream stopped are paid for: write them down, fetch them, and hand
        them back (`incomplete` says what happened). Stopped by the user: raise the interrupt, with the
        pictures kept in the cache for the next identical run; cut or ended by an error frame: return them
        (an identical run sends again; the recent-results list still has these)."""
        partial.incomplete = str(exc)
        partial.billing = billing_of(exc)
        self._book("written", lambda j: j.paid(rec, partial, partial.billing))
        interrupted = isinstance(exc, Interrupted)
        keep_as = key if interrupted else cache_key(self.scope, f"answer:{rec.id}")
        try:
            self._fetch_and_keep(rec, partial, emit, keep_as)
        except WanError as failed:
            log.warning("the %d picture(s) that had arrived could not be fetched: %s", len(partial.urls), failed)
            raise exc from None
        if interrupted:
            log.warning("%s: stopped by the user mid-stream; the %d picture(s) that had arrived (billed) are kept "
                        "in the result cache: queue the same graph again, or use a %r node, to get them",
                        req.model, len(partial.images), RECENT_NODE)
            raise exc
        return partial

    # ---- async tasks ---------------------------------------------------------------------------------

    def _task(self, req: WanRequest, rec: Answer, cancel: threading.Event | None, emit: Emitter,
              held: Any, spend: Any) -> WanResult:
        rec.task_id, rec.request_id = self.calls.create_task(req, cancel, emit)
        submitted = time.time()   # the task's age counts from here (not from before a slot wait or the upload)
        # Written before the wait: a restart, a second server or the recent-results list finds the task. Not
        # written: the request lock is kept to the end of the round trip (an identical waiter would pay again).
        if self._book("written", lambda j: j.open(rec)):
            held.release()
        emit("submitted", task_id=rec.task_id, status="PENDING")
        return self._wait(rec, cancel, emit, spend=spend, own=True, since=submitted)

    def _wait(self, rec: Answer, cancel: threading.Event | None, emit: Emitter, *, spend: Any = None,
              own: bool = False, since: float | None = None) -> WanResult:
        """Wait for the record's task. SUCCEEDED: the paid answer is written down before anything else. An
        end without pictures is written down as ended; a run stopped while the task RUNS leaves it to a
        background follower. `own`: this run created the task, so the user's Cancel may cancel it at the
        service while it is queued; a run that only follows a task (another server's, a resumed one, a
        recent result) never cancels it: someone else may be waiting for it."""
        try:
            data = self.calls.wait_task(rec.task_id, cancel, emit, cancel_pending_on_interrupt=own,
                                        created_at=since or rec.created, model=rec.model)
            result = answers.task_result(_Asked(rec), data, rec.task_id, ASYNC, self.calls.endpoint)
        except BaseException as exc:
            billing = billing_of(exc)
            if isinstance(exc, WanError) and exc.task_id is None:
                exc.task_id = rec.task_id   # the task may be running (and billing): say which
            # Settled here whoever waited (a task resumed after a restart may have been counted unsure), and
            # BEFORE a follower starts, so the follower's final word is the last one the ledger hears.
            self._settle(rec, billing, spend)
            if billing.final:
                self._book("updated", lambda j: j.ended(rec.id, billing))
            elif isinstance(exc, Interrupted):
                self.follow_in_background(rec)
            raise
        self._book("written", lambda j: j.paid(rec, result, result.billing))
        return result

    def follow_in_background(self, rec: Answer) -> None:
        """The user stopped waiting for a task that RUNS at the service: it will finish and be billed.
        Follow it to its end (bounded by the client's max_wait) and download its pictures into the cache,
        so nothing paid is lost even when the next run of the graph is a new request (a new seed)."""
        with self._followed_lock:
            if rec.task_id in self._followed:
                return
            self._followed.add(rec.task_id)

        def follow() -> None:
            try:
                result = self._finish(rec, self._wait(rec, None, Emitter(None)), Emitter(None))
                log.warning("%s: task %s, stopped by the user while it ran, has finished; its %d picture(s) are "
                            "in the result cache (a %r node serves them)", rec.model, rec.task_id,
                            len(result.images), RECENT_NODE)
            except WanError as exc:
                log.warning("%s: following task %s after it was stopped: %s", rec.model, rec.task_id, exc)
            except Exception:  # a bug must not vanish silently in a daemon thread
                log.exception("following task %s", rec.task_id)
            finally:
                with self._followed_lock:
                    self._followed.discard(rec.task_id)

        threading.Thread(target=follow, daemon=True, name="wan-follow").start()

    def _finish(self, rec: Answer, result: WanResult, emit: Emitter) -> WanResult:
        """A task created earlier (by another run, process or the one before a restart) has its answer."""
        self._settle(rec, result.billing, None)
        return self._fetch_and_keep(rec, result, emit, self._key_of(rec))

    # ---- a paid answer, from its record -------------------------------------------------------------

    def deliver(self, rec: Answer, emit: Emitter, cancel: threading.Event | None = None) -> WanResult:
        """The pictures of a record, sending nothing billable: from the cache, else downloaded from its
        URLs, else (a task not yet ended) by polling the task."""
        hit = self._from_cache(rec.model, rec.mode, self._key_of(rec))
        if hit is not None:
            return hit
        if rec.state == CREATED and rec.task_id:
            emit("submitted", task_id=rec.task_id, status="PENDING", message="resumed")
            return self._finish(rec, self._wait(rec, cancel, emit), emit)
        if not rec.urls:
            raise DownloadError("this request brought no picture to fetch")
        if not rec.urls_alive():
            raise DownloadError("its result URLs have expired (they live 24 hours) and its pictures are not in "
                                "the result cache any more")
        result = rec.result()
        result.paid_before = True    # settled when it was paid; nothing is billed now
        if rec.billing is not None and not rec.incomplete:
            self._settle(rec, rec.billing, None)   # idempotent: makes sure a settle that failed then is done
        return self._fetch_and_keep(rec, result, emit, self._key_of(rec))

    def _key_of(self, rec: Answer) -> str:
        return cache_key(self.scope, f"answer:{rec.id}" if rec.incomplete else rec.fingerprint)

    # ---- pictures and the cache --------------------------------------------------------------------

    def _start_fetching(self, result: WanResult, emit: Emitter) -> Fetching | None:
        """The answer's downloads, begun (None when there is nothing to fetch)."""
        urls = result.urls
        if not urls or result.images:
            return None
        emit("downloading", images_done=0, images_total=len(urls))
        return self.downloader.start(urls, on_done=lambda done: emit("downloading", images_done=done,
                                                                      images_total=len(urls)))

    def _fetch_and_keep(self, rec: Answer, result: WanResult, emit: Emitter, key: str,
                        fetching: Fetching | None = None, meanwhile: Callable[[], None] | None = None) -> WanResult:
        """Download every paid picture (the user's Cancel does not stop this: they are paid for), keep the
        result in the cache and mark the record fetched. A download that fails leaves the record as it is: the
        next identical run, or the recent-results node, fetches the pictures without paying again.

        The files are written to the cache the moment their bytes arrive, while they decode, and put in place
        once they have decoded (a picture fetched again is written again); `meanwhile` (the ledger's
        settlement) runs once, in between, whatever happens."""
        result.answer_id = rec.id
        pending = [meanwhile] if meanwhile else []

        def catch_up() -> None:
            while pending:
                pending.pop()()

        staged = None
        tried: list[bytes] | None = None   # the bodies last written (or refused by the disk)
        try:
            fetching = fetching or self._start_fetching(result, emit)
        finally:
            if fetching is None:
                catch_up()
        if fetching is not None:
            try:
                if not fetching.arrived(SLOW_RESULT_HOST_S):
                    catch_up()   # a slow or failing result host: `meanwhile` must not wait for it
                tried = fetching.files() if self.store is not None else None
                if tried is not None:
                    staged = self._keep(key, result, tried)
                catch_up()
                try:
                    result.images = fetching.images()
                except WanError as exc:
                    raise DownloadError(
                        f"{len(fetching.urls)} picture(s) were made and paid for, but fetching them failed "
                        f"({getattr(exc, 'detail', exc)}). They are recorded: within 24 h, queue this graph "
                        f"again unchanged, or add a {RECENT_NODE!r} node, to fetch them without paying again",
                        request_id=result.request_id, task_id=result.task_id,
                        endpoint=self.calls.endpoint) from None
            except BaseException:
                if staged is not None:
                    staged.discard()   # bodies that never decoded: no result to serve
                raise
            finally:
                catch_up()
            result.timings["download_s"] = round(time.monotonic() - fetching.started, 3)
        if result.images and self.store is not None:
            files = [img.data for img in result.images]
            if files != tried:   # not written yet, or a body fetched again after it did not decode
                if staged is not None:
                    staged.discard()
                staged = self._keep(key, result, files)
            if staged is not None and self._publish(staged):
                self._book("updated", lambda j: j.fetched(rec.id))
        return result

    def _keep(self, key: str, result: WanResult, files: list[bytes]) -> Any:
        """The result written to the cache, not yet in place (ResultCache.stage); None, logged, when the disk
        refuses (a full disk must not cost the user the pictures already in hand)."""
        meta = {"model": result.model, "mode": result.mode, "transport": result.transport,
                "content": result.content, "urls": result.urls,
                "request_id": result.request_id, "task_id": result.task_id, "usage": result.usage,
                "failures": result.failures, "actual_prompts": result.actual_prompts, "endpoint": result.endpoint,
                "incomplete": result.incomplete, "answer_id": result.answer_id}
        try:
            return self.store.cache.stage(key, meta, files)
        except OSError as exc:
            log.warning("could not keep the result in the cache: %s", exc)
            return None

    def _publish(self, staged: Any) -> bool:
        try:
            staged.publish()
            return True
        except OSError as exc:
            log.warning("could not keep the result in the cache: %s", exc)
            return False

    def cached(self, req: WanRequest, fingerprint: str | None = None) -> WanResult | None:
        return self._from_cache(req.model, req.mode, cache_key(self.scope, fingerprint or req.fingerprint()))

    def _from_cache(self, model: str, mode: str, key: str) -> WanResult | None:
        if self.store is None:
            return None
        hit = self.store.cache.get(key)
        if hit is None:
            return None
        meta, files = hit
        try:
            images = [self.downloader.decode(url, data) for url, data in zip(meta["urls"], files)]
        except DownloadError as exc:
            # A picture that does not decode (a file cut short by a power loss): drop the entry; the journal's
            # record still knows where the pictures are, and they are fetched again from there.
            log.warning("%s %s: a cached picture could not be read (%s); it will be fetched again", model, mode, exc)
            self.store.cache.drop(key)
            return None
        log.info("answered %s %s from the result cache (no request sent)", model, mode)
        return WanResult(model=meta["model"], mode=meta["mode"], transport=meta["transport"], images=images,
                         content=meta["content"], request_id=meta.get("request_id"), task_id=meta.get("task_id"),
                         usage=meta.get("usage") or {}, failures=meta.get("failures") or [],
                         actual_prompts=meta.get("actual_prompts") or [], endpoint=meta.get("endpoint", ""),
                         from_cache=True, incomplete=meta.get("incomplete") or "", answer_id=meta.get("answer_id"))

    # ---- bookkeeping -----------------------------------------------------------------------------------

    def _find(self, fingerprint: str) -> Answer | None:
        """This request's record. Read BEFORE a creation: if the journal cannot be read, nothing is sent
        (sending blind could pay again for a task already running)."""
        if self.store is None:
            return None
        try:
            return self.store.journal.find(self.scope, fingerprint)
        except sqlite3.Error as exc:
            raise WanError(f"the task journal could not be read ({exc}); nothing was sent, so as not to pay "
                           f"twice for a request that may already be running. Queue again in a moment") from None

    def _book(self, verb: str, work: Callable[[Any], Any]) -> bool:
        """A journal write after payment: never fails a run (the pictures in hand matter more); logged.
        False when it could not be written."""
        if self.store is None:
            return False
        try:
            work(self.store.journal)
            return True
        except (sqlite3.Error, OSError) as exc:
            log.warning("the task journal could not be %s (%s); the run goes on", verb, exc)
            return False

    def _settle(self, rec: Answer, billing: Billing, spend: Any) -> None:
        """The ledger learns what the request cost: never fails a run (logged)."""
        if self.meter is None:
            return
        try:
            self.meter.settle(rec, billing, spend)
        except (sqlite3.Error, OSError) as exc:
            log.warning("the ledger could not record %s %s (%s: %s); the run goes on", rec.model, rec.id,
                        billing.verdict, exc)


class _Asked:
    """What answers.task_result needs to know of a request, from its record (model, mode, protocol)."""

    def __init__(self, rec: Answer) -> None:
        self.model, self.mode = rec.model, rec.mode
        self.protocol = MODELS[rec.model].protocol if rec.model in MODELS else None
