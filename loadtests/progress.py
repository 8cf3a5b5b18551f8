"""What ``gvf run`` shows while it runs: a live status line on a terminal, plain lines otherwise.

Events (a server started, a point finished) are always printed as lines; the live line
(requests done in the current point) is redrawn in place only when stderr is a terminal,
so logs and CI output stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live_enabled = self.stream.isatty() if live is None else live
        self._live_text = ""
        self._started = time.monotonic()

    def event(self, text: str) -> None:
        self._clear_live()
        elapsed = time.monotonic() - self._started
        self.stream.write(f"[{elapsed:7.1f}s] {text}\n")
        self.stream.flush()

    def live(self, text: str) -> None:
        if not self.live_enabled:
            return
        self._live_text = text
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()

    def _clear_live(self) -> None:
        if self.live_enabled and self._live_text:
            self.stream.write("\r\x1b[2K")
            self._live_text = ""
