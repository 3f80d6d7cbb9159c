"""WanBBox, box editing: boxes from masks, from core's box types and from the `boxes` string, one list per
sent picture, numbered as the service (and the box editor, web/wan_bbox.js) numbers the pictures."""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from . import runner
from ..api import EDIT, Params, WanInputError, WanRequest, boxes_from_bounding_boxes, number_pictures, parse_boxes
from .declared import Declared, Values, WanNode, queue_check_reads
from .previews import sent_pictures_ui
from .send import build, encode_inputs, palette_value, send
from .tensors import mask_batch, mask_regions
from .validation import queue_check
from .widgets import (
    HIDDEN, MAX_IMAGE_INPUTS, PALETTE_TOOLTIP, billing_schema, common_tail, core_boxes_input, core_palette_inputs,
    image_input_names, image_inputs, mask_input_names, model_input, n_input, price_badge, prompt_input, seed_input,
    size_input,
)


class WanBBox(WanNode):
    declared = Declared(lambda: billing_schema(
        "WanBBox", "Wan Box Edit",
        "wan2.7 interactive editing: change what lies inside boxes. Boxes come from MASK inputs (each mask's "
        "separate regions become up to 2 boxes on its picture; an empty mask means no box), from ComfyUI's "
        "box nodes where it has them (bboxes), and/or the boxes string, so a detector or segmenter upstream "
        "can drive the edit.",
        price_badge(EDIT),
        # The prompt: to find the canvas size of boxes drawn in Create Bounding Boxes (box_grid).
        hidden=[*HIDDEN, io.Hidden.prompt],
        inputs=[
            model_input(EDIT, "wan2.7-image", needs="bbox_list"),
            prompt_input(EDIT),
            *image_inputs(MAX_IMAGE_INPUTS, required=1),
            *[io.Mask.Input(name, optional=True,
                            tooltip=f"Regions to edit on the picture(s) of {image_input_names(MAX_IMAGE_INPUTS)[i]}: "
                                    "each separate region becomes a box (at most 2 per picture).")
              for i, name in enumerate(mask_input_names(MAX_IMAGE_INPUTS))],
            io.String.Input("boxes", multiline=True, default="", optional=True,
                            tooltip="Boxes as JSON, one list per picture in order, in that picture's pixels: "
                                    "[[], [[989, 515, 1138, 681]]] (x1, y1, x2, y2; at most 2 per picture). "
                                    "Added to the boxes from masks."),
            n_input(1, 4),
            size_input("auto", "auto (2K), 1K, 2K, or W*H with 768*768 to 2048*2048 pixels."),
            seed_input(),
            io.String.Input("color_palette", multiline=False, default="", optional=True, tooltip=PALETTE_TOOLTIP),
            *common_tail(mode=EDIT),
            *core_boxes_input(),
            *core_palette_inputs(),
        ]))

    @classmethod
    @queue_check_reads("model", "prompt", "boxes", "n", "size", "color_palette", "region", "transport", "colors",
                       "color_shares")
    def validate_inputs(cls, v: Values) -> bool | str:
        # Boxes from masks and from `bboxes`, and whether each typed box lies inside its picture, are checked
        # when it runs.
        return queue_check(v.model, EDIT, v.prompt, boxes=v.boxes, n=v.n, size=v.size,
                           color_palette=(v.color_palette or "").strip() or None, region=v.region,
                           transport=v.transport, colors=v.colors, color_shares=v.color_shares)

    @classmethod
    async def execute(cls, **given: Any) -> io.NodeOutput:
        v = cls.declared.values(given)
        named = [(name, v[name]) for name in image_input_names(MAX_IMAGE_INPUTS)]
        masks = [v[m] for m in mask_input_names(MAX_IMAGE_INPUTS)]
        grid = box_grid(getattr(cls.hidden, "prompt", None), getattr(cls.hidden, "unique_id", None))

        def prepare_boxes() -> tuple[WanRequest, list, list[str], list]:
            inputs, labels = encode_inputs(v.model, named, v.input_format)
            bbox_list = boxes_for(named, masks, v.boxes, len(inputs), core=v.get("bboxes"), grid=grid)
            params = Params(size=v.size, n=v.n, seed=v.seed, watermark=v.watermark, bbox_list=bbox_list,
                            color_palette=palette_value(v.color_palette, v.get("colors"), v.get("color_shares")))
            return build(v.model, v.prompt, inputs, labels, EDIT, params), inputs, labels, bbox_list

        req, inputs, labels, bbox_list = await runner.in_thread(prepare_boxes)
        out = await send(cls, req, region=v.region, transport=v.transport, inputs=inputs, labels=labels,
                         extra_info={"bbox_list": bbox_list})
        # The pictures as sent, for the box editor: boxes can then be drawn on pictures from any node.
        return io.NodeOutput(*out.args, ui=await runner.in_thread(sent_pictures_ui, named))


