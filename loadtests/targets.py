"""The server under test as the run sees it: its ledger (reset, pulled, idle), its health and
family, and which ``--server-arg`` flags it is given (the ``KIND:FLAG`` syntax, parsed here
only).

A :class:`Target` is either a server ``gvf run`` started (its ledger is joined to the table)
or one given by ``--target-url`` (no ledger: client-side rows only).
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from loadtests.clients import SERVER_FAMILY
from loadtests.profiler import ProfilerTraces
from loadtests.recorder import Recorder
from loadtests.serverproc import ServerProcess, get_json

TARGET_URL_LABEL = "target"  # the table's server column for --target-url runs
_POLL_S = 0.1


class ServerDied(RuntimeError):
    """The server under test exited during the run."""


class UnknownServerKind(ValueError):
    """A ``KIND:FLAG`` whose KIND names no server kind (a typo would send FLAG to every server)."""


@dataclass
class Target:
    """A server under test: one we started (ledger joined) or one given by --target-url."""

    label: str
    url: str
    process: ServerProcess | None
    family: str
    ledger_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    backlog: int = 0  # what the last wait for idle left in the server (see wait_idle)
    profiler: ProfilerTraces | None = None  # a gradio server run with Gradio's profiler on

    @property
    def has_ledger(self) -> bool:
        return self.process is not None

    def pause(self) -> None:
        """Pause a server we started while another is measured (loadtests.serverproc)."""
        if self.process is not None:
            self.process.pause()

    def resume(self) -> None:
        if self.process is not None:
            self.process.resume()

    def check_alive(self) -> None:
        if self.process is not None and not self.process.alive:
            raise ServerDied(f"{self.label} {self.process.exit_description()} during the run")

    def reset_ledger(self, recorder: Recorder) -> int:
        """Start a point: clear the rows and the peak-memory counter; returns the requests the
        server holds then (:meth:`in_server`). The server answers with the rows it cleared,
        taken atomically, so a request completing during the reset (under load, between points)
        keeps its ledger row."""
        return self.requests_held(self.take_ledger(recorder)) if self.has_ledger else 0

    def take_ledger(self, recorder: Recorder) -> dict[str, Any]:
        """Reset the ledger, keeping the rows it cleared (for the join and ``ledger.jsonl``);
        returns its answer: the rows, the counters and the peak memory since the last reset, and
        what the server ``held`` ({} without a ledger)."""
        if not self.has_ledger:
            return {}
        cleared = _post_empty(self.url + "/ledger/reset")
        self._keep(cleared.get("requests") or [], recorder)
        return cleared

    def pull_ledger(self, recorder: Recorder) -> dict[str, Any]:
        """The ledger's rows since the last reset (kept for the join) and its counters."""
        if not self.has_ledger:
            return {}
        ledger = get_json(self.url + "/ledger", timeout_s=30.0)
        self._keep(ledger.get("requests", []), recorder)
        return ledger

    def _keep(self, rows: list[dict[str, Any]], recorder: Recorder) -> None:
        fresh = [row for row in rows if str(row.get("request_id")) not in self.ledger_rows]
        for row in fresh:
            self.ledger_rows[str(row["request_id"])] = row
        recorder.save_ledger(self.label, fresh)

    def in_server(self) -> int:
        """Requests the server holds: those in flight and those accepted but not yet admitted
        (``queued``). Gradio's ledger row (and ``in_flight``) opens only when its function
        starts, so its queued events add to ``in_flight``; FastAPI's semaphore waiters are
        already in it (docs/design.md §3, As built). A server without ``queued`` (older, or
        reached by --target-url) counts as 0 there."""
        if not self.has_ledger:
            return 0
        return self.requests_held(get_json(self.url + "/ledger", timeout_s=30.0))

    def requests_held(self, ledger: dict[str, Any]) -> int:
        """The requests a ledger answer says the server holds (see :meth:`in_server`)."""
        in_flight, queued = int(ledger.get("in_flight") or 0), int(ledger.get("queued") or 0)
        return in_flight + queued if self.family == "gradio" else max(in_flight, queued)

    def wait_idle(self, timeout_s: float) -> int:
        """Wait until the server holds no request (abandoned requests, timeouts, finishing) or
        ``timeout_s`` has passed; returns what it still holds then (0: idle). That count is the
        :attr:`backlog` the next point measured on this server starts with."""
        deadline = time.time() + timeout_s
        while True:
            self.check_alive()
            held = self.in_server()
            if held == 0 or time.time() >= deadline:
                self.backlog = held
                return held
            time.sleep(_POLL_S)  # cooperative inside gvf run: gevent patched time.sleep

    def take_backlog(self) -> int:
        """What the last wait for idle left in the server, once: a point that follows another
        without a wait (a spike's phases) starts with none recorded."""
        backlog, self.backlog = self.backlog, 0
        return backlog


