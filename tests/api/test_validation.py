"""Requests the service would refuse are refused by the client first, naming the input and the limit,
and the client's table agrees with the emulator's independent rules at every boundary."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import requests

from api import MODELS, WanInputError, build_request, edit, encode_image, interleave, sequential, text_to_image
from api.request.build import InputImage
from apitest import TEST_KEY, make_client


def img(model: str = "wan2.7-image", h: int = 300, w: int = 300) -> InputImage:
    rng = np.random.default_rng(h * 7 + w)
    return encode_image(rng.random((h, w, 3), dtype=np.float32), MODELS[model].image, fmt="png")


PALETTE = [{"hex": "#C2D1E6", "ratio": "50.00%"}, {"hex": "#CDD8E9", "ratio": "30.00%"},
           {"hex": "#B5C8DB", "ratio": "20.00%"}]

# (case id, builder call, the input named in the error, a phrase of the limit)
BAD = [
    ("unknown model", lambda: edit("wan9-image", "x", [img()]), "model", "unknown model"),
    ("empty prompt", lambda: edit("wan2.7-image", "   ", [img()]), "prompt", "empty"),
    ("prompt too long 2.7", lambda: text_to_image("wan2.7-image", "x" * 5001), "prompt", "5000"),
    ("negative prompt on 2.7", lambda: edit("wan2.7-image", "x", [img()], negative_prompt="blurry"),
     "negative_prompt", "no negative prompt"),
    ("prompt_extend on 2.7", lambda: edit("wan2.7-image", "x", [img()], prompt_extend=True), "prompt_extend",
     "no prompt rewriting"),
    ("10 images on 2.7", lambda: edit("wan2.7-image", "x", [img()] * 10), "image", "at most 9"),
    ("4 images on 2.5", lambda: edit("wan2.5-i2i-preview", "x", [img("wan2.5-i2i-preview", 400, 400)] * 4), "image",
     "at most 3"),
    ("no image on 2.6 edit", lambda: edit("wan2.6-image", "x", []), "image", "at least 1"),
    ("no image on 2.5", lambda: build_request("wan2.5-i2i-preview", "x", []), "image", "at least 1"),
    ("image in text-to-image", lambda: build_request("wan2.7-image", "x", [img()], mode="t2i"), "image",
     "takes no input image"),
    ("n=2 with interleave", lambda: interleave("wan2.6-image", "x", n=2), "n", "n = 1"),
    ("max_images 6", lambda: interleave("wan2.6-image", "x", max_images=6), "max_images", "1 to 5"),
    ("n=0", lambda: edit("wan2.7-image", "x", [img()], n=0), "n", "1 to 4"),
    ("n=5", lambda: edit("wan2.7-image", "x", [img()], n=5), "n", "1 to 4"),
    ("sequential n=13", lambda: sequential("wan2.7-image", "x", n=13), "n", "1 to 12"),
    ("seed negative", lambda: edit("wan2.7-image", "x", [img()], seed=-1), "seed", "0 to 2147483647"),
    ("seed too large", lambda: edit("wan2.7-image", "x", [img()], seed=2**31), "seed", "0 to 2147483647"),
    ("size garbage", lambda: edit("wan2.7-image", "x", [img()], size="big"), "size", "neither a preset"),
    ("size 3K", lambda: edit("wan2.7-image", "x", [img()], size="3K"), "size", "not a size"),
    ("4K on wan2.7-image", lambda: text_to_image("wan2.7-image", "x", size="4K"), "size", "wan2.7-image-pro"),
    ("4K on pro edit", lambda: edit("wan2.7-image-pro", "x", [img()], size="4K"), "size", "text-to-image"),
    ("4K on pro sequential", lambda: sequential("wan2.7-image-pro", "x", size="4K"), "size", "sequential"),
    ("area too small", lambda: text_to_image("wan2.7-image", "x", size="700*700"), "size", "768*768"),
    ("area too large 2.7 edit", lambda: edit("wan2.7-image", "x", [img()], size="2100*2100"), "size", "2048*2048"),
    ("aspect 9:1", lambda: text_to_image("wan2.7-image", "x", size="3000*333"), "size", "1:8 to 8:1"),
    ("thinking mode with images", lambda: edit("wan2.7-image", "x", [img()], thinking_mode=True), "thinking_mode",
     "without input images"),
    ("thinking mode with sequential", lambda: sequential("wan2.7-image", "x", thinking_mode=True), "thinking_mode",
     "sequential"),
    ("sequential with palette", lambda: sequential("wan2.7-image", "x", color_palette=PALETTE), "color_palette",
     "sequential output off"),
    ("palette on 2.6", lambda: edit("wan2.6-image", "x", [img("wan2.6-image")], color_palette=PALETTE),
     "color_palette", "wan2.7 only"),
    ("palette of 2", lambda: text_to_image("wan2.7-image", "x", color_palette=PALETTE[:2]), "color_palette",
     "3 to 10"),
    ("palette of 11", lambda: text_to_image("wan2.7-image", "x", color_palette=[{"hex": "#000000", "ratio": "9.09%"}] * 10
                                            + [{"hex": "#000000", "ratio": "9.10%"}]), "color_palette", "3 to 10"),
    ("palette sum 99.99", lambda: text_to_image("wan2.7-image", "x", color_palette=PALETTE[:2] + [
        {"hex": "#B5C8DB", "ratio": "19.99%"}]), "color_palette", "100.00%"),
    ("palette one decimal", lambda: text_to_image("wan2.7-image", "x", color_palette=PALETTE[:2] + [
        {"hex": "#B5C8DB", "ratio": "20.0%"}]), "color_palette", "two decimals"),
    ("palette malformed hex", lambda: text_to_image("wan2.7-image", "x", color_palette=[
        {"hex": "#GGGGGG", "ratio": "50.00%"}] + PALETTE[1:]), "color_palette", "#RRGGBB"),
    ("3 boxes on an image", lambda: edit("wan2.7-image", "x", [img()], bbox_list=[[[0, 0, 10, 10]] * 3]),
     "bbox_list", "at most 2"),
    ("box outside its image", lambda: edit("wan2.7-image", "x", [img()], bbox_list=[[[0, 0, 301, 10]]]),
     "bbox_list", "outside the image"),
    ("box inverted", lambda: edit("wan2.7-image", "x", [img()], bbox_list=[[[50, 50, 10, 10]]]), "bbox_list",
     "x1 < x2"),
    ("box list length", lambda: edit("wan2.7-image", "x", [img(), img()], bbox_list=[[[0, 0, 10, 10]]]),
     "bbox_list", "exactly one per image"),
    ("boxes on 2.6", lambda: edit("wan2.6-image", "x", [img("wan2.6-image")], bbox_list=[[[0, 0, 10, 10]]]),
     "bbox_list", "no bounding-box"),
    ("boxes without images", lambda: text_to_image("wan2.7-image", "x", bbox_list=[]), "bbox_list",
     "need input images"),
    ("not an image value", lambda: edit("wan2.7-image", "x", ["C:/pictures/cat.png"]), "image 1", "data:image"),
    # Unverified limits (reference_only) still refused because breaking them surely fails or costs money:
    ("10 images on 2.6 (more than any page allows)", lambda: edit("wan2.6-image", "x", [img("wan2.6-image")] * 10),
     "image", "at most 9"),
    ("n=5 on 2.6 (billed pictures)", lambda: edit("wan2.6-image", "x", [img("wan2.6-image")], n=5), "n", "1 to 4"),
    ("n=5 on 2.5 (billed pictures)", lambda: edit("wan2.5-i2i-preview", "x", [img("wan2.5-i2i-preview", 400, 400)],
                                                  n=5), "n", "1 to 4"),
    ("prompt_extend on 2.6 interleave (a parameter the mode lacks)",
     lambda: interleave("wan2.6-image", "x", prompt_extend=True), "prompt_extend", "no prompt rewriting"),
]


@pytest.mark.parametrize("case,call,param,limit", BAD, ids=[b[0] for b in BAD])
def test_bad_request_is_refused_before_sending(case, call, param, limit):
    with pytest.raises(WanInputError) as info:
        call()
    err = info.value
    assert err.param == param, f"{case}: named {err.param!r}, expected {param!r}: {err}"
    assert limit in str(err), f"{case}: the message does not state the limit {limit!r}: {err}"
    assert "Nothing was sent" in str(err)


def test_catalogue_reaches_the_emulator_never(emulator):
    """The same catalogue through a client: every case fails before any request is made."""
    client = make_client(emulator)
    for case, call, _, _ in BAD:
        with pytest.raises(WanInputError):
            client.generate(call())
    assert emulator.backend.log == [], "a refused request reached the service"
    assert client  # the client was usable throughout


# ---- the client's table against the emulator's rules, at the boundaries ---------------------------------

def server_verdict(emulator, body: dict, path: str = "services/aigc/image-generation/generation") -> int:
    r = requests.post(f"{emulator.base_url}/{path}", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {TEST_KEY}", "X-DashScope-Async": "enable"})
    return r.status_code


BOUNDARIES = [
    # (model, mode builder, parameter, values to try)
    ("wan2.7-image", "t2i", "size", ["767*768", "768*768", "2048*2048", "2048*2049", "2048*256", "2049*256",
                                      "1K", "2K", "4K"]),
    ("wan2.7-image-pro", "t2i", "size", ["4096*4096", "4096*4097", "4K", "8000*1000", "8001*1000"]),
    ("wan2.7-image-pro", "edit", "size", ["2048*2048", "2049*2048", "4K", "2K"]),
    ("wan2.7-image", "edit", "n", [0, 1, 4, 5]),
    ("wan2.7-image", "sequential", "n", [0, 1, 12, 13]),
    ("wan2.6-image", "edit", "size", ["1K", "2K", "767*768", "2048*2048", "2048*513", "2048*512", "2049*512"]),
    ("wan2.6-image", "interleave", "size", ["1280*1280", "1281*1280", "1280*320", "1281*320", "768*768"]),
    ("wan2.6-image", "interleave", "max_images", [0, 1, 5, 6]),
    ("wan2.5-i2i-preview", "edit", "size", ["1280*1280", "1281*1280", "1280*320", "767*768", "1K"]),
    ("wan2.5-i2i-preview", "edit", "n", [0, 1, 4, 5]),
    ("wan2.7-image", "edit", "seed", [0, 2147483647, 2147483648]),
]


def _base(model: str, mode: str):
    images = {"edit": [img(model, 400, 400)], "t2i": [], "sequential": [], "interleave": []}[mode]
    return build_request(model, "a red bicycle", images, mode=mode, n=1)


def _judged_by_service(model: str, mode: str, param: str) -> bool:
    """A size limit no vendor page states (reference_only): the client sends it and the service decides."""
    m = MODELS[model].mode(mode)
    return param == "size" and not (m.certain("area") and m.certain("max_aspect") and m.certain("presets"))


@pytest.mark.parametrize("model,mode,param,values", BOUNDARIES,
                         ids=[f"{b[0]}-{b[1]}-{b[2]}" for b in BOUNDARIES])
def test_client_and_emulator_agree_on_boundaries(emulator, model, mode, param, values):
    service_decides = _judged_by_service(model, mode, param)
    refused_by_service = 0
    for value in values:
        base = _base(model, mode)
        try:
            build_request(model, "a red bicycle", [img(model, 400, 400)] if mode == "edit" else [], mode=mode,
                          **({"n": 1} if param != "n" else {}), **{param: value})
            client_ok = True
        except WanInputError:
            client_ok = False
        body = copy.deepcopy(base.body)
        body["parameters"][param] = value
        path = ("services/aigc/image2image/image-synthesis" if model.startswith("wan2.5")
                else "services/aigc/image-generation/generation")
        status = server_verdict(emulator, body, path)
        assert status in (200, 400), status
        if service_decides:
            # Unverified: the client lets every well-formed value through and the service judges.
            assert client_ok, f"{model} {mode} {param}={value!r}: the client refused an unverified limit"
            refused_by_service += status == 400
            continue
        assert client_ok == (status == 200), (
            f"{model} {mode} {param}={value!r}: client {'accepts' if client_ok else 'refuses'}, "
            f"emulator answered {status}")
    if service_decides:
        assert refused_by_service, "the boundary values no longer reach past the emulator's (reference) limit"


# Refusals deliberately dropped (the limit is reference_only): the request goes out, the service refuses it,
# and its own error reaches the user whole: family, code, HTTP status and the service's message. Not billed.
def _big_flat_png(w: int, h: int) -> InputImage:
    import base64
    import io as _io

    from PIL import Image

    buf = _io.BytesIO()
    Image.new("RGB", (w, h), (90, 120, 150)).save(buf, "PNG")
    data = buf.getvalue()
    return InputImage("data:image/png;base64," + base64.b64encode(data).decode(), w, h, len(data))


def _noise_png(side: int) -> InputImage:
    import base64
    import io as _io

    from PIL import Image

    rng = np.random.default_rng(3)
    buf = _io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB").save(buf, "PNG", compress_level=1)
    data = buf.getvalue()
    return InputImage("data:image/png;base64," + base64.b64encode(data).decode(), side, side, len(data))


SERVICE_JUDGES = [
    # (case, request builder, a phrase of the service's own message)
    ("prompt over 2000 on 2.6", lambda: edit("wan2.6-image", "x" * 2001, [img("wan2.6-image")]), "prompt is too long"),
    ("prompt over 2000 on 2.5", lambda: edit("wan2.5-i2i-preview", "x" * 2001, [img("wan2.5-i2i-preview", 400, 400)]),
     "prompt is too long"),
    ("negative prompt over 500 on 2.6", lambda: edit("wan2.6-image", "x", [img("wan2.6-image")],
                                                     negative_prompt="n" * 501), "negative_prompt is too long"),
    ("5 images on 2.6", lambda: edit("wan2.6-image", "x", [img("wan2.6-image")] * 5), "[1, 4]"),
    ("interleave with 2 images", lambda: interleave("wan2.6-image", "x", [img("wan2.6-image")] * 2), "[0, 1]"),
    ("area over 1280*1280 on interleave", lambda: interleave("wan2.6-image", "x", size="1300*1300"), "out of range"),
    ("preset on interleave", lambda: interleave("wan2.6-image", "x", size="1K"), "is invalid"),
    ("preset on 2.5", lambda: edit("wan2.5-i2i-preview", "x", [img("wan2.5-i2i-preview", 400, 400)], size="1K"),
     "is invalid"),
    ("aspect 5:1 on 2.6", lambda: edit("wan2.6-image", "x", [img("wan2.6-image")], size="2500*500"), "aspect ratio"),
    ("picture of 6000 px on 2.5", lambda: edit("wan2.5-i2i-preview", "x", [_big_flat_png(6000, 4000)]),
     "resolution is invalid"),
    ("picture over 10 MB on 2.6", lambda: edit("wan2.6-image", "x", [_noise_png(1900)]), "10MB"),
]


@pytest.mark.parametrize("case,call,phrase", SERVICE_JUDGES, ids=[c[0] for c in SERVICE_JUDGES])
def test_unverified_limits_are_left_to_the_service_whose_error_is_shown(emulator, case, call, phrase):
    from api.errors import InvalidParameterError

    req = call()  # the client no longer refuses it
    client = make_client(emulator)
    with pytest.raises(InvalidParameterError) as info:
        client.generate(req)
    err = info.value
    assert err.code == "InvalidParameter" and err.status == 400, err
    assert phrase in str(err), f"{case}: the service's own message is not shown: {err}"
    assert err.request_id and "Nothing was billed" in str(err), err
    assert emulator.backend.stats()["creations"] == 0 and emulator.backend.images_billed == 0


def test_unverified_limits_are_marked_in_the_table():
    """Every wan2.6 and wan2.5 number only the reference gives is named in a reference_only field; wan2.7's
    (all on its page) are not; and wan2.5's three pictures are the page's (seed 003 line 1)."""
    for name in ("wan2.7-image", "wan2.7-image-pro"):
        spec = MODELS[name]
        assert not spec.reference_only and not spec.image.reference_only
        assert all(not m.reference_only for m in spec.modes.values())
    for name in ("wan2.6-image", "wan2.5-i2i-preview"):
        spec = MODELS[name]
        assert {"prompt_max", "negative_prompt_max"} <= spec.reference_only
        assert {"min_side", "max_side", "max_bytes", "max_aspect"} <= spec.image.reference_only
        for m in spec.modes.values():
            assert {"n", "area", "max_aspect", "presets"} <= m.reference_only
    assert MODELS["wan2.5-i2i-preview"].modes["edit"].certain("images_max")
    assert not MODELS["wan2.6-image"].modes["edit"].certain("images_max")
    # 1K is about 1024^2 pixels on wan2.6 too (its page's example: 1K -> 1376*768), not 1280^2.
    assert MODELS["wan2.6-image"].modes["edit"].presets["1K"] == 1024


def test_palette_and_boxes_agree(emulator):
    ok = text_to_image("wan2.7-image", "x", color_palette=PALETTE, n=1)
    assert server_verdict(emulator, ok.body) == 200
    body = copy.deepcopy(ok.body)
    body["parameters"]["color_palette"][2]["ratio"] = "19.99%"
    assert server_verdict(emulator, body) == 400
    boxed = edit("wan2.7-image", "x", [img(), img()], bbox_list=[[], [[10, 10, 300, 300]]], n=1)
    assert boxed.body["parameters"]["bbox_list"] == [[], [[10, 10, 300, 300]]]
    assert server_verdict(emulator, boxed.body) == 200
    body = copy.deepcopy(boxed.body)
    body["parameters"]["bbox_list"] = [[], [[10, 10, 301, 300]]]
    assert server_verdict(emulator, body) == 400


def test_n_is_always_sent_and_params_a_model_lacks_are_not():
    req = edit("wan2.7-image", "x", [img()])
    assert req.body["parameters"]["n"] == 1, "n left to the service would default to 4 billed images"
    assert "negative_prompt" not in json.dumps(req.body)
    req = edit("wan2.6-image", "x", [img("wan2.6-image")], negative_prompt="blurry", prompt_extend=False, n=2)
    assert req.body["parameters"]["negative_prompt"] == "blurry"
    assert req.body["parameters"]["prompt_extend"] is False
    req = edit("wan2.5-i2i-preview", "x", [img("wan2.5-i2i-preview", 400, 400)], negative_prompt="blurry")
    assert req.body["input"]["negative_prompt"] == "blurry" and "messages" not in req.body["input"]


def test_boxes_follow_a_resized_picture():
    """A 200x100 picture is scaled up to 480x240 for wan2.7's 240-px minimum: its boxes scale with it."""
    small = encode_image(np.zeros((100, 200, 3), np.float32), MODELS["wan2.7-image"].image)
    assert (small.width, small.height) == (480, 240)
    req = edit("wan2.7-image", "x", [small], bbox_list=[[[10, 20, 110, 70]]])
    assert req.body["parameters"]["bbox_list"] == [[[24, 48, 264, 168]]]


