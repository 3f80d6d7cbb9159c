"""The Wan nodes: schema (what the UI shows) + a short execute (widgets -> one request -> outputs).

Everything about limits lives in api/request/models.py; tooltips quote it, and api/ refuses what a model would
refuse. Outputs are always: IMAGE (every returned picture), STRING `text`, STRING `info` (JSON).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from comfy_api.latest import io

from . import runner, usage
from ..api import (
    AT_MOST, EDIT, EXACT, INTERLEAVE, MODELS, PER_INPUT_PICTURE, SEQUENTIAL, TEXT_TO_IMAGE, Params, WanInputError,
    WanRequest, boxes_from_bounding_boxes, build_request, describe, node_palette, price_badge_expr,
    encode_images, errors, get_model, models_with_mode, number_pictures, palette_from_pixels, parse_boxes,
    region_summary, swatches, to_uint8_rgb, transport_summary,
)
from .previews import sent_pictures_ui
from .tensors import image_batches, mask_batch, mask_regions, to_image_tensor
from .validation import queue_check

CATEGORY = "api node/image/Wan (DashScope)"
MAX_IMAGE_INPUTS = 9
REGIONS = ["default", "singapore", "virginia", "beijing"]
TRANSPORTS = ["auto", "async", "sync", "stream"]
FORMATS = ["auto", "png", "jpeg"]


def image_input_names(count: int) -> list[str]:
    return ["image"] + [f"image_{i}" for i in range(2, count + 1)]


def mask_input_names(count: int) -> list[str]:
    return ["mask"] + [f"mask_{i}" for i in range(2, count + 1)]


# ---- widgets shared by the nodes ---------------------------------------------------------------------------

def model_input(mode: str, default: str, needs: str | None = None) -> io.Combo.Input:
    """The models that have `mode` (and, with `needs`, that parameter in it)."""
    options = [m for m in models_with_mode(mode) if needs is None or needs in MODELS[m].modes[mode].params]
    return io.Combo.Input("model", options=options, default=default,
                          tooltip="The Wan model. " + "; ".join(_model_note(m, mode) for m in options))


def _model_note(name: str, mode: str) -> str:
    m = MODELS[name].modes[mode]
    lo, hi = m.images
    return f"{name}: {lo}-{hi} images, n {m.n[0]}-{m.n[1]}"


def prompt_input(mode: str) -> io.String.Input:
    limits = ", ".join(f"{name} {MODELS[name].prompt_max}" for name in models_with_mode(mode))
    return io.String.Input("prompt", multiline=True, default="",
                           tooltip=f"What to make or change, in Chinese or English. Refer to inputs as "
                                   f"'image 1', 'image 2', ... in the order they are sent. At most: {limits} characters.")


def seed_input() -> io.Int.Input:
    return io.Int.Input("seed", default=0, min=0, max=2147483647, control_after_generate=True,
                        display_mode=io.NumberDisplay.number,
                        tooltip="Seed 0-2147483647. A new seed asks for a new generation; the same seed gives "
                                "similar (not identical) pictures.")


def n_input(lo: int, hi: int, default: int = 1, what: str = "Pictures to generate") -> io.Int.Input:
    return io.Int.Input("n", default=default, min=lo, max=hi,
                        tooltip=f"{what} ({lo}-{hi}). Each successfully generated picture is billed.")


def size_input(default: str, tooltip: str) -> io.String.Input:
    return io.String.Input("size", default=default, tooltip=tooltip)


def image_inputs(count: int, required: int) -> list[io.Image.Input]:
    return [io.Image.Input(name, optional=i >= required,
                           tooltip=("Input picture(s), sent as 'image 1', 'image 2', ... in order; a batch "
                                    "counts as several pictures. Inputs may differ in size.") if i == 0 else
                           f"More input pictures (sent after those of {image_input_names(count)[i - 1]}).")
            for i, name in enumerate(image_input_names(count))]


def common_tail(with_format: bool = True, mode: str | None = None) -> list[Any]:
    # Which regions and transports apply is generated from the model table (api/request/models.py), for the models
    # of this node's mode, so the tooltips cannot drift from the rules that refuse the rest.
    names = list(models_with_mode(mode)) if mode else None
    items: list[Any] = [
        io.Boolean.Input("watermark", default=False, optional=True,
                         tooltip="Add the 'AI生成' (AI-generated) mark at the bottom right."),
        io.Combo.Input("region", options=REGIONS, default="default", optional=True,
                       tooltip="Where requests go (keys are per region). Offered, per the vendor's pages: "
                               f"{region_summary(names)}; another region is refused before sending. 'default' "
                               "uses DASHSCOPE_REGION, else Singapore. DASHSCOPE_HTTP_BASE_URL overrides both "
                               "(then that endpoint decides). The key itself comes from DASHSCOPE_API_KEY, "
                               "never from a widget."),
        io.Combo.Input("transport", options=TRANSPORTS, default="auto", optional=True,
                       tooltip="auto: the first of the model's transports (an async task: interruptible, a cut "
                               "connection loses nothing; a stream for interleaved output). sync: one long "
                               "request. stream: server-sent events. Documented, per model: "
                               f"{transport_summary(names, mode)}; anything else is refused before sending."),
    ]
    if with_format:
        items.append(io.Combo.Input("input_format", options=FORMATS, default="auto", optional=True,
                                    tooltip="How input pictures are sent. png: lossless. jpeg: quality 95. auto: "
                                            "PNG for flat artwork, JPEG for photographs (faster to send)."))
    return items


def price_badge(mode: str, count_widget: str = "n", wording: str = EXACT) -> dict[str, Any]:
    """The node's estimated cost per run, shown on it before anything is queued, where the host has price
    badges (ComfyUI v0.33.0 on; 0.3.75 has none and the schema stays as it was). The JSONata expression is
    generated from api/money/pricing.py over the node's models and region choices; web/wan_price_badge.js lets
    the page draw it."""
    if not hasattr(io, "PriceBadge"):
        return {}
    widgets = ["model", count_widget, "region"] + (["per_image"] if wording == PER_INPUT_PICTURE else [])
    expr = price_badge_expr(list(models_with_mode(mode)), REGIONS, count_widget, wording)
    return {"price_badge": io.PriceBadge(expr=expr, depends_on=io.PriceBadgeDepends(widgets=widgets))}


PALETTE_TOOLTIP = ("Colour theme for wan2.7 (not with sequential output): JSON list of 3-10 "
                   '{"hex": "#RRGGBB", "ratio": "NN.NN%"} whose ratios sum to 100.00%. Empty: none.')


def outputs() -> list[Any]:
    return [
        io.Image.Output("images", display_name="images", tooltip="Every returned picture, as one batch."),
        io.String.Output("text", display_name="text",
                         tooltip="The generated text (interleave), or the prompt as the service rewrote it."),
        io.String.Output("info", display_name="info",
                         tooltip="JSON: request_id, task_id, model, usage, pictures billed, result URLs and "
                                 "when they expire."),
    ]


HIDDEN = [io.Hidden.unique_id]


# ---- the shared execute path ----------------------------------------------------------------------------

def encode_inputs(model: str, named: list[tuple[str, Any]], input_format: str) -> tuple[list, list[str]]:
    spec = get_model(model)  # an unknown model fails here, clearly
    pictures = image_batches(named)
    limit = spec.max_input_images
    if len(pictures) > limit:
        raise WanInputError("image", f"{len(pictures)} pictures in all (batches count one per picture); "
                                     f"{model} takes at most {limit}")
    encoded = encode_images(pictures, spec.image, input_format or "auto")
    return encoded, [label for label, _ in pictures]


def prepare(model: str, prompt: str, named: list[tuple[str, Any]], input_format: str, mode: str,
            params: Params) -> tuple[WanRequest, list, list[str]]:
    """Encode the pictures and build the request: slow for big pictures, so nodes run it in a worker thread."""
    inputs, labels = encode_inputs(model, named, input_format)
    return build(model, prompt, inputs, labels, mode, params), inputs, labels


def build(model: str, prompt: str, images: list, labels: list[str], mode: str, params: Params) -> WanRequest:
    try:
        return build_request(model, prompt, images, mode=mode, params=params)
    except WanInputError as exc:
        # api/ numbers pictures as the service sees them ("image 3"); name the node input they came from.
        if exc.param.startswith("image ") and exc.param[6:].isdigit():
            index = int(exc.param[6:]) - 1
            if 0 <= index < len(labels):
                raise WanInputError(labels[index], exc.limit) from None
        raise


async def send(node_cls: Any, req: WanRequest, *, region: str, transport: str,
               inputs: list, labels: list[str], extra_info: dict[str, Any] | None = None) -> io.NodeOutput:
    node_id = getattr(node_cls.hidden, "unique_id", None)
    # A stream cut after some pictures comes back as a result with `incomplete` set: they are paid for.
    result = await runner.run(node_id, req, region=region or "default", transport=transport or "auto")
    images, sizes = await runner.in_thread(to_image_tensor, [img.pixels for img in result.images])
    info = describe(result)
    info["inputs"] = [{"input": label, "sent_width": img.width, "sent_height": img.height,
                       "source_size": list(img.source_size or ()), "bytes": img.nbytes,
                       "format": img.value[5:img.value.find(";")] if img.value.startswith("data:") else "url"}
                      for label, img in zip(labels, inputs)]
    if len(set(sizes)) > 1:
        info["resized_to_first"] = {"size": list(sizes[0]), "original_sizes": [list(s) for s in sizes]}
    if extra_info:
        info.update(extra_info)
    runner.show(node_id, summary_line(req.model, result, info, result.incomplete))
    return io.NodeOutput(images, result.text, json.dumps(info, ensure_ascii=False, indent=1))


def summary_line(model: str, result: Any, info: dict[str, Any], note: str) -> str:
    """The node's last status line: what came back and what it cost."""
    if result.from_cache:
        line = f"{model}: {len(result.images)} picture(s) from the result cache: nothing sent, nothing billed"
    else:
        line = f"{model}: {len(result.images)} picture(s), {info.get('images_billed_this_run')} billed"
        cost = info.get("cost_estimate")
        if cost:
            line += f" (≈ {cost['total']:g} {cost['currency']})"
    line += f", {result.elapsed:.1f} s"
    return line + (f"\n⚠ {note}" if note else "")


