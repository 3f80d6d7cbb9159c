"""Queue-time checks: what a Wan node's widget values alone decide, refused when the graph is queued.

ComfyUI 0.3.75 calls a V3 node's `validate_inputs` while validating `POST /prompt`, before any node runs
(execution.py, validate_inputs):
- it passes only the inputs the method names; a widget's value comes converted (INT -> int, STRING -> str),
  an input linked to another node comes as None (nothing has run yet), an optional input the graph leaves
  out is not passed (its declared default applies: nodes/declared.py);
- for an input the method names, ComfyUI skips its own checks (min/max, combo options), so whatever we
  take here we must check ourselves (api/ does: unknown model, n range, ...);
- a returned string refuses the graph: 400 with `node_errors[<node id>]`, one "custom_validation_failed"
  entry per input the method names (`details` = "<input> - <our string>", `extra_info.input_name`);
- a raised exception is caught by the node that links to ours (a Wan node is never an output node) and
  reported as "exception_during_inner_validation" with a traceback and the *downstream* input's name (e.g.
  SaveImage's `images`), so we return the message instead of raising.

The rules are api/'s (`check_settings`, the same checks `build_request` runs before sending); this module
only maps widget values to them and their WanInputError to the line ComfyUI shows. What needs the pictures
(how many, their sizes, boxes inside them, boxes from masks) is checked when the node runs, as before.
"""

from __future__ import annotations

from typing import Any

from ..api import WanInputError, check_region, choose_transport, endpoint_overridden
from ..api import Params, check_settings, node_palette, parse_boxes

# api/ says what the service calls a thing; at queue time the node's input is the one to name.
_INPUT_NAMES = {"bbox_list": "boxes", "mode": "model"}


def queue_check(model: str | None, mode: str, prompt: str | None = None, *, boxes: str | None = None,
                region: str | None = None, transport: str | None = None, colors: Any = None,
                color_shares: str | None = None, **settings: Any) -> bool | str:
    """True, or the message that refuses the graph. `settings` are `Params` fields as the node's execute
    passes them; None stands for a linked input, checked when the node runs. `colors` (a core COLORS
    value) and `color_shares` become the palette as the node's execute makes it."""
    if model is None:  # a linked model: nothing model-dependent can be decided yet
        return True
    try:
        if colors is not None:
            settings["color_palette"] = node_palette(settings.get("color_palette"), colors, color_shares)
        bbox_list = parse_boxes(boxes) if boxes else None
        check_settings(model, mode, prompt, Params(**settings, bbox_list=bbox_list or None))
        transport_and_region(model, mode, region, transport)
    except WanInputError as exc:
        return f"{_INPUT_NAMES.get(exc.param, exc.param)}: {exc.limit}"
    return True


def transport_and_region(model: str, mode: str, region: str | None, transport: str | None) -> None:
    """The per-model transport and region rules of the model table, as api/'s pure functions
    apply them when the node runs: a stream where the vendor documents none, a region the model's page does
    not list (unless DASHSCOPE_HTTP_BASE_URL names the endpoint). The widget's own options are checked first,
    because ComfyUI skips its combo check for an input `validate_inputs` takes."""
    from .widgets import REGIONS, TRANSPORTS

    for name, value, options in (("region", region, REGIONS), ("transport", transport, TRANSPORTS)):
        if value is not None and value not in options:
            raise WanInputError(name, f"{value!r} is not one of {', '.join(options)}")
    if transport is not None:
        choose_transport(model, mode, transport)
    if region is not None:
        check_region(model, region, endpoint_overridden())
