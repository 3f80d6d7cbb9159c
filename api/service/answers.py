"""Reading the service's answers: both body formats, task states, every shape of a failure, SSE frames.

Bodies: the multimodal models answer with `output.choices[].message.content[]` (text and image items);
wan2.5-i2i-preview answers with `output.results[]` (`url`, or `code`/`message` for a picture that failed).

A task that produced nothing ENDS (`TaskEnded`), whatever shape the service gives it:
  * `output.task_status: "FAILED"` with `output.code`/`output.message` (wan-api-reference.md, "Errors":
    "Task failures come back as HTTP 200 on the task query, with task_status: FAILED");
  * a 200 answer with a top-level `code`/`message` and no `output.task_status` (seed 001, the wan2.7 page,
    任务执行异常: `{"request_id": ..., "code": "InvalidParameter", "message": "num_images_per_prompt must be 1"}`);
  * wan2.5: SUCCEEDED, but every entry of `results` carries `code`/`message` instead of `url`
    (reference, "Partial failure": a failed entry has code and message instead of url).
A partial result (some wan2.5 pictures failed) is a result: the pictures are kept, `failures` lists the rest.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import StreamCutError, WanAPIError, WanConnectionError, api_error
from ..money.billing import NOT_BILLED, made, maybe
from ..request.build import WanRequest
from ..request.models import IMAGE_SYNTHESIS, STREAM
from ..result import Emitter, WanResult
from .sse import SSEEvent

# Task states the reference names ("PENDING → RUNNING → SUCCEEDED | FAILED, also CANCELED, and UNKNOWN for
# a task that does not exist or has expired").
PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED, UNKNOWN = "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"
KNOWN_STATES = frozenset({PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED, UNKNOWN})
# "task_id and result URLs live 24 hours" (wan-api-reference.md, Endpoints).
TASK_LIFETIME_S = 24 * 3600.0


def json_object(response: Any, endpoint: str) -> dict[str, Any]:
    """A response's JSON body, which must be an object; anything else is reported as the service's fault."""
    try:
        data = response.json()
    except ValueError:
        raise WanConnectionError(f"the service answered HTTP {response.status_code} with something that is not "
                                 "JSON", endpoint=endpoint) from None
    if not isinstance(data, dict):
        raise WanConnectionError("the service answered with unexpected JSON", endpoint=endpoint)
    return data


def content_of(output: dict[str, Any]) -> list[dict[str, Any]]:
    """The text and image items of a multimodal answer, in order."""
    items: list[dict[str, Any]] = []
    choices = output.get("choices")
    for choice in choices if isinstance(choices, list) else []:
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        for item in content if isinstance(content, list) else []:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("image"), str) and item["image"]:
                items.append({"type": "image", "url": item["image"]})
            elif isinstance(item.get("text"), str) and item.get("type", "text") == "text":
                items.append({"type": "text", "text": item["text"]})
    return items


def _output(data: dict[str, Any]) -> dict[str, Any]:
    output = data.get("output")
    return output if isinstance(output, dict) else {}


def request_id_of(data: dict[str, Any]) -> str | None:
    # The SDK's Java example writes requestId; the HTTP API writes request_id.
    return data.get("request_id") or data.get("requestId")


# ---- sync answers ------------------------------------------------------------------------------------------

def sync_result(req: WanRequest, data: dict[str, Any], transport: str, endpoint: str, status: int) -> WanResult:
    """A sync generation's answer (also a stream request answered with plain JSON)."""
    if data.get("code"):
        error = api_error(data.get("code"), data.get("message"), status=status, request_id=request_id_of(data),
                          endpoint=endpoint)
        error.billing = NOT_BILLED   # the service's own error answer
        raise error
    result = WanResult(model=req.model, mode=req.mode, transport=transport, images=[],
                       content=content_of(_output(data)), request_id=request_id_of(data),
                       usage=data.get("usage") or {})
    result.billing = made(result.images_billed)
    return result


# ---- tasks ------------------------------------------------------------------------------------------------

def task_status(data: dict[str, Any]) -> str | None:
    """The task's state; FAILED for the top-level code/message form; None for an answer that says neither."""
    status = _output(data).get("task_status")
    if status:
        return str(status)
    if data.get("code"):
        return FAILED
    return None


