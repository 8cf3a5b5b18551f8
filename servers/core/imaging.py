"""Image handling shared by every backend: decode, resize, normalise, compose, encode.

Fixed once (docs/design.md §3) because it decides both the CPU cost per request and the byte
identity of outputs across servers: PIL decode, EXIF orientation applied, any mode
converted to RGB, the first frame of an animation, bilinear (antialiased) resize to the
model input, ImageNet mean/std, the mask resized back bilinearly, PNG at a fixed level.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
OUTPUTS = ("cutout", "mask")
# PIL modes holding more than 8 bits per sample: scaled down, not clipped, to 8 bits
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


class ImageError(ValueError):
    """The request's image cannot be used; ``str()`` says what to fix. ``status`` is the HTTP code."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 25_000_000  # MB are 10^6 bytes here, as in every message
    max_side: int = 4096  # width and height, each


def decode(data: bytes, limits: ImageLimits) -> Image.Image:
    """Bytes -> an upright RGB image, or :class:`ImageError` saying what is wrong."""
    if not data:
        raise ImageError("empty body: send the image bytes (PNG, JPEG or WebP)")
    if len(data) > limits.max_bytes:
        raise ImageError(
            f"image is {len(data) / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:.0f} MB", status=413
        )
    try:
        with warnings.catch_warnings():
            # PIL warns (and later errors) on huge images; our own limit speaks first
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(
            "body is not an image PIL can read: send PNG, JPEG or WebP bytes", status=415
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large: {exc}", status=413) from None
    width, height = image.size
    if width > limits.max_side or height > limits.max_side:
        raise ImageError(
            f"image is {width}x{height} pixels; the limit is {limits.max_side}x{limits.max_side}: "
            "downscale it first",
            status=413,
        )
    try:
        image.seek(0)  # animations: the first frame
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"image is truncated or corrupt ({exc}): send the complete file") from None
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in _WIDE_MODES:
        wide = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((wide >> 8).clip(0, 255).astype(np.uint8), mode="L")
    elif image.mode == "P":
        image = image.convert("RGBA")  # palette transparency survives only through RGBA
    return image if image.mode == "RGB" else image.convert("RGB")


def normalise(image: Image.Image, side: int) -> np.ndarray:
    """RGB image -> ``[3, side, side]`` float32, ImageNet mean/std."""
    resized = image.resize((side, side), Image.Resampling.BILINEAR)
    planes = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1).copy()
    # in place, one contiguous plane and one scalar at a time: the same float32 operations in the
    # same order as (pixels / 255 - mean) / std over [S, S, 3], so the same bits, in up to half the time
    planes /= 255.0
    for plane, mean, std in zip(planes, IMAGENET_MEAN, IMAGENET_STD, strict=True):
        plane -= mean
        plane /= std
    return planes


def compose(image: Image.Image, mask: np.ndarray, output: str, png_level: int) -> bytes:
    """Model mask ``[S, S]`` in [0, 1] -> PNG bytes at the image's size (RGBA cutout or grey mask)."""
    mask_small = Image.fromarray(np.rint(np.clip(mask, 0.0, 1.0) * 255.0).astype(np.uint8), mode="L")
    mask_full = mask_small.resize(image.size, Image.Resampling.BILINEAR)
    if output == "cutout":
        result = image.copy()
        result.putalpha(mask_full)
    else:
        result = mask_full
    buffer = io.BytesIO()
    result.save(buffer, format="PNG", compress_level=png_level)
    return buffer.getvalue()


def decode_base64(text: object) -> bytes:
    """Base64 text, optionally a ``data:image/...;base64,`` URL -> bytes, or :class:`ImageError`."""
    if not isinstance(text, str) or not text.strip():
        raise ImageError('"image" must be a non-empty base64 string (a data: URL prefix is allowed)')
    payload = text.strip()
    if payload.startswith("data:"):
        header, _, payload = payload.partition(",")
        if not header.endswith(";base64"):
            raise ImageError("data URL must be base64-encoded: data:image/png;base64,<data>")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("image is not valid base64: send the file's bytes base64-encoded") from None


def encode_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sample_png(side: int = 64) -> bytes:
    """A small deterministic picture (a disc on a gradient): warm-up input and smoke tests."""
    axis = np.linspace(0.0, 1.0, side, dtype=np.float32)
    rgb = np.stack(
        [np.add.outer(axis, axis) / 2, np.outer(axis, 1 - axis) * 4, 1 - axis[None, :].repeat(side, 0)], -1
    )
    yy, xx = np.mgrid[0:side, 0:side]
    disc = (yy - side / 2) ** 2 + (xx - side / 2) ** 2 < (side / 4) ** 2
    rgb[disc] = (0.9, 0.2, 0.1)
    buffer = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8), mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()
