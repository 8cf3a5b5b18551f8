"""``servers/core/backends``: the ``auto`` rule and the torch backends (u2netp, birefnet, native)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from servers.core.backends import ModelOptions, build_backend, choose_model
from servers.core.segmenter import Segmenter
from tests.helpers.common import PHOTO


def test_auto_without_cuda_chooses_u2netp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model, why = choose_model(ModelOptions())
    assert model == "u2netp" and "no CUDA" in why


def test_u2netp_gives_a_real_mask() -> None:
    backend = build_backend("u2netp", ModelOptions(model="u2netp", device="cpu"))
    assert backend.info.weights == "real" and backend.info.weights_source.endswith("u2netp.onnx")
    segmenter = Segmenter(backend, output="mask")
    prepared = segmenter.pre(PHOTO)
    mask = segmenter.gpu([prepared])[0]
    assert mask.shape == (320, 320) and mask.min() >= 0 and mask.max() <= 1 and mask.std() > 0.05


def test_u2netp_in_torch_matches_onnxruntime_on_the_same_file() -> None:
    """The torch path (onnx2torch, NHWC on the CPU) computes what the ONNX file computes."""
    import onnxruntime

    from servers.core.backends.u2netp import locate_onnx

    backend = build_backend("u2netp", ModelOptions(model="u2netp", device="cpu"))
    batch = Segmenter(backend).pre(PHOTO).tensor[np.newaxis]
    session = onnxruntime.InferenceSession(str(locate_onnx()), providers=["CPUExecutionProvider"])
    raw = session.run(None, {session.get_inputs()[0].name: batch})[0][:, 0]
    low, high = raw.min(axis=(1, 2), keepdims=True), raw.max(axis=(1, 2), keepdims=True)
    expected = (raw - low) / (high - low)
    assert np.abs(backend.infer(batch) - expected).max() < 1e-4


TINY_CONFIG = """
from transformers import PretrainedConfig


class TinySegConfig(PretrainedConfig):
    model_type = "tiny_seg"
"""
TINY_MODEL = '''
import torch
from transformers import PreTrainedModel

from .configuration_tiny import TinySegConfig


class TinySeg(PreTrainedModel):
    """Shaped like BiRefNet's remote code: returns a list whose last item is the logits."""

    config_class = TinySegConfig

    def __init__(self, config):
        super().__init__(config)
        self.head = torch.nn.Conv2d(3, 1, 1)
        self.post_init()

    def forward(self, x):
        return [self.head(x)]
'''


def tiny_snapshot(directory: Path) -> Path:
    """A local snapshot directory with its own remote code, as `huggingface-cli download` leaves one."""
    import importlib
    import sys

    directory.mkdir()
    (directory / "configuration_tiny.py").write_text(TINY_CONFIG)
    (directory / "modeling_tiny.py").write_text(TINY_MODEL)
    (directory / "__init__.py").write_text("")
    sys.path.insert(0, str(directory.parent))
    try:
        package = importlib.import_module(directory.name)
        modeling = importlib.import_module(f"{directory.name}.modeling_tiny")
        configuration = importlib.import_module(f"{directory.name}.configuration_tiny")
        config = configuration.TinySegConfig()
        torch.manual_seed(0)
        model = modeling.TinySeg(config)
        torch.nn.init.constant_(model.head.bias, 0.25)
        model.save_pretrained(directory)
    finally:
        sys.path.remove(str(directory.parent))
        for name in [n for n in sys.modules if n.startswith(directory.name)]:
            del sys.modules[name]
        del package
    (directory / "__init__.py").unlink()
    config_json = json.loads((directory / "config.json").read_text())
    config_json["auto_map"] = {
        "AutoConfig": "configuration_tiny.TinySegConfig",
        "AutoModelForImageSegmentation": "modeling_tiny.TinySeg",
    }
    config_json.pop("architectures", None)
    (directory / "config.json").write_text(json.dumps(config_json))
    return directory


def test_birefnet_loads_a_local_snapshot_through_remote_code(tmp_path: Path) -> None:
    from servers.core.backends.birefnet import BiRefNetBackend

    snapshot = tiny_snapshot(tmp_path / "tiny_birefnet")
    backend = BiRefNetBackend(str(snapshot), device="cpu", resolution=64)
    assert (backend.info.backend, backend.info.weights, backend.info.dtype) == ("birefnet", "real", "float32")
    masks = backend.infer(np.zeros((2, 3, 64, 64), np.float32))
    # zero input: the 1x1 conv leaves its bias, so every pixel is sigmoid(0.25)
    assert masks.shape == (2, 64, 64) and np.allclose(masks, 1 / (1 + np.exp(-0.25)), atol=1e-6)


def test_birefnet_without_weights_names_the_fixes(tmp_path: Path) -> None:
    from servers.core.backends.birefnet import BiRefNetBackend, WeightsUnavailable

    with pytest.raises(WeightsUnavailable, match="--random-weights") as missing:
        BiRefNetBackend(str(tmp_path / "no-such-snapshot"), device="cpu")
    assert "--weights DIR" in str(missing.value)


def test_auto_never_asks_for_weights_and_random_weights_together(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # CUDA is pretended: the rule, not the device, is under test; the hub cache is an empty folder
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"")
    model, why = choose_model(ModelOptions(weights=str(checkpoint)))
    assert model == "birefnet_native" and "no config.json" in why
    model, why = choose_model(ModelOptions())
    assert model == "birefnet_native" and "random weights" in why


@pytest.mark.gpu
def test_birefnet_native_runs_fp16_on_cuda() -> None:
    from servers.core.backends.birefnet_native import BiRefNetNativeBackend

    backend = BiRefNetNativeBackend(
        weights=None, random_weights=True, variant="lite", resolution=256, device="cuda"
    )
    assert backend.info.dtype == "float16" and backend.info.device.startswith("cuda")
    batch = np.random.default_rng(0).standard_normal((2, 3, 256, 256)).astype(np.float32)
    pair = backend.infer(batch)
    singles = np.concatenate([backend.infer(batch[:1]), backend.infer(batch[1:])])
    assert pair.shape == (2, 256, 256) and np.abs(pair - singles).max() < 1e-2
    assert backend.peak_memory_bytes() > 0


class _OutOfMemoryModule(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_torch_out_of_memory_becomes_the_core_exception() -> None:
    from servers.core.backends.base import BackendInfo, GpuOutOfMemory
    from servers.core.backends.torch_base import TorchBackend

    class Exhausted(TorchBackend):
        info = BackendInfo("test", "cpu", "none", "", "float32")
        input_size = 8

    backend = Exhausted(_OutOfMemoryModule(), torch.device("cpu"), torch.float32)
    with pytest.raises(GpuOutOfMemory, match=r"Tried to allocate 2\.00 GiB") as raised:
        backend.infer(np.zeros((3, 3, 8, 8), np.float32))
    assert "batch of 3" in str(raised.value) and "--concurrency" in str(raised.value)
