"""Prompt experiments: WanPromptList (one prompt per line -> a list, so one Wan node runs once per prompt, all at
the same time) and WanComparisonSheet (the results on one labelled sheet). Local (Pillow), free."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from comfy_api.latest import io

from ..api import WanInputError, to_uint8_rgb
from .declared import Declared, WanNode
from .tensors import image_batches
from .widgets import node_schema

COLUMNS = 4


def _names(stem: str) -> list[str]:
    return [stem] + [f"{stem}_{i}" for i in range(2, COLUMNS + 1)]


class WanPromptList(WanNode):
    declared = Declared(lambda: node_schema(
        "WanPromptList", "Wan Prompt List",
        "Prompt experiments: one prompt per line becomes a list; a Wan node fed this list runs once per "
        "prompt, concurrently (at most WAN_MAX_CONCURRENT at a time per account).",
        outputs=[io.String.Output("prompt", display_name="prompt", is_output_list=True,
                                  tooltip="The prompts, as a list.")],
        inputs=[
            io.String.Input("prompts", multiline=True, default="",
                            tooltip="One prompt per line; empty lines are skipped."),
        ]))

    @classmethod
    def execute(cls, **given: Any) -> io.NodeOutput:
        lines = [line.strip() for line in cls.declared.values(given).prompts.splitlines() if line.strip()]
        if not lines:
            raise WanInputError("prompts", "has no prompt; write one per line")
        return io.NodeOutput(lines)


class WanComparisonSheet(WanNode):
    """Prompts as rows, models as columns, every cell captioned."""

    declared = Declared(lambda: node_schema(
        "WanComparisonSheet", "Wan Comparison Sheet",
        "A prompt experiment on one sheet: one row per prompt (from Wan Prompt List), one column per Wan node "
        "(e.g. one model each), every cell captioned with its model, prompt number, size, time and cost. "
        "Connect each Wan node's images to image, image_2, ... and its info to info, info_2, ... Drawn "
        "locally: nothing is sent, nothing is billed.",
        outputs=[io.Image.Output("sheet", display_name="sheet", tooltip="The comparison sheet: one picture.")],
        # Every input arrives whole: the list of prompts and, per column, the list of results.
        is_input_list=True,
        inputs=[
            io.String.Input("prompt", force_input=True,
                            tooltip="The prompts (the list from Wan Prompt List): the rows' titles, in order."),
            *[io.Image.Input(name, optional=i > 0,
                             tooltip=f"Column {i + 1}: the pictures of one Wan node fed the prompt list, one entry per "
                                     "prompt (a batch shows side by side in its cell).")
              for i, name in enumerate(_names("image"))],
            *[io.String.Input(name, force_input=True, optional=True,
                              tooltip=f"Column {i + 1}: the same Wan node's info output; names the column by its model "
                                      "and captions each cell.")
              for i, name in enumerate(_names("info"))],
            io.Int.Input("cell_size", default=384, min=128, max=1024, optional=True,
                         tooltip="The longest side of each picture on the sheet, in pixels; the text scales with it."),
            io.String.Input("title", default="", optional=True, tooltip="A line on top of the sheet."),
        ]))

    @classmethod
    def execute(cls, **given: list[Any]) -> io.NodeOutput:
        # Here, not at the top: ComfyUI's start-up does not need the sheet's drawing (api/__init__.py).
        from ..api import SheetCell, column_label, render_sheet, sheet_caption

        v = cls.declared.values(given, as_lists=True)
        prompts = [str(p) for p in v.prompt if p is not None]
        used = [(name, info) for name, info in zip(_names("image"), _names("info")) if v[name]]
        labels, grid_columns = [], []
        for name, info_name in used:
            runs = [[to_uint8_rgb(pixels, label) for label, pixels in image_batches([(name, t)])]
                    for t in v[name]]
            infos = list(v[info_name] or [])
            labels.append(column_label(infos[0] if infos else None, name))
            grid_columns.append([SheetCell(pictures, sheet_caption(infos[r] if r < len(infos) else None, r, pictures, name))
                                 for r, pictures in enumerate(runs)])
        rows = max([len(prompts)] + [len(col) for col in grid_columns])
        cells = [[col[r] if r < len(col) else None for col in grid_columns] for r in range(rows)]
        sheet = render_sheet(prompts, labels, cells, cell=int(v.cell_size[0]), title=str(v.title[0] or ""))
        return io.NodeOutput(torch.from_numpy(np.array(sheet.pixels)).float().div(255).unsqueeze(0))
