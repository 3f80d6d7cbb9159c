"""python -m api.probe: does the emulator still answer like the real DashScope? Ask both the same things.

For users and maintainers with a key. It runs the cheapest real calls per model and transport the user's
region offers (one picture at the smallest size; a task query; a cancel of a task still queued; an unknown
task id; a wrong key and no key; a stream where the vendor documents none), sends each same request to this
pack's emulator started in-process on loopback, and compares the SHAPES of the two answers (HTTP status,
content type, JSON keys and types, task statuses and error codes, SSE frames), never their values (ids,
URLs, texts). It prints one table, agree / differ, with both shapes for every difference, and what it cost.

Money: it prints the plan and its price first (api/pricing.py, WAN_PRICES) and spends nothing without
`--yes`. Without a key it explains itself and exits 0. It reads the key and the endpoint as the client does:
DASHSCOPE_API_KEY (or its file), DASHSCOPE_HTTP_BASE_URL, DASHSCOPE_REGION or --region. The key goes in the
Authorization header to the endpoint and nowhere else; no output or recording holds it.

`--record FILE` keeps the real answers (result URLs cut at the '?') to attach to a report; `--replay FILE`
compares recorded answers with the emulator offline, spending nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import requests

from .config import ENV_BASE_URL, REGION_LABELS, Endpoint, resolve_api_key, resolve_endpoint
from .errors import ConfigError, MissingApiKeyError, WanError
from .models import ASYNC, EDIT, INTERLEAVE, MODELS, STREAM, SYNC, TEXT_TO_IMAGE, ModeSpec
from .pricing import ENV_PRICES, unit_price
from .request import build_request
from .secrets import redact
from .sse import SSEParser

SYNC_PATH = "services/aigc/multimodal-generation/generation"
ASYNC_PATH = "services/aigc/image-generation/generation"
SYNTHESIS_PATH = "services/aigc/image2image/image-synthesis"
WRONG_KEY = "sk-wan-probe-not-a-real-key-0000"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN")
# Keys whose VALUE is part of the shape: statuses, error codes, item kinds. Everything else is compared by type.
VALUE_KEYS = {"task_status", "code", "type", "finish_reason", "finished"}


# ---- answers and their shapes ------------------------------------------------------------------------------

@dataclass
class Answer:
    """One HTTP answer as the probe saw it."""

    status: int
    content_type: str
    body: Any = None                      # parsed JSON, or None
    frames: list[dict[str, Any]] | None = None   # SSE: [{"event", "http_status", "data"}]
    note: str = ""                        # e.g. a connection error instead of an answer

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "content_type": self.content_type, "body": _scrub(self.body),
                "frames": _scrub(self.frames), "note": self.note}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Answer":
        return cls(int(data.get("status", 0)), str(data.get("content_type", "")), data.get("body"),
                   data.get("frames"), str(data.get("note", "")))


def _scrub(value: Any) -> Any:
    """Result URLs lose their query (signatures); nothing else in an answer is secret."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str) and value.startswith(("http://", "https://")) and "?" in value:
        return value.split("?", 1)[0] + "?…"
    return redact(value) if isinstance(value, str) else value


def shape(value: Any, key: str | None = None) -> Any:
    """The shape of a JSON value: types for values, the value itself for VALUE_KEYS, and for a list the
    sorted set of its items' shapes."""
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        distinct = {json.dumps(shape(v), sort_keys=True): shape(v) for v in value}
        return [distinct[k] for k in sorted(distinct)]
    if key in VALUE_KEYS and value is not None and not isinstance(value, (dict, list)):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    return "str"


def answer_shape(answer: Answer, *, waiting: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"http_status": answer.status, "content_type": answer.content_type}
    if answer.note:
        out["note"] = answer.note
    if answer.frames is not None:
        frames = [{"event": f.get("event"), "http_status": f.get("http_status"), "data": shape(f.get("data"))}
                  for f in answer.frames]
        distinct = {json.dumps(f, sort_keys=True): f for f in frames}
        out["sse_frames"] = [distinct[k] for k in sorted(distinct)]
        out["sse_last_frame"] = frames[-1] if frames else None
    elif answer.body is not None:
        body = shape(answer.body)
        if waiting:
            # A first query races the service's queue: PENDING and RUNNING are the same answer here.
            status = (body.get("output") or {}).get("task_status") if isinstance(body, dict) else None
            if status in ("PENDING", "RUNNING"):
                body["output"]["task_status"] = "PENDING or RUNNING"
        out["body"] = body
    return out


