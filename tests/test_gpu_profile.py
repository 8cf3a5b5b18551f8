"""The GPU profile: file round trip, clear errors for bad files, and the replay maths against the
shipped H100 profile's own numbers (single stream, each batch size, each overlap count, memory)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from servers.core.gpu_profile import (
    PROFILES_DIR,
    GpuProfile,
    MemoryPoint,
    ProfileError,
    batch_service_s,
    load_profile,
    memory_in_flight_bytes,
    oom_threshold_bytes,
    overlap_slowdown,
    overlap_speedup,
    profile_to_dict,
    replay_label,
    resolve_profile_path,
    save_profile,
    would_oom,
)

H100 = PROFILES_DIR / "h100-birefnet-swinl-fp16-1024.json"
GIB = 2**30


@pytest.fixture(scope="module")
def h100() -> GpuProfile:
    return load_profile(H100)


def replay_finish_s(profile: GpuProfile, batch_sizes: list[int]) -> list[float]:
    """Calls that all start at 0, replayed the way the simulated backend advances its clock: while n
    calls are in flight each does ``elapsed / overlap_slowdown(n)`` seconds of its solo work."""
    remaining = {i: batch_service_s(profile, size) for i, size in enumerate(batch_sizes)}
    finished: dict[int, float] = {}
    now = 0.0
    while remaining:
        rate = 1.0 / overlap_slowdown(profile, len(remaining))
        step = min(remaining.values()) / rate
        now += step
        for call in list(remaining):
            remaining[call] -= step * rate
            if remaining[call] <= 1e-12:
                finished[call] = now
                del remaining[call]
    return [finished[call] for call in range(len(batch_sizes))]


def batch_peaks(profile: GpuProfile, *images: int) -> list[int]:
    assert profile.memory is not None
    peaks = {point.images: point.peak_bytes for point in profile.memory.points}
    return [peaks[count] for count in images]


# --- the file --------------------------------------------------------------------------------------


def test_the_shipped_profile_keeps_its_provenance_and_says_where_it_was_measured(h100: GpuProfile) -> None:
    assert h100.provenance.startswith("Measured 2026-11-27 on one NVIDIA H100 80GB HBM3, torch 2.11.0+cu130")
    assert "not this project's own measurement" in h100.provenance
    label = replay_label(h100)
    assert label.startswith("simulated from a profile measured on NVIDIA H100 80GB HBM3")
    assert "not this project's measurement" in label
    assert (h100.gpu, h100.dtype, h100.resolution) == ("NVIDIA H100 80GB HBM3", "float16", 1024)


def test_round_trip_keeps_every_field(tmp_path: Path, h100: GpuProfile) -> None:
    save_profile(h100, tmp_path / "copy.json")
    assert load_profile(tmp_path / "copy.json") == h100
    cpu = dataclasses.replace(h100, gpu="CPU: test", memory=None, notes={})
    save_profile(cpu, tmp_path / "nested" / "cpu.json")
    assert load_profile(tmp_path / "nested" / "cpu.json") == cpu


def _edited(profile: GpuProfile, edit: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(profile_to_dict(profile)))
    edit(data)
    return data


BAD_FILES = {
    "not JSON": (b"{not json", "not JSON (line 1, column 2"),
    "another kind of file": (b'{"device": "NVIDIA H100", "batch": {"rows": []}}', "format is None, expected"),
    "a list": (b"[1, 2]", "expected a JSON object"),
    "binary": (b"\x89PNG\r\n\x1a\n\xff\xfe", "not JSON text"),
}
BAD_EDITS = {
    "a missing field": (lambda d: d.pop("gpu"), "missing field(s) ['gpu']"),
    "an unknown field": (lambda d: d["batch"][0].update(ms=1.0), "batch[0]: unknown field(s) ['ms']"),
    "text for a number": (lambda d: d["batch"][1].update(service_ms="x"), "batch[1].service_ms: expected a"),
    "a bool for an integer": (lambda d: d.update(resolution=True), "resolution: expected an integer"),
    "no batch-1 anchor": (lambda d: d["batch"].pop(0), "batch: the first row must be 1"),
    "a median outside its spread": (
        lambda d: d["batch"][2].update(service_ms_min=500.0),
        "batch 4: expected min <= median <= max",
    ),
    "unsorted overlap": (lambda d: d["overlap"].reverse(), "overlap: the first row must be 1"),
    "memory below resident": (
        lambda d: d["memory"]["points"][0].update(peak_bytes=1),
        "memory point 1: peak_bytes 1 is below resident_bytes",
    ),
    "an OOM point that fitted": (lambda d: d["memory"].update(oom_images=4), "oom_images 4 must exceed"),
}


@pytest.mark.parametrize("case", [*BAD_FILES, *BAD_EDITS])
def test_a_bad_file_gets_an_error_naming_the_file_and_what_to_fix(
    tmp_path: Path, h100: GpuProfile, case: str
) -> None:
    path = tmp_path / "bad.json"
    if case in BAD_FILES:
        content, expected = BAD_FILES[case]
        path.write_bytes(content)
    else:
        edit, expected = BAD_EDITS[case]
        path.write_text(json.dumps(_edited(h100, edit)))
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert str(caught.value).startswith(f"GPU profile {path}: ")
    assert expected in str(caught.value)


def test_a_missing_file_and_an_unknown_name_say_what_exists(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read it"):
        load_profile(tmp_path / "absent.json")
    with pytest.raises(ProfileError, match=r"shipped: h100-birefnet-swinl-fp16-1024\).*servers\.calibrate"):
        resolve_profile_path("a100")
    assert resolve_profile_path("h100-birefnet-swinl-fp16-1024") == H100
    assert resolve_profile_path(str(H100)) == H100


# --- replay against the profile's own numbers -----------------------------------------------------


def test_single_stream_replays_batch_one(h100: GpuProfile) -> None:
    assert batch_service_s(h100, 1) == pytest.approx(0.11943, rel=0.05)
    assert replay_finish_s(h100, [1]) == [pytest.approx(0.11943, rel=0.05)]
    assert overlap_slowdown(h100, 1) == 1.0


def test_each_measured_batch_size_replays_its_median(h100: GpuProfile) -> None:
    for point in h100.batch:
        assert batch_service_s(h100, point.batch_size) == pytest.approx(point.service_ms / 1000, rel=0.05)


def test_each_measured_overlap_count_replays_its_throughput_gain(h100: GpuProfile) -> None:
    alone = h100.overlap[0].images_per_s
    replayed_alone = 1 / replay_finish_s(h100, [1])[0]
    for point in h100.overlap:
        makespan = max(replay_finish_s(h100, [1] * point.calls))
        replayed_gain = point.calls / makespan / replayed_alone
        assert replayed_gain == pytest.approx(point.images_per_s / alone, rel=0.05)
    # launch-bound at batch 1: overlapping calls slow each other down less than processor sharing says
    assert 1 < overlap_slowdown(h100, 8) < 8


def test_memory_replays_each_batch_peak_and_each_overlap_peak(h100: GpuProfile) -> None:
    assert h100.memory is not None
    for point in h100.memory.points:
        assert memory_in_flight_bytes(h100, [point.images]) == pytest.approx(point.peak_bytes, rel=0.05)
    for point in h100.overlap:
        assert point.peak_bytes is not None
        assert memory_in_flight_bytes(h100, [1] * point.calls) == pytest.approx(point.peak_bytes, rel=0.05)
    assert memory_in_flight_bytes(h100, []) == h100.memory.resident_bytes


# --- between and beyond the measured points --------------------------------------------------------


def test_between_measured_points_is_linear(h100: GpuProfile) -> None:
    assert batch_service_s(h100, 3) == pytest.approx((0.12579 + 0.17308) / 2)
    assert 0.17308 < batch_service_s(h100, 6) < 0.33209
    speedup_2, speedup_4 = overlap_speedup(h100, 2), overlap_speedup(h100, 4)
    assert overlap_speedup(h100, 3) == pytest.approx((speedup_2 + speedup_4) / 2)
    peak_4, peak_8 = batch_peaks(h100, 4, 8)
    assert memory_in_flight_bytes(h100, [6]) == pytest.approx((peak_4 + peak_8) / 2, abs=1)


def test_beyond_the_largest_point_the_last_segment_continues(h100: GpuProfile) -> None:
    per_image = (0.33209 - 0.17308) / 4
    assert batch_service_s(h100, 16) == pytest.approx(0.33209 + 8 * per_image)
    # the device is saturated beyond the largest overlap count: throughput held, each call slower
    assert overlap_speedup(h100, 16) == overlap_speedup(h100, 8)
    assert overlap_slowdown(h100, 16) == pytest.approx(2 * overlap_slowdown(h100, 8))
    peak_4, peak_8 = batch_peaks(h100, 4, 8)
    assert memory_in_flight_bytes(h100, [16]) == pytest.approx(peak_8 + 2 * (peak_8 - peak_4), abs=1)


def test_extrapolation_never_runs_backwards_and_one_point_assumes_no_batching_gain(h100: GpuProfile) -> None:
    faster_at_8 = dataclasses.replace(h100.batch[3], service_ms=170.0, service_ms_min=169.0)
    noisy = dataclasses.replace(h100, batch=(*h100.batch[:3], faster_at_8))
    assert batch_service_s(noisy, 16) == pytest.approx(0.170)
    single = dataclasses.replace(h100, batch=h100.batch[:1])
    assert batch_service_s(single, 4) == pytest.approx(4 * 0.11943)
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        batch_service_s(h100, 0)
    with pytest.raises(ValueError, match="calls in flight must be >= 1"):
        overlap_slowdown(h100, 0)


def test_out_of_memory_at_capacity_or_at_the_measured_cliff(h100: GpuProfile) -> None:
    assert h100.memory is not None and h100.memory.oom_images is None
    assert oom_threshold_bytes(h100) == h100.memory.capacity_bytes
    assert not would_oom(h100, [64]) and would_oom(h100, [70])  # ~1.15 GiB per image on 80 GB
    assert not would_oom(h100, [1] * 64)  # unsynchronised calls' peaks do not all coincide
    assert not would_oom(h100, [8] * 8) and would_oom(h100, [8] * 16)
    cliff = dataclasses.replace(
        h100.memory, points=(*h100.memory.points, MemoryPoint(16, 18 * GIB)), oom_images=32
    )
    measured = dataclasses.replace(h100, memory=cliff)
    assert not would_oom(measured, [16]) and would_oom(measured, [32])
    assert not would_oom(measured, [16, 16]) and would_oom(measured, [16] * 4)  # overlap share again
    cpu = dataclasses.replace(h100, memory=None)
    with pytest.raises(ProfileError, match="no device-memory figures"):
        would_oom(cpu, [1])
