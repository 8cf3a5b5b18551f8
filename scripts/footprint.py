"""What each server kind costs before it serves a request: packages, disk, import, startup, memory.

For a minimal server of each kind over the same core (``--model sim``: numpy + Pillow, no torch),
with MCP off and on, a fresh venv is filled (offline, from this environment's installed versions:
scripts/wheelhouse.py), then measured from that venv:

- packages installed and their size on disk (the venv's site-packages, bytecode included, less
  what a bare ``python -m venv`` already has: pip, setuptools);
- Python import time of the server module and its framework (median of cold processes);
- time from process start to ``/healthz`` 200 (the server's own start-up warm-up included);
- RSS when idle after start-up, and after a warm-up of sequential requests.

What gradio adds beyond FastAPI is printed as the difference of the two. torch (with its CUDA
libraries here) is the same for both kinds and is stated once, not installed.

    python scripts/footprint.py [--json] [--starts 3] [--imports 5] [--warm-requests 200]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtests.serverproc import ServerProcess, free_port, launch  # noqa: E402
from scripts.wheelhouse import closure, fresh_venv, site_packages, size_bytes, venv_python  # noqa: E402

CORE = ["numpy", "pillow"]
SPEED = ["uvloop", "httptools"]  # both kinds run on uvicorn; the project installs them for both
VARIANTS = {
    # name: (server kind, requirements, server flags, what the server module imports before serving)
    "fastapi": ("fastapi", ["fastapi", "uvicorn", "python-multipart", *SPEED, *CORE], ["--no-mcp"],
                "import servers.fastapi_app, uvicorn"),
    "gradio": ("gradio", ["gradio", *SPEED, *CORE], ["--no-mcp"], "import servers.gradio_app, gradio"),
    "fastapi + mcp": ("fastapi", ["fastapi", "uvicorn", "python-multipart", "mcp", *SPEED, *CORE], [],
                      "import servers.fastapi_app, servers.mcp_tools, uvicorn, mcp.server.fastmcp"),
    "gradio[mcp]": ("gradio", ["gradio[mcp]", *SPEED, *CORE], [],
                    "import servers.gradio_app, gradio, gradio.mcp"),
}  # fmt: skip
SCENE = ROOT / "loadtests" / "data" / "scene-256.jpg"


@dataclass
class Footprint:
    variant: str
    packages: int
    disk_mb: float
    import_s: float
    start_to_healthy_s: float
    idle_rss_mb: float
    warm_rss_mb: float


def pinned(requirement: str) -> str:
    return f"{requirement}=={metadata.version(requirement.split('[')[0])}"


def site_contents(venv: Path) -> tuple[int, int]:
    """(distributions, bytes) in the venv's site-packages."""
    site = site_packages(venv)
    size = sum(path.stat().st_size for path in site.rglob("*") if path.is_file())
    return len(list(site.glob("*.dist-info"))), size


