"""A test-only server that leaks a known amount of memory per request, run as a real process
(``python -m tests.helpers.leaky_server --port P --leak-kb N``), so that the soak's slope test
has a subject whose answer is known: ``--leak-kb 0`` plateaus, ``--leak-kb 64`` grows 64 KB per
request (65.5 MB per 1,000 requests).

It speaks just enough of the FastAPI servers' protocol for the ``fastapi`` client and the
harness: ``POST /segment`` (any body -> a tiny PNG), ``GET /healthz``, ``GET /ledger`` and
``POST /ledger/reset`` (one row per request since the last reset, ``held`` the leaked bytes).
A fixture under tests/ rather than a hidden leak flag in ``servers/``: no switch that makes a
product server leak ships with the product, and the soak measures any process the harness
started, so a plain one is a fair subject.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class LeakyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the load generator's pool expects
    leak_bytes = 0
    kept: list[bytes] = []  # noqa: RUF012 (the leak itself: never emptied)
    rows: list[dict] = []  # noqa: RUF012
    lock = threading.Lock()

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._json({"status": "ok", "server": "leaky"})
        elif self.path.startswith("/ledger"):
            self._json(self._ledger(reset=False))
        else:
            self._json({"detail": "not found"}, 404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/ledger/reset":
            self._json(self._ledger(reset=True))
            return
        t_recv = time.time()
        with self.lock:
            if self.leak_bytes:
                self.kept.append(b"\x01" * self.leak_bytes)  # written, so the pages are resident
            self.rows.append(
                {
                    "request_id": self.headers.get("X-Request-ID", ""),
                    "status": 200,
                    "t_recv": t_recv,
                    "t_send": time.time(),
                    "bytes_in": len(body),
                }
            )
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def _ledger(self, reset: bool) -> dict:
        with self.lock:
            rows = list(self.rows)
            if reset:
                self.rows.clear()
            held = {"leaked_kb": len(self.kept) * self.leak_bytes // 1024}
        return {"requests": rows, "in_flight": 0, "queued": 0, "peak_gpu_bytes": None, "held": held}

    def _json(self, payload: dict, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--leak-kb", type=int, default=0)
    args = parser.parse_args()
    LeakyHandler.leak_bytes = args.leak_kb * 1024
    server = ThreadingHTTPServer(("127.0.0.1", args.port), LeakyHandler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
