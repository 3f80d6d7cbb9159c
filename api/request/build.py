"""Request builders: inputs in the user's terms -> a validated DashScope body for one Wan model.

Every check reads `models.MODELS`; a request the service would refuse is refused here, before a byte is
sent, with a `WanInputError` that names the input and the limit. A limit the table marks `reference_only`
(no vendor page states it) is not refused here unless breaking it would surely fail or cost money (more
pictures than any page allows, a parameter the model lacks, more billed pictures via `n`/`max_images`): the
service judges the rest, and its own error (InvalidParameter, with its message) reaches the user. The builders always send `n` explicitly:
the service's default is 4, and `n` is what the user pays for.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..errors import WanInputError
from .models import (
    EDIT, IMAGE_SYNTHESIS, INTERLEAVE, MAX_IMAGES_ANY_PAGE, MODE_NAMES, SEED_MAX, SEQUENTIAL, TEXT_TO_IMAGE,
    ModelSpec, ModeSpec, get_model, models_with_mode,
)

_SIZE_WH = re.compile(r"^\s*(\d+)\s*[*xX×]\s*(\d+)\s*$")
_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
_RATIO = re.compile(r"^(\d{1,3})\.(\d{2})%$")


@dataclass(frozen=True)
class InputImage:
    """One picture as it will be sent: a data URI (or a public URL) and, where known, its real size.

    `source_size` is the size the user's picture had before any resizing for the model's limits; boxes
    drawn on the user's picture are scaled by sent/source.
    """

    value: str
    width: int | None = None
    height: int | None = None
    nbytes: int | None = None
    source_size: tuple[int, int] | None = None

    @property
    def is_url(self) -> bool:
        return self.value.startswith(("http://", "https://"))


@dataclass(frozen=True)
class WanRequest:
    model: str
    mode: str
    protocol: str
    body: dict[str, Any]
    image_count: int
    # The most images this request can produce, i.e. can be billed for.
    max_billable_images: int
    transports: tuple[str, ...]

    def fingerprint(self) -> str:
        """A stable id of what is asked: model, every parameter, the input pictures, the seed. Pictures enter
        as their sha256 (hashlib releases the GIL; dumping megabytes of base64 as JSON would not). Computed
        anew each time: `body` is a dict a script may still change."""
        return hashlib.sha256(canonical_json(_digest_images(self.body)).encode()).hexdigest()

    @property
    def prompt(self) -> str:
        """The prompt as sent (both body forms): for the journal's list of recent requests."""
        inp = self.body.get("input") or {}
        if isinstance(inp.get("prompt"), str):
            return inp["prompt"]
        for message in inp.get("messages") or []:
            for item in message.get("content") or []:
                if isinstance(item, dict) and isinstance(item.get("text"), str):
                    return item["text"]
        return ""

    def describe(self) -> dict[str, Any]:
        """The body with images shortened to their size and digest: safe and small enough to log."""
        return _shorten_images(self.body)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_SPLICE_MIN = 4096   # strings longer than this are spliced into a body's JSON as bytes


def _is_data_uri(value: Any) -> bool:
    return isinstance(value, str) and len(value) > _SPLICE_MIN and value.startswith("data:")


