"""What each Wan image model accepts: the one table every client-side check, builder and tooltip reads.

Facts come from the vendor pages (the seeds in shared/seeds: 000 = wan2.6 page, Indonesian; 001 = wan2.7 page,
Simplified Chinese; 002 = wan2.6 page, Traditional Chinese; 003 = wan2.5 page, Indonesian) and from
shared/wan-api-reference.md. Where the vendor is vague or contradicts itself, the limit here is the LOOSER one,
so that we never refuse a request the service would take; the comment beside such a value says so.

A limit that only the reference gives (the wan2.6 and wan2.5 pages lost their parameter tables; only the
examples survive) is named in the `reference_only` field of the object that holds it. The request builders
read that field: they refuse only what would surely fail or cost money (more pictures than any vendor page
allows, a parameter the model lacks, more billed pictures than the table allows) and let the service judge
the rest, whose own error is then shown.

Transports and regions per model come from the pages too (`transports`, `regions`), and the rules that
read them are the pure functions at the end (`choose_transport`, `check_region`): the client, the nodes'
queue-time validation and the tooltips all call those, never a copy.

A model has modes (what the request asks for: editing, text-to-image, a sequential set, interleaved text
and images); each mode has its own image count, `n`, size forms and parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

# Modes, in the user's words.
EDIT = "edit"                # one or more input images, edited or fused by the prompt
TEXT_TO_IMAGE = "t2i"        # no input image
SEQUENTIAL = "sequential"    # wan2.7 "group" output: a consistent set of up to 12 images
INTERLEAVE = "interleave"    # wan2.6 text-and-image output

# Transports.
SYNC = "sync"                # POST .../multimodal-generation/generation, JSON answer
STREAM = "stream"            # the same endpoint with X-DashScope-Sse: enable
ASYNC = "async"              # create a task, poll /tasks/{id}, cancel while PENDING

# Wire protocols: the multimodal "messages" body, or wan2.5's image-synthesis body.
MULTIMODAL = "multimodal"
IMAGE_SYNTHESIS = "image-synthesis"

SEED_MAX = 2147483647


@dataclass(frozen=True)
class ImageLimits:
    """Limits on one input picture as the service receives it."""

    min_side: int
    max_side: int
    max_bytes: int
    # Longest side over shortest side; None where the vendor states no bound.
    max_aspect: float | None
    # Names of the fields above that only the reference gives (no vendor page): not refused by the client.
    reference_only: frozenset[str] = frozenset()

    def certain(self, name: str) -> bool:
        return name not in self.reference_only


@dataclass(frozen=True)
class ModeSpec:
    images: tuple[int, int]               # inclusive range of input images
    n: tuple[int, int]                    # inclusive range of `n`
    presets: Mapping[str, int]            # "1K" -> side of the square with that area
    area: tuple[int, int]                 # inclusive range of W*H for an explicit "W*H" size
    max_aspect: float                     # of an explicit "W*H" size
    params: frozenset[str]                # parameters this mode accepts besides size, n, seed, watermark
    transports: tuple[str, ...]           # the ones the vendor documents for this mode; first = `auto`
    default_size: str
    # wan2.6 interleave: n is fixed and max_images is the ceiling instead.
    max_images: tuple[int, int] | None = None
    # Names of the fields above that only the reference gives; "images_max" stands for images[1].
    reference_only: frozenset[str] = frozenset()

    def certain(self, name: str) -> bool:
        return name not in self.reference_only


@dataclass(frozen=True)
class ModelSpec:
    name: str
    protocol: str
    prompt_max: int
    image: ImageLimits
    modes: Mapping[str, ModeSpec]
    # The regions whose endpoints the model's own vendor page lists (config.REGIONS names).
    regions: tuple[str, ...] = ()
    negative_prompt_max: int | None = None
    # The service cuts a longer prompt instead of refusing it; we refuse, because a silently cut prompt
    # is a paid image of a prompt the user did not write.
    prompt_cut_by_server: bool = False
    notes: str = ""
    # Names of the fields above that only the reference gives (prompt_max, negative_prompt_max).
    reference_only: frozenset[str] = frozenset()

    def certain(self, name: str) -> bool:
        return name not in self.reference_only

    def mode(self, mode: str) -> ModeSpec:
        try:
            return self.modes[mode]
        except KeyError:
            from ..errors import WanInputError

            raise WanInputError(
                "mode",
                f"{self.name} has no {MODE_NAMES.get(mode, mode)} mode; it offers "
                + ", ".join(MODE_NAMES[m] for m in self.modes),
            ) from None

    @property
    def max_input_images(self) -> int:
        """The most pictures the client lets through: the page's maximum, or where no page states the
        model's own, the most any page allows any model."""
        return max(m.images[1] if m.certain("images_max") else max(m.images[1], MAX_IMAGES_ANY_PAGE)
                   for m in self.modes.values())


