"""The ``gradio.Server`` adapter: the core behind Gradio's queue.

Two endpoints share one ``concurrency_id`` so ``--concurrency N`` bounds them together:
``segment`` takes and returns ``FileData`` (the reference demo's shape: upload, call,
download), ``segment_b64`` takes a base64 string and returns base64 PNG. Gradio's queue
wraps the whole function (decode, GPU, encode); that difference from FastAPI's GPU-only
lock is a finding, not something to hide. Bad input raises ``gr.Error`` so its message
reaches the client as an SSE ``error`` event.
"""

# no `from __future__ import annotations`: Gradio reads the endpoint functions' type hints
# at launch, and string hints naming the locally imported `gr` cannot be resolved
import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from servers.core import imaging
from servers.core.imaging import ImageError
from servers.core.ledger import new_request_id
from servers.core.segmenter import LedgeredSegmenter
from servers.http_common import (
    REQUEST_ID_HEADER,
    ArrivalStamps,
    HealthState,
    RequestIdMiddleware,
    add_common_routes,
)

T = TypeVar("T")
CONCURRENCY_ID = "gpu"
# Server mode never deletes uploads or results: files older than this are removed (results must
# be downloaded within it), checked every PRUNE_EVERY_S, so a long run cannot fill the disk
KEEP_FILES_S = 600.0
PRUNE_EVERY_S = 10.0
CALL_PREFIXES = ("/gradio_api/call/", "/gradio_api/queue/join")
FILEDATA_META = {"_type": "gradio.FileData"}


def configure_environment(temp_dir: Path) -> None:
    """Must run before gradio is imported: these are read at import or launch time."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    # the analytics summary is recomputed every N events; at 1 latency drifts 9 -> 17 ms over 4k calls
    os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"] = str(10**9)
    os.environ["GRADIO_TEMP_DIR"] = str(temp_dir)


def inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def prune_older_than(folder: Path, keep_s: float) -> None:
    now = time.time()
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):  # a file can vanish or be served meanwhile
            if path.is_file() and now - path.stat().st_mtime > keep_s:
                path.unlink()


def prune_until(stop: threading.Event, folder: Path, keep_s: float = KEEP_FILES_S) -> None:
    """Runs in a daemon thread: never inside a queued call, whose slot it would hold."""
    while not stop.wait(PRUNE_EVERY_S):
        prune_older_than(folder, keep_s)


def serve(
    service: LedgeredSegmenter,
    health: HealthState,
    *,
    host: str,
    port: int,
    concurrency: int,
    max_queue: int | None,
    temp_dir: Path,
) -> None:
    """Build the app, launch it, warm both endpoints through the queue, then block."""
    import gradio as gr
    from gradio.context import LocalContext

    stamps = ArrivalStamps()
    stop_pruning = threading.Event()
    outputs_dir = temp_dir / "outputs"
    outputs_dir.mkdir(parents=True, exist_ok=True)
    app = gr.Server(title="BiRefNet segmentation (gradio.Server)")
    app.add_middleware(RequestIdMiddleware, stamps=stamps, stamp_paths=CALL_PREFIXES)
    # events waiting in Gradio's queue (its __len__ counts those not yet started); the routes
    # answer only after launch, when the queue exists
    add_common_routes(app, service.ledger, health, queued=lambda: len(app.get_blocks()._queue))

    def run_core(
        endpoint: str, request: gr.Request, read_input: Callable[[], bytes], deliver: Callable[[bytes], T]
    ) -> T:
        """The whole queued call; ``deliver`` (base64 text or a result file) runs inside the
        ledger span, after post, as the FastAPI adapter's answer rendering does."""
        request_id = request.headers.get(REQUEST_ID_HEADER) or ""
        t_admit = time.time()
        t_recv = stamps.pop(request_id)
        row = service.ledger.open(request_id, endpoint, t_recv if t_recv is not None else t_admit)
        row.t_admit = t_admit
        # the queue sets the event id in the worker thread's context (gr.Progress reads it the same way)
        row.event_id = LocalContext.event_id.get(None) or ""
        status = 500
        try:
            answer = deliver(service.run(row, read_input))
            status = 200
            return answer
        except ImageError as exc:
            status = exc.status
            raise gr.Error(str(exc)) from None
        finally:
            service.ledger.close(row, status)

    def write_result(png: bytes) -> dict:
        # named by the server, never by the client: a request id is client text
        out_path = outputs_dir / f"{new_request_id()}.png"
        out_path.write_bytes(png)
        return {"path": str(out_path), "meta": FILEDATA_META}

    def read_upload(file: Any) -> bytes:
        if not isinstance(file, dict) or not isinstance(file.get("path"), str):
            raise ImageError(
                'input must be a FileData object: {"path": "<uploaded path>", "meta": '
                '{"_type": "gradio.FileData"}} from POST /gradio_api/upload'
            )
        path = Path(file["path"])
        # a FileData dict without "meta" skips Gradio's own upload-folder check
        if not inside(path, temp_dir) or inside(path, outputs_dir):
            raise ImageError(
                "file path is outside the upload folder: upload the image through "
                "POST /gradio_api/upload and pass the path it returns"
            )
        try:
            return path.read_bytes()
        except OSError:
            raise ImageError(
                "uploaded file not found: upload it again through POST /gradio_api/upload"
            ) from None

    @app.api(name="segment", concurrency_limit=concurrency, concurrency_id=CONCURRENCY_ID)
    def segment(image: dict, request: gr.Request) -> dict:
        """Segment an uploaded image (FileData) -> the PNG result as FileData."""
        return run_core("segment", request, lambda: read_upload(image), write_result)

    @app.api(name="segment_b64", concurrency_limit=concurrency, concurrency_id=CONCURRENCY_ID)
    def segment_b64(image: str, request: gr.Request) -> str:
        """Segment a base64 image (a data: URL prefix is allowed) -> base64 PNG."""
        return run_core("segment_b64", request, lambda: imaging.decode_base64(image), imaging.encode_base64)

    # SIGTERM (how the harness stops servers) must unwind through `finally` to clean the temp dir
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Thread(target=prune_until, args=(stop_pruning, temp_dir), daemon=True).start()
    try:
        app.launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            max_file_size=service.segmenter.limits.max_bytes,
        )
        blocks = app.get_blocks()
        if max_queue is not None:
            blocks._queue.max_size = max_queue  # only settable after launch (docs/design.md §4)
        warm_up_queue(f"http://{host}:{port}")
        service.ledger.reset()
        health.ready = True
        blocks.block_thread()
    finally:
        stop_pruning.set()
        shutil.rmtree(temp_dir, ignore_errors=True)


def warm_up_queue(base_url: str) -> None:
    """Run each endpoint once: a shared concurrency_id takes its lowest limit only after that."""
    sample = imaging.encode_base64(imaging.sample_png())
    upload = _multipart_upload(base_url, imaging.sample_png())
    for name, payload in (("segment_b64", sample), ("segment", {"path": upload, "meta": FILEDATA_META})):
        event_id = _post_json(f"{base_url}/gradio_api/call/{name}", {"data": [payload]})["event_id"]
        with urllib.request.urlopen(f"{base_url}/gradio_api/call/{name}/{event_id}", timeout=600) as stream:
            body = stream.read().decode()
        if "event: complete" not in body:
            raise RuntimeError(f"warm-up call of {name} failed: {body[-500:]}")


def _post_json(url: str, payload: object) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _multipart_upload(base_url: str, data: bytes) -> str:
    boundary = "gvf-warmup-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="warmup.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{base_url}/gradio_api/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(json.loads(response.read())[0])
