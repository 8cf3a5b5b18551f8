"""Shared plumbing for the backends that run a torch module: device, dtype, sync, memory."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from servers.core.backends.base import BackendInfo, GpuOutOfMemory


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; anything else is passed to torch as given."""
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return resolved


class TorchBackend:
    """Runs ``module`` on a batch; ``to_mask`` turns its raw output into masks in [0, 1].

    Subclasses build the module and say how its raw output becomes a [B,S,S] mask in [0,1].
    """

    info: BackendInfo
    input_size: int

    def __init__(
        self,
        module: torch.nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.device = device
        self.dtype = dtype
        self.memory_format = memory_format
        self.module = module.to(device=device, dtype=dtype, memory_format=memory_format).eval()

    def to_mask(self, output: object) -> torch.Tensor:
        raise NotImplementedError

    def infer(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        try:
            return self._infer(batch)
        except torch.cuda.OutOfMemoryError as exc:
            detail = str(exc).splitlines()[0] if str(exc) else "CUDA out of memory"
        # outside the except block: its traceback (and the activations its frames hold) is
        # gone, so emptying the cache gives those blocks back for the calls that follow
        torch.cuda.empty_cache()
        raise GpuOutOfMemory(
            f"the GPU ran out of memory for a batch of {len(batch)} on {self.device} ({detail}): "
            "retry later, or serve with a lower --concurrency"
        )

    def _infer(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        stacked = batch if isinstance(batch, np.ndarray) else np.stack(batch)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(stacked)).to(
                self.device, self.dtype, memory_format=self.memory_format
            )
            mask = self.to_mask(self.module(x)).float()
            if self.device.type == "cuda":
                # the GPU stage ends when the kernels end, not when they are queued
                torch.cuda.synchronize(self.device)
            return mask.cpu().numpy()

    def peak_memory_bytes(self) -> int | None:
        if self.device.type != "cuda":
            return None
        return int(torch.cuda.max_memory_allocated(self.device))

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
