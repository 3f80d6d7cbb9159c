"""WanComparisonSheet inside a loaded ComfyUI: whole lists in, one labelled sheet out."""

from __future__ import annotations

import importlib
import json

import numpy as np
import torch

from conftest import loaded

sheet_mod = importlib.import_module(f"{loaded.pack.__name__}.nodes.sheet")
sheet_api = importlib.import_module(f"{loaded.pack.__name__}.api.sheet")
Sheet = sheet_mod.WanComparisonSheet


def flat(value, h=200, w=300, n=1):
    return torch.full((n, h, w, 3), value / 255)


def info(model, seconds=1.0):
    return json.dumps({"model": model, "elapsed_s": seconds, "cached": False,
                       "cost_estimate": {"total": 0.2, "currency": "CNY"}})


def test_the_node_takes_whole_lists():
    assert Sheet.INPUT_IS_LIST is True
    assert "sheet" in [o.id for o in Sheet.define_schema().outputs]


def test_rows_are_prompts_columns_are_models_and_every_cell_is_in_place():
    prompts = ["a red fox", "一只在雪地里奔跑的橘猫", "a lighthouse in a storm, oil painting, very long " * 4]
    col_a = [flat(40 * (r + 1)) for r in range(3)]
    col_b = [flat(200, 300, 200, n=2 if r == 1 else 1) for r in range(3)]  # a batch of 2 on row 2
    out = Sheet.execute(prompt=prompts, image=col_a, image_2=col_b, info=[info("wan2.7-image-pro")] * 3,
                        info_2=[info("wan2.7-image", 2.5)] * 3, cell_size=[256], title=["experiment"])
    [sheet] = out.args
    assert sheet.shape[0] == 1 and sheet.shape[-1] == 3
    pixels = (sheet[0].numpy() * 255).round().astype(np.uint8)
    # The same inputs drawn by api/sheet.py give the same sheet, so the boxes say where each picture is.
    cells = [[sheet_api.Cell([np.full((200, 300, 3), 40 * (r + 1), np.uint8)],
                             sheet_api.caption(info("wan2.7-image-pro"), r, [np.zeros((200, 300, 3))], "")),
              sheet_api.Cell([np.full((300, 200, 3), 200, np.uint8)] * (2 if r == 1 else 1),
                             sheet_api.caption(info("wan2.7-image", 2.5), r,
                                               [np.zeros((300, 200, 3))] * (2 if r == 1 else 1), ""))]
             for r in range(3)]
    expected = sheet_api.render_sheet(prompts, ["wan2.7-image-pro", "wan2.7-image"], cells, cell=256,
                                      title="experiment")
    assert np.array_equal(pixels, expected.pixels)
    for r in range(3):
        x, y, w, h = expected.boxes[r][0][0]
        assert (w, h) == (256, 171)
        assert (pixels[y:y + h, x:x + w] == 40 * (r + 1)).all(), f"row {r + 1}, column 1"
    assert len(expected.boxes[1][1]) == 2, "a batch shows side by side in its cell"
    assert cells[0][0].caption == ["wan2.7-image-pro · prompt 1", "300x200 · 1.0 s · est. 0.2 CNY"]


def test_a_cell_with_the_empty_picture_marker_says_there_was_no_picture():
    marker = json.dumps({"model": "wan2.6-image", "elapsed_s": 3.0, "cached": False, "images": 0,
                         "empty_picture_marker": True})
    lines = sheet_api.caption(marker, 0, [np.zeros((64, 64, 3))], "")
    assert lines == ["wan2.6-image · prompt 1", "no picture, text only · 3.0 s"]


def test_without_infos_columns_are_named_by_their_input_and_short_lists_leave_cells_empty():
    out = Sheet.execute(prompt=["one", "two"], image=[flat(10)], image_2=[flat(90), flat(90)])
    [sheet] = out.args
    assert sheet.shape[1] > 2 * 384 and sheet.shape[2] > 2 * 384
    labels = [sheet_api.column_label(None, name) for name in ("image", "image_2")]
    assert labels == ["image", "image_2"]


def test_long_prompts_wrap_and_stay_inside_their_column():
    font = sheet_api.font(20)
    lines = sheet_api.wrap("word " * 200, font, 300, max_lines=5)
    assert len(lines) == 5 and lines[-1].endswith("…")
    assert all(font.getlength(line) <= 300 for line in lines)
    cjk = sheet_api.wrap("一只在雪地里奔跑的橘猫" * 5, sheet_api.font(20, cjk=True), 200, max_lines=3)
    assert len(cjk) == 3 and all(sheet_api.font(20, cjk=True).getlength(line) <= 200 for line in cjk)
