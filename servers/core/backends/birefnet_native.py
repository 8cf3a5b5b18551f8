"""The ``birefnet_native`` backend: the project's own BiRefNet (``birefnet_arch``) behind TorchBackend.

Weights come from one of two places, and ``info`` always says which:

- real: an official checkpoint, ``model.safetensors`` (preferred) or a ``.pth`` state dict,
  loaded with ``strict=True`` so a wrong or partial file fails loudly instead of producing
  plausible-looking masks;
- random (``--random-weights``): the deterministic weight recipe of
  ``shared/reference/birefnet-golden.md`` with generator seeds ``1000 + seed + i`` (``i`` the
  key's position in the state dict). ``seed=0`` gives exactly the recipe the golden logits
  were computed with. Same graph and cost as the real model; the masks are noise.

Dtype: float16 (``.half()``) on CUDA — not bfloat16, because torchvision's deformable conv has
no bfloat16 kernel — and float32 on CPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from servers.core.backends.base import BackendInfo
from servers.core.backends.birefnet_arch import VARIANTS, BiRefNet
from servers.core.backends.torch_base import TorchBackend, resolve_device

# Buffers that the model derives from its shape alone; the recipe leaves them as built.
_DERIVED_SUFFIXES = ("relative_position_index", "num_batches_tracked")
# Prefixes that DDP / torch.compile add to checkpoint keys; upstream strips them before loading.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")

_WEIGHTS_HELP = (
    "pass --weights DIR where DIR holds model.safetensors (or a .pth state dict) of "
    "ZhengPeng7/BiRefNet (variant large) or a Swin-T BiRefNet (variant lite), "
    "or pass --random-weights for an offline benchmark with the same graph and cost (noise masks)"
)


def recipe_state_dict(model: nn.Module, seed_base: int = 1000) -> dict[str, torch.Tensor]:
    """The golden weight recipe: one float32 generator per key, seeded ``seed_base + i``.

    ``i`` is the key's 0-based position in ``model.state_dict()`` (the fact sheet's order).
    Derived buffers (relative-position index, BN batch counter) are returned as the model has them.
    """
    out: dict[str, torch.Tensor] = {}
    for i, (name, current) in enumerate(model.state_dict().items()):
        if name.endswith(_DERIVED_SUFFIXES):
            out[name] = current.detach().clone()
            continue
        gen = torch.Generator().manual_seed(seed_base + i)
        shape = tuple(current.shape)
        if name.endswith("running_mean"):
            value = 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith("running_var"):
            value = 0.5 + torch.rand(shape, generator=gen)
        elif len(shape) >= 2:
            value = torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape[1:]))
        elif name.endswith(".weight"):
            value = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            value = 0.05 * torch.randn(shape, generator=gen)
        out[name] = value
    return out


def build_model(variant: str = "large") -> nn.Module:
    """An eval-mode BiRefNet of ``variant`` (``large`` = Swin-L, ``lite`` = Swin-T) with init weights."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown BiRefNet variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return BiRefNet(variant).eval()


def _find_checkpoint(weights_dir_or_file: str) -> Path:
    path = Path(weights_dir_or_file).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(
            f"BiRefNet weights: {path} is neither a file nor a directory; {_WEIGHTS_HELP}"
        )
    safetensors = path / "model.safetensors"
    if safetensors.is_file():
        return safetensors
    pth = sorted(p for p in path.glob("*.pth") if p.is_file())
    if len(pth) == 1:
        return pth[0]
    if len(pth) > 1:
        names = ", ".join(p.name for p in pth)
        raise FileNotFoundError(
            f"BiRefNet weights: {path} has no model.safetensors and several .pth files ({names}); "
            "pass --weights with the path of the one to use"
        )
    raise FileNotFoundError(
        f"BiRefNet weights: {path} holds neither model.safetensors nor a .pth file; {_WEIGHTS_HELP}"
    )


def _read_checkpoint(file: Path) -> dict[str, torch.Tensor]:
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file), device="cpu")
    # weights_only: a checkpoint is data, never code to run
    loaded = torch.load(str(file), map_location="cpu", weights_only=True)
    # training scripts sometimes nest the state dict one level down
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"BiRefNet weights: {file} is not a state dict of tensors")
    return loaded


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _first_few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def load_weights(model: nn.Module, weights_dir_or_file: str) -> str:
    """Load a checkpoint into ``model`` with ``strict=True``; returns the file used.

    A directory is searched for ``model.safetensors`` first, then a single ``.pth``.
    ``module.`` / ``_orig_mod.`` prefixes are stripped, as upstream does. Shape-derived buffers
    (``relative_position_index``, ``num_batches_tracked``) missing from the file are taken from
    the model, since they carry no learned information; every learned tensor must be present.
    """
    file = _find_checkpoint(weights_dir_or_file)
    state = _strip_wrappers(_read_checkpoint(file))
    own = model.state_dict()
    for name, value in own.items():
        if name.endswith(_DERIVED_SUFFIXES) and name not in state:
            state[name] = value
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        variant = getattr(model, "variant", "?")
        problems = {"missing": missing, "unexpected": unexpected, "wrong shape": wrong_shape}
        detail = "; ".join(f"{len(v)} {what}: {_first_few(v)}" for what, v in problems.items() if v)
        raise ValueError(
            f"BiRefNet weights: {file} does not match the {variant!r} variant ({detail}). "
            "Check --variant (large = Swin-L ZhengPeng7/BiRefNet, lite = Swin-T), "
            f"or {_WEIGHTS_HELP}"
        )
    model.load_state_dict(state, strict=True)
    return str(file)


class BiRefNetNativeBackend(TorchBackend):
    """The in-project BiRefNet as a backend: ``[B,3,R,R]`` normalised -> ``[B,R,R]`` sigmoid mask."""

    def __init__(
        self,
        *,
        weights: str | None,
        random_weights: bool,
        seed: int = 0,
        variant: str = "large",
        resolution: int = 1024,
        device: str = "auto",
    ) -> None:
        if resolution <= 0 or resolution % 32:
            raise ValueError(
                f"--resolution {resolution}: BiRefNet needs a positive multiple of 32 (e.g. 1024, 512, 256)"
            )
        if weights is None and not random_weights:
            raise ValueError(f"birefnet_native has no weights: {_WEIGHTS_HELP}")
        if weights is not None and random_weights:
            raise ValueError("birefnet_native: pass either --weights DIR or --random-weights, not both")
        model = build_model(variant)
        if weights is not None:
            source = load_weights(model, weights)
            kind = "real"
        else:
            seed_base = 1000 + seed
            model.load_state_dict(recipe_state_dict(model, seed_base=seed_base), strict=True)
            source = f"recipe seed {seed}"
            kind = "random"
        torch_device = resolve_device(device)
        # fp16, not bf16: torchvision's deform_conv2d has no bf16 kernel
        dtype = torch.float16 if torch_device.type == "cuda" else torch.float32
        super().__init__(model, torch_device, dtype)
        self.input_size = resolution
        self.info = BackendInfo(
            backend="birefnet_native",
            device=str(torch_device),
            weights=kind,
            weights_source=source,
            dtype=str(dtype).removeprefix("torch."),
            detail=f"variant={variant} resolution={resolution}",
        )

    def to_mask(self, output: object) -> torch.Tensor:
        if not isinstance(output, (list, tuple)) or not output:
            raise TypeError(f"BiRefNet returned {type(output).__name__}, expected a list of logits")
        logits = output[-1]
        assert isinstance(logits, torch.Tensor)
        return torch.sigmoid(logits).squeeze(1)
