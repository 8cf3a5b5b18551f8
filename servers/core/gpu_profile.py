"""A measured GPU profile (batch curve, overlap curve, memory) and the maths that replays it.

A profile is what ``python -m servers.calibrate`` measured on one GPU: the wall time of the Segmenter's
GPU stage per batch size, the throughput when k unsynchronised calls overlap, and device memory per
image in flight up to the out-of-memory point or a cap; each median comes with its spread. The
simulated backend replays it so that a CPU machine can ask "what would that GPU do" while its own CPU
stages stay real. Pure and torch-free: reading, writing and replaying a profile needs no GPU.

Replay rules (docs/design.md §6), each one stated where it is computed:

- batch service time: piecewise-linear between the measured batch sizes; beyond the largest, the last
  measured segment's cost per image continues (never negative);
- overlap: with n calls in flight the device delivers ``speedup(n)`` times one call's throughput, taken
  from the measured images/s relative to the overlap table's own single-call row and interpolated
  linearly in n; beyond the largest n measured the device is saturated (speedup held), so each of
  the n calls takes ``n / speedup(n)`` times as long as alone — where ideal processor sharing says n;
- memory: the resident memory plus, per call in flight, what one call with that batch takes
  (piecewise-linear in images from zero images = resident, the last segment continued), shrunk by the
  measured share of that memory unsynchronised calls hold at once (measured with batch-1 calls, applied
  to calls of any size; held beyond the largest count); a load runs out of memory when it needs as much
  as the smallest batch that did, else more than the device has.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

FORMAT = "gvf-gpu-profile/1"
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


class ProfileError(ValueError):
    """A profile file or value that cannot be used, with what to fix."""


@dataclass(frozen=True)
class BatchPoint:
    """One GPU call with ``batch_size`` images: the Segmenter's GPU stage, wall time per call."""

    batch_size: int
    service_ms: float  # median
    service_ms_min: float
    service_ms_max: float
    calls: int  # timed calls behind the median


@dataclass(frozen=True)
class OverlapPoint:
    """``calls`` batch-1 calls in flight at once from as many threads, no lock (the naive server)."""

    calls: int
    images_per_s: float
    latency_ms: float  # median per call
    latency_ms_min: float | None  # None where the source did not record it
    latency_ms_max: float
    rounds: int  # rounds of ``calls`` simultaneous calls behind the figures
    peak_bytes: int | None  # peak device memory over the rounds; None without CUDA


@dataclass(frozen=True)
class MemoryPoint:
    """Peak device memory during one call with a batch of ``images``."""

    images: int
    peak_bytes: int


@dataclass(frozen=True)
class MemoryProfile:
    resident_bytes: int  # held with no call in flight (weights, workspace)
    capacity_bytes: int | None  # the device's total memory
    points: tuple[MemoryPoint, ...]
    oom_images: int | None  # the smallest batch that ran out of memory; None: the cap came first
    cap_images: int  # the largest batch the probe was allowed to try
    note: str  # how resident and capacity were obtained


@dataclass(frozen=True)
class GpuProfile:
    provenance: str  # who measured what, where, how: shown verbatim wherever the profile is
    origin: str  # whose measurement: this project's calibration, or facts measured elsewhere
    gpu: str
    torch: str
    model: str
    resolution: int
    dtype: str
    date: str  # ISO date of the measurement
    batch: tuple[BatchPoint, ...]
    overlap: tuple[OverlapPoint, ...]
    memory: MemoryProfile | None  # None where the device has no memory counters (CPU)
    notes: dict[str, Any] = field(default_factory=dict)  # further measured facts, kept verbatim
    format: str = FORMAT

    def __post_init__(self) -> None:
        _check_profile(self)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ProfileError(message)


def _check_spread(where: str, low: float | None, median: float, high: float) -> None:
    _require(median > 0, f"{where}: the median must be > 0, not {median}")
    _require(
        (low is None or low <= median) and median <= high,
        f"{where}: expected min <= median <= max, got {low} / {median} / {high}",
    )


def _check_ladder(where: str, values: Sequence[int]) -> None:
    _require(bool(values), f"{where}: no rows; measure at least one")
    _require(values[0] == 1, f"{where}: the first row must be 1 (the single-stream anchor), not {values[0]}")
    _require(
        all(a < b for a, b in pairwise(values)),
        f"{where}: sizes must be strictly increasing, got {list(values)}",
    )


def _check_format(value: object) -> None:
    _require(
        value == FORMAT,
        f"format is {value!r}, expected {FORMAT!r} "
        "(write a profile with python -m servers.calibrate --out FILE)",
    )


