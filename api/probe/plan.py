"""The probe's calls: which ones, for which models, and how one side (the real endpoint, or the reference
emulator) is asked. Each call is the client's own (api/service/calls.py), sent once through the client's transport,
its stream read with the client's SSE reader; its answer is kept as it came (compare.Answer).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import requests

from ..money.pricing import unit_price
from ..request.build import WanRequest, build_request
from ..request.models import ASYNC, EDIT, INTERLEAVE, MODELS, STREAM, TEXT_TO_IMAGE, ModeSpec
from ..service.answers import CANCELED, FAILED, SUCCEEDED, UNKNOWN, task_status
from ..service.calls import (
    NETWORK_ERRORS, Call, cancel_call, create_call, media_type, query_call, reader, send_once, stream_call,
    sync_call,
)
from ..service.sse import events
from ..service.transport import Transport
from .compare import Answer, Answers

WRONG_KEY = "sk-wan-probe-not-a-real-key-0000"
TERMINAL = (SUCCEEDED, FAILED, CANCELED, UNKNOWN)


@dataclass
class Side:
    """One end the probe asks, the real endpoint or the reference emulator, through the client's transport."""

    transport: Transport
    poll: float = 2.0
    max_wait: float = 600.0

    def ask(self, call: Call, headers: dict[str, str | None] | None = None) -> Answer:
        try:
            response = send_once(self.transport, call, headers)
            with response:
                return read_answer(response)
        except NETWORK_ERRORS as exc:
            return Answer(0, "", note=f"no answer: {type(exc).__name__}")

    def download(self, url: str) -> Answer:
        try:  # result hosts never get the key (as api/service/download.py: a session without it)
            r = requests.get(url, timeout=self.transport.timeouts.sync_read)
        except requests.RequestException as exc:
            return Answer(0, "", note=f"no answer: {type(exc).__name__}")
        return Answer(r.status_code, media_type(r))


def read_answer(r: requests.Response) -> Answer:
    media = media_type(r)
    if media == "text/event-stream":
        frames = []
        for e in events(reader(r)):
            try:
                data = e.json()
            except ValueError:
                data = e.data
            frames.append({"event": e.event, "http_status": e.status, "data": data})
        return Answer(r.status_code, media, frames=frames)
    try:
        body = r.json()
    except ValueError:
        body = None
    return Answer(r.status_code, media, body=body)


@dataclass
class Probe:
    name: str
    model: str | None
    max_pictures: int                       # the most it can bill
    run: Callable[[Side], Answers]
    waiting: frozenset[str] = frozenset()   # answer names that are a first query (PENDING or RUNNING)


def _request(model: str, mode: str) -> WanRequest:
    """The cheapest request the pack itself would send: n = 1, the smallest size, a small input picture."""
    m: ModeSpec = MODELS[model].modes[mode]
    side = int(round(m.area[0] ** 0.5))
    images = []
    if m.images[0] > 0:
        images = [_input_picture(model)]
    params: dict[str, Any] = {"n": 1, "size": f"{side}*{side}", "seed": 1}
    if mode == INTERLEAVE:
        params["max_images"] = 1
    if mode == TEXT_TO_IMAGE and "thinking_mode" in m.params:
        params["thinking_mode"] = False  # faster; the same price
    return build_request(model, "a small red lighthouse on a rock, flat colours", images, mode=mode, **params)


def _input_picture(model: str):
    import numpy as np

    from ..request.encoding import encode_image

    spec = MODELS[model]
    side = max(spec.image.min_side, 384)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    picture = np.stack([x, y, 0.5 + 0.0 * x], axis=-1)
    return encode_image(picture, spec.image, fmt="png")


def _first_url(answer: Answer) -> str | None:
    def walk(value: Any) -> str | None:
        if isinstance(value, dict):
            for key in ("image", "url"):
                if isinstance(value.get(key), str) and value[key].startswith("http"):
                    return value[key]
            for v in value.values():
                found = walk(v)
                if found:
                    return found
        if isinstance(value, list):
            for v in value:
                found = walk(v)
                if found:
                    return found
        return None
    return walk(answer.frames if answer.frames is not None else answer.body)


def _task_id(answer: Answer) -> str | None:
    body = answer.body if isinstance(answer.body, dict) else {}
    return (body.get("output") or {}).get("task_id")


def _status(answer: Answer) -> str | None:
    return task_status(answer.body) if isinstance(answer.body, dict) else None


def _wait(side: Side, task_id: str, out: Answers) -> Answer:
    started = time.monotonic()
    first = True
    while True:
        answer = side.ask(query_call(task_id))
        if first:
            if _status(answer) not in TERMINAL:
                out["query (waiting)"] = answer
            first = False
        if _status(answer) in TERMINAL or answer.status != 200 or time.monotonic() - started > side.max_wait:
            return answer
        time.sleep(side.poll)


