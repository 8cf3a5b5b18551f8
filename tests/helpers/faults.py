"""Clients that misbehave on purpose, over raw sockets on 127.0.0.1: they leave, stream huge
bodies, or trickle bytes. Used by the server fault tests and ``scripts/bench_faults.py``."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit


def host_port(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    assert parts.hostname == "127.0.0.1", "fault clients talk to 127.0.0.1 only"
    return parts.hostname, int(parts.port or 80)


def request_bytes(base: str, method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    host, port = host_port(base)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def send_then_leave(base: str, raw_request: bytes, leave_after_s: float) -> None:
    """Send a whole request, wait, and close the connection without reading the answer."""
    with socket.create_connection(host_port(base), timeout=10) as sock:
        sock.sendall(raw_request)
        time.sleep(leave_after_s)


def gradio_call_then_leave(
    base: str, name: str, payload: object, leave_after_s: float, request_id: str
) -> str:
    """POST /gradio_api/call/<name>, open its SSE stream on the same connection, and close it
    ``leave_after_s`` after the POST was sent. Returns the event id."""
    started = time.monotonic()
    body = json.dumps({"data": [payload]}).encode()
    post = request_bytes(
        base,
        "POST",
        f"/gradio_api/call/{name}",
        body,
        Content_Type="application/json",
        X_Request_ID=request_id,
    )
    with socket.create_connection(host_port(base), timeout=10) as sock:
        sock.sendall(post)
        answer = read_answer(sock)
        event_id = str(json.loads(answer)["event_id"])
        sock.sendall(request_bytes(base, "GET", f"/gradio_api/call/{name}/{event_id}"))
        time.sleep(max(0.0, leave_after_s - (time.monotonic() - started)))
    return event_id


def leave(kind: str, base: str, image: bytes, request_id: str, after_s: float) -> None:
    """One segment call (gradio: ``segment_b64``; FastAPI: ``/segment``) whose client goes away
    ``after_s`` after sending it, without reading the answer."""
    if kind == "gradio":
        payload = base64.b64encode(image).decode()
        gradio_call_then_leave(base, "segment_b64", payload, after_s, request_id)
    else:
        raw = request_bytes(
            base, "POST", "/segment", image, Content_Type="image/png", X_Request_ID=request_id
        )
        send_then_leave(base, raw, after_s)


def read_answer(sock: socket.socket) -> bytes:
    """The body of one HTTP/1.1 answer with a Content-Length, read off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    if status != 200:
        raise RuntimeError(f"answer {status}: {body[:200]!r}")
    return body


@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float  # first byte sent to the answer read


def chunked_post(
    base: str, path: str, total_bytes: int, content_type: str = "application/json", chunk_bytes: int = 1 << 20
) -> Answer:
    """POST about ``total_bytes`` with ``Transfer-Encoding: chunked`` (no length): a JSON string
    field, a multipart file field named ``files``, or raw bytes, after ``content_type``."""
    host, port = host_port(base)
    chunk = b"A" * chunk_bytes
    boundary = "gvf-faults-boundary"
    head, tail = {
        "application/json": (b'{"image": "', b'"}'),
        "multipart/form-data": (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n".encode(),
            f"\r\n--{boundary}--\r\n".encode(),
        ),
    }.get(content_type, (b"", b""))
    if content_type == "multipart/form-data":
        content_type += f"; boundary={boundary}"

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(total_bytes // chunk_bytes):
            yield chunk
        yield tail

    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=120)
    try:
        connection.request(
            "POST", path, body=body(), headers={"Content-Type": content_type}, encode_chunked=True
        )
        response = connection.getresponse()
        return Answer(response.status, response.read(), time.perf_counter() - started)
    finally:
        connection.close()


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def peak_rss_growth(pid: int, action: Callable[[], object]) -> int:
    """Bytes the process's peak RSS rose above its RSS while ``action`` ran (Linux: the peak
    is reset to the current RSS first, through ``/proc/PID/clear_refs``)."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    before = rss_bytes(pid)
    action()
    return rss_bytes(pid, "VmHWM") - before


@contextmanager
def slow_sockets(
    base: str, count: int, path: str, body: bool, every_s: float = 0.2
) -> Iterator[list[socket.socket]]:
    """``count`` slow-loris clients POSTing to ``path``: each trickles its request headers
    (``body=False``) or, headers sent, a JSON body (``body=True``) one byte every ``every_s``,
    until the block ends. The body never completes: 1 MB is declared."""
    host, port = host_port(base)
    head = request_bytes(base, "POST", path, b"", Content_Type="application/json")
    if body:
        head = head.replace(b"Content-Length: 0", b"Content-Length: 1000000")
    sockets = [socket.create_connection((host, port), timeout=10) for _ in range(count)]
    stop = threading.Event()

    def trickle() -> None:
        sent = [0] * count
        while not stop.wait(every_s):
            for index, sock in enumerate(sockets):
                try:
                    if body and sent[index] < len(head):
                        sock.sendall(head)  # headers at once, then the body byte by byte
                        sent[index] = len(head)
                    elif body:
                        sock.sendall(b"x")
                    elif sent[index] < len(head) - 4:  # never the blank line that ends the headers
                        sock.sendall(head[sent[index] : sent[index] + 1])
                        sent[index] += 1
                except OSError:
                    pass  # the server may close a slow socket: that is its right

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield sockets
    finally:
        stop.set()
        thread.join()
        for sock in sockets:
            sock.close()
