"""Start a server under test in its own process group, wait until it is ready, stop it cleanly.

The load generator talks to servers only over HTTP (as a user would), so a server is always
a separate ``python -m servers KIND ...`` process. It gets its own process group so that
stopping it also stops anything it spawned (uvicorn, Gradio's helpers), and it is never
killed by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerStartError(RuntimeError):
    """The server exited or never became healthy; the message carries its last output."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # None: it did not exit (never ready); 2: it refused its flags


@dataclass
class ServerProcess:
    """A running ``python -m servers KIND`` process and what its ``/healthz`` said."""

    kind: str
    url: str
    command: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    health: dict[str, Any] = field(default_factory=dict)
    startup_s: float = 0.0  # process start to the first /healthz 200 (its own start-up warm-up included)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def exit_description(self) -> str | None:
        code = self.popen.poll()
        if code is None:
            return None
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def rss_bytes(self) -> int | None:
        """Resident memory of the server process and its children (Gradio's helpers); None once
        it has exited."""
        try:
            process = psutil.Process(self.popen.pid)
            return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
        except psutil.Error:
            return None

    def pause(self) -> None:
        """Stop the whole group (SIGSTOP) while another server is measured: an idle server is
        not idle on the CPU (Gradio's queue polls for work every millisecond: 3.6 % of a core,
        measured), and on a small machine that would be taken from the server under test.
        Returns once every process of the group has stopped (signals are delivered
        asynchronously), so that the next measurement starts without it."""
        _signal_group(self.popen.pid, signal.SIGSTOP)
        _wait_group_stopped(self.popen.pid, within_s=5.0)

    def resume(self) -> None:
        """Continue a paused group (SIGCONT); harmless on one that runs."""
        _signal_group(self.popen.pid, signal.SIGCONT)

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after ``grace_s``. A paused group is
        continued first, so that it can handle the SIGTERM (Gradio cleans its temp dir)."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGCONT)
            _signal_group(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace_s)
        # children may outlive the leader: the group is killed either way
        _signal_group(self.popen.pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=grace_s)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


_HALTED = (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def _wait_group_stopped(pgid: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        running = []
        for process in psutil.process_iter(["status"]):
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(process.pid) == pgid and process.info["status"] not in _HALTED:
                    running.append(process.pid)
        if not running:
            return
        time.sleep(0.01)


def get_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read())


def start_server(
    kind: str,
    args: list[str] | tuple[str, ...] = (),
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_path: Path | None = None,
    ready_timeout_s: float = 180.0,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start ``python -m servers KIND --host H --port P ARGS`` and poll ``/healthz`` until 200.

    Raises :class:`ServerStartError` (after stopping the process) when it exits first or the
    timeout passes.
    """
    port = port or free_port(host)
    command = [sys.executable, "-m", "servers", kind, "--host", host, "--port", str(port), *args]
    if log_path is None:
        log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"gvf-{kind}-{port}.log"
    return launch(
        kind, command, f"http://{host}:{port}", log_path, {**os.environ, **(env or {})}, ready_timeout_s
    )


def launch(
    kind: str,
    command: list[str],
    url: str,
    log_path: Path,
    env: dict[str, str],
    ready_timeout_s: float = 180.0,
    cwd: Path | None = None,
) -> ServerProcess:
    """Run ``command`` (a server that will answer ``URL/healthz``) in its own process group, with
    exactly ``env``, and poll until it is healthy; see :func:`start_server`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "wb") as log_file:
        popen = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own session => own process group, killed as one
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=cwd,
        )
    server = ServerProcess(kind, url, command, log_path, popen)
    deadline = time.monotonic() + ready_timeout_s
    delay_s = 0.02
    while True:
        if not server.alive:
            tail = server.log_tail()
            server.stop()
            raise ServerStartError(
                f"{kind} {server.exit_description()} before it was ready:\n{tail}", server.popen.poll()
            )
        try:
            server.health = get_json(server.url + "/healthz", timeout_s=2.0)
            server.startup_s = time.perf_counter() - started
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        if time.monotonic() > deadline:
            tail = server.log_tail()
            server.stop()
            raise ServerStartError(f"{kind} not ready after {ready_timeout_s:.0f} s:\n{tail}")
        time.sleep(delay_s)
        # short polls: the time to healthy is itself a measured figure (scripts/footprint.py)
        delay_s = min(delay_s * 1.5, 0.1)