SETTINGS_ONLY = [
    # (model, mode, prompt, settings): refused by check_settings (queue time) and build_request alike
    ("wan2.7-image", "edit", "x", {"size": "99999*2"}),
    ("wan2.7-image", "t2i", "x", {"size": "4K"}),
    ("wan2.7-image", "t2i", "x", {"color_palette": PALETTE[:2] + [{"hex": "#B5C8DB", "ratio": "10.00%"}]}),
    ("wan2.7-image", "edit", "x", {"negative_prompt": "blurry"}),
    ("wan2.7-image", "sequential", "x", {"n": 13}),
    ("wan2.6-image", "interleave", "x", {"max_images": 6}),
    ("wan2.6-image", "edit", "x", {"color_palette": PALETTE}),
    ("wan2.7-image", "edit", "", {}),
    ("wan2.7-image", "edit", "x", {"bbox_list": [[[0, 0, 5, 5], [5, 5, 9, 9], [1, 1, 2, 2]]]}),
    ("wan2.7-image", "edit", "x", {"bbox_list": [[[9, 0, 5, 5]]]}),
    ("wan2.7-image", "edit", "x", {"bbox_list": [[[-1, 0, 5, 5]]]}),
]


@pytest.mark.parametrize("model,mode,prompt,settings", SETTINGS_ONLY)
def test_settings_are_checked_by_one_function_before_and_when_building(model, mode, prompt, settings):
    from api.request.build import Params, check_settings

    with pytest.raises(WanInputError) as early:
        check_settings(model, mode, prompt, Params(**settings))
    images = [img(model)] * (0 if mode in ("t2i", "sequential", "interleave") else len(settings.get("bbox_list", [1])))
    with pytest.raises(WanInputError) as late:
        build_request(model, prompt, images, mode=mode, **settings)
    assert (early.value.param, early.value.limit) == (late.value.param, late.value.limit)


def test_settings_not_known_yet_are_left_to_the_builder():
    from api.request.build import Params, check_settings

    check_settings("wan2.7-image", "edit", None, Params())  # a linked prompt, every setting at its default
    check_settings("wan2.7-image", "edit", "x", Params(bbox_list=[[], [[0, 0, 10, 10]]]))  # pictures unknown
