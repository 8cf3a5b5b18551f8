"""The inference core without a server: image handling, the simulated GPU, the ledger, backends."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from servers.core import imaging
from servers.core.backends import ModelOptions, build_backend, choose_model
from servers.core.backends.sim import SimBackend
from servers.core.imaging import ImageError, ImageLimits
from servers.core.ledger import Ledger
from servers.core.segmenter import Segmenter

LIMITS = ImageLimits()


def encode(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (10, 6), 128),
        Image.new("RGBA", (10, 6), (10, 20, 30, 40)),
        Image.new("P", (10, 6)),
        Image.new("I;16", (10, 6), 40000),
    ],
    ids=["L", "RGBA", "P", "I;16"],
)
def test_any_mode_decodes_to_rgb(image: Image.Image) -> None:
    decoded = imaging.decode(encode(image), LIMITS)
    assert decoded.mode == "RGB" and decoded.size == (10, 6)


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    decoded = imaging.decode(encode(Image.new("I;16", (4, 4), 40000)), LIMITS)
    assert decoded.getpixel((0, 0)) == (40000 >> 8,) * 3


def test_cmyk_jpeg_and_webp_decode() -> None:
    assert imaging.decode(encode(Image.new("CMYK", (8, 8)), "JPEG"), LIMITS).mode == "RGB"
    assert imaging.decode(encode(Image.new("RGB", (8, 8)), "WEBP"), LIMITS).size == (8, 8)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    decoded = imaging.decode(encode(Image.new("RGB", (20, 10)), "JPEG", exif=exif), LIMITS)
    assert decoded.size == (10, 20)


def test_animation_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert imaging.decode(data, LIMITS).getpixel((0, 0))[0] > 200


def test_limits_are_enforced_with_a_status() -> None:
    with pytest.raises(ImageError, match="limit is 16x16") as too_big:
        imaging.decode(encode(Image.new("RGB", (17, 4))), ImageLimits(max_side=16))
    assert too_big.value.status == 413
    with pytest.raises(ImageError, match="MB") as too_heavy:
        imaging.decode(b"x" * 2048, ImageLimits(max_bytes=1024))
    assert too_heavy.value.status == 413


def test_output_kinds_and_sizes() -> None:
    image = Image.new("RGB", (30, 20), (1, 2, 3))
    mask = np.full((8, 8), 0.5, dtype=np.float32)
    cutout = Image.open(io.BytesIO(imaging.compose(image, mask, "cutout", 1)))
    grey = Image.open(io.BytesIO(imaging.compose(image, mask, "mask", 1)))
    assert (cutout.mode, cutout.size, cutout.getpixel((5, 5))) == ("RGBA", (30, 20), (1, 2, 3, 128))
    assert (grey.mode, grey.size) == ("L", (30, 20))


def test_sim_overlapping_calls_share_the_device() -> None:
    sim = SimBackend(service_ms=200)
    batch = np.zeros((1, 3, sim.input_size, sim.input_size), np.float32)
    started = time.perf_counter()
    sim.infer(batch)
    alone = time.perf_counter() - started
    durations: list[float] = []

    def timed() -> None:
        t0 = time.perf_counter()
        sim.infer(batch)
        durations.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=timed) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # three calls sharing one device each take about three times as long (processor sharing)
    assert alone >= 0.19 and all(d > 2.2 * alone for d in durations)
    assert sim.peak_memory_bytes() > SimBackend(200).peak_memory_bytes()


def test_ledger_counts_depth_and_drops() -> None:
    ledger = Ledger(lambda: None, lambda: None, capacity=2)
    rows = [ledger.open(f"r{i}", "/segment") for i in range(3)]
    assert ledger.in_flight == 3
    with ledger.gpu_stage(rows[0]), ledger.gpu_stage(rows[1]):
        assert ledger.in_gpu == 2
    assert (rows[0].gpu_depth, rows[1].gpu_depth) == (1, 2)
    for row in rows:
        ledger.close(row, 200)
    snapshot = ledger.snapshot()
    assert [r["request_id"] for r in snapshot["requests"]] == ["r1", "r2"]
    assert (snapshot["dropped"], snapshot["in_flight"], snapshot["in_gpu"]) == (1, 0, 0)
    ledger.reset()
    assert ledger.snapshot()["requests"] == [] and ledger.dropped == 0


def test_auto_without_cuda_chooses_u2netp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model, why = choose_model(ModelOptions())
    assert model == "u2netp" and "no CUDA" in why


def test_u2netp_gives_a_real_mask() -> None:
    backend = build_backend("u2netp", ModelOptions(model="u2netp", device="cpu"))
    assert backend.info.weights == "real" and backend.info.weights_source.endswith("u2netp.onnx")
    photo = (Path(__file__).parent / "data" / "photo.jpg").read_bytes()
    segmenter = Segmenter(backend, output="mask")
    prepared = segmenter.pre(photo)
    mask = segmenter.gpu([prepared])[0]
    assert mask.shape == (320, 320) and mask.min() >= 0 and mask.max() <= 1 and mask.std() > 0.05


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