def import_seconds(python: Path, statement: str, repeats: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([str(python), "-c", statement], check=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def rss_mb(server: ServerProcess) -> float:
    rss = server.rss_bytes()
    if rss is None:
        raise RuntimeError(f"{server.kind} exited: {server.log_tail()}")
    return rss / 1e6


def warm_up(server: ServerProcess, requests: int) -> None:
    encoded = base64.b64encode(SCENE.read_bytes()).decode()
    with httpx.Client(timeout=60) as http:
        for _ in range(requests):
            if server.kind == "fastapi":
                http.post(f"{server.url}/segment_b64", json={"image": encoded}).raise_for_status()
                continue
            posted = http.post(f"{server.url}/gradio_api/call/segment_b64", json={"data": [encoded]})
            posted.raise_for_status()
            result = http.get(f"{server.url}/gradio_api/call/segment_b64/{posted.json()['event_id']}")
            if "event: complete" not in result.text:
                raise RuntimeError(result.text[-300:])


def measure(name: str, work: Path, bare: tuple[int, int], args: argparse.Namespace) -> Footprint:
    """``bare``: what an empty ``python -m venv`` holds (pip, setuptools), subtracted."""
    kind, requirements, flags, statement = VARIANTS[name]
    venv = work / "venv"
    fresh_venv(venv, [pinned(r) for r in requirements], work / "wheelhouse")
    packages, size = (a - b for a, b in zip(site_contents(venv), bare, strict=True))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {"PYTHONPATH": str(ROOT)}
    python = venv_python(venv)
    imports = import_seconds(python, statement, args.imports, env)
    starts, idle, warm = [], [], 0.0
    for attempt in range(args.starts):
        port = free_port()
        command = [str(python), "-m", "servers", kind, "--host", "127.0.0.1", "--port", str(port),
                   "--model", "sim", "--sim-ms", "5", *flags]  # fmt: skip
        temp = work / f"gradio-tmp-{attempt}"
        temp.mkdir()
        server = launch(kind, command, f"http://127.0.0.1:{port}", work / f"server-{attempt}.log",
                        env | {"GRADIO_TEMP_DIR": str(temp)}, cwd=ROOT)  # fmt: skip
        try:
            starts.append(server.startup_s)
            time.sleep(2.0)  # let start-up work (threads, caches) settle before calling it idle
            idle.append(rss_mb(server))
            if attempt == args.starts - 1:
                warm_up(server, args.warm_requests)
                warm = rss_mb(server)
        finally:
            server.stop()
    return Footprint(
        name, packages, size / 1e6, imports, statistics.median(starts), statistics.median(idle), warm
    )


def torch_base_mb() -> float | None:
    try:
        return size_bytes(closure(["torch"]).values()) / 1e6
    except LookupError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--starts", type=int, default=3, help="server starts per variant (median)")
    parser.add_argument("--imports", type=int, default=5, help="cold import processes per variant (median)")
    parser.add_argument("--warm-requests", type=int, default=200, help="sequential requests before warm RSS")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="gvf-footprint-") as work:
        subprocess.run([sys.executable, "-m", "venv", str(Path(work) / "bare")], check=True)
        bare = site_contents(Path(work) / "bare")
    for name in args.variants.split(","):
        with tempfile.TemporaryDirectory(prefix="gvf-footprint-") as work:
            results.append(measure(name, Path(work), bare, args))
            print(f"measured {name}", file=sys.stderr)
    torch_mb = torch_base_mb()
    if args.json:
        print(json.dumps({"variants": [asdict(r) for r in results], "torch_closure_mb": torch_mb}, indent=2))
        return 0
    print_table(results, torch_mb, args)
    return 0


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def print_table(results: list[Footprint], torch_mb: float | None, args: argparse.Namespace) -> None:
    print(
        row([
            "variant (--model sim)", "packages", "disk MB", f"import s (median of {args.imports})",
            f"start → healthy s (median of {args.starts})", "idle RSS MB",
            f"RSS after {args.warm_requests} requests MB",
        ])
    )  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            row([
                r.variant, str(r.packages), f"{r.disk_mb:.0f}", f"{r.import_s:.2f}",
                f"{r.start_to_healthy_s:.2f}", f"{r.idle_rss_mb:.0f}", f"{r.warm_rss_mb:.0f}",
            ])
        )  # fmt: skip
    by_name = {r.variant: r for r in results}
    for plain, fancy in (("fastapi", "gradio"), ("fastapi + mcp", "gradio[mcp]")):
        if plain in by_name and fancy in by_name:
            a, b = by_name[plain], by_name[fancy]
            print(
                row([
                    f"{fancy} − {plain}", f"{b.packages - a.packages:+d}", f"{b.disk_mb - a.disk_mb:+.0f}",
                    f"{b.import_s - a.import_s:+.2f}", f"{b.start_to_healthy_s - a.start_to_healthy_s:+.2f}",
                    f"{b.idle_rss_mb - a.idle_rss_mb:+.0f}", f"{b.warm_rss_mb - a.warm_rss_mb:+.0f}",
                ])
            )  # fmt: skip
    if torch_mb is not None:
        print(
            f"\nBoth kinds add the same torch for real models: {torch_mb:.0f} MB here (CUDA libs included)."
        )


if __name__ == "__main__":
    sys.exit(main())
