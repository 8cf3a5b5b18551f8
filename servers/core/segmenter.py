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
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from servers.core import imaging
from servers.core.backends.base import Backend, BackendInfo, GpuOutOfMemory
from servers.core.ledger import ClientGone, Ledger, LedgerRow, Stage

T = TypeVar("T")


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
        masks = self.backend.infer([prepared.tensor for prepared in batch])
        return list(masks)

    def post(self, prepared: Prepared, mask: np.ndarray) -> bytes:
        return imaging.compose(prepared.image, mask, self.output, self.png_level)

    def segment(self, data: bytes) -> bytes:
        """All three stages in-process: the no-server baseline and the warm-up call."""
        prepared = self.pre(data)
        return self.post(prepared, self.gpu([prepared])[0])


def always_wanted() -> bool:
    return True


def attempt(stage: Callable[..., T], *args: Any) -> T | Exception:
    """One request's stage inside a batch: its failure is its own outcome, not its batch's."""
    try:
        return stage(*args)
    except Exception as exc:
        return exc


def settled(outcome: T | Exception) -> T:
    """A batch outcome as a plain result: its exception raised."""
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


class LedgeredSegmenter:
    """The Segmenter's stages, each timed into a ledger row: what both adapters call.

    ``still_wanted`` (the adapter's view of the client: connected, or its queue event alive)
    is asked once more just before the GPU stage: no GPU time for an answer nobody will read.
    The batch methods take one entry per request and return one outcome per request, the
    result or the exception that request alone failed with; the single-request methods are
    a batch of one that raises.
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

    def gpu_batch(
        self,
        rows: Sequence[LedgerRow],
        prepared: Sequence[Prepared],
        still_wanted: Sequence[Callable[[], bool]],
    ) -> list[np.ndarray | Exception]:
        """One GPU call for the requests whose client still waits; the others get
        :class:`ClientGone` and never reach the GPU. Out of memory fails every request of the call."""
        wanted = [index for index, asks in enumerate(still_wanted) if asks()]
        outcomes: list[np.ndarray | Exception] = [ClientGone() for _ in rows]
        if not wanted:
            return outcomes
        try:
            with self.ledger.gpu_stage([rows[index] for index in wanted]):
                masks: Sequence[np.ndarray | Exception] = self.segmenter.gpu([prepared[i] for i in wanted])
        except GpuOutOfMemory as exc:
            masks = [exc] * len(wanted)
        for index, mask in zip(wanted, masks, strict=True):
            outcomes[index] = mask
        return outcomes

    def gpu(
        self, row: LedgerRow, prepared: Prepared, still_wanted: Callable[[], bool] = always_wanted
    ) -> np.ndarray:
        return settled(self.gpu_batch([row], [prepared], [still_wanted])[0])

    def post(self, row: LedgerRow, prepared: Prepared, mask: np.ndarray) -> bytes:
        row.stage = Stage.POST
        started = time.perf_counter()
        try:
            return self.segmenter.post(prepared, mask)
        finally:
            row.post_s = time.perf_counter() - started

    def run_batch(
        self,
        rows: Sequence[LedgerRow],
        reads: Sequence[Callable[[], bytes]],
        still_wanted: Sequence[Callable[[], bool]],
    ) -> list[bytes | Exception]:
        """Every stage of a batch, in this thread: pre of each request (bad input fails only its
        own request), one GPU call for those prepared and still wanted, post of each."""
        prepared = [attempt(self.pre, row, read) for row, read in zip(rows, reads, strict=True)]
        ready = [index for index, item in enumerate(prepared) if not isinstance(item, Exception)]
        masks = self.gpu_batch(
            [rows[index] for index in ready],
            [settled(prepared[index]) for index in ready],
            [still_wanted[index] for index in ready],
        )
        outcomes: dict[int, bytes | Exception] = {
            index: item for index, item in enumerate(prepared) if isinstance(item, Exception)
        }
        for index, mask in zip(ready, masks, strict=True):
            outcomes[index] = (
                mask
                if isinstance(mask, Exception)
                else attempt(self.post, rows[index], settled(prepared[index]), mask)
            )
        return [outcomes[index] for index in range(len(rows))]

    def run(
        self, row: LedgerRow, read: Callable[[], bytes], still_wanted: Callable[[], bool] = always_wanted
    ) -> bytes:
        return settled(self.run_batch([row], [read], [still_wanted])[0])
