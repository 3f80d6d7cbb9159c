"""Each node states its inputs and their defaults once, in its schema: what ComfyUI leaves out (an optional input
of an older workflow, an unconnected socket) is the default the node shows, at queue time and when it runs."""

from __future__ import annotations

import asyncio
import importlib
import inspect

import pytest
import torch

from conftest import wan

nodes_pkg = importlib.import_module(wan.__name__.rsplit(".", 1)[0])


def created(emulator):
    return [e for e in emulator.backend.log if e.get("billable")]


def declared_input(node, name):
    return next(i for i in node.declared.inputs() if i.id == name)


@pytest.fixture
def changed_default(monkeypatch):
    """Change one input's declared default (as the one place to change it would), for one test."""
    def change(node, name, value):
        monkeypatch.setattr(declared_input(node, name), "default", value)
    return change


def test_the_schema_shows_the_declaration():
    for node in nodes_pkg.NODES:
        schema = node.define_schema()
        assert [i.id for i in schema.inputs] == [i.id for i in node.declared.inputs()], node.__name__


def test_execute_takes_a_missing_input_from_the_declaration(emulator, changed_default):
    changed_default(wan.WanSequential, "n", 2)
    changed_default(wan.WanSequential, "size", "1K")
    out = asyncio.run(wan.WanSequential.execute(model="wan2.7-image", prompt="the seasons"))
    sent = created(emulator)[0]["body"]["parameters"]
    assert sent["n"] == 2 and sent["size"] == "1K", sent
    assert out.args[0].shape[0] == 2


def test_execute_of_every_wan_node_fills_what_comfyui_leaves_out(emulator):
    """Only the required inputs, as ComfyUI passes them for a node whose optional inputs are unconnected."""
    pic = torch.rand((1, 256, 256, 3))
    asyncio.run(wan.WanImageEdit.execute(model="wan2.6-image", prompt="snow", image=pic))
    asyncio.run(wan.WanInterleave.execute(model="wan2.6-image", prompt="tea in steps"))
    asyncio.run(wan.WanBBox.execute(model="wan2.7-image", prompt="a hat", image=pic))
    edit, interleave, boxes = (e["body"]["parameters"] for e in created(emulator))
    # The declared defaults: n 1, prompt_extend on, watermark off, seed 0; interleave's max_images 3.
    assert (edit["n"], edit["prompt_extend"], edit["watermark"], edit["seed"]) == (1, True, False, 0)
    assert interleave["max_images"] == 3 and interleave["size"] == "1280*1280"
    assert boxes["n"] == 1 and "bbox_list" not in boxes   # no box from anywhere: none sent


def test_validate_inputs_checks_the_declared_default_of_what_the_graph_leaves_out(changed_default):
    assert wan.WanTextToImage.validate_inputs(model="wan2.7-image", prompt="x") is True
    changed_default(wan.WanTextToImage, "size", "4K")   # 4K is pro's alone
    verdict = wan.WanTextToImage.validate_inputs(model="wan2.7-image", prompt="x")
    assert isinstance(verdict, str) and verdict.startswith("size: ") and "wan2.7-image-pro" in verdict


def test_comfyui_sees_the_inputs_each_queue_check_reads():
    """ComfyUI passes validate_inputs only the inputs its signature names, and skips its own min/max and option
    checks for exactly those: the names stay what they were, and no method restates a default."""
    reads = {name: list(inspect.signature(node.validate_inputs).parameters)
             for name, node in (("edit", wan.WanImageEdit), ("t2i", wan.WanTextToImage),
                                ("sequential", wan.WanSequential), ("interleave", wan.WanInterleave),
                                ("boxes", wan.WanBBox))}
    assert reads == {
        "edit": ["model", "prompt", "n", "size", "negative_prompt", "color_palette", "region", "transport", "colors",
                 "color_shares"],
        "t2i": ["model", "prompt", "n", "size", "color_palette", "region", "transport", "colors", "color_shares"],
        "sequential": ["model", "prompt", "n", "size", "region", "transport"],
        "interleave": ["model", "prompt", "max_images", "size", "negative_prompt", "region", "transport"],
        "boxes": ["model", "prompt", "boxes", "n", "size", "color_palette", "region", "transport", "colors",
                  "color_shares"],
    }
    for node in nodes_pkg.NODES:
        for method in ("validate_inputs", "execute", "fingerprint_inputs"):
            params = inspect.signature(getattr(node, method)).parameters.values()
            restated = [p.name for p in params if p.default is not inspect.Parameter.empty]
            assert not restated, f"{node.__name__}.{method} restates the defaults of {restated}"