def differences(real: Any, emulator: Any, path: str = "") -> list[str]:
    """Where two shapes differ, in words (empty: they agree)."""
    where = path or "(answer)"
    if isinstance(real, dict) and isinstance(emulator, dict):
        found: list[str] = []
        for key in sorted(set(real) | set(emulator)):
            sub = f"{path}.{key}" if path else key
            if key not in emulator:
                found.append(f"only the real service has {sub} ({_brief(real[key])})")
            elif key not in real:
                found.append(f"only the emulator has {sub} ({_brief(emulator[key])})")
            else:
                found.extend(differences(real[key], emulator[key], sub))
        return found
    if isinstance(real, list) and isinstance(emulator, list):
        if real == emulator:
            return []
        if len(real) == len(emulator) == 1:
            return differences(real[0], emulator[0], path + "[]")
        return [f"{where}: the items differ: real {_brief(real)}, emulator {_brief(emulator)}"]
    if real != emulator:
        return [f"{where}: real {_brief(real)}, emulator {_brief(emulator)}"]
    return []


def _brief(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


# ---- one side: the real endpoint or the emulator ------------------------------------------------------------

@dataclass
class Side:
    base_url: str
    key: str | None
    poll: float = 2.0
    max_wait: float = 600.0
    timeout: float = 300.0

    def _headers(self, extra: dict[str, str] | None, key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **(extra or {})}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             *, key: str | None = "default", sse: bool = False) -> Answer:
        use_key = self.key if key == "default" else key
        try:
            r = requests.request(method, f"{self.base_url}/{path}", json=body, timeout=self.timeout,
                                 headers=self._headers(headers, use_key), stream=sse)
        except requests.RequestException as exc:
            return Answer(0, "", note=f"no answer: {type(exc).__name__}")
        return read_answer(r)

    def download(self, url: str) -> Answer:
        try:  # result hosts never get the key
            r = requests.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            return Answer(0, "", note=f"no answer: {type(exc).__name__}")
        return Answer(r.status_code, _media_type(r.headers.get("Content-Type")))


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def read_answer(r: requests.Response) -> Answer:
    media = _media_type(r.headers.get("Content-Type"))
    if media == "text/event-stream":
        parser = SSEParser()
        events = []
        for chunk in r.iter_content(8192):
            events.extend(parser.feed(chunk))
        events.extend(parser.finish())
        frames = []
        for e in events:
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


# ---- the probes -------------------------------------------------------------------------------------------------

Answers = dict[str, Answer]


@dataclass
class Probe:
    name: str
    model: str | None
    max_pictures: int                       # the most it can bill
    run: Callable[[Side], Answers]
    waiting: frozenset[str] = frozenset()   # answer names that are a first query (PENDING or RUNNING)


def _body(model: str, mode: str) -> dict[str, Any]:
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
    return build_request(model, "a small red lighthouse on a rock, flat colours", images, mode=mode,
                         **params).body


def _input_picture(model: str):
    import numpy as np

    from .encoding import encode_image

    spec = MODELS[model]
    side = max(spec.image.min_side, 384)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    picture = np.stack([x, y, 0.5 + 0.0 * x], axis=-1)
    return encode_image(picture, spec.image, fmt="png")


def _path(model: str, transport: str) -> str:
    if MODELS[model].protocol == "image-synthesis":
        return SYNTHESIS_PATH
    return ASYNC_PATH if transport == ASYNC else SYNC_PATH


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
    body = answer.body if isinstance(answer.body, dict) else {}
    return (body.get("output") or {}).get("task_status")


