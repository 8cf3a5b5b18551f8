"""A simulated GPU: a service time per call, shared between overlapping calls, memory per image.

Two sets of figures drive it, each one place (:class:`DefaultDevice`, :class:`ProfiledDevice`):

- by default, a fixed service time per call (``--sim-ms``; each extra image in a batch adds
  ``batch_cost`` of it), ideal processor sharing (n calls in flight each progress at 1/n speed,
  the way kernels from concurrent requests share one GPU), and resident "weights" plus a fixed
  amount per image in flight;
- with a measured GPU profile (``--sim-profile``, ``servers/core/gpu_profile.py``), that GPU's
  batch curve, overlap curve and memory, replayed by the profile module's rules.

The mask is a fixed soft ellipse, so outputs are deterministic. Labelled "simulated" everywhere
(with a profile: "simulated from a profile measured on <GPU>"): never a real GPU measurement.

With a memory bound (``--sim-memory-gb``, or a profile's measured cliff or capacity), a call
whose images would not fit fails at once with :class:`GpuOutOfMemory`, as a CUDA allocation
would (a real one may fail part-way through; here no time is spent), and the calls already
running are unaffected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from servers.core import gpu_profile
from servers.core.backends.base import BackendInfo, GpuOutOfMemory

SIM_INPUT_SIZE = 320
BASE_MEMORY_BYTES = 512 * 1024**2  # "weights" resident while the process lives
MEMORY_PER_IMAGE_BYTES = 256 * 1024**2  # activations of one image in flight
DEFAULT_BATCH_COST = 0.35  # each extra image in a batch adds this share of one call


def ellipse_mask(side: int) -> np.ndarray:
    """A soft-edged ellipse filling the middle of a ``side``² square, values in [0, 1]."""
    axis = (np.arange(side, dtype=np.float32) + 0.5) / side * 2.0 - 1.0
    radius = np.sqrt((axis[None, :] / 0.7) ** 2 + (axis[:, None] / 0.85) ** 2)
    return np.clip((1.0 - radius) * 8.0 + 0.5, 0.0, 1.0).astype(np.float32)


class SimDevice(Protocol):
    """The figures a simulated GPU runs by."""

    input_size: int  # the model input side the CPU stages normalise to

    def service_s(self, images: int) -> float:
        """Seconds one call with ``images`` images takes alone."""
        ...

    def slowdown(self, calls: int) -> float:
        """How many times longer each of ``calls`` overlapping calls takes than alone."""
        ...

    def memory_bytes(self, batch_sizes: list[int]) -> int:
        """Device memory while calls of these batch sizes (one entry per call) are in flight."""
        ...

    def out_of_memory(self, batch_sizes: list[int]) -> bool:
        """Whether calls of these batch sizes, in flight at once, do not fit."""
        ...

    def describe(self) -> str:
        """The startup line's (and /healthz's) words for these figures."""
        ...


class DefaultDevice:
    """A fixed service time, ideal processor sharing, a fixed memory cost per image."""

    input_size = SIM_INPUT_SIZE

    def __init__(self, service_ms: float, batch_cost: float, capacity_bytes: int | None) -> None:
        if service_ms < 0:
            raise ValueError(f"--sim-ms must be >= 0, not {service_ms}")
        self.service_ms = service_ms
        self.batch_cost = batch_cost
        self.capacity_bytes = capacity_bytes
        fits = self.images_that_fit()
        if fits is not None and fits < 1:
            raise ValueError(
                f"--sim-memory-gb {capacity_bytes / 1e9:g} holds no image: the weights take "
                f"{BASE_MEMORY_BYTES / 1e9:.2f} GB and each image {MEMORY_PER_IMAGE_BYTES / 1e9:.2f} GB"
            )

    def service_s(self, images: int) -> float:
        return self.service_ms / 1000.0 * (1.0 + self.batch_cost * (images - 1))

    def slowdown(self, calls: int) -> float:
        return float(calls)

    def memory_bytes(self, batch_sizes: list[int]) -> int:
        return BASE_MEMORY_BYTES + sum(batch_sizes) * MEMORY_PER_IMAGE_BYTES

    def out_of_memory(self, batch_sizes: list[int]) -> bool:
        return self.capacity_bytes is not None and self.memory_bytes(batch_sizes) > self.capacity_bytes

    def images_that_fit(self) -> int | None:
        """How many images can be in flight at once; ``None`` without a capacity."""
        if self.capacity_bytes is None:
            return None
        return (self.capacity_bytes - BASE_MEMORY_BYTES) // MEMORY_PER_IMAGE_BYTES

    def describe(self) -> str:
        fits = self.images_that_fit()
        memory = "" if fits is None else f", {self.capacity_bytes / 1e9:g} GB memory ({fits} images)"
        return (
            f"simulated GPU, {self.service_ms:g} ms per call (+{self.batch_cost:g} of it per extra "
            f"image in a batch), processor sharing{memory}"
        )


class ProfiledDevice:
    """A measured GPU replayed (``servers/core/gpu_profile.py``): its batch and overlap curves, its
    memory; the CPU stages normalise to its resolution, so they cost what they would beside it."""

    def __init__(self, profile: gpu_profile.GpuProfile, source: Path, capacity_bytes: int | None) -> None:
        self.profile = profile
        self.source = source
        self.input_size = profile.resolution
        self.capacity_bytes = capacity_bytes  # --sim-memory-gb: replaces the measured bound
        if capacity_bytes is not None:
            resident = self.memory_bytes([])
            if self.out_of_memory([1]):
                raise ValueError(
                    f"--sim-memory-gb {capacity_bytes / 1e9:g} holds no image of the profile measured "
                    f"on {profile.gpu}: it keeps {resident / 1e9:.2f} GB resident and one image needs "
                    f"{(self.memory_bytes([1]) - resident) / 1e9:.2f} GB more"
                )

    def service_s(self, images: int) -> float:
        return gpu_profile.batch_service_s(self.profile, images)

    def slowdown(self, calls: int) -> float:
        return gpu_profile.overlap_slowdown(self.profile, calls)

    def memory_bytes(self, batch_sizes: list[int]) -> int:
        if self.profile.memory is None:
            return 0  # measured without device-memory counters: nothing to replay
        return gpu_profile.memory_in_flight_bytes(self.profile, batch_sizes)

    def out_of_memory(self, batch_sizes: list[int]) -> bool:
        if self.capacity_bytes is not None:
            return self.memory_bytes(batch_sizes) > self.capacity_bytes
        return self.profile.memory is not None and gpu_profile.would_oom(self.profile, batch_sizes)

    def describe(self) -> str:
        profile = self.profile
        if self.capacity_bytes is not None:
            memory = f"memory bound {self.capacity_bytes / 1e9:g} GB (--sim-memory-gb)"
        elif profile.memory is None:
            memory = "no memory figures in the profile: memory not simulated"
        else:
            threshold = gpu_profile.oom_threshold_bytes(profile)
            memory = "memory unbounded" if threshold is None else f"out of memory at {threshold / 1e9:.1f} GB"
        return f"{gpu_profile.replay_label(profile)}; profile {self.source.name}; {memory}"


class SimBackend:
    def __init__(
        self,
        service_ms: float = 50.0,
        batch_cost: float = DEFAULT_BATCH_COST,
        capacity_bytes: int | None = None,
        device: SimDevice | None = None,
    ) -> None:
        """``device`` (a profile replayed) replaces the default figures ``service_ms``,
        ``batch_cost`` and ``capacity_bytes`` describe."""
        self.device: SimDevice = device or DefaultDevice(service_ms, batch_cost, capacity_bytes)
        self.input_size = self.device.input_size
        self.info = BackendInfo(
            backend="sim",
            device="simulated",
            weights="none",
            weights_source="",
            dtype="n/a",
            detail=self.device.describe(),
        )
        self._mask = ellipse_mask(self.input_size)
        self._clock = threading.Condition()
        self._virtual_time = 0.0  # solo-work seconds done by each in-flight call since t=0
        self._last_update = time.monotonic()
        self._in_flight: list[int] = []  # the batch size of each call in flight
        self._peak_bytes = self.device.memory_bytes([])

    def _advance(self) -> None:
        """Move virtual time forward: with n calls in flight each does 1/slowdown(n) of its solo work."""
        now = time.monotonic()
        if self._in_flight:
            self._virtual_time += (now - self._last_update) / self.device.slowdown(len(self._in_flight))
        self._last_update = now

    def infer(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        # the pixels are never read, so nothing is stacked: a replayed GPU stage takes the profile's
        # time, with nothing of this host's CPU added to it
        images = len(batch)
        work_s = self.device.service_s(images)
        with self._clock:
            wanted = [*self._in_flight, images]
            if self.device.out_of_memory(wanted):
                raise GpuOutOfMemory(
                    f"the simulated GPU ran out of memory: {images} more image(s) need "
                    f"{self.device.memory_bytes(wanted) / 1e9:.2f} GB in all, more than it holds "
                    f"({sum(self._in_flight)} image(s) already in flight): retry later, or serve with "
                    "a lower --concurrency or --batch"
                )
            self._advance()
            finish_at = self._virtual_time + work_s
            self._in_flight.append(images)
            self._peak_bytes = max(self._peak_bytes, self.device.memory_bytes(self._in_flight))
            self._clock.notify_all()  # the others now progress slower
            try:
                while self._virtual_time < finish_at:
                    self._clock.wait(
                        (finish_at - self._virtual_time) * self.device.slowdown(len(self._in_flight))
                    )
                    self._advance()
            finally:
                self._in_flight.remove(images)
                self._clock.notify_all()  # the others now progress faster
        # a read-only view, no copy: the stage's time stays the replayed one (8 masks at 1024² are 32 MB)
        return np.broadcast_to(self._mask, (images, *self._mask.shape))

    def peak_memory_bytes(self) -> int | None:
        return self._peak_bytes

    def reset_peak_memory(self) -> None:
        with self._clock:
            self._peak_bytes = self.device.memory_bytes(self._in_flight)
