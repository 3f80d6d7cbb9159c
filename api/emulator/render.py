"""Deterministic result pictures that say which request made them.

Each picture is a function of (request digest, index, size): two colours from the digest make a diagonal
gradient, the index sets a band pattern, so every result of every request differs and a test can tell
which request produced which file. For an edit, a thumbnail of the last input picture sits in the top-left
corner and the bounding boxes are drawn (scaled to the output), so a person looking at the demo sees the
inputs were used. The digest, index and request id are also written in a PNG text chunk.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image, ImageDraw, PngImagePlugin


def palette_from(digest: str, index: int) -> tuple[np.ndarray, np.ndarray, int]:
    h = hashlib.sha256(f"{digest}:{index}".encode()).digest()
    c0 = np.array([h[0], h[1], h[2]], dtype=np.float32)
    c1 = np.array([h[3], h[4], h[5]], dtype=np.float32)
    bands = 8 + h[6] % 24
    return c0, c1, bands


def render_result(digest: str, index: int, width: int, height: int, *, thumbnail: bytes | None = None,
                  boxes: list[list[int]] | None = None, box_space: tuple[int, int] | None = None,
                  label: str = "") -> bytes:
    c0, c1, bands = palette_from(digest, index)
    # Gradient along the diagonal: t in [0, 1].
    t = (np.arange(width, dtype=np.float32)[None, :] / max(width - 1, 1) * 0.5
         + np.arange(height, dtype=np.float32)[:, None] / max(height - 1, 1) * 0.5)
    rgb = c0[None, None, :] * (1 - t[:, :, None]) + c1[None, None, :] * t[:, :, None]
    # Index bands along the top: index + 1 dark stripes, so a person can count them.
    band_h = max(4, height // 64)
    stripe_w = max(4, width // (2 * bands))
    for k in range(index + 1):
        x0 = width - (k + 1) * 2 * stripe_w
        if x0 < 0:
            break
        rgb[:band_h, x0:x0 + stripe_w] *= 0.25
    img = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
    if thumbnail:
        with Image.open(io.BytesIO(thumbnail)) as thumb:
            thumb = thumb.convert("RGB")
            tw = max(16, width // 3)
            th = max(16, int(tw * thumb.height / thumb.width))
            img.paste(thumb.resize((tw, th), Image.Resampling.BILINEAR), (band_h, band_h * 2))
    if boxes and box_space:
        draw = ImageDraw.Draw(img)
        sx, sy = width / box_space[0], height / box_space[1]
        for x1, y1, x2, y2 in boxes:
            draw.rectangle([x1 * sx, y1 * sy, x2 * sx, y2 * sy], outline=(255, 0, 0), width=max(2, width // 256))
    info = PngImagePlugin.PngInfo()
    info.add_text("wan-emulator", f"digest={digest} index={index} {label}".strip())
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info, compress_level=1)
    return buf.getvalue()


def thumbnail_of(data: bytes, side: int = 256) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        img.thumbnail((side, side))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()
