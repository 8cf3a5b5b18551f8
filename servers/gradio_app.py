"""The ``gradio.Server`` adapter: the core behind Gradio's queue.

Two endpoints share one ``concurrency_id`` so ``--concurrency N`` bounds them together:
``segment`` takes and returns ``FileData`` (the reference demo's shape: upload, call,
download), ``segment_b64`` takes a base64 string and returns base64 PNG. Gradio's queue
wraps the whole function (decode, GPU, encode); that difference from FastAPI's GPU-only
lock is a finding, not something to hide. Bad input raises ``gr.Error`` so its message
reaches the client as an SSE ``error`` event; so does a GPU out of memory.

What stock ``gradio.Server`` leaves unbounded is bounded here: bodies on every route
(``servers/limits.py``), the sessions that keep each call's input and output
(``--state-sessions``), the queue's per-call leftovers (``servers/gradio_queue.py``) and
the temp dir (``servers/gradio_files.py``).
"""

# no `from __future__ import annotations`: Gradio reads the endpoint functions' type hints
# at launch, and string hints naming the locally imported `gr` cannot be resolved
import json
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from servers import mcp_tools
from servers.core import imaging
from servers.core.backends.base import GpuOutOfMemory
from servers.core.imaging import ImageError
from servers.core.ledger import CLIENT_GONE, ClientGone, LedgerRow, Stage
from servers.core.segmenter import LedgeredSegmenter, settled
from servers.gradio_files import ServedResultCleanup, TempFiles, inside
from servers.gradio_queue import QueueWatch, SweepMiddleware
from servers.http_common import (
    REQUEST_ID_HEADER,
    ArrivalStamps,
    HealthState,
    RequestIdMiddleware,
    add_common_routes,
)
from servers.limits import BodyLimitMiddleware, QueueFullMiddleware, image_body_limits
from servers.mcp_tools import McpArrivals
from servers.page import add_page_route

T = TypeVar("T")
CONCURRENCY_ID = "gpu"
CALL_PREFIXES = ("/gradio_api/call/", "/gradio_api/queue/join")
FILEDATA_META = {"_type": "gradio.FileData"}


