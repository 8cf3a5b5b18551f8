"""``gvf export-space``: the files it writes, and (slow) the exported Space installed into a fresh
venv, serving, and measured by ``gvf run --target-url``.

The fresh venv is filled with no network: ``pip install --no-index`` of the Space's pinned
requirements from wheels rebuilt out of this environment's installed files (scripts/wheelhouse.py);
torch and its CUDA libraries (5 GB) are linked in as a base instead of copied, as
``--system-site-packages`` over an interpreter that has torch would.
"""

from __future__ import annotations

import ast
import csv
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from loadtests.cli import main as gvf
from loadtests.serverproc import free_port, launch
from scripts.wheelhouse import fresh_venv, site_packages, venv_python

ROOT = Path(__file__).resolve().parents[1]


def front_matter(readme: Path) -> dict[str, str]:
    _, header, _ = readme.read_text().split("---\n", 2)
    return dict(line.split(": ", 1) for line in header.splitlines() if ": " in line)


def test_export_writes_a_ready_to_push_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "space"
    assert gvf(["export-space", str(out), "--model", "sim", "--gpu-duration", "15"]) == 0
    assert "Space written" in capsys.readouterr().out
    meta = front_matter(out / "README.md")
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == metadata.version("gradio") == "6.31.0"
    assert meta["app_file"] == "app.py"
    pins = dict(line.split("==") for line in (out / "requirements.txt").read_text().splitlines())
    assert pins["gradio[mcp]"] == "6.31.0"
    for name, version in pins.items():
        assert metadata.version(name.split("[")[0]) == version
    assert {"spaces", "torch", "numpy", "pillow", "uvloop"} <= set(pins)
    app = (out / "app.py").read_text()
    ast.parse(app)
    assert "@spaces.GPU(duration=GPU_DURATION_S)" in app and "GPU_DURATION_S = 15" in app
    assert "SERVER_ARGS = ['--model', 'sim']" in app
    # the server as files, the page included; nothing compiled
    assert (out / "servers" / "gradio_app.py").read_bytes() == (
        ROOT / "servers" / "gradio_app.py"
    ).read_bytes()
    assert (out / "servers" / "static" / "index.html").is_file()
    assert not list(out.rglob("__pycache__"))


def test_export_refuses_a_folder_with_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert gvf(["export-space", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_exported_space_installs_into_a_fresh_venv_serves_and_is_measured(tmp_path: Path) -> None:
    space = tmp_path / "space"
    assert gvf(["export-space", str(space), "--model", "sim", "--server-arg=--sim-ms=20"]) == 0
    venv = tmp_path / "venv"
    requirements = (space / "requirements.txt").read_text().split()
    fresh_venv(venv, requirements, tmp_path / "wheelhouse", base=["torch"], compile_bytecode=False)
    where = subprocess.run(
        [
            str(venv_python(venv)),
            "-c",
            "import gradio, spaces, torch; print(gradio.__file__, torch.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    ).stdout.split()
    assert Path(where[0]).is_relative_to(site_packages(venv))  # installed fresh
    assert not Path(where[1]).is_relative_to(site_packages(venv))  # the linked base

    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env |= {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    (tmp_path / "gradio-tmp").mkdir()
    env |= {"GRADIO_TEMP_DIR": str(tmp_path / "gradio-tmp")}
    server = launch(
        "gradio",
        [str(venv_python(venv)), "app.py"],
        f"http://127.0.0.1:{port}",
        tmp_path / "space.log",
        env,
        cwd=space,
    )
    try:
        assert server.health["server"] == "gradio"
        assert server.health["model"]["backend"] == "sim"
        assert "Text behind image" in httpx.get(server.url + "/", timeout=10).text
        runs = tmp_path / "runs"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "loadtests.cli",
                "run",
                "--target-url",
                server.url,
                "--profile",
                "smoke",
                "--scenarios",
                "latency,throughput",
                "--out",
                str(runs),
                "--no-report",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    finally:
        server.stop()
    (run_dir,) = list(runs.iterdir())
    with open(run_dir / "requests.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    assert len(rows) >= 10
    assert {row["status"] for row in rows} == {"200"}