def _wait(side: Side, task_id: str, out: Answers) -> Answer:
    started = time.monotonic()
    first = True
    while True:
        answer = side.call("GET", f"tasks/{task_id}")
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
        body = _body(model, mode)
        if transport == ASYNC:
            out["create"] = create = side.call("POST", _path(model, ASYNC), body, {"X-DashScope-Async": "enable"})
            task_id = _task_id(create)
            if not task_id:
                return out
            out["query (final)"] = final = _wait(side, task_id, out)
        elif transport == STREAM:
            body["parameters"]["stream"] = True
            out["stream"] = final = side.call("POST", SYNC_PATH, body, {"X-DashScope-Sse": "enable",
                                                                        "Accept": "text/event-stream"}, sse=True)
        else:
            out["answer"] = final = side.call("POST", SYNC_PATH, body)
        url = _first_url(final)
        if url:
            out["result download"] = side.download(url)
        return out
    return run


def cancel_queued(model: str, mode: str) -> Callable[[Side], Answers]:
    def run(side: Side) -> Answers:
        out: Answers = {}
        out["create"] = create = side.call("POST", _path(model, ASYNC), _body(model, mode),
                                           {"X-DashScope-Async": "enable"})
        task_id = _task_id(create)
        if not task_id:
            return out
        out["cancel"] = side.call("POST", f"tasks/{task_id}/cancel", {})
        out["query after cancel"] = after = side.call("GET", f"tasks/{task_id}")
        if _status(after) not in TERMINAL:  # too late to cancel: it will be billed; see it through to count it
            out["(too late: the task ran)"] = _wait(side, task_id, {})
        return out
    return run


def unknown_task(side: Side) -> Answers:
    return {"query": side.call("GET", f"tasks/{uuid.uuid4()}")}


