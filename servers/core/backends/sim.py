"""A simulated GPU: a fixed service time per call, shared fairly between overlapping calls.

Overlapping calls slow each other down the way kernels from concurrent requests share one
GPU (processor sharing: n calls in flight each progress at 1/n speed), and each call in
flight holds simulated memory. The mask is a fixed soft ellipse, so outputs are
deterministic. Labelled "simulated" everywhere: it is never a real GPU measurement.

Memory model (one place: :meth:`SimBackend.memory_in_use`): resident weights plus a fixed
amount per image in flight. With a capacity (``--sim-memory-gb``), a call whose images
would not fit fails at once with :class:`GpuOutOfMemory`, as a CUDA allocation would
(a real one may fail part-way through; here no time is spent), and the calls already
running are unaffected.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from servers.core.backends.base import BackendInfo, GpuOutOfMemory

SIM_INPUT_SIZE = 320
BASE_MEMORY_BYTES = 512 * 1024**2  # "weights" resident while the process lives
MEMORY_PER_IMAGE_BYTES = 256 * 1024**2  # activations of one image in flight


def ellipse_mask(side: int) -> np.ndarray:
    """A soft-edged ellipse filling the middle of a ``side``² square, values in [0, 1]."""
    axis = (np.arange(side, dtype=np.float32) + 0.5) / side * 2.0 - 1.0
    radius = np.sqrt((axis[None, :] / 0.7) ** 2 + (axis[:, None] / 0.85) ** 2)
    return np.clip((1.0 - radius) * 8.0 + 0.5, 0.0, 1.0).astype(np.float32)


class SimBackend:
    input_size = SIM_INPUT_SIZE

    def __init__(
        self, service_ms: float = 50.0, batch_cost: float = 0.35, capacity_bytes: int | None = None
    ) -> None:
        if service_ms < 0:
            raise ValueError(f"--sim-ms must be >= 0, not {service_ms}")
        self.service_s = service_ms / 1000.0
        self.batch_cost = batch_cost  # each extra image in a batch adds this share of one call
        self.capacity_bytes = capacity_bytes  # the device's capacity; None: unbounded
        fits = self.images_that_fit()
        if fits is not None and fits < 1:
            raise ValueError(
                f"--sim-memory-gb {capacity_bytes / 1e9:g} holds no image: the weights take "
                f"{BASE_MEMORY_BYTES / 1e9:.2f} GB and each image {MEMORY_PER_IMAGE_BYTES / 1e9:.2f} GB"
            )
        memory = "" if fits is None else f", {capacity_bytes / 1e9:g} GB memory ({fits} images)"
        self.info = BackendInfo(
            backend="sim",
            device="simulated",
            weights="none",
            weights_source="",
            dtype="n/a",
            detail=f"simulated GPU, {service_ms:g} ms per call, processor sharing{memory}",
        )
        self._mask = ellipse_mask(self.input_size)
        self._clock = threading.Condition()
        self._virtual_time = 0.0  # work units done by each in-flight call since t=0
        self._last_update = time.monotonic()
        self._active = 0
        self._images_in_flight = 0
        self._peak_bytes = self.memory_in_use(0)

    @staticmethod
    def memory_in_use(images_in_flight: int) -> int:
        """The memory model: resident weights plus activations per image in flight."""
        return BASE_MEMORY_BYTES + images_in_flight * MEMORY_PER_IMAGE_BYTES

    def images_that_fit(self) -> int | None:
        """How many images can be in flight at once; ``None`` without a capacity."""
        if self.capacity_bytes is None:
            return None
        return (self.capacity_bytes - BASE_MEMORY_BYTES) // MEMORY_PER_IMAGE_BYTES

    def _advance(self) -> None:
        """Move virtual time forward: with n calls in flight each gets 1/n of the device."""
        now = time.monotonic()
        if self._active:
            self._virtual_time += (now - self._last_update) / self._active
        self._last_update = now

    def infer(self, batch: np.ndarray) -> np.ndarray:
        images = batch.shape[0]
        work_s = self.service_s * (1.0 + self.batch_cost * (images - 1))
        with self._clock:
            in_use = self.memory_in_use(self._images_in_flight + images)
            if self.capacity_bytes is not None and in_use > self.capacity_bytes:
                raise GpuOutOfMemory(
                    f"the simulated GPU ran out of memory: {images} more image(s) need "
                    f"{in_use / 1e9:.2f} GB of its {self.capacity_bytes / 1e9:g} GB "
                    f"({self._images_in_flight} already in flight): retry later, or serve with a "
                    "lower --concurrency"
                )
            self._advance()
            finish_at = self._virtual_time + work_s
            self._active += 1
            self._images_in_flight += images
            self._peak_bytes = max(self._peak_bytes, in_use)
            self._clock.notify_all()  # the others now progress slower
            try:
                while self._virtual_time < finish_at:
                    self._clock.wait((finish_at - self._virtual_time) * self._active)
                    self._advance()
            finally:
                self._active -= 1
                self._images_in_flight -= images
                self._clock.notify_all()  # the others now progress faster
        return np.broadcast_to(self._mask, (images, *self._mask.shape)).copy()

    def peak_memory_bytes(self) -> int | None:
        return self._peak_bytes

    def reset_peak_memory(self) -> None:
        with self._clock:
            self._peak_bytes = self.memory_in_use(self._images_in_flight)
