"""The session's line splitter: lines of a chunked body, whatever the chunk boundaries, in time
linear in the body (a Gradio result is one SSE line of megabytes, read in 8 KB chunks)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from loadtests.session import DeadlineExceeded, split_lines

CHUNK = 8192


def _chunks(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("size", [1, 2, 3, 7, CHUNK])
def test_lines_survive_any_chunk_boundary(size: int) -> None:
    body = b"event: complete\r\ndata: [1, 2]\n\n: heartbeat\r\n\r\nlast line without end"
    lines = list(split_lines(_chunks(body, size), time.time() + 10))
    assert lines == [b"event: complete", b"data: [1, 2]", b"", b": heartbeat", b"", b"last line without end"]


def test_empty_body_and_a_body_ending_in_a_newline() -> None:
    assert list(split_lines(iter([]), time.time() + 10)) == []
    assert list(split_lines(iter([b"a\n", b"b\n"]), time.time() + 10)) == [b"a", b"b"]


def test_a_passed_deadline_stops_between_chunks() -> None:
    lines = split_lines(iter([b"first\n", b"second\n"]), time.time() - 1)
    with pytest.raises(DeadlineExceeded):
        list(lines)


def test_one_long_line_costs_time_linear_in_its_length() -> None:
    # a 1080p RGBA cutout as base64 is one ~2.3 MB SSE line; at 16 MB, a splitter that copies and
    # rescans the pending buffer for every 8 KB chunk does ~16 GB of work (seconds), a linear one
    # a few tens of milliseconds: the bound is generous either way
    line = b"data: " + b"A" * (16 * 1024 * 1024)
    started = time.perf_counter()
    lines = list(split_lines(_chunks(line + b"\n\n", CHUNK), time.time() + 60))
    elapsed = time.perf_counter() - started
    assert lines == [line, b""]
    assert elapsed < 1.0, f"{elapsed:.2f} s to split a 16 MB line"