MODE_NAMES = {
    EDIT: "image editing",
    TEXT_TO_IMAGE: "text-to-image",
    SEQUENTIAL: "sequential (group) output",
    INTERLEAVE: "interleaved text-and-image output",
}

_K = 1024

# What only the reference gives, by the object that holds it (see the module docstring).
_IMAGE_UNVERIFIED = frozenset({"min_side", "max_side", "max_bytes", "max_aspect"})
_MODE_UNVERIFIED = frozenset({"images_max", "n", "presets", "area", "max_aspect", "max_images"})
_PROMPTS_UNVERIFIED = frozenset({"prompt_max", "negative_prompt_max"})

# seed 001 line 206-210: "图像分辨率:图像的宽高范围均为[240, 8000]像素,宽高比范围[1:8, 8:1]" / "文件大小:不超过20MB"
_WAN27_IMAGE = ImageLimits(min_side=240, max_side=8000, max_bytes=20 * _K * _K, max_aspect=8.0)
# wan2.6 input pictures: no page states them (seed 000/002 lost their tables). The reference: sides 240-8000 px
# on the newest page, 384-5000 on older ones (the looser one is kept), <= 10 MB, no aspect bound.
_WAN26_IMAGE = ImageLimits(min_side=240, max_side=8000, max_bytes=10 * _K * _K, max_aspect=None,
                           reference_only=_IMAGE_UNVERIFIED)
# wan2.5 input pictures: the page's table is cut off (seed 003 line 12); the reference: 384-5000 px, 10 MB, 1:4-4:1.
_WAN25_IMAGE = ImageLimits(min_side=384, max_side=5000, max_bytes=10 * _K * _K, max_aspect=4.0,
                           reference_only=_IMAGE_UNVERIFIED)

# seed 001 line 282: "各规格总像素:1K:1024*1024、2K:2048*2048、4K:4096*4096". wan2.6's 1K is the same area: its
# example (seed 000 lines 118 and 152) asks size="1K" of a 1696x960 input and gets "1376*768", about 1024^2
# pixels (not 1280^2, as an earlier reading had it).
_PRESETS_12 = {"1K": 1024, "2K": 2048}
_PRESETS_124 = {"1K": 1024, "2K": 2048, "4K": 4096}

# Transports, per page.
# wan2.7: seed 001 line 40 "HTTP同步调用" (sync JSON) and line 521 "HTTP异步调用" (tasks); the page shows no
# streaming anywhere (no X-DashScope-Sse among its headers, lines 158-166).
_WAN27_TRANSPORTS = (ASYNC, SYNC)
# wan2.6 editing: seed 000 line 14 "Parameter permintaan | Pengeditan gambar" under "HTTP synchronous" (JSON answer,
# lines 120-154) and line 40 under "HTTP asynchronous"; the Java example, line 505: "Image editing uses standard
# synchronous call; no need to set stream or enable_interleave".
_WAN26_EDIT_TRANSPORTS = (ASYNC, SYNC)
# wan2.6 interleave: seed 000 line 14 "Output teks-gambar interleaved (hanya streaming)" (only streaming on the
# sync endpoint) and line 329 "Pemanggilan asinkron tidak memerlukan parameter stream" (async works without it).
_WAN26_INTERLEAVE_TRANSPORTS = (STREAM, ASYNC)
# wan2.5: seed 003 line 19 "API ini menggunakan panggilan asinkron" (tasks only).
_WAN25_TRANSPORTS = (ASYNC,)

# Regions, per page (config.REGIONS names).
# seed 001 line 38: "北京和新加坡地域拥有独立的 API Key 请求地址" and the endpoints at lines 44-50 (Beijing, Singapore).
_WAN27_REGIONS = ("beijing", "singapore")
# seed 000 line 8: "Wilayah Singapura, Virginia, dan Beijing memiliki Kunci API dan titik akhir permintaan yang
# terpisah", endpoints at lines 11-13. (The older Traditional Chinese copy, seed 002 line 8, lists Beijing and
# Singapore; the newer page adds Virginia, and the looser reading is kept.)
_WAN26_REGIONS = ("singapore", "virginia", "beijing")
# seed 003 line 17: "Wilayah Beijing dan Singapura memiliki Kunci API dan titik akhir permintaan yang terpisah",
# endpoints at lines 22-23.
_WAN25_REGIONS = ("beijing", "singapore")


