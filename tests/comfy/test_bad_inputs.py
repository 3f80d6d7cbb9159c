"""The bad-input catalogue, through the nodes: every case is refused before any request, and the error
names the input and the limit. The emulator's own log proves nothing was sent."""

from __future__ import annotations

import asyncio

import pytest
import torch

from conftest import api, wan


def pic(h=300, w=300):
    return torch.rand((1, h, w, 3))


PALETTE3 = '[{"hex": "#112233", "ratio": "50.00%"}, {"hex": "#445566", "ratio": "30.00%"}, {"hex": "#778899", "ratio": "20.00%"}]'
E, T, S, I, B = wan.WanImageEdit, wan.WanTextToImage, wan.WanSequential, wan.WanInterleave, wan.WanBBox
base_e = dict(model="wan2.7-image", prompt="edit it", n=1, seed=0)
base_t = dict(model="wan2.7-image", prompt="a fox", n=1, seed=0, size="1K")

CATALOGUE = [
    # (case, node, inputs, input named, phrase of the limit)
    ("unknown model", E, {**base_e, "model": "wan3-image", "image": pic()}, "model", "unknown model"),
    ("empty prompt", E, {**base_e, "prompt": "  ", "image": pic()}, "prompt", "empty"),
    ("prompt over 5000 (2.7)", T, {**base_t, "prompt": "p" * 5001}, "prompt", "5000"),
    ("prompt over 2000 (2.6)", E, {**base_e, "model": "wan2.6-image", "prompt": "p" * 2001, "image": pic()}, "prompt", "2000"),
    ("negative prompt over 500", E, {**base_e, "model": "wan2.6-image", "image": pic(), "negative_prompt": "n" * 501},
     "negative_prompt", "500"),
    ("negative prompt on 2.7", E, {**base_e, "image": pic(), "negative_prompt": "ugly"}, "negative_prompt", "no negative"),
    ("10 images on 2.7", E, {**base_e, "image": torch.rand((10, 300, 300, 3))}, "image", "at most 9"),
    ("5 images on 2.6", E, {**base_e, "model": "wan2.6-image", "image": torch.rand((5, 300, 300, 3))}, "image", "at most 4"),
    ("4 images on 2.5", E, {**base_e, "model": "wan2.5-i2i-preview", "image": torch.rand((4, 400, 400, 3))}, "image",
     "at most 3"),
    ("no image", E, {**base_e}, "image", "at least 1"),
    ("empty batch", E, {**base_e, "image": torch.zeros((0, 300, 300, 3))}, "image", "empty batch"),
    ("NaN pixels", E, {**base_e, "image": torch.full((1, 300, 300, 3), float("nan"))}, "image", "NaN"),
    ("aspect 9:1 on 2.7", E, {**base_e, "image": pic(100, 900)}, "image", "1:8 to 8:1"),
    ("aspect 5:1 on 2.5", E, {**base_e, "model": "wan2.5-i2i-preview", "image": pic(400, 2000)}, "image", "1:4 to 4:1"),
    ("side too long to fit (2.6)", E, {**base_e, "model": "wan2.6-image", "image": pic(20, 2000)}, "image", "no scaling"),
    ("n = 5", E, {**base_e, "image": pic(), "n": 5}, "n", "1 to 4"),
    ("n = 0", T, {**base_t, "n": 0}, "n", "1 to 4"),
    ("sequential n = 13", S, {**base_t, "n": 13}, "n", "1 to 12"),
    ("size garbage", T, {**base_t, "size": "huge"}, "size", "neither a preset"),
    ("size 3K", T, {**base_t, "size": "3K"}, "size", "not a size"),
    ("4K on wan2.7-image", T, {**base_t, "size": "4K"}, "size", "wan2.7-image-pro"),
    ("4K on pro editing", E, {**base_e, "model": "wan2.7-image-pro", "image": pic(), "size": "4K"}, "size", "text-to-image"),
    ("4K on pro sequential", S, {**base_t, "model": "wan2.7-image-pro", "size": "4K"}, "size", "sequential"),
    ("area below 768*768", T, {**base_t, "size": "700*700"}, "size", "768*768"),
    ("area above 2048*2048", T, {**base_t, "size": "2100*2100"}, "size", "2048*2048"),
    ("area above 1280*1280 (interleave)", I, {"model": "wan2.6-image", "prompt": "x", "seed": 0, "size": "1300*1300"},
     "size", "1280*1280"),
    ("size aspect 9:1", T, {**base_t, "size": "3000*333"}, "size", "1:8 to 8:1"),
    ("preset on wan2.5", E, {**base_e, "model": "wan2.5-i2i-preview", "image": pic(400, 400), "size": "1K"}, "size",
     "not a size"),
    ("seed out of range", T, {**base_t, "seed": 2**31}, "seed", "2147483647"),
    ("palette of 2 colours", T, {**base_t, "color_palette": '[{"hex": "#112233", "ratio": "50.00%"}, '
                                                           '{"hex": "#445566", "ratio": "50.00%"}]'}, "color_palette",
     "3 to 10"),
    ("palette of 11 colours", T, {**base_t, "color_palette": "[" + ",".join(['{"hex": "#000000", "ratio": "9.09%"}'] * 10
                                                                         + ['{"hex": "#000000", "ratio": "9.10%"}']) + "]"},
     "color_palette", "3 to 10"),
    ("palette summing to 99.99%", T, {**base_t, "color_palette": PALETTE3.replace("20.00%", "19.99%")}, "color_palette",
     "100.00%"),
    ("palette malformed hex", T, {**base_t, "color_palette": PALETTE3.replace("#112233", "#11223")}, "color_palette",
     "#RRGGBB"),
    ("palette not JSON", T, {**base_t, "color_palette": "red, green, blue"}, "color_palette", "JSON"),
    ("palette on wan2.6", E, {**base_e, "model": "wan2.6-image", "image": pic(), "color_palette": PALETTE3},
     "color_palette", "wan2.7 only"),
    ("3 boxes on a picture", B, {**base_e, "image": pic(), "boxes": "[[[0,0,10,10],[20,20,30,30],[40,40,50,50]]]"},
     "bbox_list", "at most 2"),
    ("a box outside its picture", B, {**base_e, "image": pic(), "boxes": "[[[0, 0, 301, 10]]]"}, "bbox_list",
     "outside the image"),
    ("box list longer than the pictures", B, {**base_e, "image": pic(), "boxes": "[[], [[0, 0, 10, 10]]]"}, "boxes",
     "for 1 pictures"),
    ("boxes not JSON", B, {**base_e, "image": pic(), "boxes": "here and there"}, "bbox_list", "JSON"),
    ("mask without its picture", B, {**base_e, "image": pic(), "mask_2": torch.ones((1, 300, 300))}, "mask_2",
     "image_2 is not"),
    ("interleave with 2 images", I, {"model": "wan2.6-image", "prompt": "x", "seed": 0, "image": torch.rand((2, 300, 300, 3))},
     "image", "at most 1"),
    ("interleave max_images 6", I, {"model": "wan2.6-image", "prompt": "x", "seed": 0, "max_images": 6}, "max_images",
     "1 to 5"),
    ("wan2.5 over sync", E, {**base_e, "model": "wan2.5-i2i-preview", "image": pic(400, 400), "transport": "sync"},
     "transport", "async"),
    ("interleave over sync", I, {"model": "wan2.6-image", "prompt": "x", "seed": 0, "transport": "sync"}, "transport",
     "stream"),
    ("unknown input format", E, {**base_e, "image": pic(), "input_format": "gif"}, "input_format", "auto, png, jpeg"),
]


