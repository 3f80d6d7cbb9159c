"""The emulator's HTTP side: DashScope's endpoints on one loopback port, its result host on another.

Two listeners, because the real results live on another host (OSS): a client that leaked its
Authorization header to result downloads would show it in `backend.downloads`.

Routes (under /api/v1, and under /proxy/wan/api/v1 as ComfyUI's own API nodes address it):
  POST /services/aigc/multimodal-generation/generation   sync JSON, or SSE with X-DashScope-Sse: enable
  POST /services/aigc/image-generation/generation        async task (X-DashScope-Async: enable required)
  POST /services/aigc/image2image/image-synthesis        wan2.5 async task
  GET  /tasks/{task_id}        POST /tasks/{task_id}/cancel
Control (for tests and scripts), under /__emulator__/: GET state, GET requests, GET assumptions (what no
vendor page settles, assumptions.py), POST faults, DELETE faults, POST config, POST clock {"advance": s},
POST reset.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import uuid
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .assumptions import table as assumptions_table
from .backend import FAULT_KINDS, Backend, Fault, Settings, error_body, odd_status_body, request_digest, unknown_body
from .rules import ServiceError, bad, validate_multimodal, validate_synthesis

API_PREFIXES = ("/api/v1", "/proxy/wan/api/v1")
SYNC = "/services/aigc/multimodal-generation/generation"
ASYNC = "/services/aigc/image-generation/generation"
SYNTHESIS = "/services/aigc/image2image/image-synthesis"


class _Aborted(Exception):
    """The handler cut the connection on purpose (a fault); nothing more is written."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as production front ends commonly set it (nginx's tcp_nodelay is on by default): without it
    # an answer's headers and body, written apart, waited for the client's delayed ACK whenever the answer came
    # after a pause (a service time): ~40 ms measured here on a sync answer, a delay of this emulator's making.
    disable_nagle_algorithm = True
    server: "_Server"

    # quiet: the request log lives in the backend
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    @property
    def backend(self) -> Backend:
        return self.server.backend

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _Aborted:
            self.close_connection = True
        except (ConnectionError, BrokenPipeError, TimeoutError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ---- plumbing ----------------------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, err: ServiceError, request_id: str) -> None:
        headers = {"Retry-After": f"{err.retry_after:g}"} if err.retry_after is not None else None
        self._send_json(err.status, {"request_id": request_id, "code": err.code, "message": err.message}, headers)

    def _reset(self) -> None:
        """Cut the connection with a TCP reset, as a crashed proxy or a dropped link would."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        for f in (self.wfile, self.rfile):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.connection.close()
        except OSError:
            pass
        raise _Aborted()

    # ---- routing -----------------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        self.via_proxy = False  # one handler serves every request of a kept-alive connection
        parts = urlsplit(self.path)
        path = parts.path
        if self.server.role == "results":
            return self._results(method, path, parse_qs(parts.query))
        if path.startswith("/__emulator__/"):
            return self._control(method, path[len("/__emulator__/"):])
        for prefix in API_PREFIXES:
            if path.startswith(prefix + "/"):
                path = path[len(prefix):]
                # ComfyUI's own API nodes go through api.comfy.org's proxy, which holds the DashScope key
                # and authenticates the ComfyUI user its own way: here, any caller is let through.
                self.via_proxy = prefix != API_PREFIXES[0]
                break
        else:
            return self._send_json(404, {"code": "NotFound", "message": f"no route {path}"})
        request_id = str(uuid.uuid4())
        try:
            if method == "POST" and path in (SYNC, ASYNC, SYNTHESIS):
                return self._create(path, request_id)
            if path.startswith("/tasks/"):
                rest = path[len("/tasks/"):]
                if method == "GET" and "/" not in rest:
                    return self._query(rest, request_id)
                if method == "POST" and rest.endswith("/cancel"):
                    return self._cancel(rest[:-len("/cancel")], request_id)
            self._send_json(404, {"request_id": request_id, "code": "NotFound", "message": f"no route {path}"})
        except ServiceError as err:
            self._send_error(err, request_id)

    def _entry(self, kind: str, request_id: str, body: Any = None) -> dict[str, Any]:
        auth = self.headers.get("Authorization")
        return self.backend.record({
            "kind": kind, "method": self.command, "path": self.path, "request_id": request_id,
            "authorized": bool(auth),
            "headers": {k: v for k, v in self.headers.items() if k.lower() != "authorization"},
            "body": body,
        })

    def _auth(self) -> None:
        if not getattr(self, "via_proxy", False):
            self.backend.check_auth(self.headers.get("Authorization"))

    def _fault_reply(self, fault: Fault | None, request_id: str) -> bool:
        if fault is not None and fault.kind == "http":
            self._send_error(ServiceError(fault.status, fault.code, fault.message, fault.retry_after), request_id)
            return True
        return False

    # ---- generation --------------------------------------------------------------------------------------

    def _create(self, path: str, request_id: str) -> None:
        backend = self.backend
        early = backend.peek_fault("create", {"reset_before_body"})
        if early is not None:
            self._reset()
        raw = self._body()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        stream = path == SYNC and (
            self.headers.get("X-DashScope-Sse", "").lower() == "enable"
            or (isinstance(body, dict) and (body.get("parameters") or {}).get("stream") is True))
        kind = {SYNC: "stream" if stream else "sync", ASYNC: "async", SYNTHESIS: "synthesis"}[path]
        entry = self._entry(kind, request_id, body)
        self._auth()
        if not isinstance(body, dict):
            raise bad("The request body is not valid JSON")
        model = body.get("model")
        # stream_as_json waits for a stream request; every other kind takes the next creation.
        kinds = None if stream else FAULT_KINDS - {"stream_as_json"}
        fault = backend.take_fault("create", model if isinstance(model, str) else None, kinds)
        if self._fault_reply(fault, request_id):
            entry["fault"] = fault.kind  # type: ignore[union-attr]
            return
        # (api.comfy.org's proxy adds the async header itself; its callers do not send it.)
        if path in (ASYNC, SYNTHESIS) and not self.via_proxy and \
                self.headers.get("X-DashScope-Async", "").lower() != "enable":
            # ASSUMPTIONS["missing_async_header"]
            raise ServiceError(403, "AccessDenied", "current user api does not support synchronous calls")
        fetch = self.server.fetch_url
        job = validate_synthesis(body, fetch_url=fetch) if path == SYNTHESIS else validate_multimodal(body, fetch_url=fetch)
        if job.kind == "interleave" and path == SYNC and not stream:  # ASSUMPTIONS["interleave_needs_stream"]
            raise bad("The interleaved text-and-image output (enable_interleave=true) only supports streaming "
                      "output; set the header X-DashScope-Sse: enable")
        as_json = stream and fault is not None and fault.kind == "stream_as_json"
        if stream and job.kind != "interleave" and not as_json:
            # ASSUMPTIONS["stream_undocumented"], wording: ASSUMPTIONS["stream_refusal_message"].
            raise bad(f"The model {job.model} does not support streaming output for this request "
                      "(X-DashScope-Sse: enable is documented for enable_interleave=true only)")
        if as_json:
            stream = False  # answered below exactly as a sync request: 200, application/json
            entry["answered_as"] = "sync"
        digest = request_digest(body)
        entry.update(digest=digest, images=job.images, job_kind=job.kind, prompt_truncated=job.prompt_truncated)
        backend.accept(digest)
        entry["billable"] = True
        if fault is not None:
            entry["fault"] = fault.kind
        if path in (ASYNC, SYNTHESIS):
            task = backend.create_task("synthesis" if path == SYNTHESIS else "multimodal", job, digest,
                                       request_id, fault)
            entry["task_id"] = task.task_id
            if fault is not None and fault.kind == "reset_after_body":
                entry["task_id_lost"] = True  # the task runs and bills; its id never reached the client
                self._reset()
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            return self._send_json(200, {"request_id": request_id,
                                         "output": {"task_id": task.task_id, "task_status": "PENDING"}})
        if fault is not None and fault.kind == "reset_after_body":
            # The service goes on generating (and billing) after the client is gone.
            backend.multimodal_output(job, digest, request_id, fault)
            entry["images_announced"] = 0
            self._reset()
        settings = backend.settings
        if stream:
            return self._stream(job, digest, request_id, fault, settings.queue_time, settings.service_time, entry)
        # The pictures are made during the service time (and stored before the answer), as the service does.
        output, usage = backend.multimodal_output(job, digest, request_id, fault)
        time.sleep(settings.queue_time + settings.service_time + (fault.delay if fault and fault.kind == "slow" else 0))
        entry["images_announced"] = usage["image_count"]
        self._send_json(200, {"output": output, "usage": usage, "request_id": request_id})

    def _stream(self, job: Any, digest: str, request_id: str, fault: Fault | None, queue: float,
                service: float, entry: dict[str, Any]) -> None:
        frames = self.backend.stream_frames(job, digest, request_id, fault)
        entry["images_announced"] = 0
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream;charset=UTF-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()
        started = time.monotonic()
        step = service / max(len(frames), 1)
        half = len(frames) // 2
        for i, frame in enumerate(frames, 1):
            if fault is not None and i == half + 1:
                if fault.kind == "stream_cut":
                    self._reset()
                if fault.kind == "stream_error":
                    self.backend.unbill(request_id, keep=entry["images_announced"])
                    err = {"code": fault.code, "message": fault.message, "request_id": request_id}
                    self._chunk(f"id:{i}\nevent:error\n:HTTP_STATUS/{fault.status}\ndata:"
                                f"{json.dumps(err, ensure_ascii=False)}\n\n")
                    return self._end_chunks()
                if fault.kind == "stream_stall":
                    time.sleep(fault.delay)
                    started += fault.delay
            # Frame i leaves at queue + i steps from the start, not after i more sleeps: the stream ends at
            # its service time, as a sync answer does, however many frames it has.
            time.sleep(max(0.0, started + queue + i * step - time.monotonic()))
            self._chunk(f"id:{i}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(frame, ensure_ascii=False)}\n\n")
            # What the client has been told about: URLs it could fetch even if the stream broke now.
            entry["images_announced"] += sum(1 for c in frame["output"]["choices"][0]["message"]["content"]
                                             if c.get("type") == "image")
        self._end_chunks()

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ---- tasks -------------------------------------------------------------------------------------------

    def _query(self, task_id: str, request_id: str) -> None:
        self._entry("query", request_id, {"task_id": task_id})
        self._auth()
        fault = self.backend.take_fault("query")
        if fault is not None:
            if fault.kind in ("reset_before_body", "reset_after_body"):
                self._reset()
            if fault.kind == "slow":
                time.sleep(fault.delay)
            if self._fault_reply(fault, request_id):
                return
            # Armed on "query": this one answer takes the odd form (armed on "create", the task keeps it).
            if fault.kind == "task_error_body":
                return self._send_json(int(fault.status or 200), error_body(request_id, fault))
            if fault.kind == "task_status":
                return self._send_json(200, odd_status_body(task_id, request_id, fault.task_status, ""))
            if fault.kind == "task_unknown":
                return self._send_json(200, unknown_body(task_id, request_id))
        status, payload = self.backend.task_answer(task_id, request_id)
        self._send_json(status, payload)

    def _cancel(self, task_id: str, request_id: str) -> None:
        self._body()
        self._entry("cancel", request_id, {"task_id": task_id})
        self._auth()
        fault = self.backend.take_fault("cancel")
        if self._fault_reply(fault, request_id):
            return
        self.backend.cancel(task_id)
        self._send_json(200, {"request_id": request_id, "output": {"task_id": task_id, "task_status": "CANCELED"}})

    # ---- the result host -----------------------------------------------------------------------------------

    def _results(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        self.backend.downloads.append({"path": path, "authorization": self.headers.get("Authorization"),
                                       "time": self.backend.now()})
        if method != "GET" or not path.startswith("/results/") or not path.endswith(".png"):
            return self._xml_error(404, "NoSuchKey", "The specified key does not exist.")
        fault = self.backend.take_fault("download")
        if fault is not None:
            if fault.kind in ("reset_before_body", "reset_after_body"):
                self._reset()
            if fault.kind == "slow":
                time.sleep(fault.delay)
            if fault.kind == "http":
                return self._xml_error(fault.status, fault.code, fault.message)
        token = path[len("/results/"):-len(".png")]
        try:
            png = self.backend.result_png(token, (query.get("Expires") or [None])[0],
                                          (query.get("Signature") or [None])[0])
        except ServiceError as err:
            return self._xml_error(err.status, err.code, err.message)
        if fault is not None and fault.kind == "damaged_body":
            middle = len(png) // 2
            png = png[:middle] + bytes(min(4096, len(png) - middle)) + png[middle + 4096:]
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(png)))
        self.end_headers()
        self.wfile.write(png)

    def _xml_error(self, status: int, code: str, message: str) -> None:
        data = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                f"</Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # ---- control -------------------------------------------------------------------------------------------

    def _control(self, method: str, what: str) -> None:
        backend = self.backend
        raw = self._body() if method in ("POST", "DELETE") else b""
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            return self._send_json(400, {"error": "body is not JSON"})
        try:
            if method == "GET" and what == "state":
                return self._send_json(200, {**backend.stats(), "settings": asdict(backend.settings)})
            if method == "GET" and what == "assumptions":
                return self._send_json(200, assumptions_table())
            if method == "GET" and what == "requests":
                return self._send_json(200, [_public_entry(e) for e in backend.log])
            if method == "POST" and what == "faults":
                faults = payload if isinstance(payload, list) else [payload]
                added = [asdict(backend.add_fault(f)) for f in faults]
                return self._send_json(200, {"added": added})
            if method == "DELETE" and what == "faults":
                with backend.lock:
                    backend.faults.clear()
                return self._send_json(200, {"faults": []})
            if method == "POST" and what == "config":
                backend.configure(**payload)
                return self._send_json(200, asdict(backend.settings))
            if method == "POST" and what == "clock":
                backend.advance(float(payload.get("advance", 0)))
                return self._send_json(200, {"now": backend.now()})
            if method == "POST" and what == "reset":
                backend.reset()
                return self._send_json(200, {"reset": True})
        except (TypeError, ValueError) as exc:
            return self._send_json(400, {"error": str(exc)})
        self._send_json(404, {"error": f"no control route {method} {what}"})


def _public_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A log entry as JSON: pictures as their size and format, not their bytes."""
    out = {k: v for k, v in entry.items() if k not in ("images", "body")}
    body = entry.get("body")
    out["body"] = _shorten(body)
    if entry.get("images"):
        out["images"] = [{"width": i.width, "height": i.height, "format": i.format, "bytes": i.nbytes}
                         for i in entry["images"]]
    return out


