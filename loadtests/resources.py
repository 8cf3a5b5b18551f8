"""What a server process holds during a soak, sampled every few seconds into ``resources.csv``.

The harness started the server (its own process group), so it reads the process and its
children with psutil: resident memory, open file descriptors, threads; it walks the server's
temp dir (Gradio's uploads and results) and asks ``nvidia-smi`` for the processes' GPU memory
(CUDA hosts only). Each sample also takes the server's ledger (``POST /ledger/reset``): its
``held`` (arrival stamps; on gradio its sessions, queue leftovers, upload paths, temp files),
its peak memory since the previous sample and the rows it cleared, which are kept for the
run's table as at every point start; on a gradio server run with Gradio's profiler, the traces
so far are saved and its collector emptied where the server holds no request. Taking them keeps
the ledger's buffer and the profiler's small: a soak of thousands of requests would otherwise
grow both inside the server, and the soak would blame that memory on the server. Each sample is
appended to ``resources.csv`` as it is taken, so a crash keeps what was sampled.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import psutil

from loadtests.provenance import gpu_memory_by_pid
from loadtests.recorder import Recorder
from loadtests.scenarios import Phase
from loadtests.targets import Target
from reports.schema import ResourceSample


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and its descendants (none where it has gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_usage(processes: list[psutil.Process]) -> tuple[int | None, int | None, int | None]:
    """(resident bytes, open file descriptors, threads) summed over ``processes``; None where
    none of them could be read."""
    rss = fds = threads = 0
    read = False
    for process in processes:
        try:
            with process.oneshot():
                rss += process.memory_info().rss
                fds += process.num_fds()
                threads += process.num_threads()
        except psutil.Error:
            continue  # a child that exited between the listing and the read
        read = True
    return (rss, fds, threads) if read else (None, None, None)


def dir_usage(folder: Path | None) -> tuple[int | None, int | None]:
    """(bytes, files) under ``folder``; None where it is not given or not there."""
    if folder is None or not folder.is_dir():
        return None, None
    size = count = 0
    for parent, _dirs, names in os.walk(folder):
        for name in names:
            try:
                size += os.stat(os.path.join(parent, name)).st_size
            except OSError:
                continue  # deleted while walking (Gradio's cleanup runs meanwhile)
            count += 1
    return size, count


class ResourceSampler:
    """Samples a started server while its ``with`` block runs: once on entry, every
    ``every_s`` seconds, and once on exit (after the point's drain)."""

    def __init__(
        self,
        target: Target,
        recorder: Recorder,
        tags: dict[str, str | int],  # run_id, server, client, scenario, load_point, trial
        temp_dir: Path | None,
        every_s: float,
    ) -> None:
        if target.process is None:
            raise ValueError("resources can be sampled only on a server gvf started")
        self.target = target
        self.recorder = recorder
        self.tags = tags
        self.temp_dir = temp_dir
        self.every_s = every_s
        self.requests = 0  # ledger rows taken since the point began
        self.samples = 0
        self._peak: int | None = None
        self._gpu_probe = True  # off once nvidia-smi is found missing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)

    @property
    def peak_gpu_bytes(self) -> int | None:
        """The ledger's peak memory over every sample so far."""
        return self._peak

    def __enter__(self) -> ResourceSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        if kind is None:
            self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            if self.target.process is not None and not self.target.process.alive:
                return  # the driver notices the death and stops the run
            self.sample()

    def sample(self) -> ResourceSample:
        """Take one sample and append it to ``resources.csv``."""
        assert self.target.process is not None
        processes = process_tree(self.target.process.popen.pid)
        rss, fds, threads = tree_usage(processes)
        temp_bytes, temp_files = dir_usage(self.temp_dir)
        ledger = self.target.take_ledger(self.recorder)
        if self.target.profiler is not None:
            self.target.profiler.drain(server_idle=self.target.requests_held(ledger) == 0)
        self.requests += len(ledger.get("requests") or [])
        peak = ledger.get("peak_gpu_bytes")
        if peak is not None:
            self._peak = max(peak, self._peak or 0)
        sample = ResourceSample(
            run_id=str(self.tags["run_id"]),
            server=str(self.tags["server"]),
            client=str(self.tags["client"]),
            scenario=str(self.tags["scenario"]),
            load_point=str(self.tags["load_point"]),
            trial=int(self.tags["trial"]),
            t=time.time(),
            requests=self.requests,
            rss_bytes=rss,
            fds=fds,
            threads=threads,
            temp_bytes=temp_bytes,
            temp_files=temp_files,
            gpu_bytes=self._gpu_bytes({p.pid for p in processes}),
            peak_gpu_bytes=peak,
            in_flight=ledger.get("in_flight"),
            held=json.dumps(ledger.get("held") or {}, sort_keys=True),
        )
        self.recorder.append_resource(sample)
        self.samples += 1
        return sample

    def _gpu_bytes(self, pids: set[int]) -> int | None:
        if not self._gpu_probe:
            return None
        used = gpu_memory_by_pid()
        if used is None:
            self._gpu_probe = False
            return None
        mine = [used[pid] for pid in pids if pid in used]
        return sum(mine) if mine else None


def sampler_for(
    target: Target, recorder: Recorder, tags: dict[str, str | int], temp_dir: Path | None
) -> Callable[[Phase, float], ResourceSampler]:
    """The DriverInput.sample_resources of one (server, client, trial): a sampler per soak point."""

    def start(phase: Phase, every_s: float) -> ResourceSampler:
        point_tags = {**tags, "scenario": phase.scenario, "load_point": phase.label}
        return ResourceSampler(target, recorder, point_tags, temp_dir, every_s)

    return start