def _wan27(name: str, *, pro: bool) -> ModelSpec:
    # seed 001 lines 272-304: 1K/2K/4K on pro text-to-image, 1K/2K elsewhere; W*H 768*768 to 2048*2048
    # (text-to-image on pro: to 4096*4096), aspect 1:8 to 8:1.
    t2i_presets = _PRESETS_124 if pro else _PRESETS_12
    t2i_area_max = 4096 * 4096 if pro else 2048 * 2048
    area = (768 * 768, 2048 * 2048)
    palette = frozenset({"color_palette"})
    return ModelSpec(
        name=name,
        protocol=MULTIMODAL,
        # seed 001 line 198: "长度不超过5000个字符 ... 超过部分会自动截断"
        prompt_max=5000,
        prompt_cut_by_server=True,
        image=_WAN27_IMAGE,
        regions=_WAN27_REGIONS,
        modes={
            # seed 001 lines 214 "可传入0-9张图片", 314 "取值范围 1-4", 316 "取值范围 1-12"
            TEXT_TO_IMAGE: ModeSpec(
                images=(0, 0), n=(1, 4), presets=t2i_presets, area=(768 * 768, t2i_area_max),
                max_aspect=8.0, params=palette | {"thinking_mode"},
                transports=_WAN27_TRANSPORTS, default_size="2K",
            ),
            EDIT: ModeSpec(
                images=(1, 9), n=(1, 4), presets=_PRESETS_12, area=area, max_aspect=8.0,
                params=palette | {"bbox_list"}, transports=_WAN27_TRANSPORTS, default_size="2K",
            ),
            SEQUENTIAL: ModeSpec(
                images=(0, 9), n=(1, 12), presets=_PRESETS_12, area=area, max_aspect=8.0,
                params=frozenset({"enable_sequential"}), transports=_WAN27_TRANSPORTS,
                default_size="2K",
            ),
        },
        notes="4K only on wan2.7-image-pro text-to-image." if pro else "",
    )


MODELS: dict[str, ModelSpec] = {
    "wan2.7-image-pro": _wan27("wan2.7-image-pro", pro=True),
    "wan2.7-image": _wan27("wan2.7-image", pro=False),
    # Every number below is the reference's (marked reference_only); what the page shows: the two modes (seed
    # 000 line 14), size "1K" for editing (line 118), "1280*1280" and max_images=3 for interleave (lines
    # 313-314), negative_prompt and prompt_extend (lines 113-114).
    "wan2.6-image": ModelSpec(
        name="wan2.6-image",
        protocol=MULTIMODAL,
        prompt_max=2000,
        negative_prompt_max=500,
        image=_WAN26_IMAGE,
        regions=_WAN26_REGIONS,
        reference_only=_PROMPTS_UNVERIFIED,
        modes={
            EDIT: ModeSpec(
                images=(1, 4), n=(1, 4), presets=_PRESETS_12, area=(768 * 768, 2048 * 2048),
                max_aspect=4.0, params=frozenset({"negative_prompt", "prompt_extend"}),
                transports=_WAN26_EDIT_TRANSPORTS, default_size="1K", reference_only=_MODE_UNVERIFIED,
            ),
            INTERLEAVE: ModeSpec(
                images=(0, 1), n=(1, 1), presets={}, area=(768 * 768, 1280 * 1280), max_aspect=4.0,
                params=frozenset({"negative_prompt", "max_images", "enable_interleave"}),
                transports=_WAN26_INTERLEAVE_TRANSPORTS, default_size="1280*1280", max_images=(1, 5),
                reference_only=_MODE_UNVERIFIED,
            ),
        },
    ),
    # seed 003 line 1: "hingga tiga gambar referensi" (up to three pictures) is the one limit the page keeps; the
    # rest is the reference's.
    "wan2.5-i2i-preview": ModelSpec(
        name="wan2.5-i2i-preview",
        protocol=IMAGE_SYNTHESIS,
        prompt_max=2000,
        negative_prompt_max=500,
        image=_WAN25_IMAGE,
        regions=_WAN25_REGIONS,
        reference_only=_PROMPTS_UNVERIFIED,
        modes={
            EDIT: ModeSpec(
                images=(1, 3), n=(1, 4), presets={}, area=(768 * 768, 1280 * 1280), max_aspect=4.0,
                params=frozenset({"negative_prompt", "prompt_extend"}), transports=_WAN25_TRANSPORTS,
                default_size="1280*1280", reference_only=_MODE_UNVERIFIED - {"images_max"},
            ),
        },
    ),
}

# The most input pictures any vendor page allows any Wan image model (seed 001 line 214: "可传入0-9张图片").
# Where a model's own count is unverified, more than this is refused (it would surely fail); fewer is left to
# the service.
MAX_IMAGES_ANY_PAGE = 9

MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        from ..errors import WanInputError

        raise WanInputError(
            "model", f"unknown model {name!r}; this pack knows " + ", ".join(MODEL_NAMES)
        ) from None


def models_with_mode(mode: str) -> tuple[str, ...]:
    return tuple(name for name, spec in MODELS.items() if mode in spec.modes)



# ---- transports and regions: the rules everyone calls ------------------------------------------------------

AUTO = "auto"
TRANSPORT_CHOICES: tuple[str, ...] = (AUTO, SYNC, STREAM, ASYNC)


def streaming_offers() -> list[tuple[str, str]]:
    """(model, mode) pairs for which the vendor documents streaming, from the table."""
    return [(name, mode) for name, spec in MODELS.items() for mode, m in spec.modes.items() if STREAM in m.transports]


def _describe_offers(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"{name} {MODE_NAMES[mode]}" for name, mode in pairs) or "no model"


def choose_transport(model: str, mode: str, transport: str | None) -> str:
    """The transport a request of `model`/`mode` goes by: `auto` -> the mode's first documented transport
    (never `stream` where the vendor does not document it); anything undocumented -> WanInputError naming
    the input `transport`. Pure: reads the table only."""
    chosen = (transport or AUTO).strip().lower()
    if chosen not in TRANSPORT_CHOICES:
        raise _input_error("transport", f"{transport!r} is not one of {', '.join(TRANSPORT_CHOICES)}")
    m = get_model(model).mode(mode)
    if chosen == AUTO:
        return m.transports[0]
    if chosen in m.transports:
        return chosen
    where = f"{model} {MODE_NAMES.get(mode, mode)}"
    if chosen == STREAM:
        raise _input_error("transport", f"stream (server-sent events) is documented only for "
                                        f"{_describe_offers(streaming_offers())}; {where} works over "
                                        f"{', '.join(m.transports)} (auto picks {m.transports[0]})")
    raise _input_error("transport", f"{where} works over {', '.join(m.transports)}, not {chosen}")


def check_region(model: str, region: str | None, endpoint_overridden: bool) -> str | None:
    """Refuse a region whose endpoints the model's page does not list, naming the regions it has.

    `region` is a region name or alias (config.REGIONS), or None/"default" for DASHSCOPE_REGION / Singapore.
    With DASHSCOPE_HTTP_BASE_URL set (`endpoint_overridden`), the user's endpoint decides: nothing is
    refused and None is returned. Otherwise returns the region's canonical name."""
    if endpoint_overridden:
        return None
    from ..config import normalize_region
    from ..errors import ConfigError

    spec = get_model(model)
    try:
        name = normalize_region(region)
    except ConfigError as exc:
        raise _input_error("region", exc.detail) from None
    if spec.regions and name not in spec.regions:
        from ..config import ENV_BASE_URL, REGION_LABELS

        raise _input_error("region", f"{model} is offered in {_region_list(spec.regions)} only (its vendor page "
                                     f"lists no other region), not {REGION_LABELS[name]}; pick "
                                     f"{' or '.join(spec.regions)}, or set {ENV_BASE_URL} to an endpoint of "
                                     "your own")
    return name


def _region_list(regions: tuple[str, ...]) -> str:
    from ..config import REGION_LABELS

    labels = [REGION_LABELS[r].split(" (")[0] for r in regions]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def transport_summary(models: tuple[str, ...] | list[str] | None = None, mode: str | None = None) -> str:
    """What each model (and mode; only `mode` if given) may go by, for tooltips and the README."""
    parts = []
    for name in models or MODEL_NAMES:
        spec = MODELS[name]
        per_mode = {md: m.transports for md, m in spec.modes.items() if mode is None or md == mode}
        if not per_mode:
            continue
        if len(set(per_mode.values())) == 1:
            parts.append(f"{name}: {', '.join(next(iter(per_mode.values())))}")
        else:
            parts.append(f"{name}: " + "; ".join(f"{MODE_NAMES[md]} {', '.join(t)}" for md, t in per_mode.items()))
    return ". ".join(parts)


def region_summary(models: tuple[str, ...] | list[str] | None = None) -> str:
    """Which regions each model is offered in, for tooltips and the README (models grouped by regions)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name in models or MODEL_NAMES:
        groups.setdefault(MODELS[name].regions, []).append(name)
    return "; ".join(f"{', '.join(names)}: {_region_list(regions)}" for regions, names in groups.items())


def _input_error(param: str, limit: str) -> Exception:
    from ..errors import WanInputError

    return WanInputError(param, limit)
