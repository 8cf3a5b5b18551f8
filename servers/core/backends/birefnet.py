"""BiRefNet through transformers' remote code (``trust_remote_code=True``), as its model card shows.

``--weights`` takes a hub id (pinned to :data:`PINNED_REVISION` for ``ZhengPeng7/BiRefNet``) or
a local snapshot directory (``config.json``, the remote-code ``.py`` files, ``model.safetensors``).
fp16 on CUDA — the deformable convolution has no bf16 kernel — and fp32 on the CPU, asked
for explicitly because transformers 5 otherwise keeps the checkpoint's dtype.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from servers.core.backends.base import BackendInfo
from servers.core.backends.torch_base import TorchBackend, resolve_device

HUB_ID = "ZhengPeng7/BiRefNet"
# the hub revision this harness was written against (a public pin of ZhengPeng7/BiRefNet)
PINNED_REVISION = "26e7919b869d089e5096e898c0492898f935604c"
DEFAULT_RESOLUTION = 1024

FIXES = (
    "fixes: (1) pass --weights DIR, a local snapshot of ZhengPeng7/BiRefNet (config.json, the *.py "
    "remote-code files, model.safetensors), e.g. made elsewhere with "
    f"`huggingface-cli download ZhengPeng7/BiRefNet --revision {PINNED_REVISION} --local-dir DIR`; "
    "(2) put that snapshot in the Hugging Face cache (HF_HOME) of this machine; "
    "(3) use --model birefnet_native --weights DIR (model.safetensors, no remote code) or "
    "--model birefnet_native --random-weights for a benchmark with the same graph and noise masks"
)


class WeightsUnavailable(RuntimeError):
    """The BiRefNet weights could not be resolved; the message names the fixes."""


def check_resolution(resolution: int) -> int:
    if resolution <= 0 or resolution % 32:
        raise ValueError(f"--resolution must be a positive multiple of 32, not {resolution}")
    return resolution


class BiRefNetBackend(TorchBackend):
    def __init__(
        self, weights: str | None = None, device: str = "auto", resolution: int = DEFAULT_RESOLUTION
    ) -> None:
        from transformers import AutoModelForImageSegmentation

        source = weights or HUB_ID
        is_local = Path(source).is_dir()
        revision = None if is_local else (PINNED_REVISION if source == HUB_ID else None)
        resolved = resolve_device(device)
        dtype = torch.float16 if resolved.type == "cuda" else torch.float32
        try:
            module = AutoModelForImageSegmentation.from_pretrained(
                source, trust_remote_code=True, revision=revision, dtype=dtype
            )
        except (OSError, ValueError) as exc:
            raise WeightsUnavailable(
                f"BiRefNet weights from {source!r} could not be loaded: {exc}\n{FIXES}"
            ) from exc
        super().__init__(module, resolved, dtype)
        self.input_size = check_resolution(resolution)
        label = str(Path(source).resolve()) if is_local else f"{source}@{revision or 'default branch'}"
        self.info = BackendInfo(
            backend="birefnet",
            device=str(resolved),
            weights="real",
            weights_source=label,
            dtype=str(dtype).removeprefix("torch."),
            detail=f"transformers remote code, resolution={resolution}",
        )

    def to_mask(self, output: object) -> torch.Tensor:
        logits = output[-1] if isinstance(output, list | tuple) else output
        assert isinstance(logits, torch.Tensor)
        return logits.sigmoid()[:, 0]


def weights_resolvable(weights: str | None, hub_timeout_s: float = 3.0) -> tuple[bool, str]:
    """Can ``birefnet`` load without waiting long? (local dir, local cache, or a hub that answers)."""
    if weights and Path(weights).exists():
        if (Path(weights) / "config.json").is_file():
            return True, f"local snapshot {weights}"
        # a bare checkpoint (model.safetensors or .pth, or a folder of one) is birefnet_native's
        return (
            False,
            f"{weights} is not a transformers snapshot (no config.json), so the native model loads it",
        )
    repo = weights or HUB_ID
    try:
        from huggingface_hub import try_to_load_from_cache

        # the weights themselves, not just config.json, must be cached
        cached = try_to_load_from_cache(
            repo, "model.safetensors", revision=PINNED_REVISION if repo == HUB_ID else None
        )
        if isinstance(cached, str):
            return True, f"local Hugging Face cache for {repo}"
    except (ImportError, ValueError):  # ValueError: not a valid repo id
        pass
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False, "HF_HUB_OFFLINE=1 and no local snapshot"
    import urllib.request

    try:
        urllib.request.urlopen(f"https://huggingface.co/api/models/{repo}", timeout=hub_timeout_s).close()
        return True, f"hub answered for {repo}"
    except OSError as exc:
        return (
            False,
            f"no local snapshot and the hub did not answer in {hub_timeout_s:g} s ({exc.__class__.__name__})",
        )
