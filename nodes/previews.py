"""The pictures a node sent, as UI previews: after a run, the box editor (web/wan_bbox.js) shows them, so
boxes can be drawn on a picture made by any upstream node, numbered as the service numbered it."""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np
from PIL import Image

from ..api import number_pictures
from .tensors import image_batches

# Previews are for drawing on, not for keeping: the long side is capped (the editor maps the boxes back to
# each picture's own pixels with the width and height given next to the file).
PREVIEW_MAX_SIDE = 1024


def sent_pictures_ui(named: list[tuple[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """{"wan_sent": [{filename, subfolder, type: "temp", picture, input, index, label, width, height}, ...]}
    for the pictures of `named` in the order they were sent. A custom key: ComfyUI's page shows "images"
    under the node by itself, which these are not meant for."""
    import folder_paths  # ComfyUI's

    pictures = image_batches(named)
    counts = [(name, None if t is None else (int(t.shape[0]) if t.ndim == 4 else 1)) for name, t in named]
    folder = os.path.join(folder_paths.get_temp_directory(), "wan_sent")
    os.makedirs(folder, exist_ok=True)
    run = uuid.uuid4().hex[:12]  # a new name every run: the page must not show a stale picture from its cache
    out = []
    for (label, arr), number in zip(pictures, number_pictures(counts)):
        assert label == number["label"]  # one rule: image_batches numbers with number_pictures too
        rgb = np.clip(arr[..., :3] * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if rgb.shape[2] == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        height, width = rgb.shape[:2]
        picture = Image.fromarray(rgb)
        if max(width, height) > PREVIEW_MAX_SIDE:
            picture.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE), Image.Resampling.BILINEAR)
        name = f"{run}_{number['picture']}.png"
        picture.save(os.path.join(folder, name), compress_level=1)
        out.append({"filename": name, "subfolder": "wan_sent", "type": "temp", **number,
                    "width": width, "height": height})
    return {"wan_sent": out}
