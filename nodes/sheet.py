"""WanComparisonSheet: the results of a prompt experiment on one labelled sheet. Local (Pillow), free."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from comfy_api.latest import io

from ..api import to_uint8_rgb
from .tensors import image_batches
from .wan_nodes import CATEGORY

COLUMNS = 4


def _names(stem: str) -> list[str]:
    return [stem] + [f"{stem}_{i}" for i in range(2, COLUMNS + 1)]


class WanComparisonSheet(io.ComfyNode):
    """Prompts as rows, models as columns, every cell captioned."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        image_names, info_names = _names("image"), _names("info")
        return io.Schema(
            node_id="WanComparisonSheet",
            display_name="Wan Comparison Sheet",
            category=CATEGORY,
            description="A prompt experiment on one sheet: one row per prompt (from Wan Prompt List), one column "
                        "per Wan node (e.g. one model each), every cell captioned with its model, prompt number, "
                        "size, time and cost. Connect each Wan node's images to image, image_2, ... and its info "
                        "to info, info_2, ... Drawn locally: nothing is sent, nothing is billed.",
            inputs=[
                io.String.Input("prompt", force_input=True,
                                tooltip="The prompts (the list from Wan Prompt List): the rows' titles, in order."),
                *[io.Image.Input(name, optional=i > 0,
                                 tooltip=f"Column {i + 1}: the pictures of one Wan node fed the prompt list, "
                                         "one entry per prompt (a batch shows side by side in its cell).")
                  for i, name in enumerate(image_names)],
                *[io.String.Input(name, force_input=True, optional=True,
                                  tooltip=f"Column {i + 1}: the same Wan node's info output; names the column "
                                          "by its model and captions each cell.")
                  for i, name in enumerate(info_names)],
                io.Int.Input("cell_size", default=384, min=128, max=1024, optional=True,
                             tooltip="The longest side of each picture on the sheet, in pixels; the text scales "
                                     "with it."),
                io.String.Input("title", default="", optional=True, tooltip="A line on top of the sheet."),
            ],
            outputs=[io.Image.Output("sheet", display_name="sheet",
                                     tooltip="The comparison sheet: one picture.")],
            # Every input arrives whole: the list of prompts and, per column, the list of results.
            is_input_list=True,
        )

    @classmethod
    def execute(cls, prompt: list[str], cell_size: list[int] | None = None,
                title: list[str] | None = None, **columns: list[Any]) -> io.NodeOutput:
        # Here, not at the top: ComfyUI's start-up does not need the sheet's drawing (api/__init__.py).
        from ..api import SheetCell, column_label, render_sheet, sheet_caption

        prompts = [str(p) for p in prompt if p is not None]
        used = [(name, info) for name, info in zip(_names("image"), _names("info")) if columns.get(name)]
        labels, grid_columns = [], []
        for name, info_name in used:
            runs = [[to_uint8_rgb(pixels, label) for label, pixels in image_batches([(name, t)])]
                    for t in columns[name]]
            infos = list(columns.get(info_name) or [])
            labels.append(column_label(infos[0] if infos else None, name))
            grid_columns.append([SheetCell(pictures, sheet_caption(infos[r] if r < len(infos) else None, r, pictures, name))
                                 for r, pictures in enumerate(runs)])
        rows = max([len(prompts)] + [len(col) for col in grid_columns])
        cells = [[col[r] if r < len(col) else None for col in grid_columns] for r in range(rows)]
        sheet = render_sheet(prompts, labels, cells, cell=int((cell_size or [384])[0]),
                             title=str((title or [""])[0] or ""))
        return io.NodeOutput(torch.from_numpy(np.array(sheet.pixels)).float().div(255).unsqueeze(0))
