"""``python -m servers.calibrate``: the whole measurement path on the CPU (lite variant, 64²), started
as a user does (``gvf calibrate``), its argument errors, and how it recognises running out of device
memory; the memory probe on CUDA."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from servers.calibrate import is_out_of_memory, parse_args
from servers.core.gpu_profile import GpuProfile, batch_service_s, load_profile, replay_label, would_oom

ROOT = Path(__file__).resolve().parents[1]


def gvf_calibrate(*args: str) -> subprocess.CompletedProcess[str]:
    """``gvf calibrate ARGS``: the load generator's CLI, which runs ``python -m servers.calibrate``."""
    return subprocess.run(
        [sys.executable, "-m", "loadtests.cli", "calibrate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def calibrate(out: Path, *args: str) -> GpuProfile:
    done = gvf_calibrate("--out", str(out), "--variant", "lite", *args)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"wrote {out}" in done.stdout
    return load_profile(out)


def test_gvf_calibrate_hands_its_flags_to_servers_calibrate(tmp_path: Path) -> None:
    done = gvf_calibrate("--out", str(tmp_path / "x.json"), "--iters", "0")
    assert done.returncode == 2 and "--iters must be >= 1, not 0" in done.stderr
    assert "python -m servers.calibrate" in done.stderr  # its usage line: the module ran, not gvf
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_calibrate_on_the_cpu_writes_a_profile_the_replay_reads(tmp_path: Path) -> None:
    profile = calibrate(
        tmp_path / "cpu.json",
        *("--resolution", "64", "--device", "cpu", "--batches", "1,2,4", "--overlap", "1,2,4"),
        *("--warmup", "1", "--iters", "2", "--rounds", "1"),
    )
    assert [point.batch_size for point in profile.batch] == [1, 2, 4]
    assert [point.calls for point in profile.batch] == [2, 2, 2]
    assert [point.calls for point in profile.overlap] == [1, 2, 4]
    assert profile.memory is None  # no device memory on a CPU, and no probe beyond the table
    assert all(point.peak_bytes is None for point in profile.overlap)
    assert profile.gpu.startswith("CPU: ") and profile.dtype == "float32" and profile.resolution == 64
    assert "random weights" in profile.model and "variant=lite" in profile.model
    assert "python -m servers.calibrate" in profile.provenance
    assert "Segmenter's GPU stage" in profile.provenance
    assert replay_label(profile).startswith(f"simulated from a profile measured on {profile.gpu}")
    assert "this project's measurement" in replay_label(profile)
    assert batch_service_s(profile, 1) == profile.batch[0].service_ms / 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batches", "2,4"], "start at 1 and increase strictly"),
        (["--overlap", "1,4,2"], "start at 1 and increase strictly"),
        (["--batches", "1,x"], "not a comma-separated list of integers"),
        (["--iters", "0"], "--iters must be >= 1, not 0"),
        (["--memory-cap-images", "0"], "--memory-cap-images must be >= 1"),
        (["--memory-limit-gb", "-1"], "--memory-limit-gb must be > 0"),
    ],
)
def test_bad_arguments_are_refused_with_what_to_fix(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--out", "x.json", *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_out_of_memory_is_recognised_raised_as_is_or_wrapped() -> None:
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert is_out_of_memory(oom)
    try:
        try:
            raise oom
        except torch.OutOfMemoryError as exc:
            raise RuntimeError("the GPU ran out of memory") from exc
    except RuntimeError as wrapped:
        assert is_out_of_memory(wrapped)
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.gpu
def test_calibrate_on_cuda_probes_memory_beyond_the_table(tmp_path: Path) -> None:
    profile = calibrate(
        tmp_path / "cuda.json",
        *("--resolution", "256", "--device", "cuda", "--batches", "1,2", "--overlap", "1,2"),
        *("--warmup", "1", "--iters", "3", "--rounds", "2", "--memory-cap-images", "8"),
    )
    assert profile.dtype == "float16" and not profile.gpu.startswith("CPU")
    assert profile.memory is not None
    assert [point.images for point in profile.memory.points] == [1, 2, 4, 8]
    assert [point.batch_size for point in profile.batch] == [1, 2, 4, 8]
    assert profile.memory.cap_images == 8 and profile.memory.oom_images is None
    assert profile.memory.capacity_bytes == torch.cuda.get_device_properties(0).total_memory
    peaks = [point.peak_bytes for point in profile.memory.points]
    assert profile.memory.resident_bytes < peaks[0] < peaks[-1]
    assert all(point.peak_bytes is not None for point in profile.overlap)


@pytest.mark.gpu
def test_calibrate_on_cuda_finds_the_out_of_memory_cliff_under_a_memory_limit(tmp_path: Path) -> None:
    profile = calibrate(
        tmp_path / "cliff.json",
        *("--resolution", "512", "--device", "cuda", "--batches", "1", "--overlap", "1"),
        *("--warmup", "1", "--iters", "2", "--rounds", "1", "--memory-cap-images", "4096"),
        *("--memory-limit-gb", "2"),
    )
    assert profile.memory is not None and profile.memory.capacity_bytes == 2 * 10**9
    assert profile.memory.oom_images is not None, "2 GB should not hold 4096 images at 512²"
    fitted = profile.memory.points[-1].images
    assert profile.memory.oom_images == 2 * fitted
    assert would_oom(profile, [profile.memory.oom_images]) and not would_oom(profile, [fitted])
    assert profile.notes["memory_limit_gb"] == 2
