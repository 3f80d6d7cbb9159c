"""Palettes from pictures: 3-10 colours whose ratios have two decimals and sum to exactly 100.00%."""

from __future__ import annotations

import numpy as np
import pytest

from api import WanInputError, check_color_palette
from api.request.palette import palette_from_pixels, percentages, swatches
from apitest import photo


@pytest.mark.parametrize("colors", [3, 5, 8, 10])
def test_a_photo_gives_a_valid_palette(colors):
    rgb = np.floor(photo(300, 400, seed=colors) * 255 + 0.5).astype(np.uint8)
    palette = palette_from_pixels(rgb, colors)
    assert 3 <= len(palette) <= colors
    total = sum(int(e["ratio"].replace(".", "").rstrip("%")) for e in palette)
    assert total == 10000
    assert check_color_palette(palette) == palette
    strip = swatches(palette)
    assert strip.shape == (96, 512, 3)


def test_a_flat_picture_still_gives_three_colours():
    palette = palette_from_pixels(np.full((64, 64, 3), 200, np.uint8), 8)
    assert len(palette) == 3 and check_color_palette(palette)


def test_rounding_keeps_the_sum_exact():
    assert sum(percentages([1, 1, 1])) == 10000
    assert sum(percentages([1, 1000000, 3])) == 10000
    assert min(percentages([1, 1000000, 3])) >= 1
    with pytest.raises(WanInputError):
        palette_from_pixels(np.zeros((8, 8, 3), np.uint8), 11)
