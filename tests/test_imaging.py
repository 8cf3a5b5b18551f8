"""``servers/core/imaging.py``: decoding any input the same way, limits, output kinds."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from servers.core import imaging
from servers.core.imaging import ImageError, ImageLimits

LIMITS = ImageLimits()


def encode(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (10, 6), 128),
        Image.new("RGBA", (10, 6), (10, 20, 30, 40)),
        Image.new("P", (10, 6)),
        Image.new("I;16", (10, 6), 40000),
    ],
    ids=["L", "RGBA", "P", "I;16"],
)
def test_any_mode_decodes_to_rgb(image: Image.Image) -> None:
    decoded = imaging.decode(encode(image), LIMITS)
    assert decoded.mode == "RGB" and decoded.size == (10, 6)


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    decoded = imaging.decode(encode(Image.new("I;16", (4, 4), 40000)), LIMITS)
    assert decoded.getpixel((0, 0)) == (40000 >> 8,) * 3


def test_cmyk_jpeg_and_webp_decode() -> None:
    assert imaging.decode(encode(Image.new("CMYK", (8, 8)), "JPEG"), LIMITS).mode == "RGB"
    assert imaging.decode(encode(Image.new("RGB", (8, 8)), "WEBP"), LIMITS).size == (8, 8)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    decoded = imaging.decode(encode(Image.new("RGB", (20, 10)), "JPEG", exif=exif), LIMITS)
    assert decoded.size == (10, 20)


def test_animation_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert imaging.decode(data, LIMITS).getpixel((0, 0))[0] > 200


def test_limits_are_enforced_with_a_status() -> None:
    with pytest.raises(ImageError, match="limit is 16x16") as too_big:
        imaging.decode(encode(Image.new("RGB", (17, 4))), ImageLimits(max_side=16))
    assert too_big.value.status == 413
    with pytest.raises(ImageError, match="MB") as too_heavy:
        imaging.decode(b"x" * 2048, ImageLimits(max_bytes=1024))
    assert too_heavy.value.status == 413


def test_output_kinds_and_sizes() -> None:
    image = Image.new("RGB", (30, 20), (1, 2, 3))
    mask = np.full((8, 8), 0.5, dtype=np.float32)
    cutout = Image.open(io.BytesIO(imaging.compose(image, mask, "cutout", 1)))
    grey = Image.open(io.BytesIO(imaging.compose(image, mask, "mask", 1)))
    assert (cutout.mode, cutout.size, cutout.getpixel((5, 5))) == ("RGBA", (30, 20), (1, 2, 3, 128))
    assert (grey.mode, grey.size) == ("L", (30, 20))


@pytest.mark.parametrize("side", [64, 320, 1024])
def test_normalise_is_the_imagenet_formula_bit_for_bit(side: int) -> None:
    pixels = np.random.default_rng(side).integers(0, 256, (77, 131, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    resized = np.asarray(image.resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32)
    formula = ((resized / 255.0 - imaging.IMAGENET_MEAN) / imaging.IMAGENET_STD).transpose(2, 0, 1)
    normalised = imaging.normalise(image, side)
    assert normalised.dtype == np.float32 and normalised.flags.c_contiguous
    assert np.array_equal(normalised, formula)