def _shorten(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v) for v in value]
    if isinstance(value, str) and value.startswith("data:") and len(value) > 80:
        return value[:40] + f"...<{len(value)} chars>"
    return value


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], backend: Backend, role: str) -> None:
        self.backend = backend
        self.role = role
        self.fetch_url = None
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that go away mid-answer (timeouts, interrupts) are normal here; anything else is printed.
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, BrokenPipeError, TimeoutError, _Aborted, ValueError)):
            return
        super().handle_error(request, client_address)


class EmulatorServer:
    """Both listeners and their shared backend. `with EmulatorServer() as emu: emu.base_url ...`"""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, results_port: int = 0,
                 settings: Settings | None = None) -> None:
        self.backend = Backend(settings)
        self.api = _Server((host, port), self.backend, "api")
        self.results = _Server((host, results_port), self.backend, "results")
        self.backend.results_base = f"http://{host}:{self.results.server_address[1]}"
        self.api.fetch_url = self._fetch_loopback
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        return str(self.api.server_address[0])

    @property
    def port(self) -> int:
        return int(self.api.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/v1"

    def _fetch_loopback(self, url: str) -> bytes:
        """Input pictures given as URLs: the emulator is offline, so only its own results can be fetched."""
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1") or not parts.path.startswith("/results/"):
            raise bad("Download the media resource timed out during the data inspection process "
                      "(the emulator is offline and can only fetch its own result URLs)")
        query = parse_qs(parts.query)
        token = parts.path[len("/results/"):-len(".png")]
        return self.backend.result_png(token, (query.get("Expires") or [None])[0],
                                       (query.get("Signature") or [None])[0])

    def start(self) -> "EmulatorServer":
        for server in (self.api, self.results):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                                      name=f"wan-emulator-{server.role}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self.api, self.results):
            server.shutdown()
            server.server_close()
        self.backend.close()

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
