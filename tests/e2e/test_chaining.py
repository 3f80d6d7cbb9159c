"""The chaining examples (example_workflows/wan_chain_*.json) run through a real ComfyUI: what the service
received and what was saved are checked pixel by pixel against the input files, the emulator's pictures and
what the core nodes compute (SaveImage rounds down: 1/255 tolerance)."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import requests
import torch
import torch.nn.functional as F
from PIL import Image

from api.sheet import Cell, caption, column_label, render_sheet
from comfy_host import ROOT, execution_error, ui_to_api
from e2e_support import saved_pixels, served_pixels

INPUTS = ROOT / "example_workflows" / "inputs"


def load_example(comfy, name: str) -> dict:
    for picture in INPUTS.glob("*.png"):
        comfy.upload_image(picture)
    g = ui_to_api(json.loads((ROOT / "example_workflows" / f"{name}.json").read_text()), comfy.object_info())
    for node in g.values():  # ComfyUI caches identical prompts: a new seed makes the Wan nodes run
        if node["class_type"].startswith("Wan") and "seed" in node["inputs"]:
            node["inputs"]["seed"] += int(time.time() * 1000) % 100000
    return g


def node_id(g: dict, class_type: str, **inputs) -> str:
    return next(k for k, v in g.items() if v["class_type"] == class_type
                and all(v["inputs"].get(name) == value for name, value in inputs.items()))


def billable(emulator) -> list[dict]:
    return [e for e in emulator.backend.log if e.get("billable")]


def received(entry: dict) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(img.data)).convert("RGB")) for img in entry["images"]]


def within_one_level(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, f"{what}: {got.shape} != {want.shape}"
    worst = int(np.abs(got.astype(int) - want.astype(int)).max())
    assert worst <= 1, f"{what}: off by {worst} levels"


def sharpen(image: torch.Tensor, radius: int, sigma: float, alpha: float) -> torch.Tensor:
    """ImageSharpen's arithmetic (comfy_extras/nodes_post_processing.py, ComfyUI 0.3.75), written out."""
    size = radius * 2 + 1
    x, y = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    kernel = torch.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    kernel = kernel / kernel.sum() * -(alpha * 10)
    kernel[radius, radius] = kernel[radius, radius] - kernel.sum() + 1.0
    channels = image.shape[-1]
    padded = F.pad(image.permute(0, 3, 1, 2), (radius,) * 4, "reflect")
    out = F.conv2d(padded, kernel.repeat(channels, 1, 1).unsqueeze(1), padding=radius, groups=channels)
    return out[:, :, radius:-radius, radius:-radius].permute(0, 2, 3, 1).clamp(0, 1)


def test_local_wan_local_prepares_edits_and_finishes(comfy, emulator):
    g = load_example(comfy, "wan_chain_local_wan_local")
    crop, scale = g[node_id(g, "ImageCrop")]["inputs"], g[node_id(g, "ImageScale")]["inputs"]
    blend, sharp = g[node_id(g, "ImageBlend")]["inputs"], g[node_id(g, "ImageSharpen")]["inputs"]
    entry = comfy.run(g)
    assert execution_error(entry) is None, execution_error(entry)

    # What Wan received: the car, cropped and scaled by ComfyUI's own nodes (nearest, x2: every pixel twice).
    car = np.asarray(Image.open(INPUTS / "wan_example_car.png").convert("RGB"))
    prepared = car[crop["y"]:crop["y"] + crop["height"], crop["x"]:crop["x"] + crop["width"]]
    factor = scale["width"] // crop["width"]
    assert scale["upscale_method"] == "nearest-exact" and scale["height"] // crop["height"] == factor == 2
    prepared = prepared.repeat(factor, axis=0).repeat(factor, axis=1)
    [sent] = billable(emulator)
    assert np.array_equal(received(sent)[0], prepared), "Wan did not receive the picture the core nodes made"

    # What was saved: Wan's picture, a quarter of the prepared one blended back in, sharpened.
    info = json.loads(entry["outputs"][node_id(g, "PreviewAny")]["text"][0])
    wan = served_pixels(info["results"][0]["url"])
    assert wan.shape == prepared.shape, "ImageBlend would rescale; this check assumes it does not"
    as_float = lambda a: torch.from_numpy(a.astype(np.float32) / 255).unsqueeze(0)  # noqa: E731
    f = blend["blend_factor"]
    finished = sharpen((as_float(wan) * (1 - f) + as_float(prepared) * f).clamp(0, 1),
                       sharp["sharpen_radius"], sharp["sigma"], sharp["alpha"])
    want = np.clip(finished[0].numpy() * 255, 0, 255).astype(np.uint8)
    [saved] = saved_pixels(comfy, entry, node_id(g, "SaveImage"))
    within_one_level(saved, want, "the finished picture")
    assert not np.array_equal(saved, wan), "the local finish left Wan's picture unchanged"


