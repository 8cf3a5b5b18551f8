"""What every document and figure says about the run itself: model, weights, device, warnings.

The model line, the figure footers (loud where the numbers are not a real GPU measurement:
a simulated GPU, random weights, no model recorded), the warnings every document carries,
and whether several runs may share an axis (docs/design.md §6).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reports.load import LoadedRun

# What must match before two runs may share an axis.
COMPARABLE_KEYS: tuple[str, ...] = ("backend", "device", "weights")


def model_line(run: LoadedRun) -> str:
    model = run.model
    detail = f" ({model['detail']})" if model.get("detail") else ""
    return (
        f"Model: {model.get('backend', 'not recorded')}{detail} · weights: "
        f"{model.get('weights', 'not recorded')} · "
        f"device: {model.get('device', 'not recorded')} · dtype: {model.get('dtype', 'not recorded')}"
    )


def _is_simulated(model: dict[str, Any]) -> bool:
    return model.get("backend") == "sim" or model.get("device") == "simulated"


def _has_random_weights(model: dict[str, Any]) -> bool:
    return "random" in str(model.get("weights", "")).lower()


def figure_footer(run: LoadedRun) -> str:
    """What every figure of the run carries: model · weights · device (docs/design.md §6), e.g.
    "u2netp · real weights · cpu", "sim · SIMULATED GPU — not a real GPU",
    "birefnet_native · RANDOM weights · cuda:0"."""
    model = run.model
    if not model:
        return "model not recorded — backend, weights and device unknown"
    backend = str(model.get("backend") or "backend not recorded")
    if _is_simulated(model):
        return f"{backend} · SIMULATED GPU — not a real GPU"
    weights = str(model.get("weights") or "not recorded")
    if _has_random_weights(model):
        weights_text = "RANDOM weights"
    elif weights.lower() == "real":
        weights_text = "real weights"
    else:
        weights_text = f"weights: {weights}"
    return f"{backend} · {weights_text} · {model.get('device') or 'device not recorded'}"


def footer_is_loud(run: LoadedRun) -> bool:
    """Whether the footer must stand out: a simulated GPU, random weights or no model recorded."""
    return not run.model or _is_simulated(run.model) or _has_random_weights(run.model)


def comparison_footer(runs: Sequence[LoadedRun]) -> str:
    """Each run's label, for a figure that puts several runs on one axis."""
    return "; ".join(f"{run.run_id}: {figure_footer(run)}" for run in runs)


def warnings_for(run: LoadedRun) -> list[str]:
    """Loud statements every document must carry for this run."""
    model = run.model
    found = []
    if _is_simulated(model):
        found.append(
            "SIMULATED GPU — not a real GPU measurement: the sim backend computes no model; its times "
            "are configured."
        )
    if _has_random_weights(model):
        found.append("RANDOM WEIGHTS — the masks are noise; only the timings mean anything.")
    if not model:
        found.append("The run recorded no model: backend, weights and device are unknown.")
    if str(model.get("device", "")).startswith("cpu"):
        servers = (run.meta.get("servers") or {}).items()
        threads = ", ".join(f"{kind} {s.get('torch_threads', '?')}" for kind, s in servers)
        found.append(
            "CPU run: a 'collision' is thread oversubscription, not a GPU effect "
            f"(server torch threads: {threads or 'not recorded'})."
        )
    return found


def comparability(runs: Sequence[LoadedRun]) -> list[str]:
    """What differs between runs among backend / device / weights (empty when comparable)."""
    differing = []
    for key in COMPARABLE_KEYS:
        values = {str(run.model.get(key, "not recorded")) for run in runs}
        if len(values) > 1:
            differing.append(f"{key}: {' / '.join(sorted(values))}")
    return differing
