"""The emulator, started with docs/emulator.md's command, answers the vendor pages' example requests with
responses of the same shape as the vendor's example responses (tests/data/seed_examples.json)."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from PIL import Image

from api.service.sse import SSEParser
from apitest import ROOT

EXAMPLES = json.loads((ROOT / "tests" / "api" / "data" / "seed_examples.json").read_text())


def shape(value, prefix=""):
    """{key path: JSON type} of everything in a response; list items merged under []."""
    out = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(shape(item, f"{prefix}.{key}" if prefix else key))
    elif isinstance(value, list):
        for item in value:
            out.update(shape(item, prefix + "[]"))
    else:
        out[prefix] = "null" if value is None else type(value).__name__
    return out


def assert_same_shape(example: str, actual):
    want = shape(EXAMPLES[example])
    got = shape(actual)
    missing = {k: v for k, v in want.items() if k not in got}
    wrong = {k: (v, got[k]) for k, v in want.items() if k in got and got[k] != v}
    assert not missing and not wrong, f"{example}: missing {missing}, wrong types {wrong}"


def data_uri(width, height, fmt="WEBP"):
    arr = (np.random.default_rng(width).random((height, width, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def readme_emulator():
    """`python -m api.emulator`, as docs/emulator.md says, on a free port."""
    proc = subprocess.Popen([sys.executable, "-m", "api.emulator", "--port", "0", "--service-time", "0.3",
                             "--queue-time", "0.1"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"DASHSCOPE_HTTP_BASE_URL=(\S+)", line)
    assert match, f"the emulator printed {line!r}"
    yield match.group(1)
    proc.terminate()
    proc.wait(5)


KEY = {"Authorization": "Bearer sk-any-key-works-in-the-emulator", "Content-Type": "application/json"}

# The vendor's own example requests (shared/seeds), with their public image URLs replaced by pictures of
# the same size: the emulator is offline.
WAN27_EDIT = {"model": "wan2.7-image-pro", "input": {"messages": [{"role": "user", "content": [
    {"image": data_uri(1104, 1472)}, {"image": data_uri(1696, 960)},
    {"text": "把图1的闹钟放在图2的框选的位置,保持场景和光线融合自然"}]}]},
    "parameters": {"bbox_list": [[], [[989, 515, 1138, 681]]], "size": "2K", "n": 1, "watermark": False,
                   "thinking_mode": True}}
WAN27_GROUP = {"model": "wan2.7-image-pro", "input": {"messages": [{"role": "user", "content": [
    {"text": "电影感组图,记录同一只流浪橘猫,特征必须前后一致。"}]}]},
    "parameters": {"enable_sequential": True, "n": 4, "size": "2K"}}
WAN26_INTERLEAVE = {"model": "wan2.6-image", "input": {"messages": [{"role": "user", "content": [
    {"text": "Give me a three-image tutorial for stir-fried pork with chili peppers"}]}]},
    "parameters": {"enable_interleave": True, "max_images": 3, "size": "1280*1280", "negative_prompt": ""}}
WAN25 = {"model": "wan2.5-i2i-preview", "input": {
    "prompt": "Place the alarm clock from Image 1 next to the vase on the dining table in Image 2.",
    "images": [data_uri(1104, 1472), data_uri(1696, 960)], "negative_prompt": ""},
    "parameters": {"n": 1, "prompt_extend": True, "watermark": False, "seed": 12345}}


def wait(base, task_id):
    for _ in range(100):
        data = requests.get(f"{base}/tasks/{task_id}", headers=KEY, timeout=10).json()
        if data["output"]["task_status"] not in ("PENDING", "RUNNING"):
            return data
        time.sleep(0.1)
    raise AssertionError("task never finished")


def test_sync_edit_with_boxes(readme_emulator):
    r = requests.post(f"{readme_emulator}/services/aigc/multimodal-generation/generation", json=WAN27_EDIT,
                      headers=KEY, timeout=30)
    assert r.status_code == 200, r.text
    assert_same_shape("wan27_sync_success", r.json())
    # 2K at the aspect of the last picture (1696x960), like the vendor's 2976*1408 for a similar one.
    w, h = map(int, r.json()["usage"]["size"].split("*"))
    assert abs(w / h - 1696 / 960) < 0.02 and abs(w * h - 2048 ** 2) / 2048 ** 2 < 0.02


def test_async_group_and_task_query(readme_emulator):
    r = requests.post(f"{readme_emulator}/services/aigc/image-generation/generation", json=WAN27_GROUP,
                      headers={**KEY, "X-DashScope-Async": "enable"}, timeout=30)
    assert_same_shape("wan27_async_create", r.json())
    done = wait(readme_emulator, r.json()["output"]["task_id"])
    assert_same_shape("wan27_task_succeeded", done)
    assert done["usage"]["image_count"] == 4 and done["usage"]["size"] == "2048*2048"


def test_errors_have_the_vendors_shape(readme_emulator):
    r = requests.post(f"{readme_emulator}/services/aigc/image-generation/generation", json=WAN27_GROUP,
                      headers={"Content-Type": "application/json", "X-DashScope-Async": "enable"}, timeout=30)
    assert r.status_code == 401
    assert_same_shape("wan27_no_key", r.json())
    assert r.json()["message"] == "No API-key provided."
    bad = json.loads(json.dumps(WAN27_GROUP))
    bad["parameters"]["n"] = 13
    r = requests.post(f"{readme_emulator}/services/aigc/image-generation/generation", json=bad,
                      headers={**KEY, "X-DashScope-Async": "enable"}, timeout=30)
    assert r.status_code == 400
    assert_same_shape("wan27_error", r.json())
    r = requests.post(f"{readme_emulator}/services/aigc/image-generation/generation", json=WAN27_GROUP,
                      headers=KEY, timeout=30)
    assert r.status_code == 403 and "does not support synchronous calls" in r.json()["message"]


def test_interleave_stream_and_task(readme_emulator):
    with requests.post(f"{readme_emulator}/services/aigc/multimodal-generation/generation", json=WAN26_INTERLEAVE,
                       headers={**KEY, "X-DashScope-Sse": "enable"}, stream=True, timeout=30) as r:
        events = SSEParser().feed(r.content)
    frames = [e.json() for e in events]
    assert all(e.event == "result" and e.status == 200 for e in events)
    assert_same_shape("wan26_stream_frame", frames[0])
    assert_same_shape("wan26_stream_last_frame", frames[-1])
    assert [f["output"]["finished"] for f in frames].count(True) == 1 and frames[-1]["output"]["finished"]
    assert frames[-1]["usage"]["image_count"] == 3
    # The same request without streaming on the sync endpoint is refused, as the vendor says.
    r = requests.post(f"{readme_emulator}/services/aigc/multimodal-generation/generation", json=WAN26_INTERLEAVE,
                      headers=KEY, timeout=30)
    assert r.status_code == 400
    # parameters.stream alone also streams (the newest reference page's form).
    body = json.loads(json.dumps(WAN26_INTERLEAVE))
    body["parameters"]["stream"] = True
    with requests.post(f"{readme_emulator}/services/aigc/multimodal-generation/generation", json=body,
                       headers=KEY, stream=True, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
    r = requests.post(f"{readme_emulator}/services/aigc/image-generation/generation", json=WAN26_INTERLEAVE,
                      headers={**KEY, "X-DashScope-Async": "enable"}, timeout=30)
    done = wait(readme_emulator, r.json()["output"]["task_id"])
    assert_same_shape("wan26_interleave_task_succeeded", done)
    kinds = [c["type"] for c in done["output"]["choices"][0]["message"]["content"]]
    assert kinds == ["text", "image"] * 3


def test_wan25_image_synthesis(readme_emulator):
    r = requests.post(f"{readme_emulator}/services/aigc/image2image/image-synthesis", json=WAN25,
                      headers={**KEY, "X-DashScope-Async": "enable"}, timeout=30)
    assert_same_shape("wan25_create", r.json())
    done = wait(readme_emulator, r.json()["output"]["task_id"])
    assert_same_shape("wan25_task_succeeded", done)
    unknown = requests.get(f"{readme_emulator}/tasks/00000000-no-such-task", headers=KEY, timeout=10).json()
    assert unknown["output"]["task_status"] == "UNKNOWN"