def _post_empty(url: str) -> dict[str, Any]:
    """POST without a body; the JSON object answered ({} for anything else)."""
    with urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b""), timeout=30) as response:
        answer = json.loads(response.read() or b"{}")
    return answer if isinstance(answer, dict) else {}


def external_target(url: str) -> tuple[Target, dict[str, Any]]:
    """The ``--target-url`` server, and what its ``/healthz`` said ({} when it has none). Its
    family comes from the health answer's ``server`` kind, else from whether it serves Gradio's
    ``/config``."""
    url = url.rstrip("/")
    health = probe_health(url)
    family = SERVER_FAMILY.get(str(health.get("server", "")), "") or guess_family(url)
    return Target(TARGET_URL_LABEL, url, None, family), health


def probe_health(url: str) -> dict[str, Any]:
    """``/healthz`` of a server, {} when it does not answer one as a JSON object."""
    try:
        health = get_json(url + "/healthz", timeout_s=10.0)
    except Exception:
        return {}
    return health if isinstance(health, dict) else {}


def guess_family(url: str) -> str:
    """``gradio`` when the server answers Gradio's ``/config``, else ``fastapi``."""
    try:
        get_json(url + "/config", timeout_s=10.0)
    except Exception:
        return "fastapi"
    return "gradio"


def split_server_arg(arg: str) -> tuple[str | None, str]:
    """(kind, flag) of one ``--server-arg``: ``KIND:FLAG`` goes to that server kind only, anything
    else (kind None) to every server. Only a prefix before the first ':' that does not start with
    '-' is a kind, so a flag whose value holds a colon (``--weights=C:/w``) passes unchanged.

    Raises :class:`UnknownServerKind` for ``NAME:-...`` where NAME is no server kind."""
    kind, colon, flag = arg.partition(":")
    if not colon or kind.startswith("-"):
        return None, arg
    if kind in SERVER_FAMILY:
        return kind, flag
    if flag.startswith("-"):
        raise UnknownServerKind(f"unknown server kind {kind!r}; known: {', '.join(SERVER_FAMILY)}")
    return None, arg


def server_args_for(kind: str, server_args: list[str]) -> list[str]:
    """The ``--server-arg`` flags that go to ``kind``, in the order given."""
    return [flag for prefix, flag in map(split_server_arg, server_args) if prefix in (None, kind)]


def refusal_message(label: str, error: str) -> str:
    """A server that exited with argparse's code 2 refused its flags: its own error line(s), and
    how to give a flag to one kind only. The load generator does not import servers/, so the
    server's own refusal is the check (it comes before the model is built)."""
    lines = [line.strip() for line in error.splitlines() if ": error:" in line]
    reason = "; ".join(lines) or error.splitlines()[-1]
    return (
        f"{label} refused its flags ({reason}). An unprefixed --server-arg goes to every server; "
        f"give a flag meant for one kind as --server-arg={label}:FLAG"
    )
