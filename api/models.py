"""What each Wan image model accepts: the one table every client-side check, builder and tooltip reads.

Facts come from the vendor pages (shared/wan-api-reference.md and the seeds). Where the vendor is vague or
contradicts itself, the limit here is the LOOSER one, so that we never refuse a request the service would
take; the comment beside such a value says so.

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


@dataclass(frozen=True)
class ModeSpec:
    images: tuple[int, int]               # inclusive range of input images
    n: tuple[int, int]                    # inclusive range of `n`
    presets: Mapping[str, int]            # "1K" -> side of the square with that area
    area: tuple[int, int]                 # inclusive range of W*H for an explicit "W*H" size
    max_aspect: float                     # of an explicit "W*H" size
    params: frozenset[str]                # parameters this mode accepts besides size, n, seed, watermark
    transports: tuple[str, ...]           # first one is the default
    default_size: str
    # wan2.6 interleave: n is fixed and max_images is the ceiling instead.
    max_images: tuple[int, int] | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    protocol: str
    prompt_max: int
    image: ImageLimits
    modes: Mapping[str, ModeSpec]
    negative_prompt_max: int | None = None
    # The service cuts a longer prompt instead of refusing it; we refuse, because a silently cut prompt
    # is a paid image of a prompt the user did not write.
    prompt_cut_by_server: bool = False
    notes: str = ""

    def mode(self, mode: str) -> ModeSpec:
        try:
            return self.modes[mode]
        except KeyError:
            from .errors import WanInputError

            raise WanInputError(
                "mode",
                f"{self.name} has no {MODE_NAMES.get(mode, mode)} mode; it offers "
                + ", ".join(MODE_NAMES[m] for m in self.modes),
            ) from None

    @property
    def max_input_images(self) -> int:
        return max(m.images[1] for m in self.modes.values())


MODE_NAMES = {
    EDIT: "image editing",
    TEXT_TO_IMAGE: "text-to-image",
    SEQUENTIAL: "sequential (group) output",
    INTERLEAVE: "interleaved text-and-image output",
}

_K = 1024

_WAN27_IMAGE = ImageLimits(min_side=240, max_side=8000, max_bytes=20 * _K * _K, max_aspect=8.0)
# wan2.6 input pictures: the newest page says sides 240-8000 px, older ones 384-5000; the looser one is
# kept. No aspect bound is stated for wan2.6 inputs.
_WAN26_IMAGE = ImageLimits(min_side=240, max_side=8000, max_bytes=10 * _K * _K, max_aspect=None)
_WAN25_IMAGE = ImageLimits(min_side=384, max_side=5000, max_bytes=10 * _K * _K, max_aspect=4.0)

_PRESETS_12 = {"1K": 1024, "2K": 2048}
_PRESETS_124 = {"1K": 1024, "2K": 2048, "4K": 4096}


def _wan27(name: str, *, pro: bool) -> ModelSpec:
    t2i_presets = _PRESETS_124 if pro else _PRESETS_12
    # Text-to-image on pro accepts W*H up to 4096^2; everything else up to 2048^2.
    t2i_area_max = 4096 * 4096 if pro else 2048 * 2048
    area = (768 * 768, 2048 * 2048)
    palette = frozenset({"color_palette"})
    return ModelSpec(
        name=name,
        protocol=MULTIMODAL,
        prompt_max=5000,
        prompt_cut_by_server=True,
        image=_WAN27_IMAGE,
        modes={
            TEXT_TO_IMAGE: ModeSpec(
                images=(0, 0), n=(1, 4), presets=t2i_presets, area=(768 * 768, t2i_area_max),
                max_aspect=8.0, params=palette | {"thinking_mode"},
                transports=(ASYNC, SYNC, STREAM), default_size="2K",
            ),
            EDIT: ModeSpec(
                images=(1, 9), n=(1, 4), presets=_PRESETS_12, area=area, max_aspect=8.0,
                params=palette | {"bbox_list"}, transports=(ASYNC, SYNC, STREAM), default_size="2K",
            ),
            SEQUENTIAL: ModeSpec(
                images=(0, 9), n=(1, 12), presets=_PRESETS_12, area=area, max_aspect=8.0,
                params=frozenset({"enable_sequential"}), transports=(ASYNC, SYNC, STREAM),
                default_size="2K",
            ),
        },
        notes="4K only on wan2.7-image-pro text-to-image." if pro else "",
    )


MODELS: dict[str, ModelSpec] = {
    "wan2.7-image-pro": _wan27("wan2.7-image-pro", pro=True),
    "wan2.7-image": _wan27("wan2.7-image", pro=False),
    "wan2.6-image": ModelSpec(
        name="wan2.6-image",
        protocol=MULTIMODAL,
        prompt_max=2000,
        negative_prompt_max=500,
        image=_WAN26_IMAGE,
        modes={
            EDIT: ModeSpec(
                images=(1, 4), n=(1, 4), presets=_PRESETS_12, area=(768 * 768, 2048 * 2048),
                max_aspect=4.0, params=frozenset({"negative_prompt", "prompt_extend"}),
                transports=(ASYNC, SYNC, STREAM), default_size="1K",
            ),
            # On the sync endpoint interleave is streaming-only; async works without streaming.
            INTERLEAVE: ModeSpec(
                images=(0, 1), n=(1, 1), presets={}, area=(768 * 768, 1280 * 1280), max_aspect=4.0,
                params=frozenset({"negative_prompt", "max_images", "enable_interleave"}),
                transports=(STREAM, ASYNC), default_size="1280*1280", max_images=(1, 5),
            ),
        },
    ),
    "wan2.5-i2i-preview": ModelSpec(
        name="wan2.5-i2i-preview",
        protocol=IMAGE_SYNTHESIS,
        prompt_max=2000,
        negative_prompt_max=500,
        image=_WAN25_IMAGE,
        modes={
            EDIT: ModeSpec(
                images=(1, 3), n=(1, 4), presets={}, area=(768 * 768, 1280 * 1280), max_aspect=4.0,
                params=frozenset({"negative_prompt", "prompt_extend"}), transports=(ASYNC,),
                default_size="1280*1280",
            ),
        },
    ),
}

MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        from .errors import WanInputError

        raise WanInputError(
            "model", f"unknown model {name!r}; this pack knows " + ", ".join(MODEL_NAMES)
        ) from None


def models_with_mode(mode: str) -> tuple[str, ...]:
    return tuple(name for name, spec in MODELS.items() if mode in spec.modes)

