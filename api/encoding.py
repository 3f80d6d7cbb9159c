"""Pictures (numpy arrays or PIL images) -> image values a Wan model accepts.

Float pixels are ROUNDED to 8 bits (truncating darkens every picture by half a level on average); alpha is
flattened onto white, because the service takes no transparency; a side under the model's minimum is
scaled up and a side or file over its maximum scaled down (Lanczos); an aspect outside the model's bounds
cannot be fixed without cropping, so it is refused with a message that says so.

Format: `png` is lossless; `jpeg` is quality 95 with full-resolution colour; `auto` picks per picture what
reaches the service sooner at high fidelity: PNG for flat artwork (where PNG is both lossless and small),
JPEG for photographs (where PNG is several times larger and slower to encode).
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .errors import WanInputError
from .models import ImageLimits
from .request import InputImage

FORMATS = ("auto", "png", "jpeg")
JPEG_QUALITY = 95
PNG_LEVEL = 1  # zlib level 1: about 5x faster than Pillow's default 6 for ~20% more bytes


def to_uint8_rgb(picture: Any, name: str = "image") -> np.ndarray:
    """HxWxC float (0-1) / uint8 array, HxW grey, or a PIL image -> HxWx3 uint8, alpha over white."""
    if isinstance(picture, Image.Image):
        if picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info):
            picture = picture.convert("RGBA")
        elif picture.mode != "RGB":
            picture = picture.convert("RGB")
        picture = np.asarray(picture)
    arr = np.asarray(picture)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise WanInputError(name, f"has shape {tuple(arr.shape)}; expected height x width x 1-4 channels")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise WanInputError(name, "is empty (0 pixels)")
    channels = arr.shape[2]
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise WanInputError(name, "contains NaN or infinite pixel values; check the node that made it")
        arr = np.clip(arr.astype(np.float32), 0.0, 1.0)
        if channels in (2, 4):
            # Flatten onto white before quantizing, so 50% red over white is (255, 128, 128), not 127.
            alpha = arr[:, :, -1:]
            arr = arr[:, :, :-1] * alpha + (1.0 - alpha)
            channels -= 1
        # Round half up: 0.5/255 steps land on the nearest 8-bit level, never below it.
        u8 = np.floor(arr * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        u8 = arr if arr.dtype == np.uint8 else np.clip(arr, 0, 255).astype(np.uint8)
        if channels in (2, 4):
            color, alpha = u8[:, :, :-1].astype(np.uint16), u8[:, :, -1:].astype(np.uint16)
            u8 = ((color * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
            channels -= 1
    else:
        raise WanInputError(name, f"has pixel type {arr.dtype}; expected float 0-1 or uint8")
    if channels == 1:
        u8 = np.repeat(u8, 3, axis=2)
    return np.ascontiguousarray(u8)


@dataclass(frozen=True)
class Encoded:
    data: bytes
    mime: str
    width: int
    height: int


def _encode(rgb: np.ndarray, fmt: str) -> Encoded:
    img = Image.fromarray(rgb, "RGB")
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, format="PNG", compress_level=PNG_LEVEL)
        mime = "image/png"
    else:
        img.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
        mime = "image/jpeg"
    return Encoded(buf.getvalue(), mime, rgb.shape[1], rgb.shape[0])


def choose_format(rgb: np.ndarray) -> str:
    """PNG where lossless costs little (flat artwork), JPEG otherwise. Judged on a few small crops."""
    h, w = rgb.shape[:2]
    if h * w <= 256 * 256:
        return "png"
    c = 128
    crops = []
    for fy, fx in ((0.5, 0.5), (0.25, 0.25), (0.75, 0.75), (0.25, 0.75)):
        y0 = min(max(int(h * fy) - c // 2, 0), max(h - c, 0))
        x0 = min(max(int(w * fx) - c // 2, 0), max(w - c, 0))
        crops.append(rgb[y0:y0 + c, x0:x0 + c])
    sample = np.ascontiguousarray(np.concatenate([cr for cr in crops if cr.shape == crops[0].shape], axis=1))
    png = len(_encode(sample, "png").data)
    jpeg = len(_encode(sample, "jpeg").data)
    # A flat illustration is several times smaller as PNG than as JPEG; a photo is 3-6x larger.
    return "png" if png <= 1.5 * jpeg else "jpeg"


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    img = Image.fromarray(rgb, "RGB").resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img)


def fit_to_limits(rgb: np.ndarray, limits: ImageLimits, name: str = "image") -> np.ndarray:
    """Scale up a side under the minimum, down a side over the maximum; refuse an aspect out of bounds."""
    h, w = rgb.shape[:2]
    long_, short = max(w, h), min(w, h)
    aspect = long_ / short
    if limits.max_aspect and aspect > limits.max_aspect + 1e-9:
        r = int(limits.max_aspect)
        raise WanInputError(name, f"is {w}x{h} px, aspect {aspect:.2f}:1; the model takes 1:{r} to {r}:1 "
                                  "(crop or pad the picture first)")
    scale = 1.0
    if short < limits.min_side:
        scale = limits.min_side / short
    if long_ * scale > limits.max_side:
        scale = limits.max_side / long_
        if short * scale < limits.min_side - 1e-9:
            raise WanInputError(name, f"is {w}x{h} px; no scaling fits both sides in {limits.min_side}-"
                                      f"{limits.max_side} px (crop the picture first)")
    if scale == 1.0:
        return rgb
    # ceil when growing so the short side reaches the minimum, floor when shrinking to stay under the max
    rnd = math.ceil if scale > 1 else math.floor
    nw = min(max(rnd(w * scale), limits.min_side), limits.max_side)
    nh = min(max(rnd(h * scale), limits.min_side), limits.max_side)
    return _resize(rgb, nw, nh)


def encode_image(picture: Any, limits: ImageLimits, fmt: str = "auto", name: str = "image") -> InputImage:
    """A picture -> an `InputImage` (data URI with its real size) within `limits`."""
    if fmt not in FORMATS:
        raise WanInputError("input_format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    rgb = to_uint8_rgb(picture, name)
    source = (rgb.shape[1], rgb.shape[0])
    rgb = fit_to_limits(rgb, limits, name)
    chosen = choose_format(rgb) if fmt == "auto" else fmt
    enc = _encode(rgb, chosen)
    # Too many bytes: shrink (Lanczos) by the square root of the excess, with a margin, until it fits.
    while len(enc.data) > limits.max_bytes:
        factor = math.sqrt(limits.max_bytes / len(enc.data)) * 0.95
        h, w = rgb.shape[:2]
        nw, nh = int(w * factor), int(h * factor)
        if min(nw, nh) < limits.min_side:
            raise WanInputError(name, f"cannot be brought under {limits.max_bytes // 2**20} MB without going "
                                      f"below {limits.min_side} px; use jpeg or a smaller picture")
        rgb = _resize(rgb, nw, nh)
        enc = _encode(rgb, chosen)
    b64 = base64.b64encode(enc.data).decode("ascii")
    return InputImage(
        value=f"data:{enc.mime};base64,{b64}",
        width=enc.width,
        height=enc.height,
        nbytes=len(enc.data),
        source_size=source,
        digest=hashlib.sha256(enc.data).hexdigest(),
    )


def decode_data_uri(value: str) -> tuple[str, bytes]:
    """'data:image/png;base64,...' -> ('image/png', bytes)."""
    head, _, data = value.partition(",")
    if not head.startswith("data:") or ";base64" not in head:
        raise ValueError("not a base64 data URI")
    return head[5:].split(";")[0], base64.b64decode(data, validate=False)
