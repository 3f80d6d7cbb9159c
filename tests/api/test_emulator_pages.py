"""The emulator follows the vendor pages, not the client, tested with raw HTTP requests: streaming
only where documented, result sizes as the pages' examples show, wan2.5's seed as a string, the table of
assumptions, and the fault kinds that make it give the other answers the pages allow."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest
import requests
from PIL import Image

from api.emulator.assumptions import ASSUMPTIONS
from apitest import TEST_KEY

SYNC = "services/aigc/multimodal-generation/generation"
ASYNC = "services/aigc/image-generation/generation"
SYNTHESIS = "services/aigc/image2image/image-synthesis"
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
SSE = {**AUTH, "X-DashScope-Sse": "enable", "Accept": "text/event-stream"}
TASK = {**AUTH, "X-DashScope-Async": "enable"}


def png(w: int, h: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 120, 40)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def multimodal(model: str, images: list[str], **parameters) -> dict:
    content = [{"image": v} for v in images] + [{"text": "a lighthouse"}]
    return {"model": model, "input": {"messages": [{"role": "user", "content": content}]},
            "parameters": {"n": 1, **parameters}}


def synthesis(**parameters) -> dict:
    return {"model": "wan2.5-i2i-preview", "input": {"prompt": "snow", "images": [png(500, 400)]},
            "parameters": {"n": 1, "size": "1024*1024", **parameters}}


def post(emulator, path: str, body: dict, headers: dict, **kw) -> requests.Response:
    return requests.post(f"{emulator.base_url}/{path}", json=body, headers=headers, timeout=20, **kw)


def query(emulator, task_id: str) -> requests.Response:
    return requests.get(f"{emulator.base_url}/tasks/{task_id}", headers=AUTH, timeout=10)


def settle(emulator, task_id: str, *, until=lambda r: (r.json().get("output") or {}).get("task_status")
           not in ("PENDING", "RUNNING")) -> requests.Response:
    deadline = time.monotonic() + 10
    while True:
        r = query(emulator, task_id)
        if until(r) or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def fault(emulator, spec: dict) -> None:
    r = requests.post(f"{emulator.base_url.rsplit('/api/v1', 1)[0]}/__emulator__/faults", json=spec, timeout=5)
    assert r.status_code == 200, r.text


# ---- streaming only where the pages document it -------------------------------------------------------------

UNDOCUMENTED_STREAMS = [
    ("wan2.7-image", [png(400, 300)], {"size": "1K"}),
    ("wan2.7-image-pro", [], {"size": "1K"}),
    ("wan2.7-image", [], {"enable_sequential": True, "size": "1K"}),
    ("wan2.6-image", [png(400, 300)], {"size": "1K"}),
]


@pytest.mark.parametrize("model,images,params", UNDOCUMENTED_STREAMS,
                         ids=["2.7 edit", "2.7-pro t2i", "2.7 sequential", "2.6 edit"])
@pytest.mark.parametrize("how", ["header", "parameters.stream"])
def test_a_stream_the_vendor_does_not_document_is_refused(emulator, model, images, params, how):
    body = multimodal(model, images, **params)
    headers = SSE if how == "header" else AUTH
    if how == "parameters.stream":
        body["parameters"]["stream"] = True
    r = post(emulator, SYNC, body, headers)
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/json")
    answer = r.json()
    assert answer["code"] == "InvalidParameter" and "streaming" in answer["message"] and answer["request_id"]
    assert emulator.backend.stats()["creations"] == 0 and emulator.backend.images_billed == 0


def test_wan26_interleave_still_streams(emulator):
    r = post(emulator, SYNC, multimodal("wan2.6-image", [], enable_interleave=True, max_images=2, size="1024*1024"),
             SSE, stream=True)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    frames = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    assert frames[-1]["output"]["finished"] is True
    assert sum(c["type"] == "image" for f in frames for c in f["output"]["choices"][0]["message"]["content"]) == 2


# ---- result sizes as the pages' examples show ---------------------------------------------------------------

def _sync_size(emulator, body: dict) -> tuple[str, tuple[int, int]]:
    r = post(emulator, SYNC, body, AUTH)
    assert r.status_code == 200, r.text
    data = r.json()
    url = data["output"]["choices"][0]["message"]["content"][0]["image"]
    picture = Image.open(io.BytesIO(requests.get(url, timeout=10).content))
    return data["usage"]["size"], picture.size


def test_wan26_1k_answers_the_pages_1376x768(emulator):
    """seed 000 lines 104/118/152: a 1696x960 input at size 1K answers "1376*768" (16-rounding: 1360*768)."""
    size, (w, h) = _sync_size(emulator, multimodal("wan2.6-image", [png(1696, 960)], size="1K"))
    assert size == "1376*768" and (w, h) == (1376, 768)


def test_wan27_2k_is_not_rounded_to_16(emulator):
    """seed 001 lines 1259/1403: a 2K edit answers "2985*1405", which no rounding to 16 can give."""
    size, (w, h) = _sync_size(emulator, multimodal("wan2.7-image", [png(400, 300), png(597, 281)], size="2K"))
    assert size == "2985*1405" and (w, h) == (2985, 1405)
    size, _ = _sync_size(emulator, multimodal("wan2.7-image", [png(1000, 700)], size="1K"))
    w, h = map(int, size.split("*"))
    assert (w % 16, h % 16) != (0, 0) and abs(w * h - 1024 ** 2) < 2000


def test_an_explicit_size_comes_back_as_asked(emulator):
    size, picture = _sync_size(emulator, multimodal("wan2.7-image", [], size="1000*900"))
    assert size == "1000*900" and picture == (1000, 900)


# ---- wan2.5's seed as a string (the vendor's Java example) --------------------------------------------------

def test_wan25_takes_its_seed_as_a_string(emulator):
    """seed 003 lines 336/453: parameters.put("seed", "12345")."""
    assert post(emulator, SYNTHESIS, synthesis(seed="12345"), TASK).status_code == 200
    assert post(emulator, SYNTHESIS, synthesis(seed=12345), TASK).status_code == 200
    bad = post(emulator, SYNTHESIS, synthesis(seed="twelve"), TASK)
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidParameter"
    assert post(emulator, SYNTHESIS, synthesis(seed="2147483648"), TASK).status_code == 400
    # Only wan2.5's page shows it: a multimodal model still wants an integer.
    assert post(emulator, ASYNC, multimodal("wan2.7-image", [], size="1K", seed="12345"), TASK).status_code == 400


# ---- the one table of assumptions ---------------------------------------------------------------------------

def test_every_assumption_names_the_page_line_it_rests_on(emulator):
    served = requests.get(f"{emulator.base_url.rsplit('/api/v1', 1)[0]}/__emulator__/assumptions", timeout=5).json()
    assert [a["key"] for a in served] == list(ASSUMPTIONS)
    for entry in served:
        assert entry["emulator_does"] and entry["unsettled"], entry["key"]
        assert "seed 00" in entry["rests_on"] and "line" in entry["rests_on"], entry["key"]
    from pathlib import Path

    code = "".join(p.read_text() for p in Path(__file__).resolve().parents[2].joinpath("api", "emulator").glob("*.py")
                   if p.name != "assumptions.py")
    for key in ASSUMPTIONS:
        if key in ("explicit_size_exact", "reference_limits", "task_error_shapes"):
            continue  # about the rules as a whole, not one line of code
        assert f'ASSUMPTIONS["{key}"]' in code, f"no code names the assumption {key}"


# ---- fault kinds: the other answers the pages allow ---------------------------------------------------------

def test_fault_stream_as_json_answers_a_stream_with_a_sync_answer(emulator):
    """{"kind": "stream_as_json"}: the next stream request (any model) gets 200 application/json."""
    fault(emulator, {"kind": "stream_as_json"})
    r = post(emulator, SYNC, multimodal("wan2.7-image", [png(400, 300)], size="1K", n=2), SSE, stream=True)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    data = r.json()
    urls = [c["image"] for c in data["output"]["choices"][0]["message"]["content"]]
    assert len(urls) == 2 and data["usage"]["image_count"] == 2 and data["output"]["finished"] is True
    assert all(requests.get(u, timeout=10).status_code == 200 for u in urls)
    assert emulator.backend.images_billed == 2
    # Interleave too: text and pictures in one JSON answer.
    fault(emulator, {"kind": "stream_as_json", "model": "wan2.6-image"})
    r = post(emulator, SYNC, multimodal("wan2.6-image", [], enable_interleave=True, max_images=2, size="1024*1024"),
             SSE)
    kinds = [c["type"] for c in r.json()["output"]["choices"][0]["message"]["content"]]
    assert r.headers["Content-Type"] == "application/json" and kinds == ["text", "image", "text", "image"]
    # A non-stream request does not use it up.
    fault(emulator, {"kind": "stream_as_json"})
    assert post(emulator, SYNC, multimodal("wan2.7-image", [], size="1K"), AUTH).status_code == 200
    assert post(emulator, SYNC, multimodal("wan2.7-image", [], size="1K"), SSE).headers["Content-Type"] == \
        "application/json"


def test_fault_task_error_body_answers_the_pages_top_level_form(emulator):
    """{"kind": "task_error_body"} (armed for the next creation): the task fails, unbilled, and its query
    answers HTTP 200 {"request_id", "code", "message"} with no output (seed 001 lines 1023-1027)."""
    fault(emulator, {"kind": "task_error_body"})
    task_id = post(emulator, ASYNC, multimodal("wan2.7-image", [], size="1K"), TASK).json()["output"]["task_id"]
    r = settle(emulator, task_id, until=lambda r: "output" not in r.json())
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"request_id", "code", "message"}
    assert body["code"] == "InvalidParameter" and body["message"] == "num_images_per_prompt must be 1"
    assert emulator.backend.images_billed == 0
    # With its own code and status; and armed on "query", only the next query answers that way.
    fault(emulator, {"kind": "task_error_body", "code": "DataInspectionFailed", "message": "Output data may "
                     "contain inappropriate content.", "status": 400})
    task_id = post(emulator, ASYNC, multimodal("wan2.7-image", [], size="1K"), TASK).json()["output"]["task_id"]
    r = settle(emulator, task_id, until=lambda r: "output" not in r.json())
    assert r.status_code == 400 and r.json()["code"] == "DataInspectionFailed"
    fault(emulator, {"kind": "task_error_body", "on": "query"})
    task_id = post(emulator, ASYNC, multimodal("wan2.7-image", [], size="1K"), TASK).json()["output"]["task_id"]
    first = query(emulator, task_id)
    assert first.status_code == 200 and "output" not in first.json() and first.json()["code"] == "InvalidParameter"
    assert settle(emulator, task_id).json()["output"]["task_status"] == "SUCCEEDED"


def test_fault_task_status_answers_a_status_no_page_lists(emulator):
    """{"kind": "task_status", "task_status": "SUSPENDED"}: the task's queries show SUSPENDED (all of them,
    or the first `queries`), while the task runs on (and bills) at the service."""
    fault(emulator, {"kind": "task_status", "task_status": "SUSPENDED", "queries": 2})
    task_id = post(emulator, ASYNC, multimodal("wan2.7-image", [], size="1K"), TASK).json()["output"]["task_id"]
    seen = [query(emulator, task_id).json()["output"]["task_status"] for _ in range(2)]
    assert seen == ["SUSPENDED", "SUSPENDED"]
    assert settle(emulator, task_id).json()["output"]["task_status"] == "SUCCEEDED"
    fault(emulator, {"kind": "task_status"})  # default SUSPENDED, every query
    task_id = post(emulator, ASYNC, multimodal("wan2.7-image", [], size="1K"), TASK).json()["output"]["task_id"]
    time.sleep(1.0)
    answer = query(emulator, task_id)
    assert answer.status_code == 200 and answer.json()["output"]["task_status"] == "SUSPENDED"
    assert emulator.backend.stats()["tasks"].get("SUCCEEDED") == 2


def test_fault_results_all_failed_succeeds_with_no_picture(emulator):
    """{"kind": "results_all_failed", "code": ..., "message": ...} on wan2.5: SUCCEEDED, every result
    carries code/message instead of a url, nothing billed."""
    fault(emulator, {"kind": "results_all_failed", "code": "DataInspectionFailed",
                     "message": "Output data may contain inappropriate content."})
    task_id = post(emulator, SYNTHESIS, synthesis(n=3), TASK).json()["output"]["task_id"]
    body = settle(emulator, task_id).json()
    out = body["output"]
    assert out["task_status"] == "SUCCEEDED"
    assert len(out["results"]) == 3 and all("url" not in x and x["code"] == "DataInspectionFailed"
                                            for x in out["results"])
    assert out["task_metrics"] == {"TOTAL": 3, "SUCCEEDED": 0, "FAILED": 3}
    assert body["usage"]["image_count"] == 0 and emulator.backend.images_billed == 0


def test_fault_no_pictures_answers_interleave_in_text_alone_and_other_modes_empty(emulator):
    """{"kind": "no_pictures"} (ASSUMPTIONS["no_pictures"]): interleaved output streams its text alone, each
    frame with image_count 0 and size "0*0" as the page's frames before a picture (seed 000 line 742); an edit
    SUCCEEDS with an empty content. Nothing is billed either way."""
    assert "0*0" in ASSUMPTIONS["no_pictures"].rests_on
    fault(emulator, {"kind": "no_pictures"})
    r = post(emulator, SYNC, multimodal("wan2.6-image", [], enable_interleave=True, max_images=2, size="1024*1024"),
             SSE, stream=True)
    frames = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    items = [c for f in frames for c in f["output"]["choices"][0]["message"]["content"]]
    assert frames[-1]["output"]["finished"] is True and items and all(c["type"] == "text" for c in items)
    assert all((f["usage"]["image_count"], f["usage"]["size"]) == (0, "0*0") for f in frames)
    fault(emulator, {"kind": "no_pictures"})
    r = post(emulator, SYNC, multimodal("wan2.7-image", [png(400, 300)], size="1K"), AUTH)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["output"]["choices"][0]["message"]["content"] == [] and answer["usage"]["image_count"] == 0
    assert emulator.backend.images_billed == 0


def test_fault_no_pictures_is_left_for_wan26_and_wan27_by_a_wan25_request(emulator):
    """wan2.5's answers have their own no-picture shape (results_all_failed): a `no_pictures` fault set without
    a model is not used up by a wan2.5 request, which still returns its picture."""
    import numpy as np

    from api import MODELS, build_request, encode_image
    from apitest import make_client

    emulator.backend.add_fault({"kind": "no_pictures", "times": 1})
    spec = MODELS["wan2.5-i2i-preview"]
    req = build_request("wan2.5-i2i-preview", "x", [encode_image(np.full((512, 512, 3), 0.5, np.float32), spec.image)],
                        n=1)
    assert len(make_client(emulator).generate(req).images) == 1
    assert [f["kind"] for f in emulator.backend.stats()["faults_left"]] == ["no_pictures"]
