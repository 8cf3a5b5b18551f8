"""The gradio server's temp dir stays bounded (``servers/gradio_files.py``): results deleted once
downloaded, everything after ``--keep-files-s``, the oldest first beyond ``--max-temp-mb``."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from loadtests.serverproc import start_server
from servers.gradio_files import PRUNE_EVERY_S
from tests.helpers import gradio_http, server_state
from tests.helpers.common import StartServer

CALLS = 200
MAX_TEMP_MB = 1.0
KEEP_S = 6.0


def distinct_png(seed: int) -> bytes:
    """~50 KB of noise: every upload is a new file (Gradio names uploads by content hash)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def tree(root: Path) -> list[Path]:
    """The files under ``root``, listed while the server deletes some (a folder gone mid-walk)."""
    return [Path(folder, name) for folder, _, names in os.walk(root) for name in names]


@pytest.mark.slow
def test_a_long_filedata_run_keeps_the_temp_dir_bounded(tmp_path: Path) -> None:
    temp_root = tmp_path / "gradio-tmp"
    temp_root.mkdir()
    server = start_server(
        "gradio",
        ["--model", "sim", "--sim-ms", "0", "--max-temp-mb", str(MAX_TEMP_MB), "--keep-files-s", str(KEEP_S)],
        log_path=tmp_path / "gradio.log",
        env={"GRADIO_TEMP_DIR": str(temp_root)},
    )
    images = [distinct_png(seed) for seed in range(CALLS + 1)]
    try:
        sizes: list[int] = []

        def call(seed: int) -> bytes:
            result = gradio_http.segment_file(server.url, images[seed])
            if seed % 20 == 0:
                sizes.append(sum(path.stat().st_size for path in tree(temp_root) if path.exists()))
            return result

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(call, range(CALLS)))
        assert all(result.startswith(b"\x89PNG") for result in results)
        uploaded = sum(len(image) for image in images)
        # the cap holds up to what arrives between two pruning passes (a few MB here at most);
        # unbounded, the uploads alone would reach all of `uploaded`
        assert max(sizes) < MAX_TEMP_MB * 1e6 + 3e6 < uploaded / 2, (max(sizes), uploaded)
        # every result was downloaded, so none is left
        assert not [path for path in tree(temp_root) if "/outputs/" in str(path)]
        server_state.wait_idle(server.url)
        # past the retention, nothing is left; Gradio's set of upload paths forgot them too
        deadline_s = KEEP_S + 2 * PRUNE_EVERY_S + 1
        assert holds_within(deadline_s, lambda: not tree(temp_root)), tree(temp_root)
        assert server_state.ledger(server.url)["held"]["upload_paths"] == 0
        assert gradio_http.segment_file(server.url, images[CALLS]).startswith(b"\x89PNG")
    finally:
        server.stop()


def holds_within(within_s: float, condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` comes true within ``within_s`` (the server deletes files on its own time)."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_result_is_deleted_once_downloaded(server_factory: StartServer) -> None:
    server = server_factory("gradio", "--model", "sim", "--sim-ms", "0")
    path = gradio_http.upload(server.url, distinct_png(0))
    result = gradio_http.call(server.url, "segment", {"path": path, "meta": {"_type": "gradio.FileData"}})
    assert result.event == "complete", result.data
    url, local = result.data[0]["url"], Path(result.data[0]["path"])
    assert httpx.head(url).status_code == 200 and local.exists()  # a HEAD is not a download
    assert httpx.get(url).content.startswith(b"\x89PNG")
    # deleted once the last body message has gone out, which the client may see first
    assert holds_within(10.0, lambda: not local.exists())
    assert httpx.get(url).status_code >= 400
    assert Path(path).exists()  # the upload stays: another call may have sent the same bytes
