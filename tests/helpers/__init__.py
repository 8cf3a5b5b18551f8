"""Shared test helpers: import them from here (``tests.helpers...``), never from ``conftest``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loadtests.serverproc import ServerProcess

# a real photo (tests read nothing outside the repository)
PHOTO = (Path(__file__).parent.parent / "data" / "photo.jpg").read_bytes()

# the ``server_factory`` fixture: start(kind, *flags) -> a ready server, stopped after the test
StartServer = Callable[..., ServerProcess]
