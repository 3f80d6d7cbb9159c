"""DashScope client for Alibaba's Wan image models: no torch, no ComfyUI.

    from api import WanClient, edit, encode_image, MODELS
    client = WanClient()                         # key from DASHSCOPE_API_KEY (or its file), region Singapore
    spec = MODELS["wan2.7-image"]
    req = edit("wan2.7-image", "make it night", [encode_image(pixels, spec.image)], n=1, size="2K")
    result = client.generate(req)                # async task by default; result.images[i].pixels is HxWx3 uint8

The emulator of the service (for tests and for building graphs offline) is `python -m api.emulator`.
"""

__version__ = "0.1.0"

from .client import PollSchedule, Progress, WanClient, WanResult
from .config import REGIONS, Endpoint, resolve_api_key, resolve_endpoint
from .encoding import encode_image, to_uint8_rgb
from .errors import *  # noqa: F401,F403 - the exception families are part of the API
from .errors import WanError, WanInputError
from .models import MODEL_NAMES, MODELS, get_model
from .request import (
    InputImage, Params, WanRequest, bbox_edit, build_request, check_color_palette, edit, interleave,
    parse_boxes, sequential, text_to_image,
)
from .secrets import ApiKey
from .transport import RetryPolicy, Timeouts
