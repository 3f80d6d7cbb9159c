"""The daily limit over a node's whole fan-out, and the WanUsage node, inside a loaded ComfyUI."""

from __future__ import annotations

import asyncio
import importlib

import pytest
import torch

from conftest import api, wan

usage = importlib.import_module(wan.__name__.rsplit(".", 1)[0] + ".usage")


def frames(count: int) -> torch.Tensor:
    return torch.rand((count, 240, 240, 3), generator=torch.Generator().manual_seed(count))


def creations(emulator) -> int:
    return emulator.backend.stats()["creations"]


def test_a_per_image_fan_out_past_the_limit_is_refused_before_any_request(emulator, monkeypatch):
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "5")
    call = dict(model="wan2.7-image", prompt="make it night", n=2, size="1K", seed=3, per_image=True)
    with pytest.raises(api.WanInputError) as refused:
        asyncio.run(wan.WanImageEdit.execute(**call, image=frames(3)))   # 3 requests x 2 = 6 > 5
    assert "limit is 5" in str(refused.value) and "may bill 6" in str(refused.value)
    assert creations(emulator) == 0, "no request of the fan-out may be sent"
    out = asyncio.run(wan.WanImageEdit.execute(**call, image=frames(2)))   # 4 <= 5
    assert out.args[0].shape[0] == 4 and creations(emulator) == 2
    # The same fan-out again is answered from the cache: it costs nothing and is not refused.
    again = asyncio.run(wan.WanImageEdit.execute(**call, image=frames(2)))
    assert torch.equal(again.args[0], out.args[0]) and creations(emulator) == 2


def test_wan_usage_shows_todays_pictures_per_model_as_text_and_chart(emulator):
    asyncio.run(wan.WanTextToImage.execute(model="wan2.7-image", prompt="a red kite", n=2, size="1K", seed=1))
    asyncio.run(wan.WanSequential.execute(model="wan2.7-image-pro", prompt="four seasons", n=3, size="1K",
                                          seed=2))
    schema = usage.WanUsage.define_schema()
    assert schema.inputs == [] and schema.node_id == "WanUsage"
    out = usage.WanUsage.execute()
    text, chart = out.args
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("wan2.")}
    assert rows["wan2.7-image"][1] == "2" and rows["wan2.7-image-pro"][1] == "3", text
    assert "all models" in text and " 5 " in text.split("all models")[1][:20]
    assert chart.ndim == 4 and chart.shape[0] == 1 and chart.shape[-1] == 3
    background = torch.tensor([250, 250, 250]) / 255
    coloured = ((chart[0] - background).abs().sum(-1) > 0.3).float().mean()
    assert coloured > 0.002, "the chart shows no bars"