def merge_outputs(outs: list[io.NodeOutput]) -> io.NodeOutput:
    """Several requests' outputs as one: pictures in order (resized to the first's size if they differ),
    texts joined, and ONE info object whose `requests` holds each request's info, in order."""
    import torch

    batches = [out.args[0] for out in outs]
    target = batches[0].shape[1:3]
    fitted = [b if b.shape[1:3] == target else
              torch.nn.functional.interpolate(b.movedim(-1, 1), size=tuple(target), mode="bicubic",
                                              align_corners=False).movedim(1, -1).clamp(0, 1) for b in batches]
    texts = "\n\n".join(out.args[1] for out in outs if out.args[1])
    infos = [json.loads(out.args[2]) for out in outs]
    info = {
        "per_image": True,
        "model": infos[0].get("model"),
        "images_billed": sum(i.get("images_billed") or 0 for i in infos),
        "images_billed_this_run": sum(i.get("images_billed_this_run") or 0 for i in infos),
        "cached": all(i.get("cached") for i in infos),
        "requests": infos,
    }
    return io.NodeOutput(torch.cat(fitted), texts, json.dumps(info, ensure_ascii=False, indent=1))


def palette_value(text: str | None, colors: Any = None, shares: str | None = None) -> Any:
    """The palette to send: the `color_palette` string, or the core `colors` with `color_shares`."""
    return node_palette((text or "").strip() or None, colors, shares)


