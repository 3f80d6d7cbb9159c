"""Refused when queued: a Wan node's widget mistakes answer POST /prompt with 400 and node_errors, before any
node runs and with nothing sent; linked inputs (decided upstream at run time) are not refused."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import requests

from comfy_host import PromptRejected, execution_error
from e2e_support import graph, upload_array

# Also run on the oldest supported host (scripts/run_suites.py): the queue-time refusal.
pytestmark = pytest.mark.smoke

PALETTE_90 = json.dumps([{"hex": "#C2D1E6", "ratio": "50.00%"}, {"hex": "#636574", "ratio": "30.00%"},
                         {"hex": "#F2F3F5", "ratio": "10.00%"}])


def history_size(comfy) -> int:
    return len(requests.get(comfy.url + "/history", timeout=10).json())


def refused(comfy, g: dict) -> dict:
    """POST the graph; it must be refused. Returns the response body."""
    before = history_size(comfy)
    with pytest.raises(PromptRejected) as info:
        comfy.queue(g)
    assert info.value.status == 400, info.value
    queue = requests.get(comfy.url + "/queue", timeout=10).json()
    assert queue["queue_running"] == [] and queue["queue_pending"] == [], "a refused graph was queued"
    assert history_size(comfy) == before, "a node of a refused graph ran"
    return info.value.body


def assert_names(body: dict, node_id: str, class_type: str, input_name: str, *phrases: str) -> None:
    errors = body["node_errors"][node_id]
    assert errors["class_type"] == class_type
    entries = errors["errors"]
    assert entries and all(e["type"] == "custom_validation_failed" for e in entries), entries
    # ComfyUI writes one entry per input the check reads, each "<input> - <our message>"; ours names the
    # input at fault first.
    assert input_name in {e["extra_info"]["input_name"] for e in entries}
    for e in entries:
        message = e["details"].split(" - ", 1)[1]
        assert message.startswith(f"{input_name}: "), message
        for phrase in phrases:
            assert phrase in message, message
    assert set(body["node_errors"]) == {node_id}, "only the Wan node is at fault"


def assert_nothing_sent(emulator) -> None:
    assert emulator.backend.log == []
    assert emulator.backend.stats()["creations"] == 0


def test_a_size_out_of_bounds_is_refused_when_queued(comfy, emulator):
    picture = upload_array(comfy, np.full((400, 400, 3), 90, np.uint8))
    g = graph("WanImageEdit", {"model": "wan2.7-image", "prompt": "make it red", "n": 1, "size": "99999*2",
                               "seed": 1}, loads={"image": ("1", picture)})
    body = refused(comfy, g)
    assert_names(body, "10", "WanImageEdit", "size", "99999*2", "768*768 to 2048*2048")
    assert_nothing_sent(emulator)


def test_a_palette_summing_to_90_percent_is_refused_when_queued(comfy, emulator):
    g = graph("WanTextToImage", {"model": "wan2.7-image", "prompt": "a poster", "n": 1, "size": "1K", "seed": 1,
                                 "color_palette": PALETTE_90})
    body = refused(comfy, g)
    assert_names(body, "10", "WanTextToImage", "color_palette", "90.00%", "100.00%")
    assert_nothing_sent(emulator)


def test_three_boxes_on_one_picture_are_refused_when_queued(comfy, emulator):
    picture = upload_array(comfy, np.full((400, 600, 3), 200, np.uint8))
    g = graph("WanBBox", {"model": "wan2.7-image", "prompt": "replace them", "n": 1, "size": "1K", "seed": 1,
                          "boxes": "[[[0, 0, 50, 50], [60, 60, 100, 100], [120, 120, 200, 200]]]"},
              loads={"image": ("1", picture)})
    body = refused(comfy, g)
    assert_names(body, "10", "WanBBox", "boxes", "3 boxes", "at most 2")
    assert_nothing_sent(emulator)


@pytest.mark.parametrize("node,inputs,input_name,phrase", [
    ("WanImageEdit", {"model": "wan2.7-image", "negative_prompt": "blurry"}, "negative_prompt", "no negative"),
    ("WanTextToImage", {"model": "wan2.7-image", "size": "4K"}, "size", "wan2.7-image-pro"),
    ("WanTextToImage", {"model": "wan2.7-image", "prompt": "   "}, "prompt", "empty"),
    ("WanSequential", {"model": "wan2.7-image", "n": 13}, "n", "1 to 12"),
    ("WanInterleave", {"model": "wan2.6-image", "max_images": 6, "size": "1024*1024"}, "max_images", "1 to 5"),
    ("WanImageEdit", {"model": "wan2.9-image"}, "model", "unknown model"),
])
def test_other_widget_mistakes_are_refused_when_queued(comfy, emulator, node, inputs, input_name, phrase):
    base = {"prompt": "x", "n": 1, "seed": 1, "size": "1K"}
    loads = None
    if node in ("WanImageEdit", "WanBBox"):
        loads = {"image": ("1", upload_array(comfy, np.full((400, 400, 3), 90, np.uint8)))}
    if node == "WanInterleave":
        base.pop("n")
    body = refused(comfy, graph(node, {**base, **inputs}, loads=loads))
    assert_names(body, "10", node, input_name, phrase)
    assert_nothing_sent(emulator)


def test_a_prompt_linked_from_a_prompt_list_is_accepted_and_runs(comfy, emulator):
    # The linked prompt is unknown when the graph is queued; the widgets that are known are fine.
    g = graph("WanTextToImage", {"model": "wan2.7-image", "n": 1, "size": "1K",
                                 "seed": int(time.time()) % 100000},
              text=False)
    g["5"] = {"class_type": "WanPromptList", "inputs": {"prompts": "a red fox\na blue whale"}}
    g["10"]["inputs"]["prompt"] = ["5", 0]
    entry = comfy.run(g)
    assert execution_error(entry) is None, execution_error(entry)
    sent = [e["body"]["input"]["messages"][0]["content"][-1]["text"]
            for e in emulator.backend.log if e.get("billable")]
    assert sorted(sent) == ["a blue whale", "a red fox"]


def test_linked_size_and_palette_are_accepted_and_checked_when_the_node_runs(comfy, emulator):
    # size and color_palette come from other nodes: accepted at queue time, then checked before sending.
    rng = np.random.default_rng(3)
    picture = upload_array(comfy, (rng.random((120, 160, 3)) * 255).astype(np.uint8))
    g = graph("WanTextToImage", {"model": "wan2.7-image", "prompt": "a poster", "n": 1,
                                 "seed": int(time.time()) % 100000}, text=False)
    g["1"] = {"class_type": "LoadImage", "inputs": {"image": picture}}
    g["2"] = {"class_type": "WanColorPalette", "inputs": {"image": ["1", 0], "colors": 5}}
    g["3"] = {"class_type": "PrimitiveString", "inputs": {"value": "4K"}}
    g["10"]["inputs"].update(color_palette=["2", 0], size=["3", 0])
    entry = comfy.run(g)  # accepted: a 400 would raise PromptRejected here
    error = execution_error(entry)
    assert error is not None and error["node_type"] == "WanTextToImage"
    assert "size: 4K is only offered by wan2.7-image-pro" in error["exception_message"]
    assert_nothing_sent(emulator)
    g["3"]["inputs"]["value"] = "1K"
    entry = comfy.run(g)
    assert execution_error(entry) is None, execution_error(entry)
    sent = [e for e in emulator.backend.log if e.get("billable")][0]["body"]["parameters"]
    assert sent["size"] == "1K" and len(sent["color_palette"]) == 5
