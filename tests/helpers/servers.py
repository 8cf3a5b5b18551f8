"""Servers and images for the load-generator tests: small JPEGs and servers on ``sim``, each in
its own process group, stopped when the block ends."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageDraw

from loadtests.serverproc import ServerProcess, start_server

SIM_ARGS = ("--model", "sim", "--sim-ms", "20")


def small_jpeg(size: int = 64) -> bytes:
    """A deterministic photo-like JPEG: a lit disc on a gradient."""
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for y in range(size):
        draw.line([(0, y), (size, y)], fill=(90 + y, 140, 220 - y))
    draw.ellipse([size // 4, size // 4, 3 * size // 4, size - 2], fill=(180, 70, 50))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


@contextmanager
def sim_server(kind: str, log_dir: Path, *extra: str) -> Iterator[ServerProcess]:
    server = start_server(kind, [*SIM_ARGS, *extra], log_path=log_dir / f"{kind}.log")
    try:
        yield server
    finally:
        server.stop()
