"""Gradio's temp dir kept bounded: results deleted once served, the rest after a retention, a size cap.

Server mode never deletes uploads or results (docs/design.md §4), so the project does:

1. a result file is deleted as soon as its download has been sent in full
   (:class:`ServedResultCleanup`; a HEAD or a range request leaves it);
2. any file older than ``--keep-files-s`` is deleted (uploads too: Gradio names an upload by
   its content hash, so two callers sending the same image share one file, and an upload is
   never deleted on first use);
3. beyond ``--max-temp-mb`` the oldest files are deleted first (a call whose upload went
   this way is told to upload again).

Rules 2 and 3 run in a daemon thread every :data:`PRUNE_EVERY_S`, never inside a queued call
(whose slot it would hold): between two passes the dir can pass the cap by what arrived in
that time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PRUNE_EVERY_S = 2.0
# an empty upload folder younger than this may be about to receive its file (Gradio makes the
# folder, then moves the upload into it)
EMPTY_DIR_GRACE_S = 30.0
FILE_ROUTE = "/gradio_api/file="


def inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class TempUsage:
    files: int
    bytes: int


class TempFiles:
    """The temp dir (``root``) and its results folder; ``forget`` is told of each deleted file
    (Gradio keeps the path of every upload in a set of its own)."""

    def __init__(
        self,
        root: Path,
        keep_s: float,
        max_bytes: int,
        forget: Callable[[str], None] = lambda path: None,
    ) -> None:
        self.root = root
        self.results = root / "outputs"
        self.results.mkdir(parents=True, exist_ok=True)
        self.keep_s = keep_s
        self.max_bytes = max_bytes
        self.forget = forget
        self.usage = TempUsage(0, 0)  # as of the last pass

    def new_result_path(self) -> Path:
        # named by the server, never by the client: a request id is client text
        return self.results / f"{uuid.uuid4().hex}.png"

    def is_result(self, path: Path) -> bool:
        return inside(path, self.results)

    def delete(self, path: Path) -> bool:
        try:
            path.unlink()
        except OSError:  # gone already, or never there
            return False
        self.forget(str(path))
        return True

    def prune(self) -> TempUsage:
        """One pass of rules 2 and 3; returns what is left."""
        now = time.time()
        kept: list[tuple[float, int, Path]] = []
        for folder, dirs, names in os.walk(self.root):
            for name in names:
                path = Path(folder) / name
                with contextlib.suppress(OSError):  # a file can vanish or be served meanwhile
                    stat = path.stat()
                    if now - stat.st_mtime > self.keep_s:
                        self.delete(path)
                    else:
                        kept.append((stat.st_mtime, stat.st_size, path))
            if not dirs and not names and Path(folder) not in (self.root, self.results):
                with contextlib.suppress(OSError):
                    if now - Path(folder).stat().st_mtime > EMPTY_DIR_GRACE_S:
                        Path(folder).rmdir()
        kept.sort()
        total = sum(size for _, size, _ in kept)
        while kept and total > self.max_bytes:
            _, size, path = kept.pop(0)
            self.delete(path)
            total -= size
        self.usage = TempUsage(len(kept), total)
        return self.usage

    def prune_until(self, stop: threading.Event) -> None:
        """The daemon thread's loop."""
        while not stop.wait(PRUNE_EVERY_S):
            self.prune()


class ServedResultCleanup:
    """Deletes a result file once ``GET /gradio_api/file=<result>`` has sent it in full."""

    def __init__(self, app: ASGIApp, files: TempFiles) -> None:
        self.app = app
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = self._result_path(scope)
        if path is None:
            await self.app(scope, receive, send)
            return
        served = False
        status = 0

        async def watching_send(message: Message) -> None:
            nonlocal served, status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                served = status == 200
            await send(message)

        await self.app(scope, receive, watching_send)
        if served:
            self.files.delete(path)

    def _result_path(self, scope: Scope) -> Path | None:
        if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith(FILE_ROUTE):
            return None
        if any(k == b"range" for k, _ in scope.get("headers", [])):
            return None
        path = Path(scope["path"].removeprefix(FILE_ROUTE))  # already percent-decoded
        return path if self.files.is_result(path) else None
