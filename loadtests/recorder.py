"""The run's table writer: one row per logical request, appended and flushed as it completes.

Rows are written without server-side fields first (a crash keeps them); at the end of
each server :meth:`Recorder.join_ledger` fills the ledger columns of that server's rows
by request id and rewrites the table atomically. The raw ledger rows also go to
``ledger.jsonl`` (every row, failed requests' included), so a join that could not happen (a
dead server) loses nothing that was pulled before it died; Gradio's profiler traces, where
collected, go to ``profiling.jsonl``; a soak's resource samples to ``resources.csv``.
"""

from __future__ import annotations

import csv
import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from loadtests.clients import CallResult
from loadtests.scenarios import Phase
from reports.schema import (
    COLUMNS,
    LEDGER_COLUMNS,
    LEDGER_FILE,
    PROFILING_FILE,
    RESOURCE_COLUMNS,
    RESOURCES_FILE,
    TABLE_FILE,
    RequestRow,
    ResourceSample,
    as_record,
)

# table column -> ledger field, where the names differ
_LEDGER_SOURCE = {"server_status": "status"}


def make_row(
    result: CallResult,
    *,
    run_id: str,
    server: str,
    client: str,
    phase: Phase,
    worker: str,
    t_scheduled: float | None = None,
    trial: int = 1,
) -> RequestRow:
    return RequestRow(
        run_id=run_id,
        request_id=result.request_id,
        server=server,
        client=client,
        scenario=phase.scenario,
        load_point=phase.label,
        users=phase.users,
        rate=phase.rate,
        worker=worker,
        trial=trial,
        t_scheduled=t_scheduled,
        t_sent=result.t_sent,
        t_done=result.t_done,
        status=result.status,
        ok=result.ok,
        error=result.error,
        bytes=result.bytes,
        send_lag=None if t_scheduled is None else result.t_sent - t_scheduled,
        queue_rank=result.queue_rank,
        queue_eta=result.queue_eta,
    )


def _cell(value: Any) -> Any:
    return "" if value is None else value


class Recorder:
    """Thread- and greenlet-safe appender of :class:`RequestRow` s to ``requests.csv``."""

    def __init__(self, run_dir: Path) -> None:
        self.table_path = run_dir / TABLE_FILE
        self.ledger_path = run_dir / LEDGER_FILE
        self.profiling_path = run_dir / PROFILING_FILE
        self.resources_path = run_dir / RESOURCES_FILE
        self._lock = threading.Lock()
        new_file = not self.table_path.exists()
        self._file = open(self.table_path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (held open)
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        if new_file:
            self._writer.writeheader()
            self._file.flush()

    def append(self, row: RequestRow) -> None:
        record = {name: _cell(value) for name, value in as_record(row).items()}
        with self._lock:
            if self._file.closed:
                return  # a request that outlived an interrupted run: the table is final
            self._writer.writerow(record)
            self._file.flush()

    def append_resource(self, sample: ResourceSample) -> None:
        """Append one resource sample to ``resources.csv`` (its header first), flushed at once."""
        record = {name: _cell(getattr(sample, name)) for name in RESOURCE_COLUMNS}
        with self._lock, open(self.resources_path, "a", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=RESOURCE_COLUMNS)
            if out.tell() == 0:
                writer.writeheader()
            writer.writerow(record)

    def save_ledger(self, server: str, ledger_rows: Iterable[Mapping[str, Any]]) -> None:
        """Append raw ledger rows (tagged with the server kind) to ``ledger.jsonl``."""
        self._append_lines(self.ledger_path, ({"server": server, **entry} for entry in ledger_rows))

    def save_profiling(self, traces: Iterable[Mapping[str, Any]]) -> None:
        """Append Gradio profiler traces (tagged with their point) to ``profiling.jsonl``."""
        self._append_lines(self.profiling_path, traces)

    def _append_lines(self, path: Path, entries: Iterable[Mapping[str, Any]]) -> None:
        with self._lock, open(path, "a", encoding="utf-8") as out:
            for entry in entries:
                out.write(json.dumps(entry) + "\n")

    def join_ledger(self, server: str, ledger_rows: Iterable[Mapping[str, Any]]) -> int:
        """Fill the ledger columns of ``server``'s rows by request id; returns rows matched.

        The table is rewritten to a temporary file and swapped in, so an interruption
        leaves either the old or the new table, never a mix.
        """
        by_id = {str(entry.get("request_id")): entry for entry in ledger_rows}
        matched = 0
        with self._lock:
            self._file.close()
            tmp_path = self.table_path.with_suffix(".csv.tmp")
            with (
                open(self.table_path, newline="", encoding="utf-8") as src,
                open(tmp_path, "w", newline="", encoding="utf-8") as dst,
            ):
                writer = csv.DictWriter(dst, fieldnames=COLUMNS)
                writer.writeheader()
                for record in csv.DictReader(src):
                    # every cell read is a str: DictReader pads a short line's missing cells
                    # with None values and gathers a long line's surplus under a None key
                    if None in record or None in record.values():
                        continue  # a line cut short by a crash of an earlier process
                    entry = by_id.get(record["request_id"]) if record["server"] == server else None
                    if entry is not None:
                        matched += 1
                        for name in LEDGER_COLUMNS:
                            record[name] = _cell(entry.get(_LEDGER_SOURCE.get(name, name)))
                    writer.writerow(record)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp_path, self.table_path)
            self._file = open(self.table_path, "a", newline="", encoding="utf-8")  # noqa: SIM115
            self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        return matched

    def close(self) -> None:
        with self._lock:
            self._file.close()
