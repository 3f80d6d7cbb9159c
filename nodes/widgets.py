"""The inputs and outputs the Wan nodes share, and the schema they are listed in.

Everything about limits lives in api/request/models.py: the tooltips quote it, and api/ refuses what a model
would refuse. A node lists its inputs once (nodes/declared.py); these build them.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from ..api import (
    EXACT, MODELS, PER_INPUT_PICTURE, models_with_mode, price_badge_expr, region_summary, transport_summary,
)

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



# ---- the schema --------------------------------------------------------------------------------------------

def node_schema(node_id: str, display_name: str, description: str, **options: Any) -> io.Schema:
    """A node's schema (its declaration, nodes/declared.py), in the pack's category; `options` as io.Schema
    takes them."""
    return io.Schema(node_id=node_id, display_name=display_name, category=CATEGORY, description=description,
                     **options)


def billing_schema(node_id: str, display_name: str, description: str, badge: dict[str, Any],
                   hidden: list[Any] = HIDDEN, **options: Any) -> io.Schema:
    """A node that sends a billable request: the Wan outputs, its node id (to show its status), its price."""
    return node_schema(node_id, display_name, description, outputs=outputs(), hidden=hidden, **badge, **options)
