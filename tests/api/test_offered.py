"""Transports and regions per model, from the vendor pages: the pure rules everything calls
(`choose_transport`, `check_region`), the client calling them before anything is sent, and the README's
table agreeing with the model table."""

from __future__ import annotations

import re

import pytest

from api import (
    MODELS, WanClient, WanInputError, check_region, choose_transport, interleave, streaming_offers, text_to_image,
)
from api.config import Endpoint
from apitest import FAST_RETRY, ROOT, TEST_KEY

MODES = [(name, mode) for name, spec in MODELS.items() for mode in spec.modes]


def test_only_wan26_interleave_streams():
    assert streaming_offers() == [("wan2.6-image", "interleave")]


@pytest.mark.parametrize("model,mode", MODES, ids=[f"{m}-{md}" for m, md in MODES])
def test_auto_never_picks_an_undocumented_stream(model, mode):
    chosen = choose_transport(model, mode, "auto")
    assert chosen == MODELS[model].modes[mode].transports[0]
    assert chosen != "stream" or (model, mode) == ("wan2.6-image", "interleave")


@pytest.mark.parametrize("model,mode", [m for m in MODES if m != ("wan2.6-image", "interleave")])
def test_stream_is_refused_where_undocumented_naming_what_streams(model, mode):
    with pytest.raises(WanInputError) as info:
        choose_transport(model, mode, "stream")
    err = info.value
    assert err.param == "transport"
    assert "documented only for wan2.6-image interleaved text-and-image output" in str(err)
    assert "Nothing was sent" in str(err)


def test_other_transports():
    assert choose_transport("wan2.6-image", "interleave", "stream") == "stream"
    assert choose_transport("wan2.6-image", "interleave", "async") == "async"
    assert choose_transport("wan2.7-image", "t2i", "sync") == "sync"
    with pytest.raises(WanInputError, match="works over async, not sync"):
        choose_transport("wan2.5-i2i-preview", "edit", "sync")
    with pytest.raises(WanInputError, match="not one of auto, sync, stream, async"):
        choose_transport("wan2.7-image", "t2i", "websocket")


@pytest.mark.parametrize("model", ["wan2.7-image", "wan2.7-image-pro", "wan2.5-i2i-preview"])
def test_virginia_is_refused_naming_the_models_regions(model):
    for region in ("virginia", "us", "Virginia"):
        with pytest.raises(WanInputError) as info:
            check_region(model, region, False)
        assert info.value.param == "region"
        assert "offered in Beijing and Singapore only" in str(info.value)
        assert "DASHSCOPE_HTTP_BASE_URL" in str(info.value)
    assert check_region(model, "virginia", True) is None  # an overridden endpoint decides
    assert check_region(model, "beijing", False) == "beijing"
    assert check_region(model, "intl", False) == "singapore"


def test_regions_as_the_pages_list_them(monkeypatch):
    assert MODELS["wan2.6-image"].regions == ("singapore", "virginia", "beijing")
    assert check_region("wan2.6-image", "virginia", False) == "virginia"
    monkeypatch.setenv("DASHSCOPE_REGION", "virginia")
    with pytest.raises(WanInputError, match="region"):
        check_region("wan2.7-image", None, False)  # the default region is checked too
    with pytest.raises(WanInputError) as info:
        check_region("wan2.7-image", "mars", False)
    assert info.value.param == "region" and "unknown region" in str(info.value)


def test_the_client_refuses_before_sending(emulator):
    """Virginia's address pointed at the emulator: a request that slipped through would show in its log."""
    virginia = Endpoint(base_url=emulator.base_url, region="virginia", overridden=False)
    client = WanClient(TEST_KEY, endpoint=virginia, retry=FAST_RETRY)
    with pytest.raises(WanInputError, match="region"):
        client.generate(text_to_image("wan2.7-image", "a fox", n=1, size="1K"))
    overridden = WanClient(TEST_KEY, endpoint=Endpoint(emulator.base_url, None, True), retry=FAST_RETRY)
    with pytest.raises(WanInputError, match="transport"):
        overridden.generate(text_to_image("wan2.7-image", "a fox", n=1, size="1K"), transport="stream")
    assert emulator.backend.log == []
    result = client.generate(interleave("wan2.6-image", "tea in two steps", max_images=2, size="1024*1024"))
    assert result.transport == "stream" and len(result.images) == 2


def test_the_readme_table_is_the_model_table():
    text = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| (wan[\w.\-]+) \| ([^|]+\|[^|]+) \|$", text, re.M))
    assert set(rows) == set(MODELS)
    labels = {"beijing": "Beijing", "singapore": "Singapore", "virginia": "Virginia"}
    names = {"edit": "editing", "interleave": "interleaved output"}
    for name, spec in MODELS.items():
        transports, regions = (part.strip() for part in rows[name].split("|"))
        assert regions == ", ".join(labels[r] for r in spec.regions), name
        per_mode = {mode: ", ".join(m.transports) for mode, m in spec.modes.items()}
        if len(set(per_mode.values())) == 1:
            assert transports == next(iter(per_mode.values())), name
        else:
            assert transports == "; ".join(f"{names[mode]}: {t}" for mode, t in per_mode.items()), name
