"""What most server tests share: the ``server_factory`` fixture's type, the test photo, and a burst."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from loadtests.serverproc import ServerProcess

T = TypeVar("T")

# the ``server_factory`` fixture: start(kind, *flags) -> a ready server, stopped after the test
StartServer = Callable[..., ServerProcess]
# a real photo (tests read nothing outside the repository)
PHOTO = (Path(__file__).parent.parent / "data" / "photo.jpg").read_bytes()


def burst(calls: list[Callable[[], T]]) -> list[T]:
    """Release all calls together (a barrier), as the collision scenario does; results in order."""
    barrier = threading.Barrier(len(calls))

    def fire(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(fire, calls))
