"""An answer with no picture: an error that names the model and the request and says what was billed, and
"no picture" on the node; except interleaved output that came back as text alone, which is a result whose
`images` is the empty-picture marker. The emulator gives such answers with its `no_pictures` fault."""

from __future__ import annotations

import asyncio
import importlib
import json
import re

import pytest
import torch

from conftest import api, loaded, tensors, wan

progress = importlib.import_module(f"{loaded.pack.__name__}.nodes.progress")


@pytest.fixture
def node_status(monkeypatch):
    """What the node shows as its status line (ComfyUI's progress text), in order."""
    shown = []
    monkeypatch.setattr(progress, "show", lambda node_id, text: shown.append(text))
    return shown


@pytest.mark.parametrize("transport", ["async", "sync"])
def test_a_run_with_no_picture_is_an_error_naming_the_model_the_request_and_the_bill(emulator, node_status, transport):
    emulator.backend.add_fault({"kind": "no_pictures"})
    with pytest.raises(api.NoPictureError) as raised:
        asyncio.run(wan.WanTextToImage.execute(model="wan2.7-image", prompt="a fox", size="1K", transport=transport))
    message = str(raised.value)
    created = emulator.backend.log[0]
    assert "wan2.7-image returned no picture" in message and "nothing was billed" in message, message
    # The request as the service numbered it: a sync answer's request_id; a task's id (and the request_id of
    # the query that brought its end).
    assert re.search(r"request_id [0-9a-f-]{36}", message), message
    assert (created["request_id"] if transport == "sync" else created["task_id"]) in message, message
    assert emulator.backend.images_billed == 0
    assert node_status and "no picture" in node_status[-1] and "0 billed" in node_status[-1], node_status


def test_interleave_with_text_alone_is_a_result_with_the_empty_picture_marker(emulator, node_status):
    emulator.backend.add_fault({"kind": "no_pictures"})
    images, text, info = asyncio.run(wan.WanInterleave.execute(model="wan2.6-image", prompt="tea, in words")).args
    info = json.loads(info)
    assert "in words alone" in text
    assert torch.equal(images, tensors.empty_picture_marker()) and images.shape == (1, 64, 64, 3)
    assert info["images"] == 0 and info["empty_picture_marker"] is True and info["images_billed"] == 0
    assert "no picture, text only" in node_status[-1], node_status


def test_a_run_with_pictures_says_how_many_and_carries_no_marker(emulator):
    images, _, info = asyncio.run(wan.WanInterleave.execute(model="wan2.6-image", prompt="tea in 2 steps",
                                                            max_images=2)).args
    info = json.loads(info)
    assert images.shape[0] == 2 and info["images"] == 2 and "empty_picture_marker" not in info


def test_one_frame_of_a_per_image_fan_out_with_no_picture_names_itself_and_the_others_are_kept(emulator):
    """The other frames were billed and came back: the error says it is one frame's, and queuing again serves
    the others from the result cache without a new creation."""
    emulator.backend.configure(queue_time=0.05, service_time=0.2)
    emulator.backend.add_fault({"kind": "no_pictures", "times": 1})
    batch = torch.rand((3, 128, 160, 3))
    edit = dict(model="wan2.7-image", prompt="snow", n=1, size="1K", seed=11, per_image=True, image=batch,
                transport="sync")
    with pytest.raises(api.NoPictureError) as raised:
        asyncio.run(wan.WanImageEdit.execute(**edit))
    message = str(raised.value)
    assert "of 3 of `image` (per_image)" in message and "other 2 request(s)" in message, message
    assert emulator.backend.images_billed == 2
    creations = len([e for e in emulator.backend.log if e.get("billable")])
    images, _, _ = asyncio.run(wan.WanImageEdit.execute(**edit)).args
    assert images.shape[0] == 3
    assert len([e for e in emulator.backend.log if e.get("billable")]) == creations + 1, \
        "only the frame that brought nothing may be sent again"
