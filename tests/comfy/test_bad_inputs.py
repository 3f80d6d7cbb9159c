"""The bad-input catalogue, through the nodes: every case is refused before any request, and the error
names the input and the limit. The emulator's own log proves nothing was sent. What the widget values alone
decide is refused earlier still, when the graph is queued (the nodes' validate_inputs)."""

from __future__ import annotations

import asyncio
import inspect

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
    ("negative prompt on 2.7", E, {**base_e, "image": pic(), "negative_prompt": "ugly"}, "negative_prompt", "no negative"),
    ("10 images on 2.7", E, {**base_e, "image": torch.rand((10, 300, 300, 3))}, "image", "at most 9"),
    ("4 images on 2.5", E, {**base_e, "model": "wan2.5-i2i-preview", "image": torch.rand((4, 400, 400, 3))}, "image",
     "at most 3"),
    ("no image", E, {**base_e}, "image", "at least 1"),
    ("empty batch", E, {**base_e, "image": torch.zeros((0, 300, 300, 3))}, "image", "empty batch"),
    ("NaN pixels", E, {**base_e, "image": torch.full((1, 300, 300, 3), float("nan"))}, "image", "NaN"),
    ("aspect 9:1 on 2.7", E, {**base_e, "image": pic(100, 900)}, "image", "1:8 to 8:1"),
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
    ("size aspect 9:1", T, {**base_t, "size": "3000*333"}, "size", "1:8 to 8:1"),
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
    ("interleave max_images 6", I, {"model": "wan2.6-image", "prompt": "x", "seed": 0, "max_images": 6}, "max_images",
     "1 to 5"),
    ("wan2.5 over sync", E, {**base_e, "model": "wan2.5-i2i-preview", "image": pic(400, 400), "transport": "sync"},
     "transport", "async"),
    ("interleave over sync", I, {"model": "wan2.6-image", "prompt": "x", "seed": 0, "transport": "sync"}, "transport",
     "stream"),
    ("unknown input format", E, {**base_e, "image": pic(), "input_format": "gif"}, "input_format", "auto, png, jpeg"),
    # Transports the vendor does not document for the model are refused, naming what streams.
    ("stream on wan2.7 editing", E, {**base_e, "image": pic(), "transport": "stream"}, "transport",
     "wan2.6-image interleaved"),
    ("stream on wan2.7 text-to-image", T, {**base_t, "transport": "stream"}, "transport", "documented only for"),
    ("stream on wan2.7 sequential", S, {**base_t, "transport": "stream"}, "transport", "documented only for"),
    ("stream on wan2.6 editing", E, {**base_e, "model": "wan2.6-image", "image": pic(), "transport": "stream"},
     "transport", "works over async, sync"),
    ("stream on wan2.7 boxes", B, {**base_e, "image": pic(), "transport": "stream"}, "transport", "documented only"),
    ("10 images on 2.6 (more than any page allows)", E, {**base_e, "model": "wan2.6-image",
                                                         "image": torch.rand((10, 300, 300, 3))}, "image", "at most 9"),
]

