"""The probe (`python -m api.probe`, `make probe`): its plan and price before anything is spent, its refusal
to spend without a key or --yes, its comparison of the emulator with itself (all agree) and with recorded
answers that differ on purpose (each difference found and shown with both shapes)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api import build_request, probe
from api.probe import Answer, answer_shape, differences, shape
from apitest import ROOT, TEST_KEY, make_client

RECORDED = Path(__file__).parent / "data" / "probe_recorded_differ.json"


def run_probe(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = probe.run(list(argv), out=out)
    return code, out.getvalue()


def table_rows(text: str) -> list[tuple[str, str]]:
    """(line, verdict) of every table row."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("probe ") and line.rstrip().endswith("verdict"))
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        verdict = line.split()[-1]
        rows.append((line, verdict))
    return rows


# ---- shapes -----------------------------------------------------------------------------------------------

def test_shapes_keep_types_statuses_and_codes_not_values():
    a = {"request_id": "1", "output": {"task_id": "x", "task_status": "SUCCEEDED",
                                       "results": [{"url": "https://a"}, {"url": "https://b"}]},
         "usage": {"image_count": 2}}
    b = {"request_id": "2", "output": {"task_id": "y", "task_status": "SUCCEEDED", "results": [{"url": "https://c"}]},
         "usage": {"image_count": 1}}
    assert shape(a) == shape(b)
    assert differences(shape(a), shape(b)) == []
    c = json.loads(json.dumps(b))
    c["output"]["task_status"] = "FAILED"
    c["usage"]["image_count"] = "1"
    c["output"]["code"] = "DataInspectionFailed"
    found = differences(shape(c), shape(b))
    assert "output.task_status: real \"FAILED\", emulator \"SUCCEEDED\"" in found
    assert "usage.image_count: real \"str\", emulator \"int\"" in found
    assert any("only the real service has output.code" in f for f in found)


def test_a_first_query_may_be_pending_or_running():
    pending = Answer(200, "application/json", {"output": {"task_id": "a", "task_status": "PENDING"}})
    running = Answer(200, "application/json", {"output": {"task_id": "b", "task_status": "RUNNING"}})
    assert answer_shape(pending, waiting=True) == answer_shape(running, waiting=True)
    assert answer_shape(pending) != answer_shape(running)


def test_a_stream_answered_with_json_differs_from_a_stream():
    frames = [{"event": "result", "http_status": 200, "data": {"output": {"finished": True}, "request_id": "r"}}]
    stream = Answer(200, "text/event-stream", frames=frames)
    plain = Answer(200, "application/json", body={"output": {"finished": True}, "request_id": "r"})
    found = differences(answer_shape(plain), answer_shape(stream))
    assert "content_type: real \"application/json\", emulator \"text/event-stream\"" in found
    assert any("only the emulator has sse_frames" in f for f in found)


# ---- no key, no --yes: it explains and spends nothing ---------------------------------------------------------

def test_without_a_key_it_prints_the_plan_and_price_and_exits_0():
    code, text = run_probe()
    assert code == 0
    assert "Endpoint: Singapore" in text
    for model in ("wan2.7-image-pro", "wan2.7-image", "wan2.6-image", "wan2.5-i2i-preview"):
        assert f"{model} " in text
    assert "Price: at most" in text and "No DashScope API key found, so nothing was sent" in text
    assert "--yes" in text


def test_a_region_limits_the_plan_to_its_models(monkeypatch):
    monkeypatch.setenv("WAN_PRICES", json.dumps({"wan2.6-image": {"amount": 0.03, "currency": "USD"}}))
    code, text = run_probe("--region", "virginia")
    assert code == 0 and "Virginia" in text
    assert "wan2.7" not in text and "wan2.5" not in text, "Virginia offers wan2.6-image only"
    assert "wan2.6-image interleave stream: at most 1 picture = 0.03 USD" in text
    assert "wan2.6-image edit stream (undocumented)" in text


def test_with_a_key_but_no_yes_nothing_is_sent(monkeypatch, emulator):
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", emulator.base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    code, text = run_probe()
    assert code == 0 and "Nothing was sent" in text and "--yes" in text
    assert emulator.backend.log == [] and emulator.backend.stats()["creations"] == 0
    assert TEST_KEY not in text


# ---- the emulator against itself: all agree ------------------------------------------------------------------

def test_the_emulator_agrees_with_itself(monkeypatch, emulator):
    # The probe cancels a task while it is queued: a second in the queue, so that a loaded machine (CI's suites
    # side by side) still sends the cancel in time (0.2 s was missed once at a load average of 8).
    emulator.backend.configure(queue_time=1.0)
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", emulator.base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    code, text = run_probe("--yes", "--strict")
    rows = table_rows(text)
    assert code == 0, text
    assert len(rows) >= 25 and all(verdict == "agree" for _, verdict in rows), text
    assert " 0 differ" in text and "Cost: " in text
    for name in ("create", "query (waiting)", "query (final)", "result download", "stream", "cancel",
                 "query after cancel", "create, wrong key", "create, no key", "task query, wrong key"):
        assert f" {name} " in text, f"no {name!r} answer was compared"
    # It spent at the endpoint what it said: one picture per generation; the cancel was in time.
    assert emulator.backend.stats()["tasks"].get("CANCELED") == 1
    assert TEST_KEY not in text