def task_failure(data: dict[str, Any], task_id: str, endpoint: str) -> WanAPIError:
    """The service's own code and message for a FAILED task, in either shape. Failed generations are not
    billed (wan-api-reference.md: "Billing is per successfully generated image")."""
    output = _output(data)
    error = api_error(output.get("code") or data.get("code"), output.get("message") or data.get("message"),
                      status=200, request_id=request_id_of(data), task_id=task_id, endpoint=endpoint,
                      task_failed=True)
    error.billing = NOT_BILLED
    return error


def task_result(req: WanRequest, data: dict[str, Any], task_id: str, transport: str, endpoint: str) -> WanResult:
    """A SUCCEEDED task's answer. Raises (task_failed) when not one picture came of it."""
    output = _output(data)
    result = WanResult(model=req.model, mode=req.mode, transport=transport, images=[], content=[],
                       request_id=request_id_of(data), task_id=task_id, usage=data.get("usage") or {})
    if req.protocol != IMAGE_SYNTHESIS:
        result.content = content_of(output)
        result.billing = made(result.images_billed)
        return result
    for index, item in enumerate(output.get("results") or []):
        if item.get("url"):
            result.content.append({"type": "image", "url": item["url"]})
            if item.get("actual_prompt"):
                result.actual_prompts.append(item["actual_prompt"])
        else:
            result.failures.append({"index": index, "code": item.get("code"), "message": item.get("message")})
    if not result.urls and result.failures:
        first = result.failures[0]
        error = api_error(first["code"], first["message"], status=200, request_id=result.request_id,
                          task_id=task_id, endpoint=endpoint, task_failed=True)
        error.billing = NOT_BILLED   # every picture failed: none is billed
        raise error
    result.billing = made(result.images_billed)
    return result


# ---- streams ----------------------------------------------------------------------------------------------

class StreamAssembler:
    """SSE frames -> one WanResult. Each frame carries only what is new: text to append, or a finished image."""

    def __init__(self, req: WanRequest, endpoint: str, emit: Emitter,
                 on_picture: Callable[[WanResult], None] | None = None) -> None:
        self.result = WanResult(model=req.model, mode=req.mode, transport=STREAM, images=[], content=[])
        self.endpoint = endpoint
        self.emit = emit
        self.on_picture = on_picture
        self.finished = False

    def take(self, event: SSEEvent) -> None:
        result = self.result
        try:
            data = event.json() or {}
        except ValueError:
            raise self.cut("a stream frame was not valid JSON") from None
        if not isinstance(data, dict):
            # The service's data, not our bug: keep what arrived (paid) and report the frame.
            raise self.cut(f"a stream frame was not a JSON object ({type(data).__name__})")
        result.request_id = request_id_of(data) or result.request_id
        if event.event == "error" or (event.status is not None and event.status >= 400) or data.get("code"):
            error = api_error(data.get("code"), data.get("message"), status=event.status,
                              request_id=result.request_id, endpoint=self.endpoint)
            # Pictures that arrived before the error were generated, and are billed: keep them with the error.
            # (What the service would have made after the error it did not make: ASSUMPTIONS["stream_error_rest"] in api/emulator/assumptions.py.)
            error.partial = result
            error.billing = made(result.images_billed, "an error frame ended the stream")
            raise error
        if isinstance(data.get("usage"), dict):
            result.usage = data["usage"]
        output = _output(data)
        for item in content_of(output):
            if item["type"] == "text":
                last = result.content[-1] if result.content else None
                if last and last["type"] == "text":
                    last["text"] += item["text"]
                else:
                    result.content.append(dict(item))
                self.emit("text", text=item["text"])
            else:
                result.content.append(dict(item))
                self.emit("image", images_done=len(result.urls))
                if self.on_picture is not None:
                    self.on_picture(result)   # written down the moment a frame says a picture was made
        self.finished = self.finished or bool(output.get("finished"))
        if self.finished:
            result.billing = made(result.images_billed)

    def cut(self, why: str) -> StreamCutError:
        r = self.result
        error = StreamCutError(f"{why}; {len(r.urls)} image(s) and {len(r.text)} characters of text had arrived",
                               partial=r, maybe_billed=True, request_id=r.request_id, endpoint=self.endpoint)
        # What arrived was made; the service may have gone on making (and billing) the rest.
        error.billing = maybe("the stream stopped before its final frame", pictures=r.images_billed)
        return error