def _check_profile(profile: GpuProfile) -> None:
    _check_format(profile.format)
    _require(profile.resolution > 0, f"resolution must be > 0, not {profile.resolution}")
    _check_ladder("batch", [point.batch_size for point in profile.batch])
    for point in profile.batch:
        where = f"batch {point.batch_size}"
        _check_spread(where, point.service_ms_min, point.service_ms, point.service_ms_max)
        _require(point.calls >= 1, f"{where}: calls must be >= 1, not {point.calls}")
    _check_ladder("overlap", [point.calls for point in profile.overlap])
    for point in profile.overlap:
        where = f"overlap {point.calls}"
        _require(point.images_per_s > 0, f"{where}: images_per_s must be > 0, not {point.images_per_s}")
        _check_spread(where, point.latency_ms_min, point.latency_ms, point.latency_ms_max)
        _require(point.rounds >= 1, f"{where}: rounds must be >= 1, not {point.rounds}")
    memory = profile.memory
    if memory is None:
        return
    _require(memory.resident_bytes >= 0, f"memory: resident_bytes must be >= 0, not {memory.resident_bytes}")
    _require(
        memory.capacity_bytes is None or memory.capacity_bytes > memory.resident_bytes,
        f"memory: capacity_bytes {memory.capacity_bytes} must exceed resident_bytes {memory.resident_bytes}",
    )
    images = [point.images for point in memory.points]
    _check_ladder("memory points", images)
    for point in memory.points:
        _require(
            point.peak_bytes >= memory.resident_bytes,
            f"memory point {point.images}: peak_bytes {point.peak_bytes} is below resident_bytes",
        )
    _require(
        memory.oom_images is None or memory.oom_images > images[-1],
        f"memory: oom_images {memory.oom_images} must exceed the largest batch that fitted ({images[-1]})",
    )
    _require(memory.cap_images >= 1, f"memory: cap_images must be >= 1, not {memory.cap_images}")


# --- JSON ---------------------------------------------------------------------------------------