# ---- core widgets, where the host has them (ComfyUI v0.33.0 on) ----------------------------------------------
# Appended after every other input, so the widget values saved in older workflows keep their places.

def core_palette_inputs() -> list[Any]:
    if not hasattr(io, "Colors"):
        return []
    return [
        io.Colors.Input("colors", optional=True, socketless=False,
                        tooltip="The wan2.7 colour theme as ComfyUI's colour list (or from a node that outputs "
                                "COLORS): 3-10 colours, equal shares unless color_shares gives them. Use it "
                                "instead of color_palette."),
        io.String.Input("color_shares", default="", optional=True,
                        tooltip="Shares of the colours in `colors`, in order, e.g. 40, 35, 25 (scaled to sum to "
                                "exactly 100.00%). Empty: equal shares."),
    ]


def core_boxes_input() -> list[Any]:
    if not hasattr(io, "BoundingBox") or not hasattr(io, "BoundingBoxes"):
        return []
    # Either core box type: BOUNDING_BOX (Create Bounding Boxes' output, detectors) or BOUNDING_BOXES.
    return [io.MultiType.Input(
        "bboxes", [io.BoundingBox, io.BoundingBoxes], optional=True,
        tooltip="Boxes from ComfyUI's box nodes (Create Bounding Boxes, a detector): its k-th list of boxes goes "
                "on picture k, numbered as the editor numbers them; boxes drawn in Create Bounding Boxes are "
                "scaled from its width x height onto the picture. Added to the boxes from masks and from the "
                "boxes string.")]


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


