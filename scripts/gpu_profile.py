"""Raw model latency of birefnet_native, no server: the floor both servers are measured against.

Per batch size: warm-up calls, then timed calls (CUDA events on a GPU, perf_counter on the CPU),
median per call and images per second. Writes ``raw_latency.json`` into ``--out``.

    python scripts/gpu_profile.py --out DIR [--variant large] [--resolution 1024] [--batches 1,4,8]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from reports.metrics import percentile
from servers.core.backends.birefnet_native import BiRefNetNativeBackend


def time_call_s(backend: BiRefNetNativeBackend, batch: np.ndarray) -> float:
    if backend.device.type != "cuda":
        started = time.perf_counter()
        backend.infer(batch)
        return time.perf_counter() - started
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    backend.infer(batch)  # ends with a device synchronise and the copy back, as a request does
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", choices=("large", "lite"), default="large")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    backend = BiRefNetNativeBackend(
        weights=None,
        random_weights=True,
        variant=args.variant,
        resolution=args.resolution,
        device=args.device,
    )
    rows = []
    for size in (int(b) for b in args.batches.split(",")):
        batch = np.random.default_rng(0).standard_normal((size, 3, args.resolution, args.resolution))
        batch = batch.astype(np.float32)
        for _ in range(args.warmup):
            backend.infer(batch)
        backend.reset_peak_memory()
        timings = [time_call_s(backend, batch) for _ in range(args.iters)]
        median_s = percentile(pd.Series(timings), 0.5, 1) or float("nan")
        rows.append(
            {
                "batch": size,
                "median_ms": round(median_s * 1000, 2),
                "images_per_s": round(size / median_s, 2),
                "peak_memory_bytes": backend.peak_memory_bytes(),
            }
        )
        print(f"batch {size}: {median_s * 1000:.1f} ms per call, {size / median_s:.1f} images/s", flush=True)
    info = backend.info
    result = {
        "model": {
            "backend": info.backend,
            "weights": info.weights,
            "device": info.device,
            "dtype": info.dtype,
        },
        "detail": info.detail,
        "gpu": torch.cuda.get_device_name() if backend.device.type == "cuda" else None,
        "torch": torch.__version__,
        "timing": "CUDA events" if backend.device.type == "cuda" else "perf_counter (CPU)",
        "warmup": args.warmup,
        "iters": args.iters,
        "batches": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "raw_latency.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