def wire_forms(log) -> dict[str, set[tuple]]:
    """Per kind of call (sync, stream, async creation, query, cancel): how it went on the wire, without what
    differs by nature between two requests (task ids, lengths, the port)."""
    forms: dict[str, set[tuple]] = {}
    for entry in log:
        if not entry["authorized"]:
            continue   # the probe's "no key" create
        headers = tuple(sorted((k, v) for k, v in entry["headers"].items() if k not in ("Host", "Content-Length")))
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        stream_flag = (body.get("parameters") or {}).get("stream")
        path = entry["path"].split("/tasks/")[0] + "/tasks/..." if "/tasks/" in entry["path"] else entry["path"]
        forms.setdefault(entry["kind"], set()).add((entry["method"], path, headers, stream_flag,
                                                    entry["headers"].get("Content-Length")
                                                    if entry["kind"] == "cancel" else None))
    return forms


def test_the_probe_sends_the_clients_own_calls(monkeypatch, emulator):
    """What the probe compares must be the answers to the client's calls: the same paths, headers, stream
    parameter and (for a cancel) no body, as the client sends them."""
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", emulator.base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    code, text = run_probe("--yes", "--models", "wan2.7-image,wan2.6-image")
    assert code == 0, text
    probed = wire_forms(emulator.backend.log)
    sent_before = len(emulator.backend.log)
    client = make_client(emulator)
    client.generate(build_request("wan2.7-image", "sync", [], n=1, size="1K", seed=1), transport="sync")
    client.generate(build_request("wan2.7-image", "async", [], n=1, size="1K", seed=2), transport="async")
    client.generate(build_request("wan2.6-image", "tea", [], mode="interleave", max_images=1, size="1024*1024",
                                  seed=3), transport="stream")
    emulator.backend.configure(queue_time=5.0)
    task_id, _ = client.submit(build_request("wan2.7-image", "queued", [], n=1, size="1K", seed=4))
    assert client.cancel_task(task_id)
    by_client = wire_forms(emulator.backend.log[sent_before:])
    assert set(by_client) == {"sync", "async", "stream", "query", "cancel"}, by_client.keys()
    for kind, forms in by_client.items():
        assert probed.get(kind) == forms, f"{kind}: the probe sent {probed.get(kind)}, the client {forms}"


def test_make_probe_with_the_emulator_as_endpoint(emulator, tmp_path):
    """`make probe` is set up like the other targets; -o venv: the shared venv is not touched here."""
    env = {**os.environ, "DASHSCOPE_HTTP_BASE_URL": emulator.base_url, "DASHSCOPE_API_KEY": TEST_KEY,
           "HOME": str(tmp_path)}
    done = subprocess.run(["make", "-s", "-o", "venv", "probe", "ARGS=--yes --models wan2.7-image,wan2.6-image"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = table_rows(done.stdout)
    assert rows and all(verdict == "agree" for _, verdict in rows), done.stdout
    env.pop("DASHSCOPE_API_KEY")
    env.pop("DASHSCOPE_HTTP_BASE_URL")
    done = subprocess.run(["make", "-s", "-o", "venv", "probe"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "Price: at most" in done.stdout and "nothing was sent" in done.stdout


# ---- recorded answers that differ on purpose -----------------------------------------------------------------

def test_recorded_answers_that_differ_are_found():
    """tests/api/data/probe_recorded_differ.json: answers recorded with --record from an emulator, then edited
    to differ: an undocumented stream answered as sync JSON, an unknown task id answered with an error, a
    task result with an extra key and a count as a string, SSE frames with requestId, a cancel too late."""
    code, text = run_probe("--replay", str(RECORDED))
    assert code == 0
    differ = [line for line, verdict in table_rows(text) if verdict == "differ"]
    agree = [line for line, verdict in table_rows(text) if verdict == "agree"]
    expected = [("wan2.7-image t2i stream (undocumented)", "stream"), ("unknown task id", "query"),
                ("wan2.6-image edit async", "query (final)"), ("wan2.6-image interleave stream", "stream"),
                ("wan2.7-image cancel a queued task", "cancel")]
    for name, answer in expected:
        assert any(line.startswith(name) and f" {answer} " in line for line in differ), f"{name}/{answer} not found"
    assert any(line.startswith("wrong key / no key") for line in agree)
    assert any(line.startswith("wan2.7-image t2i sync") for line in agree)
    # Each difference is said in words and shown with both shapes.
    assert "http_status: real 200, emulator 400" in text
    assert "only the real service has body.output.task_metrics" in text
    assert "body.usage.image_count: real \"str\", emulator \"int\"" in text
    assert "only the real service has sse_last_frame.data.requestId" in text
    assert text.count("   real service: {") == len(differ) and text.count("   emulator:     {") == len(differ)
    assert f"{len(differ)} differ" in text


def test_strict_exits_1_on_a_difference():
    code, _ = run_probe("--replay", str(RECORDED), "--strict")
    assert code == 1


def test_a_recording_holds_no_key_and_no_url_signature(monkeypatch, emulator, tmp_path):
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", emulator.base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    target = tmp_path / "answers.json"
    code, text = run_probe("--yes", "--models", "wan2.7-image", "--record", str(target))
    assert code == 0 and target.exists()
    saved = target.read_text()
    assert TEST_KEY not in saved and "Signature=" not in saved and "Expires=" not in saved
    recorded = json.loads(saved)
    assert "wan2.7-image t2i async" in recorded and "query (final)" in recorded["wan2.7-image t2i async"]
    # and it replays as all-agree against the emulator it came from
    code, text = run_probe("--replay", str(target))
    assert code == 0 and all(v == "agree" for _, v in table_rows(text)), text


def test_python_dash_m_api_probe_runs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    env["HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "api.probe"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "No DashScope API key found" in done.stdout
