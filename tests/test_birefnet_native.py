"""The in-project BiRefNet: checkpoint layout, golden logits, weight loading and the backend contract.

Reads only ``tests/data/birefnet/`` (copies of ``shared/reference/birefnet_state_dict_shapes.json``
and ``birefnet_golden.npz``): the fact sheet pins key names, order and shapes so official
checkpoints load strictly; the golden logits were computed by upstream BiRefNet with the
recipe weights, so matching them shows the forward computes the upstream function.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from servers.core.backends.birefnet_native import (
    BiRefNetNativeBackend,
    build_model,
    load_weights,
    recipe_state_dict,
)

DATA = Path(__file__).parent / "data" / "birefnet"
KEY_SETS = {"large": "swin_v1_l", "lite": "swin_v1_t"}
SMALL = 64  # smallest side that still exercises every stage cheaply (multiple of 32)


@pytest.fixture(scope="module")
def fact_sheet() -> dict[str, dict[str, object]]:
    return json.loads((DATA / "birefnet_state_dict_shapes.json").read_text())


@pytest.fixture(scope="module")
def lite_recipe_model() -> torch.nn.Module:
    model = build_model("lite")
    model.load_state_dict(recipe_state_dict(model), strict=True)
    return model


@pytest.fixture(scope="module")
def lite_backend() -> BiRefNetNativeBackend:
    return BiRefNetNativeBackend(
        weights=None, random_weights=True, variant="lite", resolution=SMALL, device="cpu"
    )


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("variant", ["lite", "large"])
def test_state_dict_keys_order_and_shapes_match_fact_sheet(variant: str, fact_sheet: dict) -> None:
    sheet = fact_sheet[KEY_SETS[variant]]
    model = build_model(variant)
    got = [(name, list(t.shape)) for name, t in model.state_dict().items()]
    assert got == list(sheet["keys"].items())
    assert sum(p.numel() for p in model.parameters()) == sheet["params"]


@pytest.mark.parametrize("name", ["lite_128", "lite_224", "large_128"])
def test_golden_logits(name: str) -> None:
    variant, side = name.split("_")
    resolution = int(side)
    model = build_model(variant)
    model.load_state_dict(recipe_state_dict(model), strict=True)
    x = torch.randn(1, 3, resolution, resolution, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        out = model(x)
    assert isinstance(out, list)
    logits = out[-1]
    assert logits.shape == (1, 1, resolution, resolution)
    expected = np.load(DATA / "birefnet_golden.npz")[name]
    diff = float(np.abs(logits[0, 0].numpy() - expected).max())
    assert diff <= 1e-3, f"{name}: max abs diff {diff}"


def test_strict_load_from_safetensors_dir(tmp_path: Path, lite_recipe_model: torch.nn.Module) -> None:
    state = lite_recipe_model.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    fresh = build_model("lite")
    used = load_weights(fresh, str(tmp_path))
    assert used == str(tmp_path / "model.safetensors")
    assert _same_state(fresh.state_dict(), state)


def test_strict_load_from_pth_dir_and_file(tmp_path: Path, lite_recipe_model: torch.nn.Module) -> None:
    state = lite_recipe_model.state_dict()
    # DDP-style prefix, as some upstream training checkpoints carry
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "BiRefNet-lite.pth")
    fresh = build_model("lite")
    assert load_weights(fresh, str(tmp_path)) == str(tmp_path / "BiRefNet-lite.pth")
    assert _same_state(fresh.state_dict(), state)
    again = build_model("lite")
    assert load_weights(again, str(tmp_path / "BiRefNet-lite.pth")) == str(tmp_path / "BiRefNet-lite.pth")
    assert _same_state(again.state_dict(), state)


def test_backend_with_real_weights_reports_the_file(
    tmp_path: Path, lite_recipe_model: torch.nn.Module
) -> None:
    torch.save(lite_recipe_model.state_dict(), tmp_path / "w.pth")
    backend = BiRefNetNativeBackend(
        weights=str(tmp_path), random_weights=False, variant="lite", resolution=SMALL, device="cpu"
    )
    assert backend.info.weights == "real"
    assert backend.info.weights_source == str(tmp_path / "w.pth")


def test_missing_weights_dir_is_a_clear_error(tmp_path: Path) -> None:
    model = build_model("lite")
    for where in (tmp_path / "nowhere", tmp_path):  # a missing dir, and a dir with no checkpoint
        with pytest.raises(FileNotFoundError) as err:
            load_weights(model, str(where))
        assert "model.safetensors" in str(err.value) and "--random-weights" in str(err.value)


def test_checkpoint_with_a_wrong_key_is_a_clear_error(
    tmp_path: Path, lite_recipe_model: torch.nn.Module
) -> None:
    state = dict(lite_recipe_model.state_dict())
    state["decoder.conv_out1.1.weight"] = state.pop("decoder.conv_out1.0.weight")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError) as err:
        load_weights(build_model("lite"), str(tmp_path))
    message = str(err.value)
    assert "decoder.conv_out1.0.weight" in message and "decoder.conv_out1.1.weight" in message
    assert "--variant" in message


def test_large_checkpoint_into_lite_names_the_variant(tmp_path: Path) -> None:
    state = {k: torch.zeros(v) for k, v in [("bb.patch_embed.proj.weight", (192, 3, 4, 4))]}
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="wrong shape"):
        load_weights(build_model("lite"), str(tmp_path))


def test_backend_info_and_mask(lite_backend: BiRefNetNativeBackend) -> None:
    info = lite_backend.info
    assert (info.backend, info.weights, info.weights_source) == ("birefnet_native", "random", "recipe seed 0")
    assert (info.device, info.dtype) == ("cpu", "float32")
    assert info.detail == f"variant=lite resolution={SMALL}"
    assert lite_backend.input_size == SMALL
    x = np.random.default_rng(0).standard_normal((1, 3, SMALL, SMALL)).astype(np.float32)
    mask = lite_backend.infer(x)
    assert mask.shape == (1, SMALL, SMALL) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0


def test_batch_of_two_equals_two_single_calls(lite_backend: BiRefNetNativeBackend) -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, SMALL, SMALL)).astype(np.float32)
    both = lite_backend.infer(x)
    singles = np.concatenate([lite_backend.infer(x[:1]), lite_backend.infer(x[1:])])
    assert both.shape == (2, SMALL, SMALL)
    np.testing.assert_allclose(both, singles, rtol=0, atol=1e-5)


@pytest.mark.parametrize("resolution", [1000, 100, 0])
def test_resolution_not_a_multiple_of_32_is_refused(resolution: int) -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        BiRefNetNativeBackend(weights=None, random_weights=True, variant="lite", resolution=resolution)


def test_model_refuses_input_not_a_multiple_of_32(lite_recipe_model: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="multiple of 32"), torch.inference_mode():
        lite_recipe_model(torch.zeros(1, 3, 96, 100))


def test_no_weights_names_the_fixes() -> None:
    with pytest.raises(ValueError) as err:
        BiRefNetNativeBackend(weights=None, random_weights=False, variant="lite", resolution=SMALL)
    assert "--weights DIR" in str(err.value) and "model.safetensors" in str(err.value)
    assert "--random-weights" in str(err.value)


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="variant"):
        build_model("huge")


def test_random_weights_are_deterministic_per_seed(lite_backend: BiRefNetNativeBackend) -> None:
    model = build_model("lite")
    same = recipe_state_dict(model, seed_base=1003)
    assert _same_state(same, recipe_state_dict(build_model("lite"), seed_base=1003))
    assert not torch.equal(
        same["bb.patch_embed.proj.weight"], recipe_state_dict(model)["bb.patch_embed.proj.weight"]
    )

    x = np.random.default_rng(2).standard_normal((1, 3, SMALL, SMALL)).astype(np.float32)
    twin = BiRefNetNativeBackend(
        weights=None, random_weights=True, seed=0, variant="lite", resolution=SMALL, device="cpu"
    )
    np.testing.assert_array_equal(twin.infer(x), lite_backend.infer(x))
    other = BiRefNetNativeBackend(
        weights=None, random_weights=True, seed=3, variant="lite", resolution=SMALL, device="cpu"
    )
    assert other.info.weights_source == "recipe seed 3"
    assert _same_state(other.module.state_dict(), same)  # seed N is recipe seed_base 1000 + N
    assert not np.array_equal(other.infer(x), lite_backend.infer(x))
