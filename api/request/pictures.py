"""How the pictures of a node's image inputs are numbered: the one rule the box editor (web/wan_pictures.js,
the same function in JavaScript) and the nodes (nodes/tensors.py, nodes/boxes.py boxes_for) share.

The service calls the pictures it receives "image 1", "image 2", ... in the order they are sent, and a
bbox_list has one entry per picture in that order. A node sends every picture of `image`'s batch, then every
picture of `image_2`'s, and so on; an input with nothing connected sends nothing and takes no number. So
`image` with a batch of 2 plus `image_3` is three pictures: image[0], image[1], image_3 (picture 3).

tests/api/test_picture_numbering.py runs both versions on the same cases and compares them.
"""

from __future__ import annotations

from typing import Sequence

from ..errors import WanInputError


def number_pictures(inputs: Sequence[tuple[str, int | None]]) -> list[dict]:
    """[(input name, pictures in its batch, or None when nothing is connected)] -> one entry per picture sent:
    {"picture": 1-based number, "input": name, "index": position in the input's batch, "label": name for a
    single picture, name[index] within a batch}."""
    out: list[dict] = []
    for name, count in inputs:
        if count is None:
            continue
        if count < 1:
            raise WanInputError(name, "is an empty batch (0 pictures)")
        for index in range(count):
            out.append({"picture": len(out) + 1, "input": name, "index": index,
                        "label": name if count == 1 else f"{name}[{index}]"})
    return out
