"""The backend registry and the one ``auto`` rule (docs/design.md §6).

``auto``: with CUDA, ``birefnet`` when its weights resolve (local snapshot, local cache, or a
hub that answers within seconds), otherwise ``birefnet_native --random-weights`` (same graph,
same cost, noise masks); without CUDA, ``u2netp``. The reason is returned so that the
startup line and run.json can say why.
"""

from __future__ import annotations

from dataclasses import dataclass

from servers.core.backends.base import Backend

MODELS = ("auto", "sim", "u2netp", "birefnet", "birefnet_native")


@dataclass(frozen=True)
class ModelOptions:
    model: str = "auto"
    weights: str | None = None
    device: str = "auto"
    sim_ms: float = 50.0
    sim_memory_gb: float | None = None  # the simulated GPU's capacity; None: unbounded (or the profile's)
    sim_profile: str | None = None  # a GPU profile file, or a shipped profile's name, to replay
    random_weights: bool = False
    seed: int = 0
    variant: str = "large"
    resolution: int = 1024


def choose_model(options: ModelOptions) -> tuple[str, str]:
    """The concrete model ``options`` ask for, and why it was chosen."""
    if options.model != "auto":
        return options.model, f"--model {options.model}"
    import torch

    if options.device == "cpu" or not torch.cuda.is_available():
        return "u2netp", "auto: no CUDA, so the embedded real CPU model"
    if options.random_weights:
        return "birefnet_native", "auto: CUDA and --random-weights"
    from servers.core.backends.birefnet import weights_resolvable

    resolvable, why = weights_resolvable(options.weights)
    if resolvable:
        return "birefnet", f"auto: CUDA and BiRefNet weights resolve ({why})"
    return "birefnet_native", f"auto: CUDA but no BiRefNet weights ({why}), so random weights"


def build_backend(model: str, options: ModelOptions) -> Backend:
    """Construct (and load) the concrete backend ``model``."""
    if model == "sim":
        from servers.core.backends.sim import ProfiledDevice, SimBackend

        capacity = None if options.sim_memory_gb is None else int(options.sim_memory_gb * 1e9)
        if options.sim_profile is None:
            return SimBackend(options.sim_ms, capacity_bytes=capacity)
        from servers.core.gpu_profile import load_profile, resolve_profile_path

        path = resolve_profile_path(options.sim_profile)  # a ProfileError is a ValueError: said to the user
        return SimBackend(device=ProfiledDevice(load_profile(path), path, capacity))
    if model == "u2netp":
        from servers.core.backends.u2netp import U2NetPBackend

        return U2NetPBackend(options.device)
    if model == "birefnet":
        from servers.core.backends.birefnet import BiRefNetBackend

        return BiRefNetBackend(options.weights, options.device, options.resolution)
    if model == "birefnet_native":
        from servers.core.backends.birefnet_native import BiRefNetNativeBackend

        return BiRefNetNativeBackend(
            weights=options.weights,
            # auto falls back to random weights only when no weights were named
            random_weights=options.random_weights or (options.model == "auto" and options.weights is None),
            seed=options.seed,
            variant=options.variant,
            resolution=options.resolution,
            device=options.device,
        )
    raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