# ---- the nodes -----------------------------------------------------------------------------------------

class WanImageEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="WanImageEdit",
            display_name="Wan Image Edit",
            category=CATEGORY,
            description="Edit one picture or fuse several (up to 9 on wan2.7, 4 on wan2.6, 3 on wan2.5) with a "
                        "prompt. The output keeps the aspect ratio of the last input picture.",
            inputs=[
                model_input(EDIT, "wan2.7-image"),
                prompt_input(EDIT),
                *image_inputs(MAX_IMAGE_INPUTS, required=1),
                n_input(1, 4),
                size_input("auto", "auto (the model's default: 2K on wan2.7, 1K on wan2.6, 1280*1280 pixels on "
                                   "wan2.5), 1K, 2K, or W*H such as 1280*720 (wan2.7/2.6: 768*768 to 2048*2048 "
                                   "pixels; wan2.5: 768*768 to 1280*1280)."),
                seed_input(),
                io.String.Input("negative_prompt", multiline=True, default="", optional=True,
                                tooltip="What to avoid (wan2.6 and wan2.5 only, at most 500 characters)."),
                io.Boolean.Input("prompt_extend", default=True, optional=True,
                                 tooltip="Let the service rewrite the prompt (wan2.6 and wan2.5 only; sent only "
                                         "to them). The rewritten prompt comes out as `text`."),
                io.String.Input("color_palette", multiline=False, default="", optional=True,
                                tooltip=PALETTE_TOOLTIP),
                io.Boolean.Input("per_image", default=False, optional=True,
                                 tooltip="Edit each picture of the `image` batch in a request of its own (the "
                                         "pictures of image_2... go with every one), all at once: e.g. the "
                                         "same edit on every frame. Results come back in order."),
                *common_tail(mode=EDIT),
                *core_palette_inputs(),
            ],
            outputs=outputs(),
            hidden=HIDDEN,
            is_api_node=False,  # see web/wan_price_badge.js: the badge is shown without it
            **price_badge(EDIT, wording=PER_INPUT_PICTURE),
        )

    @classmethod
    def validate_inputs(cls, model: str | None = None, prompt: str | None = None, n: int = 1, size: str = "auto",
                        negative_prompt: str = "", color_palette: str = "", region: str = "default",
                        transport: str = "auto", colors: Any = None, color_shares: str = "") -> bool | str:
        return queue_check(model, EDIT, prompt, n=n, size=size, negative_prompt=negative_prompt or None,
                           color_palette=(color_palette or "").strip() or None, region=region, transport=transport,
                           colors=colors, color_shares=color_shares)

    @classmethod
    async def execute(cls, model: str, prompt: str, n: int = 1, size: str = "auto", seed: int = 0,
                      negative_prompt: str = "", prompt_extend: bool = True, color_palette: str = "",
                      per_image: bool = False, watermark: bool = False, region: str = "default",
                      transport: str = "auto", input_format: str = "auto", colors: Any = None,
                      color_shares: str = "", **images: Any) -> io.NodeOutput:
        mode_params = get_model(model).modes[EDIT].params
        params = Params(size=size, n=n, seed=seed, watermark=watermark, negative_prompt=negative_prompt or None,
                        prompt_extend=prompt_extend if "prompt_extend" in mode_params else None,
                        color_palette=palette_value(color_palette, colors, color_shares))
        names = image_input_names(MAX_IMAGE_INPUTS)
        first = images.get("image")
        if per_image and first is not None and first.ndim == 4 and first.shape[0] > 1:
            runs = [[("image", first[i:i + 1])] + [(name, images.get(name)) for name in names[1:]]
                    for i in range(first.shape[0])]
        else:
            runs = [[(name, images.get(name)) for name in names]]
        # Validate and encode every request before any is sent: one bad picture must not leave the others
        # half-paid. A per-image batch's requests are encoded side by side (the shared worker threads).
        jobs = await asyncio.gather(*[runner.in_thread(prepare, model, prompt, named, input_format, EDIT, params)
                                      for named in runs])
        # The daily limit over the whole fan-out, before any request is sent (api/ledger.py).
        await runner.in_thread(usage.check_fan_out, region, [req for req, _, _ in jobs])
        outs = await asyncio.gather(*[send(cls, req, region=region, transport=transport, inputs=inputs,
                                           labels=labels) for req, inputs, labels in jobs])
        return outs[0] if len(outs) == 1 else await runner.in_thread(merge_outputs, outs)


class WanTextToImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="WanTextToImage",
            display_name="Wan Text to Image",
            category=CATEGORY,
            description="wan2.7 text-to-image: 1K, 2K, or 4K on wan2.7-image-pro; thinking mode; colour palette.",
            inputs=[
                model_input(TEXT_TO_IMAGE, "wan2.7-image-pro"),
                prompt_input(TEXT_TO_IMAGE),
                n_input(1, 4),
                size_input("2K", "1K (1024*1024), 2K (2048*2048), 4K (4096*4096, wan2.7-image-pro only), or W*H "
                                 "with 768*768 to 2048*2048 pixels (4096*4096 on pro), aspect 1:8 to 8:1."),
                seed_input(),
                io.Boolean.Input("thinking_mode", default=True, optional=True,
                                 tooltip="Reason about the prompt before drawing: better pictures, slower."),
                io.String.Input("color_palette", multiline=False, default="", optional=True,
                                tooltip=PALETTE_TOOLTIP),
                *common_tail(with_format=False, mode=TEXT_TO_IMAGE),
                *core_palette_inputs(),
            ],
            outputs=outputs(),
            hidden=HIDDEN,
            **price_badge(TEXT_TO_IMAGE),
        )

    @classmethod
    def validate_inputs(cls, model: str | None = None, prompt: str | None = None, n: int = 1, size: str = "2K",
                        color_palette: str = "", region: str = "default", transport: str = "auto",
                        colors: Any = None, color_shares: str = "") -> bool | str:
        return queue_check(model, TEXT_TO_IMAGE, prompt, n=n, size=size,
                           color_palette=(color_palette or "").strip() or None, region=region, transport=transport,
                           colors=colors, color_shares=color_shares)

    @classmethod
    async def execute(cls, model: str, prompt: str, n: int = 1, size: str = "2K", seed: int = 0,
                      thinking_mode: bool = True, color_palette: str = "", watermark: bool = False,
                      region: str = "default", transport: str = "auto", colors: Any = None,
                      color_shares: str = "") -> io.NodeOutput:
        params = Params(size=size, n=n, seed=seed, watermark=watermark, thinking_mode=thinking_mode,
                        color_palette=palette_value(color_palette, colors, color_shares))
        req = build(model, prompt, [], [], TEXT_TO_IMAGE, params)
        return await send(cls, req, region=region, transport=transport, inputs=[], labels=[])


class WanSequential(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="WanSequential",
            display_name="Wan Sequential (Group)",
            category=CATEGORY,
            description="wan2.7 sequential output: a consistent set of up to 12 pictures (a story, the seasons, "
                        "a product series) from a prompt and 0-9 reference pictures. Returns all of them.",
            inputs=[
                model_input(SEQUENTIAL, "wan2.7-image"),
                prompt_input(SEQUENTIAL),
                *image_inputs(MAX_IMAGE_INPUTS, required=0),
                n_input(1, 12, default=4, what="The most pictures in the set; the model decides how many"),
                size_input("2K", "1K or 2K (4K is not offered for sets), or W*H with 768*768 to 2048*2048 "
                                 "pixels, aspect 1:8 to 8:1."),
                seed_input(),
                *common_tail(mode=SEQUENTIAL),
            ],
            outputs=outputs(),
            hidden=HIDDEN,
            **price_badge(SEQUENTIAL, wording=AT_MOST),
        )

    @classmethod
    def validate_inputs(cls, model: str | None = None, prompt: str | None = None, n: int = 4, size: str = "2K",
                        region: str = "default", transport: str = "auto") -> bool | str:
        return queue_check(model, SEQUENTIAL, prompt, n=n, size=size, region=region, transport=transport)

    @classmethod
    async def execute(cls, model: str, prompt: str, n: int = 4, size: str = "2K", seed: int = 0,
                      watermark: bool = False, region: str = "default", transport: str = "auto",
                      input_format: str = "auto", **images: Any) -> io.NodeOutput:
        named = [(name, images.get(name)) for name in image_input_names(MAX_IMAGE_INPUTS)]
        params = Params(size=size, n=n, seed=seed, watermark=watermark)
        req, inputs, labels = await runner.in_thread(prepare, model, prompt, named, input_format, SEQUENTIAL, params)
        return await send(cls, req, region=region, transport=transport, inputs=inputs, labels=labels)


