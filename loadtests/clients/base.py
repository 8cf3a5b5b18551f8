"""The one interface every client implements, and the result of one logical request.

A *logical request* is one image in and one result out, however many HTTP calls the
protocol needs for it (1 for FastAPI, 2 for Gradio with base64, 4 with file upload).
:meth:`Client.call` times it end to end and never raises: a failure is a result with
``ok=False`` and an ``error`` of the form ``"kind: message"`` (reports group by kind).

A call may carry a give-up time (the client timeout, ``gvf run --client-timeout-s``): at that
moment the session closes the connection (FastAPI) or the SSE stream (Gradio) unread, which
is what a server can notice, and the result is an ``abandoned`` error whose ``t_done`` is the
moment the client gave up.
"""

from __future__ import annotations

import base64
import binascii
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from loadtests.session import DeadlineExceeded, Response, Session
from reports.schema import ABANDONED

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# a client whose protocol every server family speaks (MCP: one tool at a path per family)
ANY_FAMILY = "any"


@dataclass
class CallResult:
    request_id: str
    t_sent: float  # just before the first byte of the first HTTP call
    t_done: float  # after the last byte of the result (or when the failure was noticed)
    status: int  # HTTP status of the call that decided the outcome (0 = no response)
    ok: bool
    error: str  # "kind: message", "" when ok
    bytes: int  # size of the result image (decoded PNG), whatever its transport encoding
    queue_rank: int | None = None  # gradio-queue only
    queue_eta: float | None = None  # gradio-queue only


@dataclass
class ExchangeResult:
    """What a protocol exchange produced (the timing is added by :meth:`Client.call`)."""

    status: int
    result_bytes: int
    queue_rank: int | None = None
    queue_eta: float | None = None


class CallError(Exception):
    """A protocol-level failure: an HTTP error status, an SSE error event, a bad result."""

    def __init__(self, kind: str, message: str, status: int = 0) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.status = status


class Client(ABC):
    """One protocol; built once per image, then called concurrently from many users."""

    name: ClassVar[str]
    family: ClassVar[str]  # the server family it speaks to: "fastapi", "gradio" or ANY_FAMILY
    description: ClassVar[str]

    def __init__(self, image: bytes, content_type: str) -> None:
        self.image = image
        self.content_type = content_type
        # encoded once: the base64 cost belongs to the client's setup, not to each request
        self.image_b64 = base64.b64encode(image).decode("ascii")
        # what prepare() found or measured, for run.json's ``client_setup`` ({}: nothing to say)
        self.preparation: dict[str, Any] = {}

    @classmethod
    def speaks_to(cls, family: str) -> bool:
        """Whether this client's protocol is served by servers of ``family``."""
        return cls.family in (family, ANY_FAMILY)

    def prepare(self, session: Session, deadline: float) -> None:  # noqa: B027 (optional hook)
        """One-off discovery before the first call (e.g. Gradio's fn_index); may raise."""

    @abstractmethod
    def exchange(self, session: Session, request_id: str, deadline: float) -> ExchangeResult:
        """The HTTP calls of one logical request; raises on any failure."""

    def call(
        self, session: Session, request_id: str, deadline: float, give_up_at: float | None = None
    ) -> CallResult:
        """One logical request, waiting for its answer until ``deadline`` (then a ``timeout``
        error), or until ``give_up_at`` where that comes first (then ``abandoned``)."""
        t_sent = time.time()
        give_up = give_up_at if give_up_at is not None and give_up_at < deadline else None
        try:
            outcome = self.exchange(session, request_id, deadline if give_up is None else give_up)
        except CallError as error:
            return CallResult(request_id, t_sent, time.time(), error.status, False, str(error), 0)
        except Exception as error:  # a client never raises: every failure is a row
            t_done = time.time()
            if give_up is not None and t_done >= give_up:
                # the session closed the connection unread when the give-up time came (a timeout
                # that fires while the body is still being sent surfaces as another transport error)
                waited = f"{give_up - t_sent:.3g} s after sending"
                message = f"{ABANDONED}: the client gave up {waited} and closed its connection"
                return CallResult(request_id, t_sent, t_done, 0, False, message, 0)
            if isinstance(error, DeadlineExceeded):
                return CallResult(request_id, t_sent, t_done, 0, False, f"timeout: {error}", 0)
            return CallResult(request_id, t_sent, t_done, 0, False, f"{type(error).__name__}: {error}", 0)
        t_done = time.time()
        if give_up is not None and t_done > give_up:
            # the whole answer was read before the timer could fire (a busy load process runs
            # its greenlet late): a client with this timeout would not have waited for it
            late = f"{t_done - give_up:.3g} s after its give-up time"
            message = f"{ABANDONED}: the answer came {late} (the load process was late to give up)"
            return CallResult(request_id, t_sent, t_done, outcome.status, False, message, 0)
        return CallResult(
            request_id,
            t_sent,
            t_done,
            outcome.status,
            True,
            "",
            outcome.result_bytes,
            outcome.queue_rank,
            outcome.queue_eta,
        )


def expect_status(response: Response, what: str) -> None:
    if not 200 <= response.status < 300:
        detail = response.body[:200].decode("utf-8", "replace").strip()
        raise CallError("http", f"{what} answered {response.status}: {detail}", response.status)


def png_size(data: bytes, what: str, status: int) -> int:
    """Size of a result that must be a PNG (cheap check: the 8-byte signature)."""
    if not data.startswith(PNG_SIGNATURE):
        raise CallError("bad result", f"{what} is not a PNG ({len(data)} bytes)", status)
    return len(data)


def b64_png_size(text: object, what: str, status: int) -> int:
    """Size of a base64 PNG (optionally a data: URL) without decoding it: only its first 12
    characters (9 bytes, the 8-byte signature included) are decoded; the size follows from the
    length. Decoding the whole image would put its CPU time into the measured latency and the
    load generator's CPU."""
    if not isinstance(text, str):
        raise CallError("bad result", f"{what} is not a base64 string", status)
    start = text.find(",") + 1 if text.startswith("data:") else 0  # no copy of a large string
    length = len(text) - start
    if length < 12 or length % 4:
        raise CallError("bad result", f"{what} is not base64 of a PNG ({length} characters)", status)
    try:
        head = base64.b64decode(text[start : start + 12], validate=True)
    except binascii.Error as error:
        raise CallError("bad result", f"{what} is not base64: {error}", status) from error
    if not head.startswith(PNG_SIGNATURE):
        raise CallError("bad result", f"{what} is not a PNG", status)
    padding = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    return length // 4 * 3 - padding


def sse_events(lines: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream, given its lines without their
    terminators; event is "" when unnamed."""
    event, data_lines = "", []
    for line in lines:
        if not line:
            if data_lines or event:
                yield event, "\n".join(data_lines)
            event, data_lines = "", []
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode()
        elif line.startswith(b"data:"):
            data_lines.append(line[5:].strip().decode())
    if data_lines or event:
        yield event, "\n".join(data_lines)
