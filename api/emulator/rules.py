"""The service's own checks, written from the vendor pages as the SERVER applies them.

Deliberately independent of `api/request/models.py`: the emulator is the client's examiner, and an examiner that
reads the answer sheet finds nothing. The tests compare the two at every boundary, so a wrong limit in
either shows up as a disagreement.

Each check raises `ServiceError(http_status, code, message)`; the messages imitate the service's terse
style. Parameters the service does not use are tolerated (the SDK itself sends `is_async`).
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

MB = 1024 * 1024


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def bad(message: str) -> ServiceError:
    return ServiceError(400, "InvalidParameter", message)


@dataclass
class Rules:
    api: str                       # "multimodal" | "synthesis"
    prompt_max: int
    truncates_prompt: bool
    image_side: tuple[int, int]
    image_aspect: float | None
    image_mb: int
    negative_max: int | None = None


# wan2.6 and wan2.5 numbers: the reference's, unverified (ASSUMPTIONS["reference_limits"] in assumptions.py).
SERVICE_MODELS: dict[str, Rules] = {
    "wan2.7-image-pro": Rules("multimodal", 5000, True, (240, 8000), 8.0, 20),
    "wan2.7-image": Rules("multimodal", 5000, True, (240, 8000), 8.0, 20),
    "wan2.6-image": Rules("multimodal", 2000, False, (240, 8000), None, 10, negative_max=500),
    "wan2.5-i2i-preview": Rules("synthesis", 2000, False, (384, 5000), 4.0, 10, negative_max=500),
}


@dataclass
class DecodedImage:
    width: int
    height: int
    mode: str
    format: str
    nbytes: int
    data: bytes
    source: str = "data-uri"


@dataclass
class Job:
    """A validated generation: what the emulator will produce and bill."""

    model: str
    kind: str                       # edit | t2i | sequential | interleave
    prompt: str
    images: list[DecodedImage]
    parameters: dict[str, Any]
    out_size: tuple[int, int]
    count: int                      # images to produce
    bbox_list: list[Any] = field(default_factory=list)
    prompt_truncated: bool = False


_WH = re.compile(r"^(\d+)\*(\d+)$")


def decode_image_value(value: Any, index: int, fetch_url: Any = None) -> DecodedImage:
    if not isinstance(value, str) or not value:
        raise bad(f"image {index}: the image value must be a URL or a base64 data URI")
    if value.startswith(("http://", "https://")):
        if fetch_url is None:
            raise bad(f"Download the media resource timed out during the data inspection process. (image {index})")
        data = fetch_url(value)
        source = "url"
    elif value.startswith("data:"):
        head, _, payload = value.partition(",")
        if ";base64" not in head:
            raise bad(f"image {index}: data URI must be base64 encoded")
        try:
            data = base64.b64decode(payload, validate=True)
        except ValueError:
            raise bad(f"image {index}: invalid base64 data") from None
        source = "data-uri"
    else:
        raise bad(f"image {index}: the image value must be a URL or a base64 data URI")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            img.load()
            width, height, mode = img.width, img.height, img.mode
    except Exception:
        raise bad(f"image {index}: the image format is not supported or the file is corrupt") from None
    if fmt not in ("JPEG", "PNG", "BMP", "WEBP"):
        raise bad(f"image {index}: format {fmt} is not supported; use JPEG, PNG, BMP or WEBP")
    return DecodedImage(width, height, mode, fmt, len(data), data, source)


def check_image(rules: Rules, img: DecodedImage, index: int) -> None:
    lo, hi = rules.image_side
    if not (lo <= img.width <= hi and lo <= img.height <= hi):
        raise bad(f"The image {index} resolution is invalid: {img.width}x{img.height}; width and height must be "
                  f"in [{lo}, {hi}]")
    if rules.image_aspect:
        ratio = max(img.width, img.height) / min(img.width, img.height)
        if ratio > rules.image_aspect + 1e-9:
            raise bad(f"The image {index} aspect ratio is invalid: must be in [1:{int(rules.image_aspect)}, "
                      f"{int(rules.image_aspect)}:1]")
    if img.nbytes > rules.image_mb * MB:
        raise bad(f"The image {index} size exceeds the limit of {rules.image_mb}MB")
    if img.format == "PNG" and img.mode in ("RGBA", "LA", "PA"):
        raise bad(f"The image {index} has an alpha channel, which is not supported")


def _int(params: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = params.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad(f"parameters.{name} must be an integer")
    if not lo <= value <= hi:
        raise bad(f"parameters.{name} must be in [{lo}, {hi}], got {value}")
    return value


def _area_size(size: str, area: tuple[int, int], aspect: float) -> tuple[int, int]:
    m = _WH.match(size)
    if not m:
        raise bad(f"parameters.size {size!r} is invalid")
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0 or not area[0] <= w * h <= area[1]:
        raise bad(f"parameters.size {size} is out of range: total pixels must be in [{area[0]}, {area[1]}]")
    if max(w, h) / min(w, h) > aspect + 1e-9:
        raise bad(f"parameters.size {size}: aspect ratio must be in [1:{int(aspect)}, {int(aspect)}:1]")
    return w, h


def preset_size(side: int, last: DecodedImage | None, multiple: int = 1) -> tuple[int, int]:
    """A preset keeps the aspect of the last input image (square without one), at about side^2 pixels.

    `multiple` 1: not rounded (ASSUMPTIONS["preset_size_wan27"], the wan2.7 page's 2985*1405); 32: each side
    to the nearest multiple of 32 (ASSUMPTIONS["preset_size_wan26"], the wan2.6 page's 1376*768)."""
    area = side * side
    aspect = last.width / last.height if last else 1.0
    w = (area * aspect) ** 0.5
    if multiple == 1:
        width = max(1, int(round(w)))
        return width, max(1, int(round(width / aspect)))
    h = area / w
    return max(multiple, int(round(w / multiple)) * multiple), max(multiple, int(round(h / multiple)) * multiple)


def check_palette(palette: Any) -> None:
    if not isinstance(palette, list) or not 3 <= len(palette) <= 10:
        raise bad("parameters.color_palette must contain 3 to 10 colors")
    total = 0
    for entry in palette:
        if not isinstance(entry, dict):
            raise bad("parameters.color_palette items must be objects with hex and ratio")
        if not re.fullmatch(r"#[0-9A-Fa-f]{6}", str(entry.get("hex", ""))):
            raise bad(f"parameters.color_palette hex {entry.get('hex')!r} is invalid")
        m = re.fullmatch(r"(\d{1,3})\.(\d{2})%", str(entry.get("ratio", "")))
        if not m:
            raise bad(f"parameters.color_palette ratio {entry.get('ratio')!r} must have two decimals, e.g. 25.00%")
        total += int(m.group(1)) * 100 + int(m.group(2))
    if total != 10000:
        raise bad("parameters.color_palette ratios must sum to 100.00%")


def check_bboxes(bbox_list: Any, images: list[DecodedImage]) -> list[Any]:
    if not isinstance(bbox_list, list) or len(bbox_list) != len(images):
        raise bad("parameters.bbox_list length must equal the number of input images")
    for i, (boxes, img) in enumerate(zip(bbox_list, images), 1):
        if not isinstance(boxes, list) or len(boxes) > 2:
            raise bad(f"parameters.bbox_list: image {i} allows at most 2 boxes")
        for box in boxes:
            if (not isinstance(box, list) or len(box) != 4
                    or not all(isinstance(c, int) and not isinstance(c, bool) for c in box)):
                raise bad("parameters.bbox_list: a box must be [x1, y1, x2, y2] in integers")
            x1, y1, x2, y2 = box
            if not (0 <= x1 < x2 <= img.width and 0 <= y1 < y2 <= img.height):
                raise bad(f"parameters.bbox_list: box {box} is outside image {i} ({img.width}x{img.height})")
    return bbox_list


def validate_multimodal(body: dict[str, Any], *, fetch_url: Any = None) -> Job:
    model = body.get("model")
    rules = SERVICE_MODELS.get(model) if isinstance(model, str) else None
    if rules is None:
        raise ServiceError(404, "ModelNotFound", "Model not exist.")
    if rules.api != "multimodal":
        raise bad(f"Model {model} does not support this API; use image2image/image-synthesis")
    messages = (body.get("input") or {}).get("messages")
    if not isinstance(messages, list) or len(messages) != 1:
        raise bad("input.messages must hold exactly one user message")
    message = messages[0] or {}
    if message.get("role") != "user" or not isinstance(message.get("content"), list):
        raise bad("input.messages[0] must be a user message with a content list")
    texts = [item["text"] for item in message["content"] if isinstance(item, dict) and "text" in item]
    values = [item["image"] for item in message["content"] if isinstance(item, dict) and "image" in item]
    if len(texts) != 1 or not isinstance(texts[0], str):
        raise bad("input.messages[0].content must hold exactly one text item")
    prompt = texts[0]
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise bad("parameters must be an object")
    interleave = bool(params.get("enable_interleave", False))
    sequential = bool(params.get("enable_sequential", False))
    truncated = False

    if model.startswith("wan2.7"):
        if interleave:
            raise bad("parameters.enable_interleave is not supported by this model")
        if len(values) > 9:
            raise bad("The number of input images must be in [0, 9]")
        kind = "sequential" if sequential else ("edit" if values else "t2i")
    else:  # wan2.6-image
        if sequential:
            raise bad("parameters.enable_sequential is not supported by this model")
        if interleave:
            kind = "interleave"
            if len(values) > 1:
                raise bad("The number of input images must be in [0, 1] when enable_interleave is true")
        else:
            kind = "edit"
            if not 1 <= len(values) <= 4:
                raise bad("The number of input images must be in [1, 4]")
    if not prompt.strip():
        raise bad("input.messages[0].content text must not be empty")
    if len(prompt) > rules.prompt_max:
        if not rules.truncates_prompt:
            raise bad(f"The prompt is too long: at most {rules.prompt_max} characters")
        prompt, truncated = prompt[:rules.prompt_max], True
    negative = params.get("negative_prompt")
    if rules.negative_max and isinstance(negative, str) and len(negative) > rules.negative_max:
        raise bad(f"parameters.negative_prompt is too long: at most {rules.negative_max} characters")

    images = [decode_image_value(v, i, fetch_url) for i, v in enumerate(values, 1)]
    for i, img in enumerate(images, 1):
        check_image(rules, img, i)
    last = images[-1] if images else None

    if "seed" in params:
        _int(params, "seed", 0, 0, 2147483647)
    if "watermark" in params and not isinstance(params["watermark"], bool):
        raise bad("parameters.watermark must be a boolean")

    size = params.get("size")
    if kind == "interleave":
        n = _int(params, "n", 1, 1, 1) if "n" in params else 1
        count = _int(params, "max_images", 5, 1, 5)
        out = _area_size(size if size is not None else "1280*1280", (768 * 768, 1280 * 1280), 4.0)
    elif model.startswith("wan2.7"):
        if kind == "sequential":
            n = _int(params, "n", 12, 1, 12)
        else:
            n = _int(params, "n", 4, 1, 4)
        count = n
        if params.get("thinking_mode") and (values or sequential):
            # The vendor: "only takes effect with no input image and sequential off". Accepted, ignored.
            pass
        if "color_palette" in params:
            if sequential:
                raise bad("parameters.color_palette is only supported when enable_sequential is false")
            check_palette(params["color_palette"])
        pro = model == "wan2.7-image-pro"
        t2i = kind == "t2i"
        size = "2K" if size is None else size
        if size in ("1K", "2K", "4K"):
            if size == "4K" and not (pro and t2i):
                raise bad("parameters.size 4K is only supported by wan2.7-image-pro text-to-image")
            out = preset_size({"1K": 1024, "2K": 2048, "4K": 4096}[size], last)
        else:
            max_area = 4096 * 4096 if (pro and t2i) else 2048 * 2048
            out = _area_size(size, (768 * 768, max_area), 8.0)
    else:  # wan2.6 editing
        n = _int(params, "n", 4, 1, 4)
        count = n
        size = "1K" if size is None else size
        if size in ("1K", "2K"):
            # The vendor's example: 1K with a 1696x960 input came back 1376*768, i.e. ~1024^2 pixels.
            out = preset_size({"1K": 1024, "2K": 2048}[size], last, multiple=32)
        else:
            out = _area_size(size, (768 * 768, 2048 * 2048), 4.0)

    bbox = []
    if "bbox_list" in params:
        if not model.startswith("wan2.7"):
            raise bad("parameters.bbox_list is not supported by this model")
        bbox = check_bboxes(params["bbox_list"], images)
    return Job(model=model, kind=kind, prompt=prompt, images=images, parameters=params, out_size=out,
               count=count, bbox_list=bbox, prompt_truncated=truncated)


def validate_synthesis(body: dict[str, Any], *, fetch_url: Any = None) -> Job:
    model = body.get("model")
    rules = SERVICE_MODELS.get(model) if isinstance(model, str) else None
    if rules is None:
        raise ServiceError(404, "ModelNotFound", "Model not exist.")
    if rules.api != "synthesis":
        raise bad(f"Model {model} does not support image2image/image-synthesis")
    inp = body.get("input") or {}
    prompt = inp.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad("input.prompt is required")
    if len(prompt) > rules.prompt_max:
        raise bad(f"The prompt is too long: at most {rules.prompt_max} characters")
    negative = inp.get("negative_prompt")
    if isinstance(negative, str) and rules.negative_max and len(negative) > rules.negative_max:
        raise bad(f"input.negative_prompt is too long: at most {rules.negative_max} characters")
    values = inp.get("images")
    if not isinstance(values, list) or not 1 <= len(values) <= 3:
        raise bad("input.images must hold 1 to 3 images")
    images = [decode_image_value(v, i, fetch_url) for i, v in enumerate(values, 1)]
    for i, img in enumerate(images, 1):
        check_image(rules, img, i)
    params = body.get("parameters") or {}
    n = _int(params, "n", 4, 1, 4)
    if "seed" in params:
        # ASSUMPTIONS["wan25_seed_string"]: the vendor's Java example sends "12345".
        seed = params["seed"]
        if isinstance(seed, str) and seed.strip().isdigit():
            seed = int(seed.strip())
        _int({"seed": seed}, "seed", 0, 0, 2147483647)
    size = params.get("size")
    if size is None:
        # Default: 1280*1280 pixels in total at the last image's aspect (ASSUMPTIONS["wan25_default_size"]).
        out = preset_size(1280, images[-1])
    else:
        out = _area_size(size, (768 * 768, 1280 * 1280), 4.0)
    return Job(model=model, kind="edit", prompt=prompt, images=images, parameters=params, out_size=out, count=n)
