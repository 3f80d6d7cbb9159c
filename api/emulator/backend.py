"""The emulator's state machine: tasks and their lifecycle, hosted results, faults, and the bill.

The HTTP layer (server.py) is thin: it parses, asks this backend, and writes what it is told. Timing and
faults are settings of the backend, not special cases in handlers. The backend counts every billable
creation itself (a generation started or a task created), by request fingerprint, so a test's
"billed once" figure is the service's count, not the client's claim.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from .render import render_result, thumbnail_of
from .rules import SERVICE_MODELS, Job, ServiceError

FAULT_KINDS = {
    "http",                # answer an error status/code (429 with retry_after, 500, 503, 400 DataInspectionFailed...)
    "reset_before_body",   # cut the connection after the headers, before reading the body: nothing created
    "reset_after_body",    # accept (and bill) the request, then cut the connection without an answer
    "slow",                # accept, then wait `delay` seconds before answering
    "stream_cut",          # SSE: send about half of the frames, then cut the connection
    "stream_error",        # SSE: send about half of the frames, then an event:error frame (code/message)
    "stream_stall",        # SSE: go silent for `delay` seconds half way (idle-read timeouts)
    "task_failed",         # the task ends FAILED with code/message (e.g. DataInspectionFailed on the output)
    "partial_failure",     # wan2.5: `failed` of the n results carry code/message instead of a url
    "sequential_fewer",    # wan2.7 sequential: the model returns `count` images instead of n
    # Answers the vendor pages allow but the emulator does not give by itself:
    "stream_as_json",      # a stream request (any model) answered as a sync request: 200 application/json
    "task_error_body",     # the task fails; its query answers the top-level {request_id, code, message}, no output
    "task_status",         # the task's queries answer output.task_status = `task_status` (e.g. SUSPENDED)
    "results_all_failed",  # wan2.5: the task SUCCEEDS but every result carries code/message instead of a url
    "task_unknown",        # task queries answer UNKNOWN (the page's unknown-task form) while the task runs on
    "no_pictures",         # wan2.6/2.7: the answer SUCCEEDS with no picture (interleave: its text alone)
    # Not the service's doing but met on the way to it (a proxy, a bad disk or NIC): for tests of the client.
    "damaged_body",        # download: 200 with the picture's full length, a run of its bytes zeroed
}
FAULT_TARGETS = {"create", "query", "cancel", "download", "any"}


@dataclass
class Fault:
    kind: str
    on: str = "create"
    times: int = 1                 # how many matching requests it hits; -1: all of them
    status: int | None = None      # default 500; 200 for task_error_body (a task query answers 200)
    code: str | None = None        # default InternalError; InvalidParameter for task_error_body
    message: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    failed: int = 1
    count: int = 1
    model: str | None = None       # only requests for this model
    task_status: str = "SUSPENDED"  # kind task_status: the value the queries show
    queries: int = -1              # kinds task_status, task_unknown armed on create: how many of the task's
                                   # queries show it (-1: all), then the real status
    for_seconds: float = 0.0       # > 0: the fault hits every matching request for this long, counted from
                                   # the first one it meets (`times` is then ignored): an outage
    started: float | None = None   # (set by the backend: when an outage began)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.on not in FAULT_TARGETS:
            raise ValueError(f"unknown fault target {self.on!r}; one of {sorted(FAULT_TARGETS)}")
        page_example = self.kind == "task_error_body"   # seed 001 lines 1023-1027
        if self.status is None:
            self.status = 200 if page_example else 500
        if self.code is None:
            self.code = "InvalidParameter" if page_example else "InternalError"
        if self.message is None:
            self.message = ("num_images_per_prompt must be 1" if page_example else
                            "An internal error has occured, please try again later or contact service support.")


@dataclass
class Settings:
    queue_time: float = 0.3        # seconds a task stays PENDING
    service_time: float = 1.0      # seconds it then stays RUNNING (sync and streams take both)
    api_keys: list[str] | None = None   # None: any non-empty key is accepted
    result_ttl: float = 24 * 3600.0
    task_ttl: float = 24 * 3600.0
    # A cap on rendered result sides, to keep huge (4K) results cheap in tests; None renders true size.
    render_max_side: int | None = None


@dataclass
class ResultSpec:
    token: str
    digest: str
    index: int
    width: int
    height: int
    created: float
    expires: float
    request_id: str
    thumbnail: bytes | None = None
    boxes: list[list[int]] | None = None
    box_space: tuple[int, int] | None = None
    downloads: int = 0


@dataclass
class Task:
    task_id: str
    request_id: str
    api: str                       # multimodal | synthesis
    job: Job
    digest: str
    created: float
    queue_time: float
    service_time: float
    fault: Fault | None = None
    canceled_at: float | None = None
    finished: dict[str, Any] | None = None   # the SUCCEEDED/FAILED output, fixed once reached
    announced: bool = False                  # a client has been shown the result URLs


def error_body(request_id: str, fault: Fault) -> dict[str, Any]:
    """The wan2.7 page's failed-task form (seed 001 lines 1023-1027): top-level code/message, no output."""
    return {"request_id": request_id, "code": fault.code, "message": fault.message}


