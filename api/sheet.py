"""A comparison sheet for prompt experiments: pictures in a grid that a person reads at a glance, one row per
prompt (the prompt written at the row's start), one column per model (its name on top), and a caption under
every cell (model, prompt number, size, time, cost). Drawn locally with Pillow; nothing is sent.

The font is Pillow's own (Aileron, scalable since Pillow 10.1, hence the pillow>=10.1 floor); prompts in
Chinese or Japanese are drawn with a CJK font of the system when one is found, since Aileron has no such glyphs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Common places of a CJK font on Windows, macOS and Linux distributions (the first found is used).
CJK_FONTS = [
    "C:/Windows/Fonts/msyh.ttc", "C:/Windows/Fonts/simhei.ttf",
    "/System/Library/Fonts/PingFang.ttc", "/System/Library/Fonts/STHeiti Medium.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc", "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
]

BACKGROUND = (255, 255, 255)
INK = (32, 32, 36)
MUTED = (96, 98, 108)
RULE = (220, 222, 228)
HEADER = (242, 244, 248)


@dataclass
class Cell:
    """One cell: the picture(s) of one run (a batch shows side by side) and the caption's lines."""

    pictures: list[np.ndarray]                      # HxWx3 uint8
    caption: list[str] = field(default_factory=list)


@dataclass
class Sheet:
    pixels: np.ndarray                              # HxWx3 uint8
    # Where each picture landed, per row and column: (x, y, width, height) on the sheet.
    boxes: list[list[list[tuple[int, int, int, int]]]]


def _needs_cjk(text: str) -> bool:
    return any(ord(ch) > 0x2E7F for ch in text)


@lru_cache(maxsize=32)
def font(size: int, cjk: bool = False) -> ImageFont.FreeTypeFont:
    if cjk:
        for path in CJK_FONTS:
            if Path(path).exists():
                try:
                    return ImageFont.truetype(path, size)
                except OSError:
                    continue
    return ImageFont.load_default(size=size)


def _fit(text: str, fnt: ImageFont.FreeTypeFont, width: int) -> str:
    """The text, cut with an ellipsis to fit the width."""
    if fnt.getlength(text) <= width:
        return text
    while text and fnt.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def wrap(text: str, fnt: ImageFont.FreeTypeFont, width: int, max_lines: int) -> list[str]:
    """Words onto lines of at most `width` pixels (characters, for text without spaces such as Chinese)."""
    units = text.split() if " " in text.strip() else list(text.strip())
    joiner = " " if " " in text.strip() else ""
    lines: list[str] = []
    line = ""
    for unit in units:
        candidate = f"{line}{joiner}{unit}" if line else unit
        if fnt.getlength(candidate) <= width or not line:
            line = candidate
        else:
            lines.append(line)
            line = unit
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit(lines[-1] + "…", fnt, width) if not lines[-1].endswith("…") else lines[-1]
    return [_fit(x, fnt, width) for x in lines]


def _scaled(picture: np.ndarray, side: int) -> Image.Image:
    img = Image.fromarray(picture, "RGB")
    scale = side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)


