"""``python -m servers {gradio,fastapi,fastapi-naive} [flags]``: one flag set for every kind.

A flag that means nothing for the chosen kind or model is refused with a message, never
silently ignored. Startup: build the one core, run one warm-up inference, print a line that
states backend, device, real or random weights, concurrency and lock scope, then serve.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from servers.core import imaging
from servers.core.backends import MODELS, ModelOptions, build_backend, choose_model
from servers.core.ledger import Ledger
from servers.core.segmenter import LedgeredSegmenter, Segmenter
from servers.http_common import HealthState

KINDS = ("gradio", "fastapi", "fastapi-naive")
# flag -> the kinds (or models) it means something for; absent flags apply to all
KIND_FLAGS = {
    "concurrency": ("gradio", "fastapi"),
    "max_queue": ("gradio", "fastapi"),
    "lock_scope": ("fastapi",),
    "batch": ("gradio", "fastapi"),
    "batch_wait_ms": ("fastapi",),
    "state_sessions": ("gradio",),
    "keep_files_s": ("gradio",),
    "max_temp_mb": ("gradio",),
}
TORCH_MODELS = ("u2netp", "birefnet", "birefnet_native")
MODEL_FLAGS = {
    "device": TORCH_MODELS,
    "torch_threads": TORCH_MODELS,
    "sim_ms": ("sim",),
    "sim_memory_gb": ("sim",),
    "sim_profile": ("sim",),
    "weights": ("birefnet", "birefnet_native"),
    "resolution": ("birefnet", "birefnet_native"),
    "random_weights": ("birefnet_native",),
    "seed": ("birefnet_native",),
    "variant": ("birefnet_native",),
}
DEFAULTS: dict[str, Any] = {
    "device": "auto",
    "torch_threads": None,  # cores - 1 where a torch model runs
    "concurrency": 1,
    "max_queue": None,
    "lock_scope": "gpu",
    "batch": 1,
    # what a lone request at an idle GPU waits for company: < 2 % of a 119 ms H100 batch-1 call
    "batch_wait_ms": 2.0,
    "sim_ms": 50.0,
    "sim_memory_gb": None,  # unbounded (with --sim-profile: the profile's bound)
    "sim_profile": None,
    "state_sessions": 64,
    "keep_files_s": 600.0,
    "max_temp_mb": 1000.0,
    "weights": None,
    "resolution": 1024,
    "random_weights": False,
    "seed": 0,
    "variant": "large",
}


def default_torch_threads() -> int:
    # leave a core to the load generator, which shares this machine
    return max(1, (os.cpu_count() or 1) - 1)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m servers", description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--model", choices=MODELS, default="auto")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N; torch models")
    p.add_argument("--output", choices=imaging.OUTPUTS, default="cutout")
    p.add_argument("--png-level", type=int, default=1, choices=range(10), metavar="0..9")
    p.add_argument(
        "--torch-threads", type=int, default=None, help="torch models; default: cores - 1, at least 1"
    )
    p.add_argument("--max-side", type=int, default=4096, help="largest accepted width or height, pixels")
    p.add_argument("--max-mb", type=float, default=25.0, help="largest accepted image file, MB")
    p.add_argument(
        "--mcp",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve the MCP tool remove_background (gradio: /gradio_api/mcp/, fastapi: /mcp); default on",
    )
    # kind- and model-specific: default None so that an explicit use can be refused
    p.add_argument("--concurrency", type=int, default=None, help="gradio, fastapi (default 1)")
    p.add_argument(
        "--max-queue", type=int, default=None, help="gradio, fastapi: waiting requests (full: 503)"
    )
    p.add_argument("--lock-scope", choices=("gpu", "request"), default=None, help="fastapi (default gpu)")
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        help="gradio, fastapi: requests per GPU call, dynamic batching (default 1: off)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=None,
        help="fastapi with --batch > 1: the longest a request waits for its batch to fill (default 2)",
    )
    p.add_argument(
        "--state-sessions",
        type=int,
        default=None,
        help="gradio: sessions whose inputs and outputs Gradio keeps (default 64; Gradio's own: 10000)",
    )
    p.add_argument(
        "--keep-files-s",
        type=float,
        default=None,
        help="gradio: uploads and unclaimed results are deleted after this many seconds (default 600)",
    )
    p.add_argument(
        "--max-temp-mb",
        type=float,
        default=None,
        help="gradio: temp dir size bound, oldest files deleted first beyond it (default 1000)",
    )
    p.add_argument("--sim-ms", type=float, default=None, help="sim: service time per call (default 50)")
    p.add_argument(
        "--sim-memory-gb",
        type=float,
        default=None,
        help="sim: simulated GPU memory (default unbounded, or the profile's measured bound)",
    )
    p.add_argument(
        "--sim-profile",
        default=None,
        metavar="FILE_OR_NAME",
        help="sim: replay a measured GPU profile (a file from python -m servers.calibrate, or a shipped "
        "profile's name, e.g. h100-birefnet-swinl-fp16-1024)",
    )
    p.add_argument(
        "--weights", default=None, help="birefnet: hub id or snapshot dir; birefnet_native: dir/file"
    )
    p.add_argument("--resolution", type=int, default=None, help="birefnet*: model input side (default 1024)")
    p.add_argument("--random-weights", action="store_true", default=None, help="birefnet_native")
    p.add_argument("--seed", type=int, default=None, help="birefnet_native --random-weights (default 0)")
    p.add_argument(
        "--variant", choices=("large", "lite"), default=None, help="birefnet_native (default large)"
    )
    return p


def refuse_meaningless(args: argparse.Namespace, model: str, why_model: str) -> list[str]:
    errors = []
    for flag, kinds in KIND_FLAGS.items():
        if getattr(args, flag) is not None and args.kind not in kinds:
            errors.append(
                f"--{flag.replace('_', '-')} means nothing for {args.kind} (only {', '.join(kinds)})"
            )
    for flag, models in MODEL_FLAGS.items():
        if getattr(args, flag) is not None and model not in models:
            errors.append(
                f"--{flag.replace('_', '-')} means nothing for model {model} ({why_model}); "
                f"it applies to {', '.join(models)}"
            )
    if args.batch_wait_ms is not None and (args.batch or 1) == 1:
        errors.append("--batch-wait-ms means nothing without --batch > 1 (batching is off)")
    if args.sim_ms is not None and args.sim_profile is not None:
        errors.append("--sim-ms means nothing with --sim-profile: the profile gives the service times")
    return errors


def main(
    argv: list[str] | None = None,
    *,
    wrap_gpu: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
) -> int:
    """``wrap_gpu`` wraps the backend's model call, e.g. in ``@spaces.GPU`` (the exported Space)."""
    p = parser()
    args = p.parse_args(argv)
    explicit = {name: getattr(args, name) for name in DEFAULTS}
    settings = {name: DEFAULTS[name] if value is None else value for name, value in explicit.items()}
    options = ModelOptions(
        model=args.model,
        weights=settings["weights"],
        device=settings["device"],
        sim_ms=settings["sim_ms"],
        sim_memory_gb=settings["sim_memory_gb"],
        sim_profile=settings["sim_profile"],
        random_weights=settings["random_weights"],
        seed=settings["seed"],
        variant=settings["variant"],
        resolution=settings["resolution"],
    )
    for name in ("concurrency", "max_queue", "torch_threads", "state_sessions", "batch"):
        if settings[name] is not None and settings[name] < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("keep_files_s", "max_temp_mb", "sim_memory_gb"):
        if settings[name] is not None and settings[name] <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    if settings["batch_wait_ms"] < 0:
        p.error("--batch-wait-ms must be >= 0")
    model, why_model = choose_model(options)
    errors = refuse_meaningless(args, model, why_model)
    if errors:
        p.error("; ".join(errors))
    torch_threads = None
    if model in TORCH_MODELS:
        import torch

        torch_threads = settings["torch_threads"] or default_torch_threads()
        torch.set_num_threads(torch_threads)

    try:
        backend = build_backend(model, options)
    except ValueError as exc:  # a setting the backend cannot use (device, memory, service time, profile)
        p.error(str(exc))
    if wrap_gpu is not None:
        backend.infer = wrap_gpu(backend.infer)  # type: ignore[method-assign]
    limits = imaging.ImageLimits(max_bytes=int(args.max_mb * 1_000_000), max_side=args.max_side)
    segmenter = Segmenter(backend, args.output, args.png_level, limits)
    segmenter.segment(imaging.sample_png())  # the first call pays for lazy init; no request should
    ledger = Ledger(backend.peak_memory_bytes, backend.reset_peak_memory)
    ledger.reset()
    service = LedgeredSegmenter(segmenter, ledger)

    concurrency = None if args.kind == "fastapi-naive" else settings["concurrency"]
    lock_scope = {"gradio": "queue", "fastapi": settings["lock_scope"], "fastapi-naive": "none"}[args.kind]
    batch = settings["batch"] if concurrency is not None else 1
    batch_wait_ms = settings["batch_wait_ms"] if args.kind == "fastapi" and batch > 1 else None
    if batch == 1:
        batching = "batch off"
    elif batch_wait_ms is None:  # gradio
        batching = f"batch up to {batch} (Gradio's queue: what already waits, no wait for more)"
    else:
        batching = f"batch up to {batch}, wait <= {batch_wait_ms:g} ms"
    info = backend.info
    weights_word = {"real": "REAL weights", "random": "RANDOM weights (noise masks)", "none": "no weights"}
    startup_line = (
        f"{args.kind} on http://{args.host}:{args.port}"
        f" | backend {info.backend} ({why_model}) on {info.device}"
        f" {info.dtype}, {weights_word.get(info.weights, info.weights)}"
        f"{' from ' + info.weights_source if info.weights_source else ''}"
        f"{' | ' + info.detail if info.detail else ''}"
        f" | concurrency {concurrency if concurrency is not None else 'unbounded'}, lock scope {lock_scope}"
        f" | {batching}"
        f" | max queue {'unbounded' if settings['max_queue'] is None else settings['max_queue']}"
        f" | torch threads {torch_threads or 'n/a'}"
        f" | output {args.output}, png level {args.png_level}"
        f" | MCP {'on' if args.mcp else 'off'}"
    )
    if args.kind == "gradio":
        startup_line += (
            f" | state sessions {settings['state_sessions']}, files kept {settings['keep_files_s']:g} s,"
            f" temp dir <= {settings['max_temp_mb']:g} MB"
        )
    health = HealthState(
        info={
            "server": args.kind,
            "pid": os.getpid(),
            "model": {**asdict(info), "chosen_because": why_model},
            "flags": {**vars(args), **settings},
            "torch_threads": torch_threads,
            "concurrency": concurrency,
            "lock_scope": lock_scope,
            "batch": batch,
            "batch_wait_ms": batch_wait_ms,
            "startup_line": startup_line,
        }
    )
    print(startup_line, flush=True)

    if args.kind == "gradio":
        from servers.gradio_app import configure_environment, serve

        # inside GRADIO_TEMP_DIR when the caller gives one (gvf gives each run its own)
        temp_dir = Path(tempfile.mkdtemp(prefix="gvf-gradio-", dir=os.environ.get("GRADIO_TEMP_DIR")))
        configure_environment(temp_dir)
        serve(
            service,
            health,
            host=args.host,
            port=args.port,
            concurrency=settings["concurrency"],
            max_queue=settings["max_queue"],
            batch=batch,
            temp_dir=temp_dir,
            mcp=args.mcp,
            state_sessions=settings["state_sessions"],
            keep_files_s=settings["keep_files_s"],
            max_temp_bytes=int(settings["max_temp_mb"] * 1e6),
        )
        return 0

    import uvicorn

    from servers.fastapi_app import create_app

    app = create_app(
        service,
        health,
        concurrency=concurrency,
        lock_scope=settings["lock_scope"],
        max_queue=settings["max_queue"],
        batch=batch,
        batch_wait_ms=batch_wait_ms or 0.0,
        mcp_host=args.host if args.mcp else None,
    )
    health.ready = True
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
