"""The probe's comparison: answers recorded as they came, their shapes, and where two shapes differ.

A shape keeps what the client relies on (HTTP status, content type, JSON keys and the types of their values,
task statuses and error codes, SSE frames) and drops what differs by nature between two runs (ids, URLs,
texts, counts of identical items).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..secrets import redact

if TYPE_CHECKING:
    from .plan import Probe

# Keys whose VALUE is part of the shape: statuses, error codes, item kinds. Everything else is compared by type.
VALUE_KEYS = {"task_status", "code", "type", "finish_reason", "finished"}


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


Answers = dict[str, Answer]   # by the answer's name in its probe: "create", "query (final)", ...


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