def _digest_images(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _digest_images(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_digest_images(v) for v in value]
    if _is_data_uri(value):
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return value


def json_bytes(body: Any) -> bytes:
    """A request body as JSON bytes, built so that no single call holds the GIL for long: the input pictures
    (megabytes of base64 each, which need no escaping) are spliced in as bytes around a small JSON skeleton.
    json.dumps over the whole body would freeze every other thread, ComfyUI's event loop included, for
    about a second on nine 2048-px pictures. A string that would need escaping goes through json.dumps."""
    parts: list[bytes] = []
    token = f"wan-splice-{uuid.uuid4().hex}-"

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        # (isascii is O(1) on a str; isprintable rules out control characters; each check is one short C
        # call per picture, so the GIL is free between pictures.)
        if _is_data_uri(value) and value.isascii() and value.isprintable() and '"' not in value \
                and "\\" not in value:
            parts.append(value.encode("ascii"))
            return f"{token}{len(parts) - 1}"
        return value

    skeleton = json.dumps(swap(body), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    if not parts:
        return skeleton
    pieces = skeleton.split(token.encode("ascii"))
    out = [pieces[0]]
    for piece in pieces[1:]:
        index, _, rest = piece.partition(b'"')
        out += [parts[int(index)], b'"', rest]
    return b"".join(out)


def _shorten_images(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shorten_images(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten_images(v) for v in value]
    if isinstance(value, str) and value.startswith("data:") and len(value) > 96:
        digest = hashlib.sha256(value.encode()).hexdigest()[:12]
        return f"{value[:value.find(',') + 1]}<{len(value)} chars sha256:{digest}>"
    return value


# ---- sizes --------------------------------------------------------------------------------------------

def parse_size(size: str) -> str | tuple[int, int]:
    """'2k' -> '2K'; '1280x720' / '1280*720' -> (1280, 720). Raises WanInputError on anything else."""
    text = str(size).strip()
    if re.fullmatch(r"[1-9][kK]", text):
        return text.upper()
    match = _SIZE_WH.match(text)
    if match:
        return int(match.group(1)), int(match.group(2))
    raise WanInputError("size", f"{size!r} is neither a preset such as 1K/2K nor W*H such as 1280*720")


def check_size(spec: ModelSpec, mode: str, size: str | None) -> str | None:
    """The size string to send (normalized), or None to leave the service's default."""
    if size is None or str(size).strip() in ("", "auto", "default"):
        return None
    m = spec.mode(mode)
    parsed = parse_size(size)
    if isinstance(parsed, str):
        if parsed in m.presets or not m.certain("presets"):
            return parsed  # an unverified preset list: the service judges
        if parsed == "4K" and spec.name == "wan2.7-image-pro":
            raise WanInputError("size", "4K is only for wan2.7-image-pro text-to-image without input images "
                                        "and without sequential output; use 1K or 2K here")
        if parsed == "4K":
            raise WanInputError("size", f"4K is only offered by wan2.7-image-pro (text-to-image); "
                                        f"{spec.name} {MODE_NAMES[mode]} takes " + _size_forms(m))
        raise WanInputError("size", f"{parsed} is not a size {spec.name} {MODE_NAMES[mode]} takes; "
                                    f"it takes " + _size_forms(m))
    width, height = parsed
    if width <= 0 or height <= 0:
        raise WanInputError("size", f"{width}*{height} has a zero side")
    area = width * height
    lo, hi = m.area
    if m.certain("area") and not lo <= area <= hi:
        raise WanInputError(
            "size", f"{width}*{height} is {area} pixels; {spec.name} {MODE_NAMES[mode]} takes "
                    f"{_sq(lo)} to {_sq(hi)} pixels in total")
    aspect = max(width, height) / min(width, height)
    if m.certain("max_aspect") and aspect > m.max_aspect + 1e-9:
        raise WanInputError(
            "size", f"{width}*{height} has aspect {aspect:.2f}:1; {spec.name} takes at most "
                    f"{_ratio(m.max_aspect)}")
    return f"{width}*{height}"


def _sq(area: int) -> str:
    side = int(round(area ** 0.5))
    return f"{side}*{side}" if side * side == area else str(area)


def _ratio(max_aspect: float) -> str:
    r = int(max_aspect) if float(max_aspect).is_integer() else max_aspect
    return f"1:{r} to {r}:1"


def _size_forms(m: ModeSpec) -> str:
    forms = [*m.presets] if m.presets else []
    forms.append(f"W*H with {_sq(m.area[0])} to {_sq(m.area[1])} pixels in total, aspect {_ratio(m.max_aspect)}")
    return " or ".join(forms)


# ---- palette and boxes --------------------------------------------------------------------------------

def check_color_palette(palette: Any) -> list[dict[str, str]]:
    """3-10 colours {"hex": "#RRGGBB", "ratio": "12.34%"}, ratios with two decimals summing to 100.00%."""
    if isinstance(palette, str):
        try:
            palette = json.loads(palette)
        except json.JSONDecodeError as exc:
            raise WanInputError("color_palette", f"is not valid JSON ({exc.msg})") from None
    if not isinstance(palette, (list, tuple)):
        raise WanInputError("color_palette", "must be a list of {\"hex\": \"#RRGGBB\", \"ratio\": \"NN.NN%\"}")
    if not 3 <= len(palette) <= 10:
        raise WanInputError("color_palette", f"has {len(palette)} colours; it takes 3 to 10")
    total = 0
    out = []
    for i, entry in enumerate(palette, 1):
        if not isinstance(entry, dict) or "hex" not in entry or "ratio" not in entry:
            raise WanInputError("color_palette", f"colour {i} must have a hex and a ratio")
        hex_ = str(entry["hex"]).strip()
        if not _HEX.match(hex_):
            raise WanInputError("color_palette", f"colour {i} hex {hex_!r} is not of the form #RRGGBB")
        ratio = str(entry["ratio"]).strip()
        match = _RATIO.match(ratio)
        if not match:
            raise WanInputError("color_palette",
                                f"colour {i} ratio {ratio!r} must be a percentage with two decimals, e.g. 25.00%")
        hundredths = int(match.group(1)) * 100 + int(match.group(2))
        if hundredths == 0:
            raise WanInputError("color_palette", f"colour {i} has a ratio of 0.00%")
        total += hundredths
        out.append({"hex": hex_.upper(), "ratio": ratio})
    if total != 10000:
        raise WanInputError("color_palette",
                            f"ratios sum to {total // 100}.{total % 100:02d}%; they must sum to exactly 100.00%")
    return out


def parse_boxes(text: str) -> list[list[list[int]]]:
    """A STRING of boxes: JSON `[[...], [[x1,y1,x2,y2]]]` (one list per image) or one box per line."""
    text = (text or "").strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WanInputError("bbox_list", f"is not valid JSON ({exc.msg}); write e.g. [[], [[989, 515, 1138, 681]]]") from None
    if not isinstance(value, list):
        raise WanInputError("bbox_list", "must be a list with one list of boxes per input image")
    # A single image's boxes written without the outer list: [[x1,y1,x2,y2], ...]
    if value and all(isinstance(b, list) and len(b) == 4 and all(isinstance(c, (int, float)) for c in b)
                     for b in value):
        value = [value]
    return value


def boxes_from_bounding_boxes(value: Any, sizes: Sequence[tuple[int, int]], grid: tuple[int, int] | None = None,
                              param: str = "bboxes") -> list[list[list[int]]]:
    """ComfyUI's core BOUNDING_BOX value -> one list of [x1, y1, x2, y2] per picture, in that picture's own
    pixels (`sizes`: (width, height) of each picture in the order they are sent).

    Core nodes pass boxes as {"x", "y", "width", "height"} dicts: one dict, a list of them (one picture's
    boxes), or a list of such lists (one per picture of a batch, as a detector outputs them); list k goes
    with picture k+1. Coordinates are the picture's pixels, except where `grid` says they were drawn on a
    canvas of another size ("Create Bounding Boxes" draws on its width x height): then they are scaled
    onto the picture. A box reaching past its picture is cut at the edge; one wholly outside is refused."""
    if value is None:
        return [[] for _ in sizes]
    if isinstance(value, dict):
        frames: list[Any] = [[value]]
    elif isinstance(value, (list, tuple)):
        frames = [list(value)] if value and all(isinstance(b, dict) for b in value) else list(value)
    else:
        raise WanInputError(param, f"must be bounding boxes (x, y, width, height), not {type(value).__name__}")
    if len(frames) > len(sizes):
        if all(not frame for frame in frames[len(sizes):]):
            frames = frames[:len(sizes)]
        else:
            raise WanInputError(param, f"has boxes for {len(frames)} pictures, but {len(sizes)} picture(s) are "
                                       "sent; its k-th list of boxes goes with picture k")
    out: list[list[list[int]]] = [[] for _ in sizes]
    for i, frame in enumerate(frames):
        if isinstance(frame, dict):
            frame = [frame]
        if not isinstance(frame, (list, tuple)):
            raise WanInputError(param, f"entry {i + 1} must be a list of boxes")
        width, height = sizes[i]
        gw, gh = grid or (width, height)
        sx, sy = width / gw, height / gh
        for j, box in enumerate(frame, 1):
            where = f"picture {i + 1} box {j}"
            try:
                x, y, w, h = (float(box[k]) for k in ("x", "y", "width", "height"))
            except (KeyError, TypeError, ValueError):
                raise WanInputError(param, f"{where} must have numbers x, y, width, height") from None
            if w < 0:
                x, w = x + w, -w
            if h < 0:
                y, h = y + h, -h
            x1, y1 = max(0, round(x * sx)), max(0, round(y * sy))
            x2, y2 = min(width, round((x + w) * sx)), min(height, round((y + h) * sy))
            if x2 <= x1 or y2 <= y1:
                raise WanInputError(param, f"{where} (x {x:g}, y {y:g}, width {w:g}, height {h:g}) has no area "
                                           f"inside the picture, which is {width}x{height} px")
            out[i].append([x1, y1, x2, y2])
    return out


def check_bbox_list(bbox_list: Any, images: Sequence[InputImage]) -> list[list[list[int]]]:
    _check_box_lists(bbox_list)
    if len(bbox_list) != len(images):
        raise WanInputError("bbox_list", f"has {len(bbox_list)} entries for {len(images)} input images; "
                                         "it needs exactly one per image, [] for an image without boxes")
    return [[_check_box(box, i, j, image) for j, box in enumerate(boxes, 1)]
            for i, (boxes, image) in enumerate(zip(bbox_list, images), 1)]


def check_box_form(bbox_list: Any) -> None:
    """What boxes alone decide, without their pictures: one list per picture, at most 2 boxes on each, every
    box [x1, y1, x2, y2] with x1 < x2, y1 < y2 and no negative coordinate. (How many pictures there are, and
    whether a box lies inside its picture, needs the pictures: `check_bbox_list`.)"""
    _check_box_lists(bbox_list)
    for i, boxes in enumerate(bbox_list, 1):
        for j, box in enumerate(boxes, 1):
            _box_coords(box, i, j)


def _check_box_lists(bbox_list: Any) -> None:
    if not isinstance(bbox_list, (list, tuple)):
        raise WanInputError("bbox_list", "must be a list with one list of boxes per input image")
    for i, boxes in enumerate(bbox_list, 1):
        if not isinstance(boxes, (list, tuple)):
            raise WanInputError("bbox_list", f"entry for image {i} must be a list of boxes")
        if len(boxes) > 2:
            raise WanInputError("bbox_list", f"image {i} has {len(boxes)} boxes; at most 2 per image")


def _box_coords(box: Any, i: int, j: int) -> list[float]:
    where = f"image {i} box {j}"
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise WanInputError("bbox_list", f"{where} must be [x1, y1, x2, y2]")
    try:
        coords = [float(c) for c in box]
    except (TypeError, ValueError):
        raise WanInputError("bbox_list", f"{where} has a coordinate that is not a number") from None
    x1, y1, x2, y2 = coords
    if not (x1 < x2 and y1 < y2):
        raise WanInputError("bbox_list", f"{where} {list(box)} must have x1 < x2 and y1 < y2")
    if min(coords) < 0:
        raise WanInputError("bbox_list", f"{where} {list(box)} has a negative coordinate")
    return coords


def _check_box(box: Any, i: int, j: int, image: InputImage) -> list[int]:
    where = f"image {i} box {j}"
    coords = _box_coords(box, i, j)
    x1, y1, x2, y2 = coords
    if image.source_size:
        w, h = image.source_size
        if x2 > w or y2 > h:
            raise WanInputError("bbox_list", f"{where} {list(box)} lies outside the image, which is {w}x{h} px")
        # Boxes are in the user's picture; the service sees the resized one.
        if image.width and (image.width, image.height) != (w, h):
            sx, sy = image.width / w, image.height / h
            x1, x2, y1, y2 = x1 * sx, x2 * sx, y1 * sy, y2 * sy
    rounded = [int(round(c)) for c in (x1, y1, x2, y2)]
    if image.width and image.height:
        rounded[2] = min(rounded[2], image.width)
        rounded[3] = min(rounded[3], image.height)
    return rounded


# ---- the builder --------------------------------------------------------------------------------------

@dataclass
class Params:
    """Everything a Wan request can carry besides the model, prompt and images (None = not given)."""

    size: str | None = None
    n: int | None = None
    seed: int | None = None
    watermark: bool | None = None
    negative_prompt: str | None = None
    prompt_extend: bool | None = None
    thinking_mode: bool | None = None
    color_palette: Any = None
    bbox_list: Any = None
    max_images: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def infer_mode(spec: ModelSpec, images: int, *, sequential: bool = False, interleave: bool = False) -> str:
    if interleave:
        return INTERLEAVE
    if sequential:
        return SEQUENTIAL
    if images == 0 and TEXT_TO_IMAGE not in spec.modes and INTERLEAVE not in spec.modes:
        return EDIT  # the count check below then says this model needs an image
    return EDIT if images else TEXT_TO_IMAGE


def build_request(model: str, prompt: str, images: Iterable[InputImage | str] = (), *,
                  mode: str | None = None, params: Params | None = None, **kw: Any) -> WanRequest:
    """Validate everything against the model's limits and assemble the body. `kw` fills `Params`."""
    spec = get_model(model)
    p = params or Params()
    for key, value in kw.items():
        if not hasattr(p, key):
            raise TypeError(f"unknown parameter {key!r}")
        setattr(p, key, value)
    imgs = [img if isinstance(img, InputImage) else InputImage(str(img)) for img in images]
    if mode is None:
        mode = infer_mode(spec, len(imgs))
    if mode == TEXT_TO_IMAGE and mode not in spec.modes and imgs == []:
        raise WanInputError("image", f"{spec.name} edits pictures and needs at least 1 input image; "
                                     "for text-to-image use " + " or ".join(models_with_mode(TEXT_TO_IMAGE)))
    m = spec.mode(mode)

    _check_prompt(spec, prompt)
    _check_image_count(spec, mode, m, len(imgs))
    for index, img in enumerate(imgs, 1):
        _check_image(spec, img, index)

    settings = _check_settings(spec, mode, m, p, len(imgs))

    parameters: dict[str, Any] = {}
    if settings.size is not None:
        parameters["size"] = settings.size
    parameters["n"] = settings.n
    if p.watermark is not None:
        parameters["watermark"] = bool(p.watermark)
    if settings.seed is not None:
        parameters["seed"] = settings.seed
    if mode == SEQUENTIAL:
        parameters["enable_sequential"] = True
    if mode == INTERLEAVE:
        parameters["enable_interleave"] = True
        parameters["max_images"] = settings.max_images
    if p.prompt_extend is not None:
        parameters["prompt_extend"] = bool(p.prompt_extend)
    if p.thinking_mode is not None:
        parameters["thinking_mode"] = bool(p.thinking_mode)
    if settings.color_palette is not None:
        parameters["color_palette"] = settings.color_palette
    if p.bbox_list is not None:
        boxes = check_bbox_list(p.bbox_list, imgs)
        if any(boxes):
            parameters["bbox_list"] = boxes
    negative = (p.negative_prompt or "").strip()
    parameters.update(p.extra)

    if spec.protocol == IMAGE_SYNTHESIS:
        inp: dict[str, Any] = {"prompt": prompt, "images": [img.value for img in imgs]}
        if negative:
            inp["negative_prompt"] = negative
        body = {"model": spec.name, "input": inp, "parameters": parameters}
    else:
        if negative:
            parameters["negative_prompt"] = negative
        content: list[dict[str, str]] = [{"image": img.value} for img in imgs]
        content.append({"text": prompt})
        body = {"model": spec.name, "input": {"messages": [{"role": "user", "content": content}]},
                "parameters": parameters}

    billable = parameters.get("max_images", settings.n) if mode == INTERLEAVE else settings.n
    return WanRequest(model=spec.name, mode=mode, protocol=spec.protocol, body=body, image_count=len(imgs),
                      max_billable_images=billable, transports=m.transports)


@dataclass(frozen=True)
class _Settings:
    """The settings of a request as they will be sent (normalized)."""

    n: int
    size: str | None
    seed: int | None
    max_images: int | None
    color_palette: list[dict[str, str]] | None


def _check_settings(spec: ModelSpec, mode: str, m: ModeSpec, p: Params, images: int | None) -> _Settings:
    """Every check of the settings that needs no picture; `images` (the count) only refines a message."""
    n = _check_n(spec, mode, m, p.n)
    size = check_size(spec, mode, p.size)
    seed = _check_seed(p.seed)
    _check_unsupported(spec, mode, m, p, images or 0)
    max_images = None
    if mode == INTERLEAVE:
        lo, hi = m.max_images or (1, 1)
        max_images = hi if p.max_images is None else p.max_images
        if not isinstance(max_images, int) or isinstance(max_images, bool) or not lo <= max_images <= hi:
            raise WanInputError("max_images", f"is {p.max_images!r}; {spec.name} interleave takes {lo} to {hi}")
    palette = None if p.color_palette is None else check_color_palette(p.color_palette)
    return _Settings(n=n, size=size, seed=seed, max_images=max_images, color_palette=palette)


def check_settings(model: str, mode: str, prompt: str | None = None, params: Params | None = None) -> None:
    """What a request's settings alone decide, before any picture exists: the model and mode, the prompt,
    n, size, seed, max_images, the palette, parameters the model lacks, and the form of the boxes (at most 2
    per picture). The nodes call this when a graph is queued; `build_request` runs the same checks (and
    those that need the pictures) before sending. A value of None is not known yet (e.g. a linked input)
    and is left to `build_request`."""
    spec = get_model(model)
    m = spec.mode(mode)
    if prompt is not None:
        _check_prompt(spec, prompt)
    p = params or Params()
    _check_settings(spec, mode, m, p, None)
    if p.bbox_list is not None:
        check_box_form(p.bbox_list)


def _check_prompt(spec: ModelSpec, prompt: Any) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise WanInputError("prompt", "is empty; describe the picture or the edit you want")
    if len(prompt) > spec.prompt_max and spec.certain("prompt_max"):
        cut = " (the service would silently cut the rest)" if spec.prompt_cut_by_server else ""
        raise WanInputError("prompt", f"has {len(prompt)} characters; {spec.name} reads at most "
                                      f"{spec.prompt_max}{cut}")


def _check_image_count(spec: ModelSpec, mode: str, m: ModeSpec, count: int) -> None:
    lo, hi = m.images
    if not m.certain("images_max") and hi > 0:
        # No page states this model's maximum: refuse only what no page allows any model.
        hi = max(hi, MAX_IMAGES_ANY_PAGE)
    if lo <= count <= hi:
        return
    what = MODE_NAMES[mode]
    if count < lo:
        raise WanInputError("image", f"{spec.name} {what} needs at least {lo} input image"
                                     f"{'s' if lo > 1 else ''}; got {count}")
    if hi == 0:
        raise WanInputError("image", f"{spec.name} {what} takes no input image; got {count}")
    raise WanInputError("image", f"{spec.name} {what} takes at most {hi} input image{'s' if hi > 1 else ''}; "
                                 f"got {count}")


def _check_image(spec: ModelSpec, img: InputImage, index: int) -> None:
    lim = spec.image
    name = f"image {index}"
    if img.is_url:
        return  # the service fetches it; its limits are checked there
    if not img.value.startswith("data:image/"):
        raise WanInputError(name, "must be an http(s) URL or a data:image/...;base64 value")
    if img.width and img.height:
        w, h = img.width, img.height
        if lim.certain("min_side") and lim.certain("max_side") and (min(w, h) < lim.min_side
                                                                     or max(w, h) > lim.max_side):
            raise WanInputError(name, f"is {w}x{h} px; {spec.name} takes sides of {lim.min_side} to "
                                      f"{lim.max_side} px")
        if lim.max_aspect and lim.certain("max_aspect") and max(w, h) / min(w, h) > lim.max_aspect + 1e-9:
            raise WanInputError(name, f"is {w}x{h} px (aspect {max(w, h) / min(w, h):.2f}:1); {spec.name} "
                                      f"takes aspect {_ratio(lim.max_aspect)}")
    if img.nbytes is not None and img.nbytes > lim.max_bytes and lim.certain("max_bytes"):
        raise WanInputError(name, f"is {img.nbytes / 2**20:.1f} MB; {spec.name} takes at most "
                                  f"{lim.max_bytes // 2**20} MB per picture")


def _check_n(spec: ModelSpec, mode: str, m: ModeSpec, n: Any) -> int:
    lo, hi = m.n
    if n is None:
        # Never leave n to the service: its default is 4 (12 in sequential mode), each one billed.
        return lo
    if not isinstance(n, int) or isinstance(n, bool) or not lo <= n <= hi:
        if mode == INTERLEAVE:
            raise WanInputError("n", f"is {n!r}; interleaved output takes n = 1 (use max_images for more images)")
        raise WanInputError("n", f"is {n!r}; {spec.name} {MODE_NAMES[mode]} takes {lo} to {hi}")
    return n


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= SEED_MAX:
        raise WanInputError("seed", f"is {seed!r}; it takes 0 to {SEED_MAX}")
    return seed


def _check_unsupported(spec: ModelSpec, mode: str, m: ModeSpec, p: Params, images: int) -> None:
    what = f"{spec.name} {MODE_NAMES[mode]}"
    if (p.negative_prompt or "").strip():
        if "negative_prompt" not in m.params:
            raise WanInputError("negative_prompt", f"{what} has no negative prompt; leave it empty")
        if (spec.negative_prompt_max and spec.certain("negative_prompt_max")
                and len(p.negative_prompt) > spec.negative_prompt_max):
            raise WanInputError("negative_prompt", f"has {len(p.negative_prompt)} characters; {spec.name} reads "
                                                   f"at most {spec.negative_prompt_max}")
    if p.prompt_extend is not None and "prompt_extend" not in m.params:
        raise WanInputError("prompt_extend", f"{what} has no prompt rewriting")
    if p.thinking_mode is not None and "thinking_mode" not in m.params:
        if spec.name.startswith("wan2.7") and images:
            raise WanInputError("thinking_mode", f"works only without input images; {what} has {images}")
        if mode == SEQUENTIAL:
            raise WanInputError("thinking_mode", "works only with sequential output off")
        raise WanInputError("thinking_mode", f"{what} has no thinking mode")
    if p.color_palette is not None and "color_palette" not in m.params:
        if mode == SEQUENTIAL:
            raise WanInputError("color_palette", "works only with sequential output off")
        raise WanInputError("color_palette", f"{what} has no colour palette (wan2.7 only)")
    if p.bbox_list is not None and "bbox_list" not in m.params:
        if mode == TEXT_TO_IMAGE:
            raise WanInputError("bbox_list", "boxes need input images to lie on")
        raise WanInputError("bbox_list", f"{what} has no bounding-box editing (wan2.7 editing only)")
    if p.max_images is not None and mode != INTERLEAVE:
        raise WanInputError("max_images", "is for wan2.6-image interleaved output only")


# ---- builders per mode, in the vendor's vocabulary ----------------------------------------------------

def text_to_image(model: str, prompt: str, **params: Any) -> WanRequest:
    """wan2.7 text-to-image (thinking_mode, color_palette, 1K/2K/4K on pro)."""
    return build_request(model, prompt, (), mode=TEXT_TO_IMAGE, **params)


def edit(model: str, prompt: str, images: Sequence[InputImage | str], **params: Any) -> WanRequest:
    """Multi-image editing / fusion; on wan2.5-i2i-preview the image-synthesis body."""
    return build_request(model, prompt, images, mode=EDIT, **params)


def bbox_edit(model: str, prompt: str, images: Sequence[InputImage | str], bbox_list: Any,
              **params: Any) -> WanRequest:
    """wan2.7 interactive editing: one list of up to 2 boxes per image, in that image's pixels."""
    return build_request(model, prompt, images, mode=EDIT, bbox_list=bbox_list, **params)


def sequential(model: str, prompt: str, images: Sequence[InputImage | str] = (), **params: Any) -> WanRequest:
    """wan2.7 sequential ("group") output: up to n (1-12) consistent images; the model decides how many."""
    return build_request(model, prompt, images, mode=SEQUENTIAL, **params)


def interleave(model: str, prompt: str, images: Sequence[InputImage | str] = (), **params: Any) -> WanRequest:
    """wan2.6-image interleaved text-and-image output: 0-1 image, max_images 1-5, n = 1."""
    params.setdefault("n", 1)
    return build_request(model, prompt, images, mode=INTERLEAVE, **params)