class WanInterleave(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="WanInterleave",
            display_name="Wan Interleave (Text + Images)",
            category=CATEGORY,
            description="wan2.6-image interleaved output: text and up to 5 pictures (a tutorial, a story) from a "
                        "prompt and an optional picture. The text streams onto the node as it is written.",
            inputs=[
                model_input(INTERLEAVE, "wan2.6-image"),
                prompt_input(INTERLEAVE),
                *image_inputs(1, required=0),
                io.Int.Input("max_images", default=3, min=1, max=5,
                             tooltip="The most pictures (1-5); the model decides how many. Each is billed."),
                size_input("1280*1280", "W*H with 768*768 to 1280*1280 pixels, aspect 1:4 to 4:1."),
                seed_input(),
                io.String.Input("negative_prompt", multiline=True, default="", optional=True,
                                tooltip="What to avoid (at most 500 characters)."),
                *common_tail(mode=INTERLEAVE),
            ],
            outputs=outputs(),
            hidden=HIDDEN,
            **price_badge(INTERLEAVE, "max_images", AT_MOST),
        )

    @classmethod
    def validate_inputs(cls, model: str | None = None, prompt: str | None = None, max_images: int = 3,
                        size: str = "1280*1280", negative_prompt: str = "", region: str = "default",
                        transport: str = "auto") -> bool | str:
        return queue_check(model, INTERLEAVE, prompt, n=1, max_images=max_images, size=size,
                           negative_prompt=negative_prompt or None, region=region, transport=transport)

    @classmethod
    async def execute(cls, model: str, prompt: str, max_images: int = 3, size: str = "1280*1280", seed: int = 0,
                      negative_prompt: str = "", watermark: bool = False, region: str = "default",
                      transport: str = "auto", input_format: str = "auto", image: Any = None) -> io.NodeOutput:
        params = Params(size=size, n=1, seed=seed, watermark=watermark, max_images=max_images,
                        negative_prompt=negative_prompt or None)
        req, inputs, labels = await runner.in_thread(prepare, model, prompt, [("image", image)], input_format,
                                                     INTERLEAVE, params)
        return await send(cls, req, region=region, transport=transport, inputs=inputs, labels=labels)


class WanBBox(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="WanBBox",
            display_name="Wan Box Edit",
            category=CATEGORY,
            description="wan2.7 interactive editing: change what lies inside boxes. Boxes come from MASK inputs "
                        "(each mask's separate regions become up to 2 boxes on its picture; an empty mask means "
                        "no box), from ComfyUI's box nodes where it has them (bboxes), and/or the boxes string, "
                        "so a detector or segmenter upstream can drive the edit.",
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
                io.String.Input("color_palette", multiline=False, default="", optional=True,
                                tooltip=PALETTE_TOOLTIP),
                *common_tail(mode=EDIT),
                *core_boxes_input(),
                *core_palette_inputs(),
            ],
            outputs=outputs(),
            # The prompt: to find the canvas size of boxes drawn in Create Bounding Boxes (box_grid).
            hidden=[*HIDDEN, io.Hidden.prompt],
            **price_badge(EDIT),
        )

    @classmethod
    def validate_inputs(cls, model: str | None = None, prompt: str | None = None, boxes: str = "", n: int = 1,
                        size: str = "auto", color_palette: str = "", region: str = "default",
                        transport: str = "auto", colors: Any = None, color_shares: str = "") -> bool | str:
        # Boxes from masks and from `bboxes`, and whether each typed box lies inside its picture, are checked
        # when it runs.
        return queue_check(model, EDIT, prompt, boxes=boxes, n=n, size=size,
                           color_palette=(color_palette or "").strip() or None, region=region, transport=transport,
                           colors=colors, color_shares=color_shares)

    @classmethod
    async def execute(cls, model: str, prompt: str, boxes: str = "", n: int = 1, size: str = "auto", seed: int = 0,
                      color_palette: str = "", watermark: bool = False, region: str = "default",
                      transport: str = "auto", input_format: str = "auto", bboxes: Any = None, colors: Any = None,
                      color_shares: str = "", **tensors: Any) -> io.NodeOutput:
        image_names = image_input_names(MAX_IMAGE_INPUTS)
        named = [(name, tensors.get(name)) for name in image_names]
        masks = [tensors.get(m) for m in mask_input_names(MAX_IMAGE_INPUTS)]
        grid = box_grid(getattr(cls.hidden, "prompt", None), getattr(cls.hidden, "unique_id", None))

        def prepare_boxes() -> tuple[WanRequest, list, list[str], list]:
            inputs, labels = encode_inputs(model, named, input_format)
            bbox_list = boxes_for(named, masks, boxes, len(inputs), core=bboxes, grid=grid)
            params = Params(size=size, n=n, seed=seed, watermark=watermark, bbox_list=bbox_list,
                            color_palette=palette_value(color_palette, colors, color_shares))
            return build(model, prompt, inputs, labels, EDIT, params), inputs, labels, bbox_list

        req, inputs, labels, bbox_list = await runner.in_thread(prepare_boxes)
        out = await send(cls, req, region=region, transport=transport, inputs=inputs, labels=labels,
                         extra_info={"bbox_list": bbox_list})
        # The pictures as sent, for the box editor: boxes can then be drawn on pictures from any node.
        return io.NodeOutput(*out.args, ui=await runner.in_thread(sent_pictures_ui, named))


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


