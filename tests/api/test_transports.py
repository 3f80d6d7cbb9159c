"""Every model x mode x transport against the emulator: the right endpoint and headers, every result
fetched and decoded, text kept whole, and the pictures exactly the ones the service hosted."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from api import MODELS, build_request, encode_image, describe
from apitest import photo

# The transports each vendor page documents (api/request/models.py): streaming only for wan2.6 interleave.
COMBOS = [
    ("wan2.7-image-pro", "t2i", 0, ["async", "sync"]),
    ("wan2.7-image-pro", "edit", 2, ["async", "sync"]),
    ("wan2.7-image-pro", "sequential", 1, ["async", "sync"]),
    ("wan2.7-image", "t2i", 0, ["async", "sync"]),
    ("wan2.7-image", "edit", 3, ["async", "sync"]),
    ("wan2.7-image", "sequential", 0, ["async", "sync"]),
    ("wan2.6-image", "edit", 2, ["async", "sync"]),
    ("wan2.6-image", "interleave", 1, ["stream", "async"]),
    ("wan2.6-image", "interleave", 0, ["stream", "async"]),
    ("wan2.5-i2i-preview", "edit", 2, ["async"]),
]

ENDPOINT_OF = {
    "async": "async", "sync": "sync", "stream": "stream",
}


def _request(model, mode, images):
    spec = MODELS[model]
    pictures = [encode_image(photo(300 + 50 * i, 400, seed=i), spec.image) for i in range(images)]
    params = {"seed": 7}
    if mode == "interleave":
        params.update(max_images=3, size="1024*1024")
    elif mode == "sequential":
        params.update(n=5, size="1K")
    else:
        params.update(n=2, size="1024*1024" if model.startswith("wan2.5") else "1K")
        if model.startswith("wan2.5"):
            params["size"] = "1024*1024"
    return build_request(model, "a lighthouse at dusk, three scenes", pictures, mode=mode, **params)


@pytest.mark.parametrize("model,mode,images,transports", COMBOS, ids=[f"{c[0]}-{c[1]}-{c[2]}img" for c in COMBOS])
def test_every_mode_over_every_transport(client, emulator, model, mode, images, transports):
    req = _request(model, mode, images)
    seen = {}
    for transport in transports:
        before = len(emulator.backend.log)
        result = client.generate(req, transport=transport)
        created = [e for e in emulator.backend.log[before:] if e.get("billable")]
        assert len(created) == 1, f"{transport}: {len(created)} billable creations"
        kind = "synthesis" if model.startswith("wan2.5") else ENDPOINT_OF[transport]
        assert created[0]["kind"] == kind
        expected = {"interleave": 3, "sequential": 5}.get(mode, 2)
        assert len(result.images) == expected, f"{transport}: {len(result.images)} images"
        # Every picture is byte-for-byte the file the result host serves, and decoded exactly.
        for image in result.images:
            served = requests.get(image.url, timeout=10).content
            assert served == image.data
            with Image.open(io.BytesIO(served)) as png:
                assert np.array_equal(np.asarray(png.convert("RGB")), image.pixels)
        assert describe(result)["images_billed"] == expected
        if mode == "interleave":
            assert result.text.count("Step ") == 3, result.text
            types = [item["type"] for item in result.content]
            assert types == ["text", "image"] * 3
        seen[transport] = [img.pixels for img in result.images]
    # The same request gives the same pictures whichever way it travelled.
    first = next(iter(seen.values()))
    for pictures in seen.values():
        assert all(np.array_equal(a, b) for a, b in zip(first, pictures))


def test_headers_and_bodies_are_the_vendors(client, emulator):
    req = _request("wan2.6-image", "interleave", 0)
    client.generate(req, transport="stream")
    entry = [e for e in emulator.backend.log if e.get("billable")][-1]
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    assert headers["x-dashscope-sse"] == "enable"
    assert headers["accept"] == "text/event-stream"
    assert entry["body"]["parameters"]["stream"] is True
    assert entry["body"]["parameters"]["enable_interleave"] is True
    assert entry["body"]["parameters"]["n"] == 1

    req = _request("wan2.7-image", "edit", 2)
    client.generate(req, transport="async")
    entry = [e for e in emulator.backend.log if e.get("billable")][-1]
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    assert headers["x-dashscope-async"] == "enable"
    content = entry["body"]["input"]["messages"][0]["content"]
    assert [list(item) for item in content] == [["image"], ["image"], ["text"]]


def test_input_pictures_reach_the_service_in_order_and_pixel_exact(client, emulator):
    spec = MODELS["wan2.7-image"]
    a = photo(260, 500, seed=1)
    b = photo(700, 330, seed=2)
    req = build_request("wan2.7-image", "fuse", [encode_image(a, spec.image, fmt="png"),
                                                 encode_image(b, spec.image, fmt="png")], n=1, size="1K")
    client.generate(req)
    entry = [e for e in emulator.backend.log if e.get("billable")][-1]
    got = [np.asarray(Image.open(io.BytesIO(i.data)).convert("RGB")) for i in entry["images"]]
    expect = [np.floor(x * 255 + 0.5).astype(np.uint8) for x in (a, b)]
    assert [g.shape for g in got] == [(260, 500, 3), (700, 330, 3)]
    assert all(np.array_equal(g, e) for g, e in zip(got, expect))


def test_sequential_twelve_returns_all_twelve(client):
    req = build_request("wan2.7-image", "the four seasons of a street", [], mode="sequential", n=12, size="1K")
    result = client.generate(req)
    assert len(result.images) == 12
    assert len({img.data for img in result.images}) == 12, "results repeat"


def test_output_keeps_the_aspect_of_the_last_image(client):
    spec = MODELS["wan2.7-image"]
    req = build_request("wan2.7-image", "x", [encode_image(photo(300, 300), spec.image),
                                              encode_image(photo(400, 800), spec.image)], n=1, size="1K")
    result = client.generate(req)
    img = result.images[0]
    assert abs(img.width / img.height - 2.0) < 0.05
    assert abs(img.width * img.height - 1024 * 1024) / (1024 * 1024) < 0.05


def test_the_default_transport_per_mode(client):
    assert client.choose_transport(_request("wan2.7-image", "edit", 1), "auto") == "async"
    assert client.choose_transport(_request("wan2.6-image", "interleave", 0), "auto") == "stream"
    assert client.choose_transport(_request("wan2.5-i2i-preview", "edit", 1), "auto") == "async"
    from api import WanInputError

    with pytest.raises(WanInputError, match="transport"):
        client.choose_transport(_request("wan2.5-i2i-preview", "edit", 1), "sync")
    with pytest.raises(WanInputError, match="transport"):
        client.choose_transport(_request("wan2.6-image", "interleave", 0), "sync")
