"""WanColorPalette: a picture's colours as a wan2.7 colour palette, with a preview of the swatches. Runs
locally, free."""

from __future__ import annotations

import json
from typing import Any

from comfy_api.latest import io

from . import runner
from ..api import palette_from_pixels, swatches, to_uint8_rgb
from .declared import Declared, WanNode
from .tensors import image_batches
from .widgets import node_schema


class WanColorPalette(WanNode):
    declared = Declared(lambda: node_schema(
        "WanColorPalette", "Wan Colour Palette",
        "Take a colour theme from a reference picture: 3-10 colours with their shares (two decimals, summing "
        "to exactly 100.00%), as wan2.7's color_palette. Connect `color_palette` to Wan Text to Image, Wan "
        "Image Edit or Wan Box Edit. Free: nothing is sent to the service.",
        outputs=[
            io.String.Output("color_palette", display_name="color_palette",
                             tooltip='JSON: [{"hex": "#C2D1E6", "ratio": "23.51%"}, ...]'),
            io.Image.Output("swatches", display_name="swatches",
                            tooltip="The colours side by side, each as wide as its share."),
        ],
        inputs=[
            io.Image.Input("image", tooltip="The reference picture (the first of a batch)."),
            io.Int.Input("colors", default=8, min=3, max=10,
                         tooltip="How many colours (3-10; the vendor recommends 8)."),
        ]))

    @classmethod
    async def execute(cls, **given: Any) -> io.NodeOutput:
        v = cls.declared.values(given)

        def work() -> io.NodeOutput:
            import torch

            pictures = image_batches([("image", v.image)])
            rgb = to_uint8_rgb(pictures[0][1], "image")
            palette = palette_from_pixels(rgb, v.colors)
            strip = torch.from_numpy(swatches(palette)).float().div(255).unsqueeze(0)
            return io.NodeOutput(json.dumps(palette), strip)

        return await runner.in_thread(work)   # a big reference picture must not hold up the event loop
