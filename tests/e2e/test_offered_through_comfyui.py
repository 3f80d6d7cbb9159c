"""Only what the vendor documents, through a real ComfyUI (issue 10): a wan2.7 node with transport = stream is
refused with zero requests at the emulator; region = virginia with wan2.7 and no DASHSCOPE_HTTP_BASE_URL is
refused before anything is sent; the transport and region tooltips say which apply.

A refusal may come at queue time (POST /prompt answers 400 with the node's errors) or when the node runs
(an execution error): either way the message names the input and nothing reaches the service."""

from __future__ import annotations

import json
import time

from comfy_host import ComfyHost, PromptRejected, execution_error
from e2e_support import E2E_KEY


def t2i(inputs: dict) -> dict:
    node = {"model": "wan2.7-image", "prompt": "a lighthouse", "n": 1, "size": "1K",
            "seed": int(time.time() * 1000) % 100000, **inputs}
    return {"10": {"class_type": "WanTextToImage", "inputs": node},
            "20": {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}}}


def refusal(comfy: ComfyHost, graph: dict) -> str:
    """The refusal's text, whether ComfyUI refused the prompt at queue time or the node failed running it."""
    try:
        entry = comfy.run(graph)
    except PromptRejected as rejected:
        return json.dumps(rejected.body, ensure_ascii=False)
    error = execution_error(entry)
    assert error is not None, "the graph ran: nothing refused it"
    return error["exception_message"]


def test_stream_on_wan27_is_refused_with_zero_requests(comfy, emulator):
    message = refusal(comfy, t2i({"transport": "stream"}))
    assert "transport" in message and "wan2.6-image interleaved" in message, message
    assert emulator.backend.log == [], "a request reached the service"
    # auto never picks stream for wan2.7: the same node with auto runs (as an async task).
    entry = comfy.run(t2i({"transport": "auto"}))
    assert execution_error(entry) is None, execution_error(entry)
    assert [e["kind"] for e in emulator.backend.log if e.get("billable")] == ["async"]


def test_tooltips_say_which_transports_and_regions_apply(comfy):
    info = comfy.object_info()
    t2i_inputs = info["WanTextToImage"]["input"]["optional"]
    transport = t2i_inputs["transport"][1]["tooltip"]
    region = t2i_inputs["region"][1]["tooltip"]
    def options(spec: list) -> list:
        return spec[1]["options"] if spec[0] == "COMBO" else spec[0]

    # Names and options unchanged: workflows stay loadable.
    assert options(t2i_inputs["transport"]) == ["auto", "async", "sync", "stream"]
    assert options(t2i_inputs["region"]) == ["default", "singapore", "virginia", "beijing"]
    assert "wan2.7-image: async, sync" in transport and "wan2.6" not in transport
    assert "wan2.7-image-pro, wan2.7-image: Beijing and Singapore" in region
    inter = info["WanInterleave"]["input"]["optional"]
    assert "wan2.6-image: stream, async" in inter["transport"][1]["tooltip"]
    assert "Singapore, Virginia and Beijing" in inter["region"][1]["tooltip"]


# A ComfyUI whose pack talks to the real regions (no DASHSCOPE_HTTP_BASE_URL), launched while the tests
# before it run (conftest.py). Nothing here may reach them: every graph below must be refused first.
EARLY_SERVERS = {"test_virginia_is_refused_before_anything_is_sent":
                 lambda emulator: [ComfyHost({"DASHSCOPE_API_KEY": E2E_KEY})]}


def test_virginia_is_refused_before_anything_is_sent(early):
    (comfy_without_override,) = early
    message = refusal(comfy_without_override, t2i({"region": "virginia"}))
    assert "region" in message and "Beijing and Singapore" in message, message
    edit_graph = {"10": {"class_type": "WanImageEdit", "inputs": {
        "model": "wan2.5-i2i-preview", "prompt": "snow", "n": 1, "seed": 1, "size": "auto", "region": "virginia",
        "image": ["11", 0]}},
        "11": {"class_type": "EmptyImage", "inputs": {"width": 400, "height": 400, "batch_size": 1, "color": 0}},
        "20": {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}}}
    message = refusal(comfy_without_override, edit_graph)
    assert "region" in message and "Beijing and Singapore" in message, message
    # The key never shows in the refusal.
    assert E2E_KEY not in message