def wrong_key(model: str, mode: str) -> Callable[[Side], Answers]:
    def run(side: Side) -> Answers:
        body = _body(model, mode)
        return {
            "create, wrong key": side.call("POST", _path(model, ASYNC), body, {"X-DashScope-Async": "enable"},
                                           key=WRONG_KEY),
            "create, no key": side.call("POST", _path(model, ASYNC), body, {"X-DashScope-Async": "enable"}, key=None),
            "task query, wrong key": side.call("GET", f"tasks/{uuid.uuid4()}", key=WRONG_KEY),
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


# ---- running and reporting --------------------------------------------------------------------------------

@dataclass
class Row:
    probe: str
    answer: str
    verdict: str
    real: dict[str, Any] = field(default_factory=dict)
    emulator: dict[str, Any] = field(default_factory=dict)
    why: list[str] = field(default_factory=list)


def compare(probe: Probe, real: Answers, emulated: Answers) -> list[Row]:
    rows = []
    for name in list(dict.fromkeys([*real, *emulated])):
        if name.startswith("("):
            continue  # bookkeeping (a cancel that came too late), not an answer to compare
        waiting = name in probe.waiting
        r = answer_shape(real[name], waiting=waiting) if name in real else None
        e = answer_shape(emulated[name], waiting=waiting) if name in emulated else None
        if r is None or e is None:
            rows.append(Row(probe.name, name, "differ", r or {}, e or {},
                            [f"only the {'real service' if e is None else 'emulator'} gave this answer"]))
            continue
        why = differences(r, e)
        rows.append(Row(probe.name, name, "agree" if not why else "differ", r, e, why))
    return rows


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


def print_plan(probes: list[Probe], endpoint: Endpoint, out) -> None:
    region = endpoint.region
    print(f"Endpoint: {endpoint.label}", file=out)
    print("The probe would make these calls at that endpoint, and the same at this pack's emulator (loopback, "
          "free):", file=out)
    known: dict[str, float] = {}
    unknown = 0
    for probe in probes:
        price = unit_price(probe.model, region) if probe.model and probe.max_pictures else None
        if probe.max_pictures == 0:
            cost = "free"
        elif price:
            cost = f"at most {probe.max_pictures} picture = {price[0] * probe.max_pictures:g} {price[1]} ({price[2]})"
            known[price[1]] = known.get(price[1], 0.0) + price[0] * probe.max_pictures
        else:
            cost = f"at most {probe.max_pictures} picture, price unknown to this pack"
            unknown += probe.max_pictures
        print(f"  - {probe.name}: {cost}", file=out)
    pictures = sum(p.max_pictures for p in probes)
    parts = [f"{v:g} {c} at known prices" for c, v in known.items()]
    if unknown:
        parts.append(f"{unknown} picture(s) at prices this pack does not know (put yours in {ENV_PRICES}, or see "
                     "the price list of your region)")
    print(f"Price: at most {pictures} picture(s) billed, one per generation: {'; '.join(parts) or 'nothing'}. "
          "The cancel (if in time) and the free calls bill nothing.", file=out)


def print_table(rows: list[Row], out) -> None:
    width = max([len(r.probe) for r in rows] + [5])
    awidth = max([len(r.answer) for r in rows] + [6])
    print(f"{'probe':<{width}}  {'answer':<{awidth}}  verdict", file=out)
    print(f"{'-' * width}  {'-' * awidth}  -------", file=out)
    for r in rows:
        print(f"{r.probe:<{width}}  {r.answer:<{awidth}}  {r.verdict}", file=out)
    for r in rows:
        if r.verdict != "differ":
            continue
        print(f"\n== differ: {r.probe} / {r.answer}", file=out)
        for why in r.why:
            print(f"   - {why}", file=out)
        print("   real service:", json.dumps(r.real, ensure_ascii=False, sort_keys=True), file=out)
        print("   emulator:    ", json.dumps(r.emulator, ensure_ascii=False, sort_keys=True), file=out)


def _models_for(endpoint: Endpoint) -> list[str]:
    if endpoint.overridden:
        return list(MODELS)  # the user's endpoint decides
    return [m for m, spec in MODELS.items() if endpoint.region in spec.regions]


def _emulator_root(base_url: str) -> str:
    return base_url[: -len("/api/v1")] if base_url.endswith("/api/v1") else base_url


def _endpoint_emulator_settings(endpoint: Endpoint) -> dict[str, Any] | None:
    """If DASHSCOPE_HTTP_BASE_URL is this pack's emulator, its settings (asked without the key)."""
    if not endpoint.overridden:
        return None
    try:
        r = requests.get(_emulator_root(endpoint.base_url) + "/__emulator__/state", timeout=5)
        settings = r.json().get("settings") if r.status_code == 200 else None
    except (requests.RequestException, ValueError, AttributeError):
        return None
    return settings if isinstance(settings, dict) else None


def run(argv: list[str] | None = None, out=None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m api.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--yes", action="store_true", help="make the real calls (billed; the plan says how much)")
    parser.add_argument("--region", default=None, help="singapore, virginia or beijing (default: DASHSCOPE_REGION, "
                                                      "else singapore); DASHSCOPE_HTTP_BASE_URL wins")
    parser.add_argument("--models", default="", help="comma-separated models to probe (default: all the region offers)")
    parser.add_argument("--record", default="", help="write the real answers (no key, URLs cut) to this JSON file")
    parser.add_argument("--replay", default="", help="compare answers recorded with --record against the emulator "
                                                     "(offline, free)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any answer differs")
    args = parser.parse_args(argv)

    try:
        endpoint = resolve_endpoint(args.region)
    except ConfigError as exc:
        print(f"probe: {exc}", file=out)
        return 2
    models = _models_for(endpoint)
    if args.models:
        wanted = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in MODELS]
        if unknown:
            print(f"probe: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}", file=out)
            return 2
        models = [m for m in wanted if m in models] or []
    if not models:
        print(f"probe: no model is offered in {REGION_LABELS.get(endpoint.region or '', endpoint.label)}", file=out)
        return 0
    probes = plan(models, endpoint.region)

    recorded: dict[str, dict[str, Any]] | None = None
    if args.replay:
        with open(args.replay, encoding="utf-8") as fh:
            recorded = json.load(fh)
        probes = [p for p in probes if p.name in recorded]
        print(f"Replaying {len(probes)} recorded probe(s) from {args.replay} against the emulator (nothing is "
              "sent to any real service).", file=out)
        key_value = "sk-probe-replay-0000"
    else:
        print_plan(probes, endpoint, out)
        try:
            from .ledger import _default_folder  # the pack's state folder, where the settings page keeps keys

            key_value = resolve_api_key(region=args.region, state_folder=_default_folder()).reveal()
        except MissingApiKeyError:
            print("\nNo DashScope API key found, so nothing was sent. The probe compares the real service with "
                  "this pack's emulator and needs a key of the region above: set DASHSCOPE_API_KEY (or "
                  "DASHSCOPE_API_KEY_FILE_PATH, or ~/.dashscope/api_key), then run `python -m api.probe --yes` "
                  "(or `make probe ARGS=--yes`).", file=out)
            return 0
        if not args.yes:
            print("\nNothing was sent. To make these calls (and pay for them), run it again with --yes "
                  "(`python -m api.probe --yes`, or `make probe ARGS=--yes`).", file=out)
            return 0

    from .emulator import EmulatorServer, Settings

    mirrored = None if recorded is not None else _endpoint_emulator_settings(endpoint)
    settings = Settings(api_keys=[key_value])
    if mirrored:
        # The endpoint is this pack's emulator: the reference one gets its settings (its key rule, its timing),
        # so that a comparison of the emulator with itself compares like with like.
        settings = Settings(**{k: v for k, v in mirrored.items() if hasattr(settings, k)})
        print("The endpoint is this pack's emulator: nothing real is billed; its settings are mirrored.", file=out)
    reference = EmulatorServer(settings=settings).start()
    try:
        real_side = Side(endpoint.base_url, key_value, poll=2.0 if not mirrored else 0.1)
        emu_side = Side(reference.base_url, key_value, poll=0.1)
        results: dict[str, tuple[Answers, Answers]] = {}
        lock = threading.Lock()

        def one(probe: Probe) -> None:
            with ThreadPoolExecutor(max_workers=2) as pair:
                if recorded is not None:
                    real_f = None
                    real = {k: Answer.from_json(v) for k, v in recorded[probe.name].items()}
                else:
                    real_f = pair.submit(probe.run, real_side)
                emu = pair.submit(probe.run, emu_side).result()
                if real_f is not None:
                    real = real_f.result()
            with lock:
                results[probe.name] = (real, emu)

        print(f"\nRunning {len(probes)} probe(s)...", file=out, flush=True)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, probes))
    finally:
        reference.stop()

    rows: list[Row] = []
    for probe in probes:
        real, emu = results[probe.name]
        rows.extend(compare(probe, real, emu))
    print("", file=out)
    print_table(rows, out)
    pictures = sum(billed(results[p.name][0]) for p in probes) if recorded is None else 0
    differ = sum(r.verdict == "differ" for r in rows)
    print(f"\n{len(rows)} answers compared: {len(rows) - differ} agree, {differ} differ.", file=out)
    if recorded is None:
        costs: dict[str, float] = {}
        unpriced = 0
        for probe in probes:
            n = billed(results[probe.name][0])
            price = unit_price(probe.model, endpoint.region) if probe.model else None
            if n and price:
                costs[price[1]] = costs.get(price[1], 0.0) + n * price[0]
            elif n:
                unpriced += n
        cost = ", ".join(f"≈ {v:g} {c}" for c, v in costs.items())
        print(f"Cost: {pictures} picture(s) billed by the endpoint"
              + (f" ({cost})" if cost else "") + (f"; {unpriced} at prices this pack does not know" if unpriced else "")
              + (" (an emulator: nothing real)" if mirrored else "") + ".", file=out)
    if args.record and recorded is None:
        with open(args.record, "w", encoding="utf-8") as fh:
            json.dump({p.name: {k: a.to_json() for k, a in results[p.name][0].items()} for p in probes}, fh,
                      ensure_ascii=False, indent=1)
        print(f"Real answers written to {args.record} (no key; result URLs cut at the '?').", file=out)
    if differ:
        print("A difference means the emulator (or the pack) assumes something the service does not do: please "
              "report it with this table (see the README, 'Checking the emulator against the real service').",
              file=out)
    return 1 if (differ and args.strict) else 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except WanError as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
