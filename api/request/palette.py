"""Colour palettes for wan2.7 from a picture: the `color_palette` value, 3-10 colours with ratios.

The picture is reduced with Pillow's median cut (on a downscaled copy: the palette of a 4K photo and of its
256-px thumbnail are the same for this purpose), then ratios are rounded to two decimals by the largest
remainder method, so they always sum to exactly 100.00% as the service demands.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from ..errors import WanInputError
from .build import check_color_palette


def percentages(counts: list[int]) -> list[int]:
    """Counts -> hundredths of a percent that sum to exactly 10000, each at least 1 (largest remainder)."""
    total = sum(counts)
    exact = [c * 10000 / total for c in counts]
    floors = [max(1, int(e)) for e in exact]
    remainder = 10000 - sum(floors)
    order = sorted(range(len(counts)), key=lambda i: exact[i] - int(exact[i]), reverse=remainder > 0)
    step = 1 if remainder > 0 else -1
    i = 0
    while remainder != 0:
        j = order[i % len(order)]
        if step > 0 or floors[j] > 1:
            floors[j] += step
            remainder -= step
        i += 1
    return floors


def palette_from_pixels(rgb: np.ndarray, colors: int = 8) -> list[dict[str, str]]:
    """HxWx3 uint8 -> [{"hex": "#RRGGBB", "ratio": "NN.NN%"}], most common first, valid for wan2.7."""
    if not 3 <= colors <= 10:
        raise WanInputError("colors", f"is {colors}; a wan2.7 palette has 3 to 10 colours")
    img = Image.fromarray(rgb, "RGB")
    img.thumbnail((256, 256))
    quantized = img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette()[: 3 * colors]
    counts = sorted(((count, index) for count, index in quantized.getcolors(colors) if count), reverse=True)
    entries = [(count, tuple(palette[3 * index: 3 * index + 3])) for count, index in counts]
    # A picture with fewer distinct colours than asked: pad with slight variations so the palette still has
    # the 3 colours the service requires (a flat picture is a legitimate palette source).
    while len(entries) < 3:
        count, (r, g, b) = entries[-1]
        entries.append((max(1, count // 100), (min(255, r + 16), min(255, g + 16), min(255, b + 16))))
    ratios = percentages([count for count, _ in entries])
    result = [{"hex": "#%02X%02X%02X" % rgb_, "ratio": f"{h // 100}.{h % 100:02d}%"}
              for (_, rgb_), h in zip(entries, ratios)]
    return check_color_palette(result)


def swatches(palette: list[dict[str, Any]], width: int = 512, height: int = 96) -> np.ndarray:
    """A strip of the colours, each as wide as its share: what the palette looks like."""
    out = np.zeros((height, width, 3), np.uint8)
    x = 0
    shares = [float(e["ratio"].rstrip("%")) / 100 for e in palette]
    for i, (entry, share) in enumerate(zip(palette, shares)):
        end = width if i == len(palette) - 1 else min(width, x + max(1, round(share * width)))
        hex_ = entry["hex"].lstrip("#")
        out[:, x:end] = [int(hex_[k:k + 2], 16) for k in (0, 2, 4)]
        x = end
    return out


def palette_from_colors(colors: Any, shares: str | None = None) -> list[dict[str, str]] | None:
    """A list of colours (ComfyUI's core COLORS value: hex strings such as "#c2d1e6") -> a wan2.7 palette,
    each colour's share from `shares` ("40, 35, 25": numbers in percent, or any weights, one per colour)
    or equal shares, rounded to two decimals summing to exactly 100.00%. None when there are no colours."""
    if colors is None:
        return None
    if isinstance(colors, str):
        colors = [c for c in colors.replace(",", " ").split() if c]
    if isinstance(colors, dict):  # {"__value__": [...]} as a list travels in an API prompt, or {name: hex}
        colors = colors["__value__"] if "__value__" in colors else list(colors.values())
    if not isinstance(colors, (list, tuple)):
        raise WanInputError("colors", f"must be a list of colours such as \"#C2D1E6\", not {type(colors).__name__}")
    if not colors:
        return None
    hexes = []
    for i, colour in enumerate(colors, 1):
        text = str(colour).strip()
        text = text if text.startswith("#") else "#" + text
        if len(text) != 7 or any(c not in "0123456789abcdefABCDEF" for c in text[1:]):
            raise WanInputError("colors", f"colour {i} {str(colour)!r} is not of the form #RRGGBB")
        hexes.append(text.upper())
    if not 3 <= len(hexes) <= 10:
        raise WanInputError("colors", f"has {len(hexes)} colours; a wan2.7 palette takes 3 to 10")
    weights = [1.0] * len(hexes)
    if shares and shares.strip():
        parts = [p for p in shares.replace(",", " ").replace(";", " ").replace("%", " ").split() if p]
        try:
            weights = [float(p) for p in parts]
        except ValueError:
            raise WanInputError("color_shares", f"{shares.strip()!r} must be numbers, one per colour, e.g. "
                                                "\"40, 35, 25\"") from None
        if len(weights) != len(hexes):
            raise WanInputError("color_shares", f"has {len(weights)} shares for {len(hexes)} colours in colors")
        if any(not w > 0 or w != w or w == float("inf") for w in weights):
            raise WanInputError("color_shares", "every share must be more than 0")
    total = sum(weights)
    # Hundredths of a percent, summing to exactly 10000 (largest remainder; every colour at least 0.01%).
    hundredths = percentages([round(w / total * 10**9) for w in weights])
    return check_color_palette([{"hex": h, "ratio": f"{p // 100}.{p % 100:02d}%"} for h, p in zip(hexes, hundredths)])


def node_palette(color_palette: Any, colors: Any = None, shares: str | None = None) -> Any:
    """The palette a node sends: its `color_palette` (a JSON string or list, as typed or from Wan Colour
    Palette) or its core `colors` (with `color_shares`), not both; None for neither. Checked by the caller
    (check_color_palette runs in the request builder)."""
    if isinstance(color_palette, str):
        color_palette = color_palette.strip() or None
    core = palette_from_colors(colors, shares)
    if core is None:
        if shares and shares.strip() and colors is not None:
            raise WanInputError("color_shares", "gives shares but colors has no colours")
        return color_palette
    if color_palette is not None:
        raise WanInputError("colors", "and color_palette both give a palette; clear one of them")
    return core
