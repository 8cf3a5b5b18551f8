"""Measure a GPU profile of the birefnet_native GPU stage, the way the servers run it.

``python -m servers.calibrate --out FILE`` builds the backend from the servers' own model options and
times the core's Segmenter GPU stage (stack the prepared tensors, copy them to the device, run the
model, synchronise, copy the masks back: the span the ledger calls the GPU stage), wall time per call:

- per batch size (default 1, 2, 4, 8, 16): medians and spread of ``--iters`` calls after warm-up;
- with k unsynchronised calls in flight (default k = 1, 2, 4, 8): k threads released together by a
  barrier, no lock (what the naive server does), ``--rounds`` rounds: images/s and per-call time;
- device memory (CUDA): the peak per batch, then batches doubling beyond the table up to the first
  that runs out of memory or ``--memory-cap-images`` (one warm-up and one timed call each);
  ``--memory-limit-gb`` caps torch's allocator first, to profile a smaller GPU or reach the cliff fast.

It writes a gvf-gpu-profile/1 file (``servers/core/gpu_profile.py``) that the simulated backend
replays. On the CPU (lite variant, small resolution) the same path runs without memory figures, so
a test covers it end to end.

    python -m servers.calibrate --out FILE [--variant large] [--resolution 1024] [--batches 1,2,4,8,16]
        [--overlap 1,2,4,8] [--warmup 3] [--iters 10] [--rounds 5] [--memory-cap-images 64]
        [--memory-limit-gb GB]
        [--weights DIR | --random-weights] [--seed 0] [--device auto]
"""

from __future__ import annotations

import argparse
import datetime
import io
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from servers.core.backends import ModelOptions, build_backend
from servers.core.backends.torch_base import TorchBackend
from servers.core.gpu_profile import (
    BatchPoint,
    GpuProfile,
    MemoryPoint,
    MemoryProfile,
    OverlapPoint,
    save_profile,
)
from servers.core.segmenter import Prepared, Segmenter


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's out-of-memory error, raised as it is or wrapped in a backend's own exception."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, torch.OutOfMemoryError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass
class Bench:
    """One loaded segmenter, one prepared image, and what the runs found."""

    segmenter: Segmenter
    backend: TorchBackend
    prepared: Prepared
    oom_images: int | None = None  # the smallest batch that ran out of memory
    overlap_oom_calls: int | None = None  # the smallest overlap count that ran out of memory
    memory: list[MemoryPoint] = field(default_factory=list)

    @property
    def on_cuda(self) -> bool:
        return self.backend.device.type == "cuda"

    def gpu_stage_s(self, images: int) -> float:
        batch = [self.prepared] * images
        started = time.perf_counter()
        self.segmenter.gpu(batch)
        return time.perf_counter() - started

    def out_of_memory(self, exc: Exception, what: str) -> None:
        """Re-raise anything but running out of memory; after that, free the cache and say so."""
        if not is_out_of_memory(exc):
            raise exc
        if self.on_cuda:
            torch.cuda.empty_cache()
        print(f"{what}: out of memory")


def spread_ms(seconds: list[float]) -> tuple[float, float, float]:
    """Median, min and max in milliseconds, rounded to the microsecond."""

    def ms(value: float) -> float:
        return round(value * 1000, 3)

    return ms(statistics.median(seconds)), ms(min(seconds)), ms(max(seconds))


def measure_batches(bench: Bench, sizes: list[int], warmup: int, iters: int) -> list[BatchPoint]:
    """One row per batch size, stopping at the first size that runs out of memory."""
    rows = []
    for size in sizes:
        try:
            for _ in range(warmup):
                bench.gpu_stage_s(size)
            bench.backend.reset_peak_memory()
            timings = [bench.gpu_stage_s(size) for _ in range(iters)]
        except Exception as exc:
            bench.out_of_memory(exc, f"batch {size:>3}")
            bench.oom_images = size
            break
        median, low, high = spread_ms(timings)
        rows.append(BatchPoint(size, median, low, high, iters))
        peak = bench.backend.peak_memory_bytes()
        if peak is not None:
            bench.memory.append(MemoryPoint(size, peak))
        print(f"batch {size:>3}: {median:9.2f} ms per call ({low:.2f}-{high:.2f}), peak {peak}")
    return rows