def configure_environment(temp_dir: Path) -> None:
    """Must run before gradio is imported: these are read at import or launch time."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    # the analytics summary is recomputed every N events; at 1 latency drifts 9 -> 17 ms over 4k calls
    os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"] = str(10**9)
    os.environ["GRADIO_TEMP_DIR"] = str(temp_dir)


def serve(
    service: LedgeredSegmenter,
    health: HealthState,
    *,
    host: str,
    port: int,
    concurrency: int,
    max_queue: int | None,
    batch: int,
    temp_dir: Path,
    state_sessions: int,
    keep_files_s: float,
    max_temp_bytes: int,
    mcp: bool = True,
) -> None:
    """Build the app, launch it, warm every endpoint through the queue, then block. ``batch`` > 1:
    each endpoint takes up to that many queued calls at once (``@app.api(batch=True)``)."""
    import gradio as gr
    from gradio.context import LocalContext

    stamps = ArrivalStamps()
    mcp_arrivals = ArrivalStamps()
    stop_pruning = threading.Event()
    app = gr.Server(title="BiRefNet segmentation (gradio.Server)")
    # Gradio keeps the path of every upload in a set; forget the ones the pruner deleted
    files = TempFiles(
        temp_dir,
        keep_files_s,
        max_temp_bytes,
        forget=lambda path: app.get_blocks().upload_file_set.discard(path),
    )
    watch = QueueWatch(service.ledger, stamps, keep_results_s=keep_files_s)

    def queue() -> Any:
        # the routes and middleware answer only after launch, when the queue exists
        return app.get_blocks()._queue

    def queue_full() -> bool:
        return queue().max_size is not None and len(queue()) >= queue().max_size

    max_image_bytes = service.segmenter.limits.max_bytes
    raw_limit, b64_limit = image_body_limits(max_image_bytes)
    # the last added is the outermost: request ids first, so every refusal carries one
    if mcp:
        app.add_middleware(McpArrivals, stamps=mcp_arrivals, path=mcp_tools.GRADIO_PATH)  # inside the id's
    app.add_middleware(SweepMiddleware, sweep=watch.sweep)
    app.add_middleware(ServedResultCleanup, files=files)
    app.add_middleware(
        BodyLimitMiddleware,
        # any other route: the largest body a route here accepts (an image as base64 JSON)
        limits=(("/gradio_api/upload", raw_limit), ("/", b64_limit)),
        hint=f"images up to {max_image_bytes / 1e6:.0f} MB are accepted (--max-mb): send a smaller file",
    )
    app.add_middleware(QueueFullMiddleware, paths=CALL_PREFIXES, is_full=queue_full, max_queue=max_queue)
    app.add_middleware(RequestIdMiddleware, stamps=stamps, stamp_paths=CALL_PREFIXES)

    def held() -> dict[str, int]:
        return {
            "arrival_stamps": len(stamps),
            "state_sessions": len(app.state_holder.session_data),
            **watch.held(),
            "upload_paths": len(app.get_blocks().upload_file_set),
            "temp_files": files.usage.files,
            "temp_bytes": files.usage.bytes,
        }

    add_common_routes(app, service.ledger, health, queued=watch.waiting, held=held)
    add_page_route(app)  # before launch(), so it precedes Gradio's own "/"

    def open_row(endpoint: str, request_id: str, t_admit: float, event_id: str | None) -> LedgerRow:
        t_recv = stamps.pop(request_id)
        row = service.ledger.open(request_id, endpoint, t_recv if t_recv is not None else t_admit)
        row.t_admit = t_admit
        row.event_id = event_id or ""  # joins Gradio's profiler traces
        return row

    def conclude(
        row: LedgerRow,
        compute: Callable[[], bytes],
        deliver: Callable[[bytes], T],
        still_wanted: Callable[[], bool],
    ) -> T:
        """One call's answer, or the ``gr.Error`` its caller gets; closes its ledger row. ``deliver``
        (base64 text or a result file) runs inside the ledger span, after post, as the FastAPI
        adapter's answer rendering does."""
        status = 500
        try:
            answer = deliver(compute())
            row.stage = Stage.DONE
            # an answer finished after its caller left reaches nobody: its GPU time was waste
            status = 200 if still_wanted() else CLIENT_GONE
            return answer
        except ImageError as exc:
            status = exc.status
            raise gr.Error(str(exc), print_exception=False) from None
        except GpuOutOfMemory as exc:
            status = 503
            raise gr.Error(str(exc)) from None
        except ClientGone:
            status = CLIENT_GONE
            raise gr.Error(
                "the caller left before the GPU stage; nothing computed", print_exception=False
            ) from None
        finally:
            service.ledger.close(row, status)

    def run_core(
        endpoint_of: Callable[[str], str],
        request: gr.Request,
        payload: Any,
        read_input: Callable[[Any], bytes],
        deliver: Callable[[bytes], T],
    ) -> T | tuple[list[T | None]]:
        """The queued function's body. Its hints describe one call: what clients send and what the
        API and MCP schemas show. With ``--batch`` > 1 Gradio passes a list of inputs (``request``
        is the first input's) and takes back a tuple holding the list of answers; an input that
        fails fails alone (``QueueWatch.fail``), its batch-mates are answered."""
        t_admit = time.time()
        if batch == 1:
            request_id = request.headers.get(REQUEST_ID_HEADER) or ""
            # the queue sets the event id in the worker thread's context (gr.Progress reads it so)
            row = open_row(endpoint_of(request_id), request_id, t_admit, LocalContext.event_id.get(None))
            still_wanted = watch.admitted()
            return conclude(
                row,
                lambda: service.run(row, lambda: read_input(payload), still_wanted),
                deliver,
                still_wanted,
            )
        callers = watch.admitted_batch(request, len(payload))
        rows = [
            open_row(endpoint_of(caller.request_id), caller.request_id, t_admit, caller.event_id)
            for caller in callers
        ]
        outcomes = service.run_batch(
            rows, [partial(read_input, item) for item in payload], [caller.still_wanted for caller in callers]
        )
        answers: list[T | None] = []
        for caller, row, outcome in zip(callers, rows, outcomes, strict=True):
            try:
                answers.append(conclude(row, partial(settled, outcome), deliver, caller.still_wanted))
            except Exception as exc:
                watch.fail(caller, exc if isinstance(exc, gr.Error) else gr.Error(str(exc)))
                answers.append(None)
        return (answers,)

    def ledger_endpoint(name: str) -> Callable[[str], str]:
        return lambda request_id: name

    def write_result(png: bytes) -> dict:
        out_path = files.new_result_path()
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
        if not inside(path, temp_dir) or files.is_result(path):
            raise ImageError(
                "file path is outside the upload folder: upload the image through "
                "POST /gradio_api/upload and pass the path it returns"
            )
        try:
            return path.read_bytes()
        except OSError:
            raise ImageError(
                "uploaded file not found (uploads are kept for --keep-files-s): upload it again "
                "through POST /gradio_api/upload"
            ) from None

    # one concurrency group for every segment endpoint; a batch takes one of its slots
    queued: dict[str, Any] = {"concurrency_limit": concurrency, "concurrency_id": CONCURRENCY_ID}
    if batch > 1:
        queued |= {"batch": True, "max_batch_size": batch}

    @app.api(name="segment", **queued)
    def segment(image: dict, request: gr.Request) -> dict:
        """Segment an uploaded image (FileData) -> the PNG result as FileData."""
        return run_core(ledger_endpoint("segment"), request, image, read_upload, write_result)

    @app.api(name="segment_b64", **queued)
    def segment_b64(image: str, request: gr.Request) -> str:
        """Segment a base64 image (a data: URL prefix is allowed) -> base64 PNG."""
        return run_core(
            ledger_endpoint("segment_b64"), request, image, imaging.decode_base64, imaging.encode_base64
        )

    if mcp:
        # Gradio's MCP server runs this queued function through a loopback HTTP call (gradio_client,
        # /queue/join) that carries the caller's X-Request-ID; its own arrival stamp is later than
        # the MCP request's, which is the one the ledger keeps. Returning FileData is what makes
        # Gradio answer with image content (it re-encodes the file with PIL's PNG defaults).
        def mcp_endpoint(request_id: str) -> str:
            t_mcp = mcp_arrivals.pop(request_id)
            if t_mcp is None:  # called as a plain queued endpoint, not through MCP
                return mcp_tools.TOOL_NAME
            stamps.put(request_id, t_mcp)
            return mcp_tools.LEDGER_ENDPOINT

        @app.mcp.tool()
        @app.api(name=mcp_tools.TOOL_NAME, description=mcp_tools.TOOL_DESCRIPTION, **queued)
        def remove_background(image: str, request: gr.Request) -> dict:
            """Remove the background of an image.

            Args:
                image: the image file base64-encoded (PNG, JPEG or WebP); a data: URL prefix is allowed
            """
            return run_core(mcp_endpoint, request, image, imaging.decode_base64, write_result)

    # SIGTERM (how the harness stops servers) must unwind through `finally` to clean the temp dir
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Thread(target=files.prune_until, args=(stop_pruning,), daemon=True).start()
    try:
        app.launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            max_file_size=max_image_bytes,
            # each /call opens a session that keeps its input and output values until this many
            # newer sessions exist; the segment endpoints keep no gr.State, so evicting is safe
            state_session_capacity=state_sessions,
            mcp_server=mcp,
        )
        blocks = app.get_blocks()
        if max_queue is not None:
            blocks._queue.max_size = max_queue  # only settable after launch (docs/design.md §4)
        watch.attach(blocks._queue)
        warm_up_queue(f"http://{host}:{port}")
        if mcp:
            # also builds the loopback client Gradio's MCP server creates on its first tool call
            mcp_tools.call_once(f"http://{host}:{port}{mcp_tools.GRADIO_PATH}/", imaging.sample_png())
        service.ledger.reset()
        health.ready = True
        blocks.block_thread()
    finally:
        stop_pruning.set()
        shutil.rmtree(temp_dir, ignore_errors=True)


def warm_up_queue(base_url: str) -> None:
    """Run each endpoint once: a shared concurrency_id takes its lowest limit only after that.
    The FileData call is made as a client makes it: upload, call, download (which deletes it)."""
    payloads: dict[str, Callable[[], object]] = {
        "segment_b64": lambda: imaging.encode_base64(imaging.sample_png()),
        # uploaded right before its call: --keep-files-s may be short
        "segment": lambda: {"path": _multipart_upload(base_url, imaging.sample_png()), "meta": FILEDATA_META},
    }
    for name, make_payload in payloads.items():
        event_id = _post_json(f"{base_url}/gradio_api/call/{name}", {"data": [make_payload()]})["event_id"]
        with urllib.request.urlopen(f"{base_url}/gradio_api/call/{name}/{event_id}", timeout=600) as stream:
            body = stream.read().decode()
        if "event: complete" not in body:
            raise RuntimeError(f"warm-up call of {name} failed: {body[-500:]}")
        result = json.loads(body.split("event: complete\ndata:", 1)[1].split("\n", 1)[0])[0]
        if isinstance(result, dict):
            with urllib.request.urlopen(result["url"], timeout=60) as download:
                download.read()


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
