"""Pictures -> image values: rounding, alpha, limits, formats."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from api import MODELS, WanInputError, encode_image, to_uint8_rgb
from api.request.encoding import choose_format, decode_data_uri
from api.request.models import ImageLimits
from apitest import photo

WAN27 = MODELS["wan2.7-image"].image
WAN25 = MODELS["wan2.5-i2i-preview"].image


def pixels_of(value: str) -> np.ndarray:
    _, data = decode_data_uri(value)
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def test_floats_are_rounded_not_truncated():
    levels = np.array([0.0, 0.4 / 255, 0.5 / 255, 0.6 / 255, 127.5 / 255, 254.49 / 255, 1.0], np.float32)
    arr = np.repeat(levels[None, :, None], 3, axis=2)
    assert to_uint8_rgb(arr)[0, :, 0].tolist() == [0, 0, 1, 1, 128, 254, 255]
    # Truncation would make 0.999 -> 254; rounding keeps it 255.
    assert to_uint8_rgb(np.full((1, 1, 3), 0.999, np.float32))[0, 0, 0] == 255


def test_alpha_is_flattened_onto_white_and_grey_becomes_rgb():
    rgba = np.zeros((2, 2, 4), np.float32)
    rgba[..., 0] = 1.0          # red
    rgba[0, 0, 3] = 1.0         # opaque
    rgba[0, 1, 3] = 0.0         # transparent -> white
    rgba[1, :, 3] = 0.5         # half -> pink
    out = to_uint8_rgb(rgba)
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert out[1, 0].tolist() == [255, 128, 128]
    grey = to_uint8_rgb(np.full((3, 4), 0.5, np.float32))
    assert grey.shape == (3, 4, 3) and (grey == 128).all()
    pil = Image.new("RGBA", (5, 5), (0, 0, 255, 0))
    assert (to_uint8_rgb(pil) == 255).all()


def test_png_is_lossless():
    pic = photo(300, 420, seed=3)
    value = encode_image(pic, WAN27, fmt="png")
    assert value.value.startswith("data:image/png;base64,")
    assert np.array_equal(pixels_of(value.value), to_uint8_rgb(pic))


def test_a_tiny_picture_is_scaled_up_to_the_minimum_side():
    value = encode_image(photo(100, 150), WAN27)
    assert (value.width, value.height) == (360, 240)
    assert value.source_size == (150, 100)
    value = encode_image(photo(100, 100), WAN25)
    assert (value.width, value.height) == (384, 384)


def test_a_huge_picture_is_scaled_down_to_the_maximum_side():
    limits = ImageLimits(min_side=240, max_side=1000, max_bytes=20 * 2**20, max_aspect=8.0)
    value = encode_image(photo(1500, 3000), limits)
    assert (value.width, value.height) == (1000, 500)
    assert pixels_of(value.value).shape == (500, 1000, 3)


def test_an_extreme_aspect_is_refused_clearly():
    with pytest.raises(WanInputError) as info:
        encode_image(np.zeros((100, 900, 3), np.float32), WAN27, name="image_2")
    assert info.value.param == "image_2" and "1:8 to 8:1" in str(info.value)
    # wan2.5's 1:4-4:1 is the reference's alone (reference_only): the picture is sent as it is and the
    # service judges it (tests/api/test_validation.py shows the service's error reaching the user).
    sent = encode_image(np.zeros((400, 2000, 3), np.float32), WAN25)
    assert (sent.width, sent.height) == (2000, 400)
    # The same bound, had a page stated it, is refused before sending.
    stated = ImageLimits(min_side=384, max_side=5000, max_bytes=10 * 2**20, max_aspect=4.0)
    with pytest.raises(WanInputError, match="1:4 to 4:1"):
        encode_image(np.zeros((400, 2000, 3), np.float32), stated)


def test_too_many_bytes_are_brought_under_the_limit():
    limits = ImageLimits(min_side=240, max_side=8000, max_bytes=1 * 2**20, max_aspect=8.0)
    noise = np.random.default_rng(1).random((1200, 1200, 3), dtype=np.float32)
    value = encode_image(noise, limits, fmt="png")
    assert value.nbytes <= limits.max_bytes
    assert len(base64.b64decode(value.value.split(",", 1)[1])) == value.nbytes
    assert 240 <= value.width < 1200


def test_nan_and_empty_pictures_are_refused():
    bad = np.zeros((300, 300, 3), np.float32)
    bad[5, 5, 1] = np.nan
    with pytest.raises(WanInputError, match="NaN"):
        encode_image(bad, WAN27)
    with pytest.raises(WanInputError, match="empty"):
        encode_image(np.zeros((0, 300, 3), np.float32), WAN27)
    with pytest.raises(WanInputError, match="shape"):
        encode_image(np.zeros((2, 300, 300, 3), np.float32), WAN27)


def test_auto_picks_png_for_flat_art_and_jpeg_for_photos():
    art = np.ones((768, 768, 3), np.float32)
    art[100:400, 100:600] = [0.2, 0.4, 0.9]
    art[450:700, 300:500] = [0.9, 0.7, 0.1]
    assert choose_format(to_uint8_rgb(art)) == "png"
    # Photographs as cameras make them (sensor noise of about 1 level): JPEG, and at least 44 dB.
    camera = photo(1024, 1024, noise=0.004)
    value = encode_image(camera, WAN27)
    assert value.value.startswith("data:image/jpeg")
    diff = pixels_of(value.value).astype(float) - to_uint8_rgb(camera).astype(float)
    psnr = 10 * np.log10(255 ** 2 / np.mean(diff ** 2))
    assert psnr >= 44, f"auto promised 44 dB, got {psnr:.1f}"
    # Heavy noise no JPEG quality keeps at 44 dB: sent losslessly instead.
    assert choose_format(to_uint8_rgb(photo(1024, 1024, noise=0.04))) == "png"


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (300, 257, 3), (1100, 900, 3)])
def test_our_png_encoder_is_lossless_and_valid(shape):
    from api.request.encoding import fast_png

    rgb = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = fast_png(rgb)
    with Image.open(io.BytesIO(data)) as img:
        img.load()  # checks every CRC and the zlib stream's Adler-32
        assert img.format == "PNG" and np.array_equal(np.asarray(img), rgb)
    # The zlib stream's own checksum (Pillow may stop reading before it).
    import struct
    import zlib

    idat_len = struct.unpack(">I", data[33:37])[0]
    assert zlib.decompress(data[41:41 + idat_len])[:1] == b"\x02"