def generation(model: str, mode: str, transport: str) -> Callable[[Side], Answers]:
    def run(side: Side) -> Answers:
        out: Answers = {}
        req = _request(model, mode)
        if transport == ASYNC:
            out["create"] = create = side.ask(create_call(req))
            task_id = _task_id(create)
            if not task_id:
                return out
            out["query (final)"] = final = _wait(side, task_id, out)
        elif transport == STREAM:
            out["stream"] = final = side.ask(stream_call(req))
        else:
            out["answer"] = final = side.ask(sync_call(req))
        url = _first_url(final)
        if url:
            out["result download"] = side.download(url)
        return out
    return run


def cancel_queued(model: str, mode: str) -> Callable[[Side], Answers]:
    def run(side: Side) -> Answers:
        out: Answers = {}
        out["create"] = create = side.ask(create_call(_request(model, mode)))
        task_id = _task_id(create)
        if not task_id:
            return out
        out["cancel"] = side.ask(cancel_call(task_id))
        out["query after cancel"] = after = side.ask(query_call(task_id))
        if _status(after) not in TERMINAL:  # too late to cancel: it will be billed; see it through to count it
            out["(too late: the task ran)"] = _wait(side, task_id, {})
        return out
    return run


def unknown_task(side: Side) -> Answers:
    return {"query": side.ask(query_call(str(uuid.uuid4())))}


def wrong_key(model: str, mode: str) -> Callable[[Side], Answers]:
    def run(side: Side) -> Answers:
        create = create_call(_request(model, mode))
        wrong = {"Authorization": f"Bearer {WRONG_KEY}"}
        return {
            "create, wrong key": side.ask(create, wrong),
            "create, no key": side.ask(create, {"Authorization": None}),
            "task query, wrong key": side.ask(query_call(str(uuid.uuid4())), wrong),
        }
    return run


def plan(models: list[str], region: str | None = None) -> list[Probe]:
    """The probes for the models the endpoint offers: one generation per model and documented transport,
    then the free calls, a cancel, and a stream where the vendor documents none."""
    probes: list[Probe] = []
    for model in models:
        spec = MODELS[model]
        done: set[str] = set()
        # The cheapest mode first: text-to-image (no upload), else editing; interleave only for its stream.
        for mode in sorted(spec.modes, key=lambda m: (m != TEXT_TO_IMAGE, m != EDIT, m)):
            for transport in spec.modes[mode].transports:
                if transport in done:
                    continue
                done.add(transport)
                probes.append(Probe(f"{model} {mode} {transport}", model, 1, generation(model, mode, transport),
                                    frozenset({"query (waiting)"})))
    cheap = _cheapest(models, region)
    if cheap:
        mode = _cheap_mode(cheap)
        probes.append(Probe(f"{cheap} cancel a queued task", cheap, 1, cancel_queued(cheap, mode)))
        probes.append(Probe("unknown task id", None, 0, unknown_task))
        probes.append(Probe("wrong key / no key", None, 0, wrong_key(cheap, mode)))
    # The emulator refuses a stream the pages do not document (emulator/assumptions.py, stream_undocumented):
    # is that what the service does? One picture if the service streams (or answers) it after all.
    for model in sorted(models, key=lambda m: m != cheap):
        mode = _cheap_mode(model)
        if MODELS[model].protocol != "image-synthesis" and STREAM not in MODELS[model].modes[mode].transports:
            probes.append(Probe(f"{model} {mode} stream (undocumented)", model, 1, generation(model, mode, STREAM)))
            break
    return probes


def _cheap_mode(model: str) -> str:
    return TEXT_TO_IMAGE if TEXT_TO_IMAGE in MODELS[model].modes else EDIT


def _cheapest(models: list[str], region: str | None) -> str | None:
    """The model with the lowest known price; without prices, the non-pro wan2.7 if offered."""
    priced = [(price[0], m) for m in models if (price := unit_price(m, region))]
    if priced:
        return min(priced)[1]
    for m in ("wan2.7-image", "wan2.6-image"):
        if m in models:
            return m
    return models[0] if models else None


def billed(answers: Answers) -> int:
    """Pictures the real service says it billed (usage.image_count of final answers and last frames)."""
    total = 0
    for name, answer in answers.items():
        if name in ("query (waiting)", "create", "cancel"):
            continue
        if answer.frames:
            data = answer.frames[-1].get("data")
            usage = data.get("usage") if isinstance(data, dict) else None
        else:
            usage = answer.body.get("usage") if isinstance(answer.body, dict) else None
        if isinstance(usage, dict) and isinstance(usage.get("image_count"), int):
            total += usage["image_count"]
    return total