def _call(node, inputs):
    return asyncio.run(node.execute(**inputs))


@pytest.mark.parametrize("case,node,inputs,param,limit", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_refused_before_any_request(emulator, case, node, inputs, param, limit):
    with pytest.raises(api.WanInputError) as info:
        _call(node, inputs)
    err = info.value
    assert err.param == param, f"{case}: named {err.param!r}, not {param!r} ({err})"
    assert limit in str(err), f"{case}: {err}"
    assert "Nothing was sent" in str(err)
    assert emulator.backend.log == [], f"{case}: a request reached the service"


def test_combinations_no_node_can_express_are_refused_by_the_client(emulator):
    """thinking_mode with images and a palette with sequential output: the nodes cannot even ask for these
    (no thinking_mode on editing nodes, no palette on WanSequential); the client refuses them too."""
    spec = api.MODELS["wan2.7-image"]
    image = api.encode_image(torch.rand((300, 300, 3)).numpy(), spec.image)
    with pytest.raises(api.WanInputError, match="thinking_mode"):
        api.build_request("wan2.7-image", "x", [image], thinking_mode=True)
    with pytest.raises(api.WanInputError, match="color_palette"):
        api.sequential("wan2.7-image", "x", color_palette=PALETTE3)
    assert emulator.backend.log == []


BOUNDS = [
    # (node, inputs besides the bounded one, bounded input, its largest accepted value)
    (E, {**base_e, "size": "1K", "image": pic()}, "n", 4),
    (T, base_t, "n", 4),
    (S, {"model": "wan2.7-image", "prompt": "a set", "seed": 0, "size": "1K"}, "n", 12),
    (I, {"model": "wan2.6-image", "prompt": "x", "seed": 0, "size": "1024*1024"}, "max_images", 5),
    (T, {**base_t, "seed": None}, "seed", 2147483647),
]


@pytest.mark.parametrize("node,inputs,param,largest", BOUNDS,
                         ids=[f"{b[0].__name__}-{b[2]}" for b in BOUNDS])
def test_a_bounded_input_is_taken_at_its_limit_and_refused_past_it(emulator, node, inputs, param, largest):
    """Both sides of each boundary: the largest value is sent and served; one more is refused, unsent."""
    with pytest.raises(api.WanInputError) as info:
        _call(node, {**inputs, param: largest + 1})
    assert info.value.param == param and str(largest) in str(info.value)
    assert emulator.backend.log == []
    out = _call(node, {**inputs, param: largest})
    assert emulator.backend.stats()["creations"] == 1 and out.args[0].shape[0] >= 1