def _convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` (parsed JSON) as type ``hint``, or a ProfileError that names the field."""
    generic = get_origin(hint)
    if generic in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [option for option in options if option is not type(None)]
        return _convert(value, inner, where)
    if generic is tuple:
        _require(isinstance(value, list), f"{where}: expected a list, got {value!r:.60}")
        (item_hint, _ellipsis) = get_args(hint)
        return tuple(_convert(item, item_hint, f"{where}[{i}]") for i, item in enumerate(value))
    if generic is dict:
        _require(isinstance(value, dict), f"{where}: expected an object, got {value!r:.60}")
        return value
    if is_dataclass(hint):
        _require(isinstance(value, dict), f"{where}: expected an object, got {value!r:.60}")
        hints = get_type_hints(hint)
        names = {item.name for item in fields(hint)}
        unknown = sorted(set(value) - names)
        _require(not unknown, f"{where}: unknown field(s) {unknown}; expected {sorted(names)}")
        required = {item.name for item in fields(hint) if item.default is item.default_factory is MISSING}
        missing = sorted(required - set(value))
        _require(not missing, f"{where}: missing field(s) {missing}")
        prefix = f"{where}." if where else ""
        return hint(**{name: _convert(item, hints[name], f"{prefix}{name}") for name, item in value.items()})
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        _require(ok, f"{where}: expected a finite number, got {value!r:.60}")
        return float(value)
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        _require(ok, f"{where}: expected an integer, got {value!r:.60}")
        return value
    _require(isinstance(value, hint), f"{where}: expected {hint.__name__}, got {value!r:.60}")
    return value


def profile_from_dict(data: Any) -> GpuProfile:
    _require(isinstance(data, dict), f"expected a JSON object, got {type(data).__name__}")
    # before the fields: a file of another kind gets this message, not a list of unknown fields
    _check_format(data.get("format"))
    profile = _convert(data, GpuProfile, "")
    assert isinstance(profile, GpuProfile)
    return profile


def profile_to_dict(profile: GpuProfile) -> dict[str, Any]:
    return {"format": profile.format, **{k: v for k, v in asdict(profile).items() if k != "format"}}


def save_profile(profile: GpuProfile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile_to_dict(profile), indent=2) + "\n")


def load_profile(path: Path) -> GpuProfile:
    """Read and check a profile; any problem is a ProfileError naming the file and what to fix."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"GPU profile {path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ProfileError(f"GPU profile {path}: not JSON ({where}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(f"GPU profile {path}: not JSON text ({exc.reason} at byte {exc.start})") from exc
    try:
        return profile_from_dict(data)
    except ProfileError as exc:
        raise ProfileError(f"GPU profile {path}: {exc}") from exc


def shipped_profiles() -> dict[str, Path]:
    """The profiles in the repository, by file stem."""
    return {path.stem: path for path in sorted(PROFILES_DIR.glob("*.json"))}


def resolve_profile_path(name_or_path: str) -> Path:
    """A profile file: a path that exists, or the name of a shipped profile."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = shipped_profiles()
    if name_or_path in shipped:
        return shipped[name_or_path]
    raise ProfileError(
        f"GPU profile {name_or_path!r}: no such file, and no shipped profile of that name "
        f"(shipped: {', '.join(shipped) or 'none'}); measure one with python -m servers.calibrate --out FILE"
    )


def replay_label(profile: GpuProfile) -> str:
    """What every output of a replayed run says about where its GPU figures come from."""
    return (
        f"simulated from a profile measured on {profile.gpu} ({profile.model}, {profile.dtype}, "
        f"{profile.resolution}², {profile.date}; {profile.origin})"
    )


# --- replay -------------------------------------------------------------------------------------


def _interpolate(points: Sequence[tuple[float, float]], x: float, *, beyond: str) -> float:
    """Piecewise-linear through ``points`` (x strictly increasing, ``x`` >= the first).

    Beyond the last point: ``"extend"`` continues the last segment's slope (floored at 0), ``"hold"``
    keeps the last value. A single point extends as a line through the origin.
    """
    if x < points[0][0]:
        raise ValueError(f"{x} is below the first measured point {points[0][0]}")
    for (x0, y0), (x1, y1) in pairwise(points):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    last_x, last_y = points[-1]
    if beyond == "hold" or x == last_x:
        return last_y
    if len(points) == 1:
        return last_y * x / last_x
    before_x, before_y = points[-2]
    slope = max(0.0, (last_y - before_y) / (last_x - before_x))
    return last_y + slope * (x - last_x)


def batch_service_s(profile: GpuProfile, batch_size: int) -> float:
    """Seconds one call with ``batch_size`` images takes alone on the profiled GPU.

    Between measured sizes: linear. Beyond the largest: the last segment's cost per image continues
    (with batch 1 alone measured: no batching gain assumed, ``batch_size`` times batch 1).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, not {batch_size}")
    points = [(point.batch_size, point.service_ms) for point in profile.batch]
    return _interpolate(points, batch_size, beyond="extend") / 1000.0


def overlap_speedup(profile: GpuProfile, calls_in_flight: int) -> float:
    """The device's throughput with ``calls_in_flight`` overlapping calls, relative to one call alone.

    From the overlap table's images/s relative to its own single-call row (so a per-call overhead the
    table's method adds, such as thread start, scales every row alike), linear between measured
    counts, held beyond the largest (the device is saturated).
    """
    if calls_in_flight < 1:
        raise ValueError(f"calls in flight must be >= 1, not {calls_in_flight}")
    alone = profile.overlap[0].images_per_s
    points = [(point.calls, point.images_per_s / alone) for point in profile.overlap]
    return _interpolate(points, calls_in_flight, beyond="hold")


def overlap_slowdown(profile: GpuProfile, calls_in_flight: int) -> float:
    """How many times longer a call takes while ``calls_in_flight`` calls (itself included) overlap.

    Ideal processor sharing says ``calls_in_flight``; the measured curve says less where overlapping
    calls fill a launch-bound GPU better. A simulator advances each call in flight by
    ``elapsed / overlap_slowdown(profile, n)`` seconds of solo work.
    """
    return calls_in_flight / overlap_speedup(profile, calls_in_flight)


def _memory(profile: GpuProfile) -> MemoryProfile:
    if profile.memory is None:
        raise ProfileError(
            f"the profile measured on {profile.gpu} has no device-memory figures (no CUDA when it was "
            "measured): memory cannot be replayed from it"
        )
    return profile.memory


def _call_bytes(memory: MemoryProfile, images: int) -> float:
    """Memory one call with ``images`` images holds above the resident memory, at its peak."""
    points = [(0.0, float(memory.resident_bytes))]
    points += [(point.images, float(point.peak_bytes)) for point in memory.points]
    return _interpolate(points, images, beyond="extend") - memory.resident_bytes


def _overlap_memory_share(profile: GpuProfile, memory: MemoryProfile, calls: int) -> float:
    """Of the memory ``calls`` overlapping batch-1 calls would hold if each peaked at once, the measured
    share they held together (their peaks do not all coincide); held beyond the largest count measured,
    1 where the overlap rows carry no memory figure."""
    single = _call_bytes(memory, 1)
    points = [
        (point.calls, (point.peak_bytes - memory.resident_bytes) / (point.calls * single))
        for point in profile.overlap
        if point.peak_bytes is not None
    ]
    if not points or single <= 0 or points[0][0] != 1:
        return 1.0
    return _interpolate(points, calls, beyond="hold")


def memory_in_flight_bytes(profile: GpuProfile, batch_sizes: Sequence[int]) -> int:
    """Device memory while calls with these batch sizes (one entry per call) are in flight."""
    memory = _memory(profile)
    if any(size < 1 for size in batch_sizes):
        raise ValueError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    if not batch_sizes:
        return memory.resident_bytes
    held = sum(_call_bytes(memory, size) for size in batch_sizes)
    share = _overlap_memory_share(profile, memory, len(batch_sizes)) if len(batch_sizes) > 1 else 1.0
    return round(memory.resident_bytes + held * share)


def oom_threshold_bytes(profile: GpuProfile) -> int | None:
    """The modelled memory at which a load runs out: that of the smallest batch that did, else the
    device's capacity; ``None`` where neither is known."""
    memory = _memory(profile)
    if memory.oom_images is not None:
        return round(memory.resident_bytes + _call_bytes(memory, memory.oom_images))
    return memory.capacity_bytes


def would_oom(profile: GpuProfile, batch_sizes: Sequence[int]) -> bool:
    """Whether calls with these batch sizes, all in flight at once, run the profiled GPU out of memory."""
    threshold = oom_threshold_bytes(profile)
    return threshold is not None and memory_in_flight_bytes(profile, batch_sizes) >= threshold
