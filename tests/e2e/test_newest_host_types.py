"""What the pack takes from ComfyUI v0.33.0, over HTTP as any client drives it: the price badge in the node
definitions (billing nodes only), core boxes from Create Bounding Boxes into Wan Box Edit, and core colours
as the palette. On the oldest host (0.3.75) none of it is there and the nodes load as before."""

from __future__ import annotations

import json
import time

import pytest

import hosts
from comfy_host import PromptRejected, execution_error
from e2e_support import info_of

BILLING = ["WanImageEdit", "WanTextToImage", "WanSequential", "WanInterleave", "WanBBox"]
FREE = ["WanColorPalette", "WanPromptList", "WanComparisonSheet", "WanUsage"]
NEWEST = hosts.chosen() == hosts.NEWEST
newest_only = pytest.mark.skipif(not NEWEST, reason="core box and colour types and price badges: ComfyUI 0.33.0")


@pytest.mark.smoke
def test_the_nodes_declare_what_the_host_has(comfy):
    info = comfy.object_info()
    for name in BILLING:
        badge = info[name].get("price_badge")
        assert info[name].get("api_node") is False, name   # kept out of the page's partner-node sign-in gate
        if NEWEST:
            assert badge and badge["engine"] == "jsonata" and "$lookup" in badge["expr"], name
            widgets = [w["name"] for w in badge["depends_on"]["widgets"]]
            assert widgets[0] == "model" and "region" in widgets, widgets
        else:
            assert badge is None, name
    for name in FREE:
        assert info[name].get("price_badge") is None, name
    optional = info["WanBBox"]["input"]["optional"]
    if NEWEST:
        assert optional["bboxes"][0] == "BOUNDING_BOX,BOUNDING_BOXES" and optional["colors"][0] == "COLORS"
        for name in ("WanImageEdit", "WanTextToImage", "WanBBox"):
            assert "colors" in info[name]["input"]["optional"] and "color_shares" in info[name]["input"]["optional"]
        # New inputs come after every older one: saved workflows' widget values keep their places.
        order = info["WanBBox"]["input_order"]["optional"]
        assert order[-3:] == ["bboxes", "colors", "color_shares"], order
    else:
        assert "bboxes" not in optional and "colors" not in optional and "color_shares" not in optional


def bbox_graph(seed: int, wan_inputs: dict) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "wan_example_room.png"}},
            # As the page saves it after a box is drawn on the 1000x800 room (its canvas: 1008x800).
            "2": {"class_type": "CreateBoundingBoxes",
                  "inputs": {"width": 1008, "height": 800, "background": ["1", 0],
                             "editor_state": {"__value__": [{"x": 96, "y": 160, "width": 320, "height": 320,
                                                             "metadata": {"type": "obj", "text": "", "desc": "",
                                                                          "palette": []}}]}}},
            "3": {"class_type": "WanBBox", "inputs": {"model": "wan2.7-image", "prompt": "a lamp in the box",
                                                      "image": ["1", 0], "bboxes": ["2", 1], "n": 1, "size": "1K",
                                                      "seed": seed, **wan_inputs}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": f"cbb{seed}"}},
            "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 2]}}}


@newest_only
def test_a_box_from_create_bounding_boxes_and_core_colours_reach_the_service(comfy, emulator):
    from pathlib import Path

    comfy.upload_image(Path(__file__).resolve().parents[2] / "example_workflows" / "inputs" / "wan_example_room.png")
    seed = int(time.time()) % 100000
    entry = comfy.run(bbox_graph(seed, {"boxes": "[[[600, 100, 700, 200]]]",
                                        "colors": {"__value__": ["#c2d1e6", "#0a0b0c", "#ffffff"]}}))
    assert execution_error(entry) is None, execution_error(entry)
    (create,) = [e for e in emulator.backend.log if e.get("billable")]
    params = create["body"]["parameters"]
    # The drawn box, from the 1008x800 canvas onto the 1000x800 picture, then the typed one.
    assert params["bbox_list"] == [[[round(96 * 1000 / 1008), 160, round(416 * 1000 / 1008), 480],
                                     [600, 100, 700, 200]]]
    assert params["color_palette"] == [{"hex": "#C2D1E6", "ratio": "33.34%"}, {"hex": "#0A0B0C", "ratio": "33.33%"},
                                       {"hex": "#FFFFFF", "ratio": "33.33%"}]
    assert info_of(entry, "5")["bbox_list"] == params["bbox_list"]


@newest_only
def test_boxes_given_as_a_value_in_the_prompt(comfy, emulator):
    """An API client may send core boxes (BOUNDING_BOXES' form: one picture's boxes, with metadata) as a value."""
    from pathlib import Path

    comfy.upload_image(Path(__file__).resolve().parents[2] / "example_workflows" / "inputs" / "wan_example_room.png")
    graph = bbox_graph(int(time.time()) % 100000, {})
    del graph["2"]
    graph["3"]["inputs"]["bboxes"] = {"__value__": [{"x": 10.4, "y": 20, "width": 100, "height": 50,
                                                     "metadata": {"type": "obj"}}]}
    entry = comfy.run(graph)
    assert execution_error(entry) is None, execution_error(entry)
    (create,) = [e for e in emulator.backend.log if e.get("billable")]
    assert create["body"]["parameters"]["bbox_list"] == [[[10, 20, 110, 70]]]


@newest_only
def test_core_colours_with_shares_on_text_to_image(comfy, emulator):
    seed = int(time.time()) % 100000
    graph = {"1": {"class_type": "WanTextToImage",
                   "inputs": {"model": "wan2.7-image", "prompt": "a lighthouse", "n": 1, "size": "1K", "seed": seed,
                              "colors": {"__value__": ["#112233", "#445566", "#778899", "#AABBCC"]},
                              "color_shares": "3, 3, 3, 1"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"colours{seed}"}}}
    entry = comfy.run(graph)
    assert execution_error(entry) is None, execution_error(entry)
    (create,) = [e for e in emulator.backend.log if e.get("billable")]
    assert [c["ratio"] for c in create["body"]["parameters"]["color_palette"]] == \
        ["30.00%", "30.00%", "30.00%", "10.00%"]


@newest_only
@pytest.mark.parametrize("inputs, words", [
    ({"colors": {"__value__": ["#112233", "#445566"]}}, "colors: has 2 colours"),
    ({"colors": {"__value__": ["#112233", "#445566", "#778899"]},
      "color_palette": json.dumps([{"hex": "#112233", "ratio": "100.00%"}])}, "both give a palette"),
    ({"colors": {"__value__": ["#112233", "#445566", "#778899"]}, "color_shares": "1 2"},
     "color_shares: has 2 shares for 3 colours"),
])
def test_core_colours_the_service_would_refuse_are_refused_when_queued(comfy, emulator, inputs, words):
    graph = {"1": {"class_type": "WanTextToImage",
                   "inputs": {"model": "wan2.7-image", "prompt": "a lighthouse", "n": 1, "size": "1K", "seed": 1,
                              **inputs}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "refused"}}}
    with pytest.raises(PromptRejected) as info:
        comfy.queue(graph)
    assert info.value.status == 400
    assert words in json.dumps(info.value.body["node_errors"]["1"]), info.value.body
    assert emulator.backend.log == []