def render_sheet(row_labels: Sequence[str], column_labels: Sequence[str], cells: Sequence[Sequence[Cell | None]],
                 *, cell: int = 384, title: str = "") -> Sheet:
    """cells[row][column]; a picture is scaled (Lanczos) so its longest side is `cell` pixels."""
    rows, cols = len(cells), max((len(r) for r in cells), default=0)
    pad = max(8, cell // 16)
    head_size, text_size = max(16, cell // 11), max(13, cell // 15)
    everything = " ".join([title, *row_labels, *column_labels, *(line for r in cells for c in r if c
                                                                 for line in c.caption)])
    cjk = _needs_cjk(everything)
    head, text = font(head_size, cjk), font(text_size, cjk)
    line_h = round(text_size * 1.3)
    caption_lines = max((len(c.caption) for r in cells for c in r if c), default=0)
    label_w = round(cell * 0.9)
    col_w = [max([cell] + [len(r[c].pictures) * cell + (len(r[c].pictures) - 1) * pad
                           for r in cells if c < len(r) and r[c]]) for c in range(cols)]
    row_h = cell + pad + caption_lines * line_h
    title_h = round(head_size * 1.6) + pad if title else 0
    header_h = round(head_size * 1.5) + pad
    width = pad + label_w + sum(w + pad * 2 for w in col_w) + pad
    height = pad + title_h + header_h + rows * (row_h + pad * 2) + pad

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = pad
    if title:
        draw.text((pad, y), _fit(title, head, width - 2 * pad), font=head, fill=INK)
        y += title_h
    # Column headers: the model of each column.
    draw.rectangle([pad, y, width - pad, y + header_h - pad // 2], fill=HEADER)
    x = pad + label_w + pad
    for c in range(cols):
        label = column_labels[c] if c < len(column_labels) else f"column {c + 1}"
        draw.text((x, y + pad // 3), _fit(label, head, col_w[c]), font=head, fill=INK)
        x += col_w[c] + pad * 2
    y += header_h

    boxes: list[list[list[tuple[int, int, int, int]]]] = []
    for r in range(rows):
        top = y + pad
        draw.line([pad, y, width - pad, y], fill=RULE, width=2)
        label = row_labels[r] if r < len(row_labels) else f"row {r + 1}"
        number = f"{r + 1}."
        draw.text((pad, top), number, font=head, fill=MUTED)
        indent = round(head.getlength(number + " "))
        lines = wrap(label, text, label_w - indent, max(1, row_h // line_h))
        for i, line in enumerate(lines):
            draw.text((pad + indent, top + round(head_size * 0.2) + i * line_h), line, font=text, fill=INK)
        x = pad + label_w + pad
        row_boxes: list[list[tuple[int, int, int, int]]] = []
        for c in range(cols):
            here = cells[r][c] if c < len(cells[r]) else None
            placed: list[tuple[int, int, int, int]] = []
            if here is not None:
                px = x
                for picture in here.pictures:
                    img = _scaled(picture, cell)
                    # Centred in its cell-sized square, so pictures of any aspect line up.
                    ox, oy = px + (cell - img.width) // 2, top + (cell - img.height) // 2
                    sheet.paste(img, (ox, oy))
                    placed.append((ox, oy, img.width, img.height))
                    px += cell + pad
                for i, line in enumerate(here.caption):
                    draw.text((x, top + cell + pad // 2 + i * line_h), _fit(line, text, col_w[c]), font=text,
                              fill=INK if i == 0 else MUTED)
            row_boxes.append(placed)
            x += col_w[c] + pad * 2
        boxes.append(row_boxes)
        y += row_h + pad * 2
    return Sheet(np.asarray(sheet), boxes)


def column_label(info: Any, fallback: str) -> str:
    """A column's title: the model its Wan node used (from the node's `info` output)."""
    data = _info(info)
    return str(data.get("model") or fallback)


def caption(info: Any, row: int, pictures: Sequence[np.ndarray], fallback: str) -> list[str]:
    """Two lines under a cell: which model and prompt; the size, the time and what it cost."""
    data = _info(info)
    first = f"{data.get('model') or fallback} · prompt {row + 1}"
    facts = []
    if data.get("empty_picture_marker"):   # the node's stand-in when the answer was text alone
        facts.append("no picture, text only")
    elif pictures:
        h, w = pictures[0].shape[:2]
        # Plain "x" and "est.": Pillow's default font has no "×" or "≈".
        facts.append(f"{w}x{h}" + (f" ({len(pictures)} pictures)" if len(pictures) > 1 else ""))
    if data.get("cached"):
        facts.append("from the cache")
    elif data.get("elapsed_s") is not None:
        facts.append(f"{float(data['elapsed_s']):.1f} s")
    cost = data.get("cost_estimate")
    if isinstance(cost, dict) and cost.get("total") is not None:
        facts.append(f"est. {cost['total']:g} {cost.get('currency', '')}".rstrip())
    return [first, " · ".join(facts)]


def _info(info: Any) -> dict[str, Any]:
    """A Wan node's info output (JSON; a list of them when one node sent several requests) as a dict."""
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except json.JSONDecodeError:
            return {}
    if isinstance(info, list):
        info = info[0] if info else {}
    return info if isinstance(info, dict) else {}
