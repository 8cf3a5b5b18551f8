"""What most server tests share: the ``server_factory`` fixture's type and the test photo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loadtests.serverproc import ServerProcess

# the ``server_factory`` fixture: start(kind, *flags) -> a ready server, stopped after the test
StartServer = Callable[..., ServerProcess]
# a real photo (tests read nothing outside the repository)
PHOTO = (Path(__file__).parent.parent / "data" / "photo.jpg").read_bytes()