def test_a_painted_mask_becomes_the_box_that_reaches_the_service(comfy, emulator):
    g = load_example(comfy, "wan_chain_mask_to_boxes")
    wan_id = node_id(g, "WanBBox")
    load_id = node_id(g, "LoadImage")
    assert g[wan_id]["inputs"]["mask"] == [load_id, 1], "LoadImage's MASK drives WanBBox"
    entry = comfy.run(g)
    assert execution_error(entry) is None, execution_error(entry)

    painted = np.asarray(Image.open(INPUTS / "wan_example_room_painted.png"))
    ys, xs = np.nonzero(painted[..., 3] == 0)  # painted in the mask editor = transparent = MASK 1
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    [sent] = billable(emulator)
    assert sent["body"]["parameters"]["bbox_list"] == [[box]]
    assert received(sent)[0].shape == painted.shape[:2] + (3,)
    info = json.loads(entry["outputs"][node_id(g, "PreviewAny")]["text"][0])
    assert info["bbox_list"] == [[box]]
    [saved] = saved_pixels(comfy, entry, node_id(g, "SaveImage"))
    within_one_level(saved, served_pixels(info["results"][0]["url"]), "the saved picture")


def test_a_prompt_experiment_lands_on_one_labelled_sheet(comfy, emulator):
    g = load_example(comfy, "wan_chain_prompt_experiment")
    prompts = [p.strip() for p in g[node_id(g, "WanPromptList")]["inputs"]["prompts"].splitlines() if p.strip()]
    sheet_id = node_id(g, "WanComparisonSheet")
    sheet_inputs = g[sheet_id]["inputs"]
    columns = [sheet_inputs["image"][0], sheet_inputs["image_2"][0]]
    models = [g[c]["inputs"]["model"] for c in columns]
    assert sorted(models) == ["wan2.7-image", "wan2.7-image-pro"]
    for i, column in enumerate(columns):  # to read each column's infos, as the sheet does
        g[f"9{i}"] = {"class_type": "PreviewAny", "inputs": {"source": [column, 2]}}
    entry = comfy.run(g, timeout=180)
    assert execution_error(entry) is None, execution_error(entry)
    assert len(billable(emulator)) == len(prompts) * len(models) == 6

    infos = [[json.loads(t) for t in entry["outputs"][f"9{i}"]["text"]] for i in range(len(columns))]
    served = [[served_pixels(info["results"][0]["url"]) for info in column] for column in infos]
    for c, column in enumerate(infos):
        for r, info in enumerate(column):  # row r is prompt r, column c is model c, as the service saw them
            job = emulator.backend.tasks[info["task_id"]].job
            assert (job.prompt, job.model) == (prompts[r], models[c]), (r, c)

    [saved] = saved_pixels(comfy, entry, node_id(g, "SaveImage"))
    # The sheet as api/sheet.py draws these results: the node put every picture and caption in its place...
    cells = [[Cell([served[c][r]], caption(infos[c][r], r, [served[c][r]], "")) for c in range(len(columns))]
             for r in range(len(prompts))]
    expected = render_sheet(prompts, [column_label(col[0], "") for col in infos], cells,
                            cell=sheet_inputs["cell_size"], title=sheet_inputs["title"])
    within_one_level(saved, expected.pixels, "the comparison sheet")
    # ... and each cell holds the emulator's picture, scaled (Lanczos) to the cell, by an independent resize.
    for r in range(len(prompts)):
        for c in range(len(columns)):
            [(x, y, w, h)] = expected.boxes[r][c]
            want = np.asarray(Image.fromarray(served[c][r]).resize((w, h), Image.Resampling.LANCZOS))
            within_one_level(saved[y:y + h, x:x + w], want, f"cell {r},{c}")
    # Headers and captions are on the sheet: its top band and each caption band hold dark text pixels.
    header = saved[: expected.boxes[0][0][0][1]]
    assert (header < 100).any(), "no column header drawn"
    for r in range(len(prompts)):
        x, y, w, h = expected.boxes[r][0][0]
        band = saved[y + h: y + h + 60, x: x + w]
        assert (band < 100).sum() > 200, f"no caption under row {r + 1}"


def test_the_chaining_examples_are_in_the_template_browser_with_thumbnails(comfy):
    listed = requests.get(comfy.url + "/api/workflow_templates", timeout=10).json()["comfyui-wan-image"]
    for name in ("wan_chain_local_wan_local", "wan_chain_mask_to_boxes", "wan_chain_prompt_experiment"):
        assert name in listed
        thumb = requests.get(f"{comfy.url}/api/workflow_templates/comfyui-wan-image/{name}.jpg", timeout=10)
        assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff", name