# Limits no vendor page states (api/request/models.py reference_only): the nodes no longer refuse them; the request
# goes out, the service refuses it, and its own error reaches the user whole. Nothing is billed.
LEFT_TO_THE_SERVICE = [
    # (case, node, inputs, a phrase of the service's message)
    ("prompt over 2000 (2.6)", E, {**base_e, "model": "wan2.6-image", "prompt": "p" * 2001, "image": pic()},
     "prompt is too long"),
    ("negative prompt over 500", E, {**base_e, "model": "wan2.6-image", "image": pic(), "negative_prompt": "n" * 501},
     "negative_prompt is too long"),
    ("5 images on 2.6", E, {**base_e, "model": "wan2.6-image", "image": torch.rand((5, 300, 300, 3))}, "[1, 4]"),
    ("aspect 5:1 on 2.5", E, {**base_e, "model": "wan2.5-i2i-preview", "image": pic(400, 2000)}, "aspect ratio"),
    ("side too short to fit (2.6)", E, {**base_e, "model": "wan2.6-image", "image": pic(20, 2000)},
     "resolution is invalid"),
    ("area above 1280*1280 (interleave)", I, {"model": "wan2.6-image", "prompt": "x", "seed": 0, "size": "1300*1300"},
     "out of range"),
    ("preset on wan2.5", E, {**base_e, "model": "wan2.5-i2i-preview", "image": pic(400, 400), "size": "1K"},
     "is invalid"),
    ("interleave with 2 images", I, {"model": "wan2.6-image", "prompt": "x", "seed": 0,
                                     "image": torch.rand((2, 300, 300, 3))}, "[0, 1]"),
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


@pytest.mark.parametrize("case,node,inputs,phrase", LEFT_TO_THE_SERVICE, ids=[c[0] for c in LEFT_TO_THE_SERVICE])
def test_unverified_limits_reach_the_service_whose_error_is_shown(emulator, case, node, inputs, phrase):
    with pytest.raises(api.errors.InvalidParameterError) as info:
        _call(node, inputs)
    err = info.value
    assert err.code == "InvalidParameter" and err.status == 400 and phrase in str(err), f"{case}: {err}"
    assert "Nothing was billed" in str(err) and err.request_id
    assert len(emulator.backend.log) == 1, f"{case}: sent {len(emulator.backend.log)} times"
    assert emulator.backend.stats()["creations"] == 0


def test_virginia_is_refused_for_models_its_page_lacks(emulator, monkeypatch):
    """region = virginia with wan2.7 (or wan2.5) and no DASHSCOPE_HTTP_BASE_URL: refused before anything is
    sent, naming the regions the model has. Virginia's address is pointed at the emulator, so a request that
    slipped through would show in its log; wan2.6 (whose page lists Virginia) does reach it."""
    monkeypatch.delenv("DASHSCOPE_HTTP_BASE_URL")
    monkeypatch.setitem(api.config.REGIONS, "virginia", emulator.base_url)
    for node, inputs in ((T, {**base_t, "region": "virginia"}),
                         (E, {**base_e, "image": pic(), "region": "virginia", "transport": "sync"}),
                         (E, {**base_e, "model": "wan2.5-i2i-preview", "image": pic(400, 400), "region": "virginia"})):
        with pytest.raises(api.WanInputError) as info:
            _call(node, inputs)
        err = info.value
        assert err.param == "region" and "Beijing and Singapore" in str(err) and "Nothing was sent" in str(err)
        assert "DASHSCOPE_HTTP_BASE_URL" in str(err)
    assert emulator.backend.log == []
    monkeypatch.setenv("DASHSCOPE_REGION", "virginia")  # the default region says the same
    with pytest.raises(api.WanInputError, match="region"):
        _call(T, {**base_t, "region": "default"})
    assert emulator.backend.log == []
    images, _, _ = _call(E, {**base_e, "model": "wan2.6-image", "image": pic(), "region": "virginia"}).args
    assert images.shape[0] == 1 and len([e for e in emulator.backend.log if e.get("billable")]) == 1


def test_virginia_with_an_endpoint_override_is_the_endpoints_call(emulator):
    """DASHSCOPE_HTTP_BASE_URL is set (the fixture): the user's endpoint decides, so nothing is refused."""
    images, _, _ = _call(T, {**base_t, "region": "virginia"}).args
    assert images.shape[0] == 1 and len(emulator.backend.log) >= 1


# Not refused by validate_inputs, and why: what only the pictures or masks decide is checked when the node
# runs; the seed's range and the input_format options are ComfyUI's own queue-time checks (min/max, combo).
# Transports and regions per model are (nodes/validation.py, transport_and_region).
NOT_REFUSED_BY_VALIDATE_INPUTS = {
    "10 images on 2.7", "4 images on 2.5", "no image", "empty batch", "NaN pixels", "aspect 9:1 on 2.7",
    "a box outside its picture", "box list longer than the pictures", "mask without its picture",
    "seed out of range", "unknown input format", "10 images on 2.6 (more than any page allows)",
}
# At queue time the node's input is named, not the vendor's parameter it becomes.
QUEUE_NAMES = {"bbox_list": "boxes"}


@pytest.mark.parametrize("case,node,inputs,param,limit", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_widget_mistakes_are_refused_when_queued(case, node, inputs, param, limit):
    widgets = {k: v for k, v in inputs.items() if k in inspect.signature(node.validate_inputs).parameters}
    verdict = node.validate_inputs(**widgets)
    if case in NOT_REFUSED_BY_VALIDATE_INPUTS:
        assert verdict is True, f"{case}: refused at queue time ({verdict}), though the widgets cannot decide it"
        return
    assert isinstance(verdict, str), f"{case}: not refused when queued"
    assert verdict.startswith(QUEUE_NAMES.get(param, param) + ": "), f"{case}: {verdict}"
    assert limit in verdict, f"{case}: {verdict}"


def test_linked_inputs_are_left_to_the_run():
    """ComfyUI passes None for an input linked to another node (nothing has run when a graph is queued)."""
    assert E.validate_inputs(model="wan2.7-image", prompt=None, n=None, size=None, negative_prompt=None,
                             color_palette=None, region=None, transport=None) is True
    assert B.validate_inputs(model="wan2.7-image", prompt="x", boxes=None, size="1K") is True
    assert T.validate_inputs(model=None, prompt="x", size="4K") is True
    # ... while the widgets next to them are still checked.
    assert T.validate_inputs(model="wan2.7-image", prompt=None, size="4K").startswith("size: ")


def test_options_comfyui_no_longer_checks_are_checked_here():
    """ComfyUI skips its own option check for an input validate_inputs takes (model, region, transport)."""
    assert T.validate_inputs(model="wan2.6-image", prompt="x").startswith("model: ")
    assert E.validate_inputs(model="wan2.7-image", prompt="x", transport="pigeon").startswith("transport: ")
    assert I.validate_inputs(model="wan2.6-image", prompt="x", region="mars").startswith("region: ")


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


def test_transport_and_region_are_refused_when_queued(monkeypatch):
    """The same rules at queue time (validate_inputs): a stream where the vendor documents none, Virginia for a
    model its page lacks unless DASHSCOPE_HTTP_BASE_URL names the endpoint."""
    verdict = T.validate_inputs(model="wan2.7-image", prompt="x", transport="stream")
    assert verdict.startswith("transport: ") and "wan2.6-image interleaved" in verdict
    assert I.validate_inputs(model="wan2.6-image", prompt="x", transport="stream") is True
    monkeypatch.delenv("DASHSCOPE_HTTP_BASE_URL", raising=False)
    monkeypatch.delenv("DASHSCOPE_REGION", raising=False)
    verdict = E.validate_inputs(model="wan2.5-i2i-preview", prompt="x", region="virginia")
    assert verdict.startswith("region: ") and "Beijing and Singapore" in verdict
    assert I.validate_inputs(model="wan2.6-image", prompt="x", region="virginia") is True
    monkeypatch.setenv("DASHSCOPE_REGION", "virginia")
    assert T.validate_inputs(model="wan2.7-image", prompt="x", region="default").startswith("region: ")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "http://127.0.0.1:9/api/v1")
    assert T.validate_inputs(model="wan2.7-image", prompt="x", region="virginia") is True
