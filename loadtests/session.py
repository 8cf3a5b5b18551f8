"""The small HTTP session abstraction every client is written against.

Two implementations, one interface (:class:`Session`):

- :class:`PlainSession` — ``urllib3`` with a keep-alive pool, thread-safe, for everything
  outside Locust (the open-loop driver, tests, probes). urllib3 is what ``requests`` is built
  on, minus its per-request overhead; httpx costs more per request on this machine.
- :class:`LocustSession` — Locust's own ``FastHttpSession`` (geventhttpclient), for Locust
  users. Its per-HTTP-call request events are switched off: the user fires exactly one event
  per *logical* request (several HTTP calls for the Gradio protocols).

A session raises on transport failures and on passing the caller's ``deadline`` (absolute
``time.time()``); the clients turn every exception into an error row.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import urllib3

if TYPE_CHECKING:
    from locust.contrib.fasthttp import FastHttpSession

# Smallest socket timeout handed to a transport: a deadline already past still gets one
# short attempt to read what has arrived instead of a zero (= non-blocking) timeout.
_MIN_TIMEOUT_S = 0.001


class DeadlineExceeded(TimeoutError):
    """The logical request's deadline passed before its last byte arrived."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str]  # lower-cased names


@dataclass
class Stream:
    """A response whose body is read line by line (server-sent events)."""

    status: int
    lines: Iterator[bytes]  # without the line terminator


class Session(Protocol):
    kind: str  # recorded in run.json as load_generator.http_session
    base_url: str

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float,
    ) -> Response: ...

    def stream(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, deadline: float
    ) -> Any:  # a context manager yielding a Stream
        ...


def remaining(deadline: float) -> float:
    """Seconds left until ``deadline``; raises once it has passed."""
    left = deadline - time.time()
    if left <= 0:
        raise DeadlineExceeded("deadline passed")
    return max(left, _MIN_TIMEOUT_S)


def split_lines(chunks: Iterator[bytes], deadline: float) -> Iterator[bytes]:
    """Lines of a chunked body, checking the deadline between chunks.

    Linear in the body: only each new chunk is searched for line ends, and an unfinished
    line is kept as a list of pieces joined once it ends. A Gradio result is one SSE line of
    megabytes read in 8 KB chunks; re-joining and rescanning the pending bytes for every
    chunk made that quadratic (~85 ms of client CPU for a 2.3 MB line)."""
    pieces: list[bytes] = []  # the unfinished line so far
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            pieces.append(chunk[start:end])
            yield b"".join(pieces).rstrip(b"\r")
            pieces.clear()
            start = end + 1
        if start < len(chunk):
            pieces.append(chunk[start:])
        remaining(deadline)
    if pieces:
        yield b"".join(pieces).rstrip(b"\r")


def _read_timeout_to_deadline(response: urllib3.BaseHTTPResponse, deadline: float) -> None:
    """Cut the socket timeout of the next read to what is left of ``deadline`` (raises once it
    has passed). The read timeout given with the request is fixed at its start: a stream that
    sends a heartbeat now and then (Gradio: every 15 s) would otherwise only notice a deadline
    that passed in between at its next heartbeat."""
    left = remaining(deadline)
    sock = getattr(response.connection, "sock", None)
    if sock is not None:
        sock.settimeout(left)


def _deadline_chunks(response: urllib3.BaseHTTPResponse, deadline: float) -> Iterator[bytes]:
    """The body's chunks as they arrive, none read past ``deadline``."""
    chunks = response.stream(8192)
    while True:
        _read_timeout_to_deadline(response, deadline)
        chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk


def absolute(base_url: str, path: str) -> str:
    return path if path.startswith(("http://", "https://")) else base_url + path