class WanPromptList(io.ComfyNode):
    """One prompt per line -> a list, so one Wan node runs once per prompt, all at the same time."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="WanPromptList",
            display_name="Wan Prompt List",
            category=CATEGORY,
            description="Prompt experiments: one prompt per line becomes a list; a Wan node fed this list runs "
                        "once per prompt, concurrently (at most WAN_MAX_CONCURRENT at a time per account).",
            inputs=[io.String.Input("prompts", multiline=True, default="",
                                    tooltip="One prompt per line; empty lines are skipped.")],
            outputs=[io.String.Output("prompt", display_name="prompt", is_output_list=True,
                                      tooltip="The prompts, as a list.")],
        )

    @classmethod
    def execute(cls, prompts: str) -> io.NodeOutput:
        lines = [line.strip() for line in prompts.splitlines() if line.strip()]
        if not lines:
            raise WanInputError("prompts", "has no prompt; write one per line")
        return io.NodeOutput(lines)


class WanColorPalette(io.ComfyNode):
    """A picture's colours as a wan2.7 colour palette, with a preview of the swatches. Runs locally."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="WanColorPalette",
            display_name="Wan Colour Palette",
            category=CATEGORY,
            description="Take a colour theme from a reference picture: 3-10 colours with their shares "
                        "(two decimals, summing to exactly 100.00%), as wan2.7's color_palette. Connect "
                        "`color_palette` to Wan Text to Image, Wan Image Edit or Wan Box Edit. Free: nothing is "
                        "sent to the service.",
            inputs=[
                io.Image.Input("image", tooltip="The reference picture (the first of a batch)."),
                io.Int.Input("colors", default=8, min=3, max=10,
                             tooltip="How many colours (3-10; the vendor recommends 8)."),
            ],
            outputs=[
                io.String.Output("color_palette", display_name="color_palette",
                                 tooltip='JSON: [{"hex": "#C2D1E6", "ratio": "23.51%"}, ...]'),
                io.Image.Output("swatches", display_name="swatches",
                                tooltip="The colours side by side, each as wide as its share."),
            ],
        )

    @classmethod
    async def execute(cls, image: Any, colors: int = 8) -> io.NodeOutput:
        def work() -> io.NodeOutput:
            import torch

            pictures = image_batches([("image", image)])
            rgb = to_uint8_rgb(pictures[0][1], "image")
            palette = palette_from_pixels(rgb, colors)
            strip = torch.from_numpy(swatches(palette)).float().div(255).unsqueeze(0)
            return io.NodeOutput(json.dumps(palette), strip)

        return await runner.in_thread(work)   # a big reference picture must not hold up the event loop


NODES = [WanImageEdit, WanTextToImage, WanSequential, WanInterleave, WanBBox, WanPromptList, WanColorPalette]