def unknown_body(task_id: str, request_id: str) -> dict[str, Any]:
    """ASSUMPTIONS["unknown_task"]: the answer for a task the service does not know (or whose status it
    does not know: seed 001 line 936, 'UNKNOWN:任务不存在或状态未知')."""
    return {"request_id": request_id, "output": {"task_id": task_id, "task_status": "UNKNOWN"}}


def odd_status_body(task_id: str, request_id: str, status: str, submitted: str) -> dict[str, Any]:
    """A task answer whose task_status is none of the page's values (seed 001 lines 1043-1055)."""
    return {"request_id": request_id, "output": {"task_id": task_id, "task_status": status,
                                                 "submit_time": submitted}}


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.") + f"{int((t % 1) * 1000):03d}"


def request_digest(body: dict[str, Any]) -> str:
    """What was asked, independent of transport (stream / is_async flags are left out)."""
    params = {k: v for k, v in (body.get("parameters") or {}).items() if k not in ("stream", "is_async")}
    slim = {"model": body.get("model"), "input": body.get("input"), "parameters": params}
    return hashlib.sha256(json.dumps(slim, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Backend:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.lock = threading.RLock()
        self.results_base = "http://127.0.0.1:0"
        self._secret = uuid.uuid4().bytes
        # Results are rendered as soon as they exist, as the real service stores its PNGs before it hands
        # out their URLs; a download then only sends bytes. A bounded cache keeps memory flat in long soaks.
        self._renderer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="wan-emulator-render")
        self._timers: list[threading.Timer] = []
        self._closed = False
        self.reset()

    # ---- state -------------------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.clock_offset = 0.0
            self.faults: list[Fault] = []
            self.tasks: dict[str, Task] = {}
            self.results: dict[str, ResultSpec] = {}
            self.log: list[dict[str, Any]] = []
            self.downloads: list[dict[str, Any]] = []
            self.creations: Counter[str] = Counter()
            self.images_billed = 0
            self._rendered: OrderedDict[str, Future] = OrderedDict()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset += seconds

    def configure(self, **values: Any) -> None:
        with self.lock:
            for key, value in values.items():
                if not hasattr(self.settings, key):
                    raise ValueError(f"unknown setting {key!r}")
                setattr(self.settings, key, value)

    def add_fault(self, fault: Fault | dict[str, Any]) -> Fault:
        if isinstance(fault, dict):
            fault = Fault(**fault)
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, on: str, model: str | None = None, kinds: set[str] | None = None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times == 0 or (fault.on not in (on, "any")):
                    continue
                if fault.model and model and fault.model != model:
                    continue
                if kinds is not None and fault.kind not in kinds:
                    continue
                rules = SERVICE_MODELS.get(model or "")
                if fault.kind == "no_pictures" and rules is not None and rules.api != "multimodal":
                    continue   # wan2.6/2.7 only: left for the next request it applies to, not used up here
                if fault.for_seconds > 0:
                    now = self.now()
                    fault.started = fault.started if fault.started is not None else now
                    if now - fault.started >= fault.for_seconds:
                        fault.times = 0   # the outage is over
                        continue
                    return fault
                if fault.times > 0:
                    fault.times -= 1
                return fault
        return None

    def peek_fault(self, on: str, kinds: set[str]) -> Fault | None:
        """A fault that must act before the body is read (and so before the model is known)."""
        return self.take_fault(on, None, kinds)

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            entry["seq"] = len(self.log)
            entry["time"] = self.now()
            self.log.append(entry)
        return entry

    def stats(self) -> dict[str, Any]:
        with self.lock:
            for task in self.tasks.values():
                self._state(task)  # finishing a task bills it, whether or not anyone asks
            statuses = Counter(self._state(t)[0] for t in self.tasks.values())
            return {
                "creations": sum(self.creations.values()),
                "creations_by_fingerprint": dict(self.creations),
                "images_billed": self.images_billed,
                "requests": len(self.log),
                "requests_by_kind": dict(Counter(e.get("kind", "?") for e in self.log)),
                "tasks": dict(statuses),
                "downloads": len(self.downloads),
                "faults_left": [asdict(f) for f in self.faults if f.times != 0],
            }

    # ---- auth ----------------------------------------------------------------------------------------------

    def check_auth(self, header: str | None) -> None:
        # ASSUMPTIONS["wrong_key"]
        if not header or not header.startswith("Bearer ") or not header[7:].strip():
            raise ServiceError(401, "InvalidApiKey", "No API-key provided.")
        key = header[7:].strip()
        keys = self.settings.api_keys
        if keys is not None and key not in keys:
            raise ServiceError(401, "InvalidApiKey", "Invalid API-key provided.")

    # ---- generations -------------------------------------------------------------------------------------

    def accept(self, digest: str) -> None:
        """A billable creation: the service took the request and will generate (and bill) images."""
        with self.lock:
            self.creations[digest] += 1

    def create_task(self, api: str, job: Job, digest: str, request_id: str, fault: Fault | None) -> Task:
        with self.lock:
            task = Task(task_id=str(uuid.uuid4()), request_id=request_id, api=api, job=job, digest=digest,
                        created=self.now(), queue_time=self.settings.queue_time,
                        service_time=self.settings.service_time, fault=fault)
            self.tasks[task.task_id] = task
        # The task finishes (and its pictures are made and stored) when its time is up, whether or not
        # anyone is asking, as at the service.
        timer = threading.Timer(task.queue_time + task.service_time + 0.001, self._settle, args=(task,))
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()
        return task

    def close(self) -> None:
        """Stop the background work (task timers, rendering): the emulator is shutting down."""
        self._closed = True
        for timer in self._timers:
            timer.cancel()
        self._renderer.shutdown(wait=False, cancel_futures=True)

    def _settle(self, task: Task) -> None:
        if self._closed:
            return
        with self.lock:
            if self.tasks.get(task.task_id) is task:
                self._state(task)

    def _state(self, task: Task) -> tuple[str, float]:
        now = self.now()
        if now - task.created > self.settings.task_ttl:
            return "UNKNOWN", now
        if task.canceled_at is not None:
            return "CANCELED", now
        elapsed = now - task.created
        if elapsed < task.queue_time:
            return "PENDING", now
        if elapsed < task.queue_time + task.service_time:
            return "RUNNING", now
        if task.finished is None:
            task.finished = self._finish(task)
        return task.finished["task_status"], now

    def _finish(self, task: Task) -> dict[str, Any]:
        end = task.created + task.queue_time + task.service_time
        times = {"submit_time": _stamp(task.created), "scheduled_time": _stamp(task.created + task.queue_time),
                 "end_time": _stamp(end)}
        fault = task.fault
        if fault is not None and fault.kind == "task_failed":
            return {"task_status": "FAILED", "code": fault.code, "message": fault.message, **times}
        if fault is not None and fault.kind == "task_error_body":
            # Failed (not billed); task_view answers it in the page's top-level form.
            return {"task_status": "FAILED", "code": fault.code, "message": fault.message, **times,
                    "_error_body": True}
        if task.api == "synthesis":
            output, usage = self.synthesis_output(task.job, task.digest, task.request_id, fault)
        else:
            output, usage = self.multimodal_output(task.job, task.digest, task.request_id, fault)
        return {"task_status": "SUCCEEDED", **output, **times, "_usage": usage}

    def task_answer(self, task_id: str, request_id: str) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of a task query."""
        with self.lock:
            task = self.tasks.get(task_id)
            fault = task.fault if task is not None else None
            if fault is not None and fault.kind in ("task_status", "task_unknown") and fault.queries != 0:
                if fault.queries > 0:
                    fault.queries -= 1
                self._state(task)  # the task lives on (and bills) whatever its queries show
                if fault.kind == "task_unknown":   # ASSUMPTIONS["unknown_transient"]
                    return 200, unknown_body(task_id, request_id)
                return 200, odd_status_body(task_id, request_id, fault.task_status, _stamp(task.created))
            view = self.task_view(task_id, request_id)
            finished = task.finished if task is not None else None
            if finished and finished.get("_error_body"):
                return int(fault.status or 200), error_body(request_id, fault)  # type: ignore[union-attr]
            return 200, view

    def task_view(self, task_id: str, request_id: str) -> dict[str, Any]:
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None:
                return unknown_body(task_id, request_id)
            status, _ = self._state(task)
            if status in ("PENDING", "RUNNING", "CANCELED", "UNKNOWN"):
                output: dict[str, Any] = {"task_id": task_id, "task_status": status,
                                          "submit_time": _stamp(task.created)}
                return {"request_id": request_id, "output": output}
            finished = dict(task.finished or {})
            usage = finished.pop("_usage", None)
            finished.pop("_error_body", None)
            task.announced = True
            view: dict[str, Any] = {"request_id": request_id, "output": {"task_id": task_id, **finished}}
            if usage is not None:
                view["usage"] = usage
            return view

    def cancel(self, task_id: str) -> None:
        # ASSUMPTIONS["cancel_not_pending"]
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None:
                raise ServiceError(400, "UnsupportedOperation", "The task does not exist or has expired.")
            status, now = self._state(task)
            if status != "PENDING":
                raise ServiceError(400, "UnsupportedOperation",
                                   "Failed to cancel the task, please confirm if the task is in PENDING status.")
            task.canceled_at = now

    # ---- outputs -------------------------------------------------------------------------------------------

    def _count(self, job: Job, fault: Fault | None) -> int:
        if fault is not None and fault.kind == "no_pictures":   # ASSUMPTIONS["no_pictures"]
            return 0
        if fault is not None and fault.kind == "sequential_fewer" and job.kind == "sequential":
            return max(1, min(fault.count, job.count))
        return job.count

    def _make_results(self, job: Job, digest: str, request_id: str, count: int) -> list[str]:
        now = self.now()
        thumb = thumbnail_of(job.images[-1].data) if job.images else None
        urls = []
        for index in range(count):
            boxes = None
            box_space = None
            if job.bbox_list:
                # Boxes of the last image that has any, drawn in its coordinate space.
                for img, bxs in reversed(list(zip(job.images, job.bbox_list))):
                    if bxs:
                        boxes, box_space = bxs, (img.width, img.height)
                        break
            spec = ResultSpec(token=uuid.uuid4().hex, digest=digest, index=index, width=job.out_size[0],
                              height=job.out_size[1], created=now, expires=now + self.settings.result_ttl,
                              request_id=request_id, thumbnail=thumb, boxes=boxes, box_space=box_space)
            self.results[spec.token] = spec
            if not self._closed:
                self._rendered[spec.token] = self._renderer.submit(self._render, spec)
            while len(self._rendered) > 64:
                self._rendered.popitem(last=False)
            urls.append(self._url(spec))
        self.images_billed += count
        return urls

    def _url(self, spec: ResultSpec) -> str:
        expires = int(spec.expires)
        sig = hmac.new(self._secret, f"{spec.token}:{expires}".encode(), "sha256").hexdigest()[:24]
        return f"{self.results_base}/results/{spec.token}.png?Expires={expires}&OSSAccessKeyId=emulator&Signature={sig}"

    @staticmethod
    def _usage(job: Job, count: int) -> dict[str, Any]:
        input_tokens = 10 * len(job.prompt) + 1000 * len(job.images)
        # With no picture (yet) the page's frames say "size":"0*0" (seed 000 line 742).
        size = f"{job.out_size[0]}*{job.out_size[1]}" if count else "0*0"
        return {"image_count": count, "size": size,
                "input_tokens": input_tokens, "output_tokens": 2 * count, "total_tokens": input_tokens + 2 * count}

    def interleave_texts(self, job: Job, count: int) -> list[str]:
        subject = job.prompt.strip().rstrip(".")
        if count == 0:   # ASSUMPTIONS["no_pictures"]: the text alone
            return [f"{subject}: the emulator answers this one in words alone, with no picture."]
        return [f"Step {i + 1} of {count}: {subject}. This part shows stage {i + 1} in detail, "
                f"with the emulator's picture {i + 1} below." for i in range(count)]

    def multimodal_output(self, job: Job, digest: str, request_id: str,
                          fault: Fault | None) -> tuple[dict[str, Any], dict[str, Any]]:
        with self.lock:
            count = self._count(job, fault)
            urls = self._make_results(job, digest, request_id, count)
        content: list[dict[str, Any]] = []
        if job.kind == "interleave":
            for i, text in enumerate(self.interleave_texts(job, count)):
                content.append({"type": "text", "text": text})
                content += [{"type": "image", "image": url} for url in urls[i:i + 1]]
        else:
            content = [{"type": "image", "image": url} for url in urls]
        output = {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                  "finished": True}
        return output, self._usage(job, count)

    def synthesis_output(self, job: Job, digest: str, request_id: str,
                         fault: Fault | None) -> tuple[dict[str, Any], dict[str, Any]]:
        failed = 0
        if fault is not None and fault.kind == "partial_failure":
            failed = min(fault.failed, job.count)
        if fault is not None and fault.kind == "results_all_failed":
            failed = job.count
        ok = job.count - failed
        with self.lock:
            urls = self._make_results(job, digest, request_id, ok)
        extend = job.parameters.get("prompt_extend", True)
        results: list[dict[str, Any]] = []
        for url in urls:
            item = {"url": url, "orig_prompt": job.prompt}
            if extend:
                item["actual_prompt"] = f"{job.prompt.strip()} Rewritten by the emulator: natural light, fine detail."
            results.append(item)
        for _ in range(failed):
            results.append({"code": fault.code if fault else "InternalError",  # type: ignore[union-attr]
                            "message": fault.message if fault else ""})  # type: ignore[union-attr]
        output = {"results": results, "task_metrics": {"TOTAL": job.count, "SUCCEEDED": ok, "FAILED": failed}}
        return output, {"image_count": ok}

    def stream_frames(self, job: Job, digest: str, request_id: str,
                      fault: Fault | None) -> list[dict[str, Any]]:
        """The SSE data objects, in order; each carries only what is new. The last is finished."""
        output, usage = self.multimodal_output(job, digest, request_id, fault)
        items = output["choices"][0]["message"]["content"]
        pieces: list[dict[str, Any]] = []
        for item in items:
            if item["type"] == "text":
                words = item["text"].split(" ")
                for i, word in enumerate(words):
                    pieces.append({"type": "text", "text": word + (" " if i < len(words) - 1 else "")})
            else:
                pieces.append(item)
        frames = []
        images_so_far = 0
        tokens = 0
        base_in = usage["input_tokens"]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            images_so_far += piece["type"] == "image"
            tokens += 1
            frames.append({
                "output": {"choices": [{"finish_reason": "stop" if last else "null",
                                        "message": {"role": "assistant", "content": [piece]}}],
                           "finished": last},
                "usage": {"input_tokens": base_in, "output_tokens": tokens, "total_tokens": base_in + tokens,
                          "image_count": images_so_far,
                          "size": usage["size"] if images_so_far else "0*0"},
                "request_id": request_id,
            })
        return frames

    def unbill(self, request_id: str, keep: int) -> None:
        """A generation that failed part way: only the first `keep` pictures were made (and are billed).
        ASSUMPTIONS["stream_error_rest"]"""
        with self.lock:
            specs = sorted((r for r in self.results.values() if r.request_id == request_id), key=lambda r: r.index)
            for spec in specs[keep:]:
                del self.results[spec.token]
                self.images_billed -= 1

    # ---- hosted results ------------------------------------------------------------------------------------

    def result_png(self, token: str, expires: str | None, signature: str | None) -> bytes:
        with self.lock:
            spec = self.results.get(token)
            if spec is None:
                raise ServiceError(404, "NoSuchKey", "The specified key does not exist.")
            want = hmac.new(self._secret, f"{token}:{expires}".encode(), "sha256").hexdigest()[:24]
            if not signature or not hmac.compare_digest(want, signature):
                raise ServiceError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
            if self.now() > spec.expires:
                raise ServiceError(403, "AccessDenied", "Request has expired.")
            spec.downloads += 1
        with self.lock:
            future = self._rendered.get(token)
        if future is not None:
            return future.result()
        return self._render(spec)

    def _render(self, spec: ResultSpec) -> bytes:
        width, height = spec.width, spec.height
        cap = self.settings.render_max_side
        if cap and max(width, height) > cap:
            scale = cap / max(width, height)
            width, height = max(16, int(width * scale)), max(16, int(height * scale))
        return render_result(spec.digest, spec.index, width, height, thumbnail=spec.thumbnail, boxes=spec.boxes,
                             box_space=spec.box_space, label=f"request_id={spec.request_id}")
