"""DashScope client for Alibaba's Wan image models: no torch, no ComfyUI.

    from api import WanClient, edit, encode_image, MODELS
    with WanClient() as client:                  # key from DASHSCOPE_API_KEY (or its file), region Singapore
        spec = MODELS["wan2.7-image"]
        req = edit("wan2.7-image", "make it night", [encode_image(pixels, spec.image)], n=1, size="2K")
        result = client.generate(req)            # async task by default; result.images[i].pixels is HxWx3 uint8, read-only

The emulator of the service (for tests and for building graphs offline) is `python -m api.emulator`.
This module is the public surface: import from `api`, not from its submodules.
"""

__version__ = "0.2.0"

from . import errors
from .client import TRANSPORTS, WanClient
from .config import REGIONS, Endpoint, endpoint_overridden, resolve_api_key, resolve_endpoint, state_dir
from .errors import *  # noqa: F401,F403 - the exception families are part of the API
from .errors import WanError, WanInputError
from .money.pricing import AT_MOST, EXACT, PER_INPUT_PICTURE, price_badge_expr
from .money.store import Store
from .present import describe, no_picture_error, text_only
from .request.build import (
    InputImage, Params, WanRequest, bbox_edit, boxes_from_bounding_boxes, build_request, check_color_palette,
    check_settings, edit, interleave, parse_boxes, sequential, text_to_image,
)
from .request.encoding import encode_image, encode_images, to_uint8_rgb
from .request.models import (
    EDIT, INTERLEAVE, MODEL_NAMES, MODELS, SEQUENTIAL, TEXT_TO_IMAGE, check_region, choose_transport, get_model,
    models_with_mode, region_summary, streaming_offers, transport_summary,
)
from .request.palette import node_palette, palette_from_colors, palette_from_pixels, swatches
from .request.pictures import number_pictures
from .result import Progress, WanResult
from .secrets import ApiKey, get_logger
from .service.calls import PollSchedule
from .service.ratelimit import max_concurrent
from .service.transport import RetryPolicy, Timeouts
from .workers import Workers

# The ledger's and the comparison sheet's names, imported on first use: ComfyUI's start-up needs none of them;
# the store comes with a node's first run, the report (and Pillow, for its chart) only with WanUsage, the sheet
# (its drawing and fonts) only with WanComparisonSheet.
_LAZY_NAMES = {
    "ENV_DAILY_BUDGET": ("ledger", "ENV_DAILY_BUDGET"), "ENV_DAILY_LIMIT": ("ledger", "ENV_DAILY_LIMIT"),
    "DailyLimitError": ("ledger", "DailyLimitError"), "open_ledger": ("ledger", "open_ledger"),
    "usage_summary": ("ledger.report", "summary"), "report_text": ("ledger.report", "report_text"),
    "usage_chart": ("ledger.report", "chart"),
    "SheetCell": ("sheet", "Cell"), "sheet_caption": ("sheet", "caption"), "column_label": ("sheet", "column_label"),
    "render_sheet": ("sheet", "render_sheet"),
}


def __getattr__(name: str):
    if name in _LAZY_NAMES:
        import importlib

        module, attr = _LAZY_NAMES[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module 'api' has no attribute {name!r}")
