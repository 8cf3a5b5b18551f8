"""The Segmenter contract every server calls: load once, then pre -> GPU stage -> post.

The three stages are separate so an adapter can hold its GPU lock around the GPU stage
alone (FastAPI ``--lock-scope gpu``) or around all of them (Gradio's queue, FastAPI
``--lock-scope request``). :class:`LedgeredSegmenter` stamps each stage into the request's ledger row,
so both adapters measure the same things the same way, and skips the GPU stage for a request
whose client has gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from servers.core import imaging
from servers.core.backends.base import Backend, BackendInfo
from servers.core.ledger import ClientGone, Ledger, LedgerRow, Stage


@dataclass(frozen=True)
class Prepared:
    """A decoded request: the upright RGB image and the model's normalised input."""

    image: Image.Image
    tensor: np.ndarray  # [3, S, S] float32


class Segmenter:
    def __init__(
        self,
        backend: Backend,
        output: str = "cutout",
        png_level: int = 1,
        limits: imaging.ImageLimits | None = None,
    ) -> None:
        if output not in imaging.OUTPUTS:
            raise ValueError(f"output must be one of {imaging.OUTPUTS}, not {output!r}")
        if not 0 <= png_level <= 9:
            raise ValueError(f"PNG compression level must be 0..9, not {png_level}")
        self.backend = backend
        self.output = output
        self.png_level = png_level
        self.limits = limits or imaging.ImageLimits()

    @property
    def info(self) -> BackendInfo:
        return self.backend.info

    def pre(self, data: bytes) -> Prepared:
        image = imaging.decode(data, self.limits)
        return Prepared(image, imaging.normalise(image, self.backend.input_size))

    def gpu(self, batch: Sequence[Prepared]) -> list[np.ndarray]:
        masks = self.backend.infer(np.stack([prepared.tensor for prepared in batch]))
        return list(masks)

    def post(self, prepared: Prepared, mask: np.ndarray) -> bytes:
        return imaging.compose(prepared.image, mask, self.output, self.png_level)

    def segment(self, data: bytes) -> bytes:
        """All three stages in-process: the no-server baseline and the warm-up call."""
        prepared = self.pre(data)
        return self.post(prepared, self.gpu([prepared])[0])


def always_wanted() -> bool:
    return True


class LedgeredSegmenter:
    """The Segmenter's stages, each timed into a ledger row: what both adapters call.

    ``still_wanted`` (the adapter's view of the client: connected, or its queue event alive)
    is asked once more just before the GPU stage: no GPU time for an answer nobody will read.
    """

    def __init__(self, segmenter: Segmenter, ledger: Ledger) -> None:
        self.segmenter = segmenter
        self.ledger = ledger

    def pre(self, row: LedgerRow, read: Callable[[], bytes]) -> Prepared:
        """``read`` yields the image bytes (base64 decode, upload read, or the body as it is):
        it is timed as pre-processing so both adapters account for it in the same stage."""
        row.stage = Stage.PRE
        started = time.perf_counter()
        try:
            return self.segmenter.pre(read())
        finally:
            row.pre_s = time.perf_counter() - started

    def gpu(
        self, row: LedgerRow, prepared: Prepared, still_wanted: Callable[[], bool] = always_wanted
    ) -> np.ndarray:
        if not still_wanted():
            raise ClientGone
        with self.ledger.gpu_stage(row):
            return self.segmenter.gpu([prepared])[0]

    def post(self, row: LedgerRow, prepared: Prepared, mask: np.ndarray) -> bytes:
        row.stage = Stage.POST
        started = time.perf_counter()
        try:
            return self.segmenter.post(prepared, mask)
        finally:
            row.post_s = time.perf_counter() - started

    def run(
        self, row: LedgerRow, read: Callable[[], bytes], still_wanted: Callable[[], bool] = always_wanted
    ) -> bytes:
        prepared = self.pre(row, read)
        return self.post(row, prepared, self.gpu(row, prepared, still_wanted))