class PlainSession:
    """urllib3 pool: keep-alive connections, one per concurrent request, thread-safe."""

    kind = "urllib3"

    def __init__(self, base_url: str, max_connections: int = 1024) -> None:
        self.base_url = base_url.rstrip("/")
        # block=False: under open-loop overload more requests than pooled connections may be
        # in flight; extra connections are opened (and discarded) rather than waited for.
        self._pool = urllib3.PoolManager(maxsize=max_connections, block=False, retries=False)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float,
    ) -> Response:
        try:
            response = self._pool.request(
                method,
                absolute(self.base_url, path),
                body=body,
                headers=dict(headers or {}),
                timeout=urllib3.Timeout(total=remaining(deadline)),
                redirect=False,
            )
        except urllib3.exceptions.TimeoutError as error:
            raise DeadlineExceeded(str(error)) from error
        return Response(response.status, response.data, {k.lower(): v for k, v in response.headers.items()})

    @contextmanager
    def stream(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, deadline: float
    ) -> Iterator[Stream]:
        try:
            response = self._pool.request(
                method,
                absolute(self.base_url, path),
                headers=dict(headers or {}),
                timeout=urllib3.Timeout(connect=remaining(deadline), read=remaining(deadline)),
                preload_content=False,
                redirect=False,
            )
        except urllib3.exceptions.TimeoutError as error:
            raise DeadlineExceeded(str(error)) from error
        chunks = _deadline_chunks(response, deadline)
        read_to_end = False
        try:
            yield Stream(response.status, split_lines(chunks, deadline))
            # a normal exit: read what is left (Gradio closes its stream right after the final
            # event) so that the connection can go back to the pool, never past the deadline
            with suppress(DeadlineExceeded, urllib3.exceptions.HTTPError, OSError):
                for _ in chunks:
                    pass
                read_to_end = True
        except urllib3.exceptions.TimeoutError as error:
            raise DeadlineExceeded(str(error)) from error
        finally:
            if not read_to_end:
                # an exception (the deadline above all) or a stream still open: close the
                # connection unread. Reading on would wait for the end of the stream, which for
                # Gradio's (heartbeats every 15 s) comes only when the queued event completes.
                response.close()
            response.release_conn()

    def close(self) -> None:
        self._pool.clear()


class _NoEvents:
    """Stands in for Locust's request event hook inside :class:`LocustSession`."""

    def fire(self, **_kwargs: Any) -> None:
        pass


class LocustSession:
    """Locust's FastHttpSession with its per-call events off; the deadline is a gevent timeout."""

    kind = "locust-fasthttp"

    def __init__(self, base_url: str, network_timeout_s: float = 600.0) -> None:
        from locust.contrib.fasthttp import FastHttpSession  # imports gevent: only inside Locust

        self.base_url = base_url.rstrip("/")
        self._session: FastHttpSession = FastHttpSession(
            self.base_url,
            request_event=_NoEvents(),
            user=None,
            network_timeout=network_timeout_s,
            connection_timeout=network_timeout_s,
            concurrency=64,
        )

    def _send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None, stream: bool
    ) -> Any:
        # identity: both sessions must receive the same bytes the server wrote
        response = self._session.request(
            method,
            path,
            data=body,
            headers={"Accept-Encoding": "identity", **(headers or {})},
            stream=stream,
            allow_redirects=False,
        )
        # FastHttpSession reports transport failures as a response with .error; HTTP error
        # statuses arrive as ordinary responses carrying their body.
        error = getattr(response, "error", None)
        if error is not None and not response.status_code:
            raise error
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float,
    ) -> Response:
        import gevent

        with gevent.Timeout(remaining(deadline), DeadlineExceeded("deadline passed")):
            response = self._send(method, path, body, headers, stream=False)
            content = response.content or b""
        return Response(
            response.status_code, content, {k.lower(): v for k, v in (response.headers or {}).items()}
        )

    @contextmanager
    def stream(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, deadline: float
    ) -> Iterator[Stream]:
        import gevent

        with gevent.Timeout(remaining(deadline), DeadlineExceeded("deadline passed")):
            response = self._send(method, path, None, headers, stream=True)
            chunks = response.iter_content(chunk_size=8192, decode_content=False)
            try:
                yield Stream(response.status_code, split_lines(chunks, deadline))
            except BaseException:
                # close the connection unread (an unfinished response closes its socket on
                # release): reading on would wait for the stream's end, which for Gradio's comes
                # when its queued event completes (here: up to the deadline, still pending)
                response.release()
                raise
            # a normal exit: read to the end, as PlainSession does, never past the deadline
            # (still inside its timeout); the result is in hand, so a failure here is not one
            try:
                for _ in chunks:
                    pass
            except Exception:
                response.release()
