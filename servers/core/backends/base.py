"""What every backend provides to the Segmenter: a model input size and one batched stage.

A backend owns only "the GPU stage": a batch of already-normalised float32 images
(``B`` arrays ``[3, H, W]``, or one stacked ``[B, 3, H, W]`` array) in, a batch of masks
``[B, H, W]`` with values in ``[0, 1]`` out. The Segmenter hands over the images unstacked, so
stacking them into one input is part of the backend's call (and of the GPU stage's time).
Decoding, resizing, normalising, composing and encoding live in ``imaging.py`` and are
the same for every backend, so outputs differ only by what the model computes. A backend
that runs out of device memory raises :class:`GpuOutOfMemory` (and has freed what it could),
the one exception the adapters map to a 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class GpuOutOfMemory(RuntimeError):
    """The GPU stage ran out of device memory; the backend's cache is already emptied.

    Adapters answer 503 with this message and keep serving: the request may succeed when
    fewer others share the device.
    """


@dataclass(frozen=True)
class BackendInfo:
    """What a report must say about the model that ran (never hidden, never guessed)."""

    backend: str  # sim | u2netp | birefnet | birefnet_native
    device: str  # "cpu", "cuda:0", or "simulated" for sim
    weights: str  # "real" | "random" | "none" (sim computes no model)
    weights_source: str  # file, directory, hub id@revision, or "" where none
    dtype: str  # "float32", "float16", or "n/a"
    detail: str = ""  # variant, resolution, why auto chose it, ...


class Backend(Protocol):
    info: BackendInfo
    input_size: int  # the model's square input side, pixels

    def infer(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """B normalised ``[3,S,S]`` float32 images -> ``[B,S,S]`` float32 in [0, 1]; blocks until done."""
        ...

    def peak_memory_bytes(self) -> int | None:
        """Peak device memory since the last reset; ``None`` where there is no CUDA."""
        ...

    def reset_peak_memory(self) -> None: ...