def box_grid(prompt: Any, node_id: Any) -> tuple[int, int] | None:
    """The canvas the boxes at this node's `bboxes` were drawn on, when they come straight from core's
    Create Bounding Boxes: its width x height (its pixel grid, which it sets from its background picture
    rounded to 16, so it can differ from the picture by a few pixels). None otherwise (boxes in the
    picture's own pixels, as detectors give them)."""
    try:
        source_id = prompt[str(node_id)]["inputs"]["bboxes"][0]
        source = prompt[str(source_id)]
        if source.get("class_type") != "CreateBoundingBoxes":
            return None
        width, height = source["inputs"]["width"], source["inputs"]["height"]
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            return width, height
    except (KeyError, IndexError, TypeError, AttributeError):
        pass
    return None



def boxes_for(named: list[tuple[str, Any]], masks: list[Any], text: str, count: int, core: Any = None,
              grid: tuple[int, int] | None = None) -> list[list[list[int]]]:
    """One list of boxes per sent picture, numbered by api.request.pictures.number_pictures (as the box editor
    numbers them): regions of the paired mask, then the core BOUNDING_BOX value's (`core`, drawn on a
    `grid` canvas if given), then the boxes string's."""
    mask_of = dict(zip((name for name, _ in named), zip(mask_input_names(len(named)), masks)))
    batches: dict[str, Any] = {}
    for name, tensor in named:
        mask_name, mask_tensor = mask_of[name]
        if tensor is None:
            if mask_tensor is not None:
                raise WanInputError(mask_name, f"is connected but {name} is not; a mask marks regions on its picture")
            continue
        batch = tensor.shape[0] if tensor.ndim == 4 else 1
        mask = mask_batch(mask_tensor)
        if mask is not None and mask.shape[0] not in (1, batch):
            raise WanInputError(mask_name, f"has {mask.shape[0]} masks for {batch} pictures in {name}; give one "
                                           "mask, or one per picture")
        batches[name] = (batch, mask, int(tensor.shape[-3]), int(tensor.shape[-2]))
    per_picture: list[list[list[int]]] = []
    sizes: list[tuple[int, int]] = []
    for picture in number_pictures([(name, batches[name][0] if name in batches else None) for name, _ in named]):
        batch, mask, height, width = batches[picture["input"]]
        sizes.append((width, height))
        if mask is None:
            per_picture.append([])
            continue
        i = picture["index"]
        m = mask[i if mask.shape[0] > 1 else 0]
        regions = mask_regions(m)
        mask_name = mask_of[picture["input"]][0]
        label = mask_name if batch == 1 else f"{mask_name}[{i}]"
        if len(regions) > 2:
            raise WanInputError(label, f"has {len(regions)} separate regions; wan2.7 takes at most 2 boxes per "
                                       "picture (merge or remove regions)")
        # A mask of another resolution than its picture is scaled onto it.
        sx, sy = width / m.shape[1], height / m.shape[0]
        per_picture.append([[round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy)]
                            for x1, y1, x2, y2 in regions])
    if core is not None:
        for i, extra in enumerate(boxes_from_bounding_boxes(core, sizes, grid)):
            per_picture[i] = per_picture[i] + extra
    typed = parse_boxes(text)
    if typed:
        if len(typed) > count:
            raise WanInputError("boxes", f"has {len(typed)} lists of boxes for {count} pictures")
        for i, extra in enumerate(typed):
            if not isinstance(extra, list):
                raise WanInputError("boxes", f"entry {i + 1} must be a list of boxes")
            per_picture[i] = per_picture[i] + [list(b) for b in extra]
    return per_picture

