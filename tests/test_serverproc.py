"""A server under test as a process group: paused while another server is measured (it takes no
CPU then), resumed to serve, and stopped cleanly even while paused; its start-up time and memory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

from loadtests.serverproc import get_json
from tests.helpers.servers import sim_server


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def test_a_paused_server_takes_no_cpu_and_serves_again_once_resumed(tmp_path: Path) -> None:
    # gradio: its queue polls for work every millisecond even when idle
    with sim_server("gradio", tmp_path) as server:
        pid = server.popen.pid
        # start to healthy (gradio: its own warm-up calls included), memory of the whole group
        assert 0.5 < server.startup_s < 180
        rss = server.rss_bytes()
        assert rss is not None and rss >= psutil.Process(pid).memory_info().rss > 50e6
        server.pause()
        assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
        before = _cpu_seconds(pid)
        time.sleep(1.0)
        assert _cpu_seconds(pid) - before < 0.005  # a running idle gradio takes ~30 ms a second
        server.resume()
        assert get_json(server.url + "/healthz", timeout_s=10)["status"] == "ok"
        server.pause()
        server.stop()  # continued first, so that it handles SIGTERM
        assert server.popen.poll() == 0  # exited through its SIGTERM handler, not killed
        assert server.rss_bytes() is None  # gone
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return
    raise AssertionError("the server's process group outlived stop()")
