"""End to end: workflows POSTed to a real ComfyUI, the pack calling the emulator, outputs checked on disk."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import requests
from PIL import Image

from comfy_host import ROOT, execution_error, ui_to_api
from e2e_support import E2E_KEY, graph, info_of, saved_pixels, served_pixels, upload_array

# Also run on the oldest supported host (scripts/run_suites.py): every node, the examples, Cancel, the key.
pytestmark = pytest.mark.smoke

NODE_IDS = ["WanImageEdit", "WanTextToImage", "WanSequential", "WanInterleave", "WanBBox"]


def test_every_node_loads_with_its_fixed_inputs(comfy):
    info = comfy.object_info()
    for node_id in NODE_IDS:
        assert node_id in info, f"{node_id} is not registered"
        spec = info[node_id]
        names = set(spec["input"].get("required", {})) | set(spec["input"].get("optional", {}))
        assert {"model", "prompt", "seed"} <= names, node_id
        seed = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}["seed"]
        assert seed[1].get("control_after_generate"), f"{node_id}: seed has no control-after-generate"
        assert spec["output"][:3] == ["IMAGE", "STRING", "STRING"], spec["output"]
        assert spec["output_name"][1] == "text"
    edit = info["WanImageEdit"]["input"]
    assert "image" in edit["required"]
    assert [f"image_{i}" for i in range(2, 10)] == [k for k in edit["optional"] if k.startswith("image_")]
    bbox = info["WanBBox"]["input"]["optional"]
    assert ["mask"] + [f"mask_{i}" for i in range(2, 10)] == [k for k in bbox if k.startswith("mask")]
    assert "image" in info["WanInterleave"]["input"]["optional"]
    for node_id in NODE_IDS:
        spec = info[node_id]["input"]
        widgets = set(spec.get("required", {})) | set(spec.get("optional", {}))
        assert not [w for w in widgets if "key" in w.lower() or "token" in w.lower()], "no widget may hold the key"
    # ComfyUI's import-times line for the pack (0.33.0 prefixes every line with a coloured `[INFO] `).
    seconds = comfy.import_seconds()
    assert seconds is not None, "the pack is missing from ComfyUI's import times"
    # ComfyUI prints 0.0 here; the bound only catches an import gone badly wrong (the benchmark measures it).
    assert seconds < 1.0
    assert "Traceback" not in comfy.plain_log().split("comfyui-wan-image")[0].split("Import times")[-1]


@pytest.mark.parametrize("workflow", ["wan_image_edit", "wan_text_to_image", "wan_sequential", "wan_interleave",
                                      "wan_bbox"])
def test_example_workflows_run_and_save_what_the_service_returned(comfy, emulator, workflow):
    for picture in (ROOT / "example_workflows" / "inputs").glob("*.png"):
        comfy.upload_image(picture)
    ui = json.loads((ROOT / "example_workflows" / f"{workflow}.json").read_text())
    g = ui_to_api(ui, comfy.object_info())
    wan_id = next(k for k, v in g.items() if v["class_type"].startswith("Wan"))
    g[wan_id]["inputs"]["seed"] += int(time.time()) % 1000  # vary: ComfyUI caches identical prompts
    entry = comfy.run(g)
    assert execution_error(entry) is None, execution_error(entry)
    save_id = next(k for k, v in g.items() if v["class_type"] == "SaveImage")
    info_id = next(k for k, v in g.items() if v["_meta"]["title"] == "info")
    info = info_of(entry, info_id)
    saved = saved_pixels(comfy, entry, save_id)
    assert len(saved) == len(info["results"]) == info["images_billed"] >= 1
    for pixels, result in zip(saved, info["results"]):
        served = served_pixels(result["url"])
        assert pixels.shape == served.shape
        # SaveImage truncates float*255; our tensors are exact levels, so at most 1 level off.
        assert np.abs(pixels.astype(int) - served.astype(int)).max() <= 1
    assert emulator.backend.stats()["creations"] == 1


def test_two_inputs_of_different_sizes_arrive_in_order_pixel_exact(comfy, emulator):
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (520, 260, 3), dtype=np.uint8)
    g = graph("WanImageEdit", {"model": "wan2.7-image", "prompt": "fuse image 1 and image 2", "n": 1, "size": "1K",
                               "seed": 1, "input_format": "png"},
              loads={"image": ("1", upload_array(comfy, a)), "image_2": ("2", upload_array(comfy, b))})
    entry = comfy.run(g)
    assert execution_error(entry) is None, execution_error(entry)
    create = [e for e in emulator.backend.log if e.get("billable")]
    assert len(create) == 1
    got = [np.asarray(Image.open(io.BytesIO(i.data)).convert("RGB")) for i in create[0]["images"]]
    assert [x.shape for x in got] == [a.shape, b.shape]
    assert np.array_equal(got[0], a) and np.array_equal(got[1], b)
    params = create[0]["body"]["parameters"]
    assert params["n"] == 1 and params["size"] == "1K" and params["seed"] == 1
    assert "negative_prompt" not in params and "prompt_extend" not in params


def test_a_batch_expands_in_order(comfy, emulator):
    a = np.full((256, 256, 3), 10, np.uint8)
    b = np.full((256, 256, 3), 200, np.uint8)
    g = graph("WanImageEdit", {"model": "wan2.6-image", "prompt": "x", "n": 1, "size": "1K", "seed": 2,
                               "input_format": "png", "negative_prompt": "blurry"},
              loads={"image": ("1", upload_array(comfy, a)), "image_2": ("2", upload_array(comfy, b))})
    # image_2 gets a batch of two: image 1, then image 2 twice.
    g["3"] = {"class_type": "ImageBatch", "inputs": {"image1": ["2", 0], "image2": ["2", 0]}}
    g["10"]["inputs"]["image_2"] = ["3", 0]
    entry = comfy.run(g)
    assert execution_error(entry) is None, execution_error(entry)
    create = [e for e in emulator.backend.log if e.get("billable")][0]
    means = [int(np.asarray(Image.open(io.BytesIO(i.data))).mean()) for i in create["images"]]
    assert means == [10, 200, 200]
    assert create["body"]["parameters"]["negative_prompt"] == "blurry"
    assert create["body"]["parameters"]["prompt_extend"] is True


def test_sequential_twelve_returns_all_twelve(comfy):
    g = graph("WanSequential", {"model": "wan2.7-image", "prompt": "twelve months of one garden", "n": 12,
                                "size": "1K", "seed": int(time.time()) % 10000})
    entry = comfy.run(g)
    assert execution_error(entry) is None, execution_error(entry)
    assert len(entry["outputs"]["20"]["images"]) == 12
    assert info_of(entry, "30")["images_billed"] == 12


def test_interleave_returns_every_image_and_all_text(comfy, emulator):
    g = graph("WanInterleave", {"model": "wan2.6-image", "prompt": "a five-step tutorial for dumplings",
                                "max_images": 5, "size": "1024*1024", "seed": int(time.time()) % 10000})
    entry = comfy.run(g)
    assert execution_error(entry) is None, execution_error(entry)
    assert len(entry["outputs"]["20"]["images"]) == 5
    text = entry["outputs"]["31"]["text"][0]
    job = type("J", (), {"prompt": "a five-step tutorial for dumplings"})
    assert [t.strip() for t in text.split("\n\n")] == emulator.backend.interleave_texts(job, 5)
    assert [e["kind"] for e in emulator.backend.log if e.get("billable")] == ["stream"]


def test_boxes_from_masks_and_from_the_string(comfy, emulator):
    # LoadImage makes MASK = 1 - alpha: two transparent rectangles are two regions of the mask.
    rgba = np.full((400, 600, 4), 255, np.uint8)
    rgba[50:120, 40:200, 3] = 0
    rgba[200:380, 300:560, 3] = 0
    plain = np.full((300, 300, 3), 128, np.uint8)
    g = graph("WanBBox", {"model": "wan2.7-image", "prompt": "replace the boxed things", "n": 1, "size": "1K",
                          "seed": int(time.time()) % 10000, "boxes": "[[], [[10, 20, 110, 220]]]"},
              loads={"image": ("1", upload_array(comfy, rgba, "RGBA")), "image_2": ("2", upload_array(comfy, plain))})
    g["10"]["inputs"]["mask"] = ["1", 1]
    entry = comfy.run(g)
    assert execution_error(entry) is None, execution_error(entry)
    create = [e for e in emulator.backend.log if e.get("billable")][0]
    assert create["body"]["parameters"]["bbox_list"] == [[[300, 200, 560, 380], [40, 50, 200, 120]],
                                                         [[10, 20, 110, 220]]]


def test_a_refused_input_is_an_execution_error_and_nothing_is_sent(comfy, emulator):
    # What only the pictures decide (here: 4 pictures for wan2.5's 3) is refused when the node runs;
    # widget-only mistakes are refused earlier, when the graph is queued (test_queue_validation.py).
    picture = upload_array(comfy, np.full((400, 400, 3), 90, np.uint8))
    g = graph("WanImageEdit", {"model": "wan2.5-i2i-preview", "prompt": "x", "n": 1, "size": "auto", "seed": 99},
              loads={"image": ("1", picture)})
    g["2"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 4}}
    g["10"]["inputs"]["image"] = ["2", 0]
    entry = comfy.run(g)
    error = execution_error(entry)
    assert error is not None
    assert "image" in error["exception_message"] and "at most 3" in error["exception_message"]
    assert error["node_type"] == "WanImageEdit"
    assert emulator.backend.log == []


def test_a_service_error_is_an_execution_error_with_its_code(comfy, emulator):
    emulator.backend.add_fault({"kind": "http", "status": 400, "code": "DataInspectionFailed",
                                "message": "Input data may contain inappropriate content."})
    g = graph("WanTextToImage", {"model": "wan2.7-image", "prompt": "x", "n": 1, "size": "1K",
                                 "seed": int(time.time()) % 10000})
    error = execution_error(comfy.run(g))
    assert error and "DataInspectionFailed" in error["exception_message"]
    assert "request_id" in error["exception_message"]


def test_interrupt_cancels_a_pending_task_and_stops_waiting(comfy, emulator):
    emulator.backend.configure(queue_time=60.0)
    g = graph("WanTextToImage", {"model": "wan2.7-image", "prompt": "x", "n": 1, "size": "1K",
                                 "seed": int(time.time()) % 10000 + 7})
    prompt_id = comfy.queue(g)
    deadline = time.monotonic() + 30
    while not any(e["kind"] == "query" for e in emulator.backend.log):
        assert time.monotonic() < deadline, "the task was never created"
        time.sleep(0.05)
    comfy.interrupt()
    entry = comfy.wait(prompt_id, timeout=30)   # (the task's queue is 60 s: a wait that went on would hang here)
    kinds = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    # Canceled while PENDING, and never asked about again.
    assert emulator.backend.stats()["tasks"] == {"CANCELED": 1}
    log = emulator.backend.log
    cancel_at = next(e["seq"] for e in log if e["kind"] == "cancel")
    assert [e["kind"] for e in log if e["seq"] > cancel_at] == [], "the task was still polled after its cancel"


def test_the_key_appears_nowhere_a_user_can_share(comfy, emulator):
    # A run that fails with the key (a wrong region's key would look the same) and one that succeeds.
    emulator.backend.add_fault({"kind": "http", "status": 401, "code": "InvalidApiKey",
                                "message": f"Invalid API-key provided: {E2E_KEY}"})
    g = graph("WanTextToImage", {"model": "wan2.7-image", "prompt": "x", "n": 1, "size": "1K",
                                 "seed": int(time.time()) % 10000 + 3})
    failed = comfy.run(g)
    assert "InvalidApiKey" in execution_error(failed)["exception_message"]
    g["10"]["inputs"]["seed"] += 1
    ok = comfy.run(g)
    assert execution_error(ok) is None
    history = requests.get(comfy.url + "/history", timeout=10).text
    assert E2E_KEY not in history
    assert E2E_KEY not in comfy.log()
    for image in ok["outputs"]["20"]["images"]:
        with Image.open(comfy.output_file(image)) as png:
            assert E2E_KEY not in json.dumps(png.info)
    assert E2E_KEY not in json.dumps(comfy.object_info())


def test_example_workflows_are_in_the_template_browser(comfy):
    listed = requests.get(comfy.url + "/api/workflow_templates", timeout=10).json()
    assert sorted(listed["comfyui-wan-image"]) == sorted(p.stem for p in (ROOT / "example_workflows").glob("*.json"))
    used = set()
    for name in listed["comfyui-wan-image"]:
        ui = requests.get(f"{comfy.url}/api/workflow_templates/comfyui-wan-image/{name}.json", timeout=10).json()
        used |= {n["type"] for n in ui["nodes"]}
    assert set(NODE_IDS) <= used, "every node has an example"


def test_chinese_and_english_names_are_served(comfy):
    i18n = requests.get(comfy.url + "/i18n", timeout=10).json()
    ours = NODE_IDS + ["WanPromptList", "WanColorPalette", "WanComparisonSheet", "WanUsage"]
    for lang in ("en", "zh"):
        defs = i18n[lang]["nodeDefs"]
        assert set(ours) <= set(defs), f"{lang}: missing {set(ours) - set(defs)}"
    zh = i18n["zh"]["nodeDefs"]
    assert zh["WanBBox"]["display_name"] == "万相 框选编辑"
    info = comfy.object_info()
    for node in ours:
        inputs = set(info[node]["input"].get("required", {})) | set(info[node]["input"].get("optional", {}))
        assert inputs <= set(zh[node]["inputs"]), f"zh lacks names for {node}: {inputs - set(zh[node]['inputs'])}"


def test_node_help_pages_are_served_where_the_frontend_reads_them(comfy):
    for node in NODE_IDS + ["WanPromptList", "WanColorPalette", "WanComparisonSheet", "WanUsage"]:
        for path in (f"{node}.md", f"{node}/en.md", f"{node}/zh.md"):
            r = requests.get(f"{comfy.url}/extensions/comfyui-wan-image/docs/{path}", timeout=10)
            assert r.status_code == 200 and r.text.startswith("# "), path
    js = requests.get(f"{comfy.url}/extensions/comfyui-wan-image/wan_bbox.js", timeout=10)
    assert js.status_code == 200 and "registerExtension" in js.text


def test_a_palette_from_a_picture_drives_text_to_image(comfy, emulator):
    rng = np.random.default_rng(9)
    picture = (rng.random((200, 300, 3)) * 255).astype(np.uint8)
    picture[:100] = [200, 40, 40]
    g = {"1": {"class_type": "LoadImage", "inputs": {"image": upload_array(comfy, picture)}},
         "2": {"class_type": "WanColorPalette", "inputs": {"image": ["1", 0], "colors": 6}},
         "10": {"class_type": "WanTextToImage", "inputs": {"model": "wan2.7-image", "prompt": "a poster", "n": 1,
                                                           "size": "1K", "seed": int(time.time()) % 100000,
                                                           "color_palette": ["2", 0]}},
         "20": {"class_type": "SaveImage", "inputs": {"images": ["2", 1], "filename_prefix": "palette"}},
         "30": {"class_type": "PreviewAny", "inputs": {"source": ["10", 2]}}}
    entry = comfy.run(g)
    assert execution_error(entry) is None, execution_error(entry)
    sent = [e for e in emulator.backend.log if e.get("billable")][0]["body"]["parameters"]["color_palette"]
    assert 3 <= len(sent) <= 6
    assert sum(int(c["ratio"].replace(".", "").rstrip("%")) for c in sent) == 10000
    assert sent[0]["hex"] == "#C82828"  # the red half of the picture is the biggest share
