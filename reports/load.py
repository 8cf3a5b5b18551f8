"""Read one run directory: ``requests.csv`` into a typed DataFrame, ``run.json`` into a dict.

A run that crashed or was interrupted is still a run: its table may end in a half-written
line, its run.json may say ``failed``/``interrupted``, lack ``ended`` or be missing, and
its last point may be absent from ``points``. Loading tolerates all of that and lists
what was incomplete in :attr:`LoadedRun.partial_reasons`, so every document can say so.
The raw server ledger (``ledger.jsonl``) and Gradio's profiler traces (``profiling.jsonl``)
are read where the run kept them: the first is the independent count the table's
completions are checked against, the second Gradio's own timing of each queued event; a
soak's resource samples (``resources.csv``) likewise.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from reports.schema import (
    COLUMN_TYPES,
    COLUMNS,
    LEDGER_FILE,
    PROFILING_FILE,
    RESOURCE_COLUMN_TYPES,
    RESOURCE_COLUMNS,
    RESOURCES_FILE,
    RUN_FILE,
    TABLE_FILE,
    PointRecord,
    RequestRow,
)

_TRUE_TEXT = {"true", "1", "yes"}
# Numeric columns whose schema default is a number: a table written before the column
# existed (or a blank cell) takes that default, e.g. ``trial`` 1 for a run without --repeat.
_NUMERIC_DEFAULTS = {
    f.name: f.default
    for f in fields(RequestRow)
    if COLUMN_TYPES[f.name] in ("int", "float") and isinstance(f.default, int | float)
}


@dataclass
class LoadedRun:
    """One loaded run: where it lives, its table, its description and what was incomplete."""

    path: Path
    table: pd.DataFrame
    meta: dict[str, Any]
    points: list[PointRecord]
    partial_reasons: list[str] = field(default_factory=list)
    ledger: pd.DataFrame | None = None  # raw server ledger rows (None: the run kept none)
    traces: pd.DataFrame | None = None  # Gradio's profiler traces (None: not collected)
    resources: pd.DataFrame | None = None  # a soak's resource samples (None: no soak sampled)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    @property
    def partial(self) -> bool:
        return bool(self.partial_reasons)

    @property
    def model(self) -> dict[str, Any]:
        return dict(self.meta.get("model") or {})

    @property
    def repeat(self) -> int:
        """How many trials of each point the run asked for (1 for a run without --repeat)."""
        return int(self.meta.get("repeat") or 1)

    def lock_scope(self, server: str) -> str | None:
        """The lock scope a server ran with ("gpu" or "request"), None where not recorded."""
        scope = (self.meta.get("servers") or {}).get(server, {}).get("lock_scope")
        return str(scope) if scope else None


def read_table(path: Path) -> tuple[pd.DataFrame, bool]:
    """The table with the schema's dtypes, and whether a half-written last line was dropped.

    Rows are appended as requests complete, so a crash can leave the last line cut short;
    parsing it would invent a row with missing fields, hence it is dropped.
    """
    raw, truncated = _read_csv(path)
    return (empty_table() if raw is None else typed_table(raw)), truncated


def read_resources(path: Path) -> pd.DataFrame | None:
    """A soak's resource samples with their dtypes (a half-written last line dropped); None
    where the run sampled none."""
    raw, _truncated = _read_csv(path)
    if raw is None:
        return None
    return typed_table(raw, RESOURCE_COLUMNS, RESOURCE_COLUMN_TYPES, {})


def _read_csv(path: Path) -> tuple[pd.DataFrame | None, bool]:
    """A CSV file appended line by line, as text cells, and whether its last line was cut
    short (and dropped); None where it is missing or holds no line."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    truncated = bool(text) and not text.endswith("\n")
    if truncated:
        text = text[: text.rfind("\n") + 1]
    if not text.strip():
        return None, truncated
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False), truncated


def empty_table() -> pd.DataFrame:
    return typed_table(pd.DataFrame({name: pd.Series([], dtype=str) for name in COLUMNS}))


def typed_table(
    raw: pd.DataFrame,
    columns: tuple[str, ...] = COLUMNS,
    types: dict[str, str] = COLUMN_TYPES,
    defaults: dict[str, object] = _NUMERIC_DEFAULTS,
) -> pd.DataFrame:
    """Text columns as str ('' for empty), numbers as float64 / nullable Int64, bools as bool;
    the request table's columns unless others are given."""
    table = pd.DataFrame(index=raw.index)
    for name in columns:
        column = raw[name] if name in raw.columns else pd.Series("", index=raw.index, dtype=str)
        column = column.astype(object).where(column.notna(), "").astype(str).str.strip()
        kind = types[name]
        if name in defaults:
            column = column.replace("", str(defaults[name]))
        if kind == "float":
            table[name] = pd.to_numeric(column.replace("", None), errors="coerce").astype("float64")
        elif kind == "int":
            table[name] = pd.to_numeric(column.replace("", None), errors="coerce").round().astype("Int64")
        elif kind == "bool":
            table[name] = column.str.lower().isin(_TRUE_TEXT)
        else:
            table[name] = column
    return table


def read_meta(path: Path) -> dict[str, Any] | None:
    """run.json as a dict, or None where it is missing or unreadable."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def point_records(meta: dict[str, Any]) -> list[PointRecord]:
    """The run's points (keys not in PointRecord ignored; an unreadable entry skipped)."""
    known = {f.name for f in fields(PointRecord)}
    records = []
    for entry in meta.get("points") or []:
        try:
            records.append(PointRecord(**{k: v for k, v in entry.items() if k in known}))
        except TypeError:
            continue
    return records


def read_jsonl(path: Path) -> pd.DataFrame | None:
    """One JSON object per line as a DataFrame; None where the file is missing. A line cut
    short by a crash (or anything that is not an object) is skipped."""
    if not path.exists():
        return None
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return pd.DataFrame.from_records(records)


def load_run(run_dir: Path | str) -> LoadedRun:
    """Load a run directory (complete or not)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a run directory")
    table, truncated = read_table(path / TABLE_FILE)
    meta = read_meta(path / RUN_FILE)
    reasons: list[str] = []
    if meta is None:
        reasons.append(f"{RUN_FILE} missing or unreadable: the run did not finish writing it")
        meta = {}
    else:
        outcome = meta.get("outcome")
        if outcome != "complete":
            detail = meta.get("outcome_detail") or ""
            reasons.append(f"run outcome is {outcome or 'not recorded'}" + (f": {detail}" if detail else ""))
        if not meta.get("ended"):
            reasons.append("run.json has no end time: the run stopped before it could record one")
    if truncated:
        reasons.append(f"{TABLE_FILE} ended in a half-written line (dropped)")
    if not (path / TABLE_FILE).exists():
        reasons.append(f"{TABLE_FILE} missing: no request completed")
    return LoadedRun(
        path=path,
        table=table,
        meta=meta,
        points=point_records(meta),
        partial_reasons=reasons,
        ledger=read_jsonl(path / LEDGER_FILE),
        traces=read_jsonl(path / PROFILING_FILE),
        resources=read_resources(path / RESOURCES_FILE),
    )