def overlap_round(bench: Bench, calls: int) -> tuple[list[float], float]:
    """``calls`` threads released together, each one GPU-stage call of one image, no lock.

    Returns each call's time and the round's makespan (first start to last end).
    """
    barrier = threading.Barrier(calls)
    spans: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def one_call() -> None:
        barrier.wait()
        started = time.perf_counter()
        try:
            bench.segmenter.gpu([bench.prepared])
        except BaseException as exc:  # handed to the main thread, which decides
            errors.append(exc)
            return
        spans.append((started, time.perf_counter()))

    threads = [threading.Thread(target=one_call, name=f"calibrate-overlap-{i}") for i in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [end - start for start, end in spans], max(end for _, end in spans) - min(s for s, _ in spans)


def measure_overlap(bench: Bench, counts: list[int], rounds: int) -> list[OverlapPoint]:
    rows = []
    for calls in counts:
        try:
            overlap_round(bench, calls)  # warm-up: threads and allocator at this depth
            bench.backend.reset_peak_memory()
            latencies: list[float] = []
            makespan = 0.0
            for _ in range(rounds):
                round_latencies, round_makespan = overlap_round(bench, calls)
                latencies += round_latencies
                makespan += round_makespan
        except Exception as exc:
            bench.out_of_memory(exc, f"overlap {calls:>2}")
            bench.overlap_oom_calls = calls
            break
        median, low, high = spread_ms(latencies)
        images_per_s = round(calls * rounds / makespan, 3)
        peak = bench.backend.peak_memory_bytes()
        rows.append(OverlapPoint(calls, images_per_s, median, low, high, rounds, peak))
        print(f"overlap {calls:>2}: {images_per_s:8.2f} images/s, {median:9.2f} ms per call, peak {peak}")
    return rows


def probe_sizes(largest: int, cap: int) -> list[int]:
    """Batches doubling beyond the table's largest, up to the cap."""
    sizes = []
    size = largest * 2
    while size <= cap:
        sizes.append(size)
        size *= 2
    return sizes


def device_name(bench: Bench) -> str:
    if bench.on_cuda:
        return torch.cuda.get_device_name(bench.backend.device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        model = names[0] if names else model
    return f"CPU: {model} ({torch.get_num_threads()} torch threads)"


def sample_prepared(segmenter: Segmenter) -> Prepared:
    """A request as the servers see it: a PNG of noise through the core's pre-processing."""
    pixels = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, format="PNG")
    return segmenter.pre(encoded.getvalue())


def sizes_arg(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if sizes[0] != 1 or any(a >= b for a, b in pairwise(sizes)):
        raise argparse.ArgumentTypeError(f"{text!r}: start at 1 and increase strictly (e.g. 1,2,4,8)")
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m servers.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the profile JSON file to write")
    parser.add_argument("--variant", choices=("large", "lite"), default="large")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--batches", type=sizes_arg, default=[1, 2, 4, 8, 16])
    parser.add_argument("--overlap", type=sizes_arg, default=[1, 2, 4, 8], help="calls in flight at once")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10, help="timed calls per batch size")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per overlap count")
    parser.add_argument(
        "--memory-cap-images", type=int, default=64, help="the largest batch the memory probe tries"
    )
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=None,
        help="CUDA only: let torch allocate at most this many GB (10^9 bytes), as if the GPU had that much",
    )
    parser.add_argument("--weights", default=None, help="BiRefNet checkpoint directory or file")
    parser.add_argument("--random-weights", action="store_true", help="the golden recipe's random weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    for name, least in (("warmup", 0), ("iters", 1), ("rounds", 1), ("memory_cap_images", 1)):
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be >= {least}, not {getattr(args, name)}")
    if args.memory_limit_gb is not None and args.memory_limit_gb <= 0:
        parser.error(f"--memory-limit-gb must be > 0, not {args.memory_limit_gb}")
    if args.weights is None and not args.random_weights:
        args.random_weights = True  # a timing profile: same graph and cost, and needs no download
    return args


def load_bench(args: argparse.Namespace) -> Bench:
    """The backend built from the servers' own model options, behind the core's Segmenter."""
    options = ModelOptions(
        model="birefnet_native",
        weights=args.weights,
        device=args.device,
        random_weights=args.random_weights,
        seed=args.seed,
        variant=args.variant,
        resolution=args.resolution,
    )
    backend = build_backend("birefnet_native", options)
    assert isinstance(backend, TorchBackend)
    segmenter = Segmenter(backend)
    return Bench(segmenter, backend, sample_prepared(segmenter))


def provenance_line(args: argparse.Namespace, bench: Bench, gpu: str, date: str) -> str:
    info = bench.backend.info
    sync = "torch.cuda.synchronize()" if bench.on_cuda else "no device synchronise (CPU)"
    return (
        f"Measured {date} on {gpu}, torch {torch.__version__}, by python -m servers.calibrate: "
        f"birefnet_native {info.detail}, {info.weights} weights ({info.weights_source}), {info.dtype}, "
        f"through the Segmenter's GPU stage (stack, copy in, model, {sync}, copy out), wall time per call; "
        f"batch table: medians of {args.iters} calls after warm-up ({args.warmup} calls); memory probe "
        f"rows beyond batch {args.batches[-1]}: 1 call after 1 warm-up; overlap: {args.rounds} rounds of k "
        "threads released together by a barrier, no lock, after one warm-up round."
    )


def device_capacity(bench: Bench, limit_gb: float | None) -> tuple[int, str]:
    """The device's memory, or the cap put on torch's allocator (``--memory-limit-gb``), and how."""
    total = torch.cuda.get_device_properties(bench.backend.device).total_memory
    if limit_gb is None:
        return total, "the device's total memory (torch.cuda.get_device_properties)"
    limit = int(limit_gb * 1e9)
    if limit >= total:
        raise SystemExit(f"--memory-limit-gb {limit_gb:g}: the device has only {total / 1e9:.1f} GB")
    torch.cuda.set_per_process_memory_fraction(limit / total, bench.backend.device)
    return limit, f"--memory-limit-gb {limit_gb:g} (torch.cuda.set_per_process_memory_fraction)"


def calibrate(args: argparse.Namespace) -> GpuProfile:
    bench = load_bench(args)
    if args.memory_limit_gb is not None and not bench.on_cuda:
        raise SystemExit("--memory-limit-gb needs CUDA: the CPU has no device memory to cap")
    capacity = device_capacity(bench, args.memory_limit_gb) if bench.on_cuda else None
    info = bench.backend.info
    gpu = device_name(bench)
    print(f"calibrating birefnet_native {info.detail} {info.dtype} on {gpu}")

    batch = measure_batches(bench, args.batches, args.warmup, args.iters)
    if not batch:
        raise SystemExit(f"batch 1 does not fit on {gpu}: nothing to profile (try a lower --resolution)")
    # between calls: the weights and whatever the warmed-up model keeps allocated
    resident = torch.cuda.memory_allocated(bench.backend.device) if bench.on_cuda else None
    overlap = measure_overlap(bench, args.overlap, args.rounds)
    if bench.oom_images is None and bench.on_cuda:  # the CPU has no device memory to probe
        batch += measure_batches(bench, probe_sizes(args.batches[-1], args.memory_cap_images), 1, 1)

    memory = None
    if resident is not None and capacity is not None:
        memory = MemoryProfile(
            resident_bytes=resident,
            capacity_bytes=capacity[0],
            points=tuple(bench.memory),
            oom_images=bench.oom_images,
            cap_images=max(args.memory_cap_images, args.batches[-1]),
            note=f"resident: torch.cuda.memory_allocated after the batch table; capacity: {capacity[1]}; "
            "peaks: torch.cuda.max_memory_allocated per batch",
        )
    notes: dict[str, object] = {"torch_threads": torch.get_num_threads(), "python": sys.version.split()[0]}
    if bench.overlap_oom_calls is not None:
        notes["overlap_oom_calls"] = bench.overlap_oom_calls
    if args.memory_limit_gb is not None:
        notes["memory_limit_gb"] = args.memory_limit_gb
    date = datetime.datetime.now(datetime.UTC).date().isoformat()
    return GpuProfile(
        provenance=provenance_line(args, bench, gpu, date),
        origin="this project's measurement (python -m servers.calibrate)",
        gpu=gpu,
        torch=torch.__version__,
        model=f"birefnet_native {info.detail}, {info.weights} weights",
        resolution=args.resolution,
        dtype=info.dtype,
        date=date,
        batch=tuple(batch),
        overlap=tuple(overlap),
        memory=memory,
        notes=notes,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = calibrate(args)
    save_profile(profile, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
