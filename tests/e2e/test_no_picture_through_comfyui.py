"""A run with no picture, through a real ComfyUI: the emulator answers without a picture (its `no_pictures`
fault). A node whose point is pictures fails with an error naming the model and the request and saying what
was billed; interleaved output that came back as text alone succeeds, its `images` the empty-picture marker,
which Save Image takes. Either way the node's status says "no picture"."""

from __future__ import annotations

import time

import pytest

from comfy_host import execution_error
from e2e_support import Messages, graph, info_of, saved_pixels

pytestmark = pytest.mark.smoke


def test_a_picture_node_with_no_picture_fails_clearly_and_bills_nothing(comfy, emulator):
    emulator.backend.add_fault({"kind": "no_pictures"})
    g = graph("WanTextToImage", {"model": "wan2.7-image", "prompt": f"a fox {time.time_ns()}", "n": 2,
                                 "size": "1K", "seed": 7}, text=False)
    with Messages(comfy) as messages:
        entry = comfy.run(g)
        said = messages.shows("10", "no picture")
    error = execution_error(entry)
    assert error is not None and entry["status"]["status_str"] == "error", entry["status"]
    message = error["exception_message"]
    assert error["node_type"] == "WanTextToImage" and error["exception_type"].endswith("NoPictureError"), error
    assert "wan2.7-image returned no picture" in message and "nothing was billed" in message, message
    assert emulator.backend.log[0]["task_id"] in message and "request_id " in message, message
    assert emulator.backend.images_billed == 0
    assert said, messages.status_lines("10")


def test_interleave_in_text_alone_returns_its_text_and_the_empty_picture_marker(comfy, emulator):
    emulator.backend.add_fault({"kind": "no_pictures"})
    g = graph("WanInterleave", {"model": "wan2.6-image", "prompt": f"tea, in words {time.time_ns()}",
                                "max_images": 3, "size": "1024*1024", "seed": 3})
    with Messages(comfy) as messages:
        entry = comfy.run(g)
        said = messages.shows("10", "no picture, text only")
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    info = info_of(entry, "30")
    assert info["images"] == 0 and info["empty_picture_marker"] is True and info["images_billed"] == 0
    assert "in words alone" in entry["outputs"]["31"]["text"][0]
    (marker,) = saved_pixels(comfy, entry, "20")   # Save Image takes the marker: one black 64x64 picture
    assert marker.shape == (64, 64, 3) and not marker.any()
    assert said, messages.status_lines("10")
