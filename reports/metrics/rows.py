"""Quantities per request row, and the statistics taken over a set of rows.

Latency and where it starts, its wait / pre / gpu / post / protocol decomposition, the
error kind, GPU-call overlaps within one server process (batch-mates are one call) and each
interval's share of the device, sample-floored percentiles and the mean number of requests in
flight over a window (Little's L). Pure functions over the table of ``reports.schema``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COMPONENTS: tuple[str, ...] = ("wait", "pre", "gpu", "post", "protocol")


def latency_start(table: pd.DataFrame) -> pd.Series:
    """When each request's latency starts: the schedule in open loop, the send otherwise."""
    return table["t_scheduled"].fillna(table["t_sent"])


def latency(table: pd.DataFrame) -> pd.Series:
    """t_done − t_scheduled (open loop) or t_done − t_sent (closed loop), seconds."""
    return table["t_done"] - latency_start(table)


def decomposition(table: pd.DataFrame) -> pd.DataFrame:
    """wait / pre / gpu / post / protocol per row (NaN where no ledger row was joined).

    wait = (t_gpu_start − t_recv) − pre_s holds for every lock scope: with the FastAPI
    GPU lock pre runs before admission, inside Gradio's queue after it, and in both
    cases it lies between t_recv and t_gpu_start.
    """
    gpu = table["t_gpu_end"] - table["t_gpu_start"]
    wait = (table["t_gpu_start"] - table["t_recv"]) - table["pre_s"]
    parts = pd.DataFrame(
        {"wait": wait, "pre": table["pre_s"], "gpu": gpu, "post": table["post_s"]},
        index=table.index,
    )
    parts["protocol"] = latency(table) - parts.sum(axis=1, skipna=False)
    return parts


def error_kind(table: pd.DataFrame) -> pd.Series:
    """'kind [status]' for each failed row: the error text before ':' and the HTTP status."""
    kind = table["error"].fillna("").str.split(":", n=1).str[0].str.strip()
    kind = kind.where(kind != "", "error")
    return kind + " [" + table["status"].fillna(0).astype(int).astype(str) + "]"


def gpu_overlaps(table: pd.DataFrame) -> pd.DataFrame:
    """For each row: how many other GPU *calls* overlap its own call's interval, and the calls
    open at its start (its own included), among the calls of the same server process.

    Rows of one run and one server kind share a process; every row of that process counts,
    warm-up included, because a warm-up request occupies the GPU all the same. Requests batched
    into one call (the same ``batch_id``) share its interval: they are one call, not a
    collision, so rows are counted by call, and each batch-mate gets its call's figures.
    """
    result = pd.DataFrame({"overlapping": np.nan, "depth": np.nan}, index=table.index, dtype="float64")
    has_interval = table["t_gpu_start"].notna() & table["t_gpu_end"].notna()
    for _, group in table[has_interval].groupby(["run_id", "server"], sort=False):
        call = _gpu_call(group)
        calls = group.groupby(call, sort=False)[["t_gpu_start", "t_gpu_end"]].first()
        starts = calls["t_gpu_start"].to_numpy(dtype=float)
        ends = calls["t_gpu_end"].to_numpy(dtype=float)
        sorted_starts = np.sort(starts)
        sorted_ends = np.sort(ends)
        # Calls j with start_j < end_i and end_j > start_i, minus the call itself.
        started_before_end = np.searchsorted(sorted_starts, ends, side="left")
        ended_before_start = np.searchsorted(sorted_ends, starts, side="right")
        itself = (starts < ends).astype(int)
        per_call = pd.DataFrame(
            {
                "overlapping": started_before_end - ended_before_start - itself,
                "depth": np.searchsorted(sorted_starts, starts, side="right") - ended_before_start,
            },
            index=calls.index,
        )
        result.loc[group.index, ["overlapping", "depth"]] = per_call.loc[call].to_numpy(dtype=float)
    return result


def _gpu_call(rows: pd.DataFrame) -> pd.Series:
    """Each row's GPU call within its server process: its ``batch_id`` where the ledger gave
    one, else the row alone (a string key either way, so the two never meet)."""
    own = pd.Series("row:" + rows.index.astype(str), index=rows.index)
    if "batch_id" not in rows:
        return own
    batch = rows["batch_id"]
    return own.where(batch.isna(), "batch:" + batch.astype("Int64").astype(str))


def shared_gpu_seconds(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each GPU interval's share of the device, seconds: its span, every instant divided equally
    among the intervals open then (processor sharing, as the sim backend runs overlapping calls).
    Without overlaps each share is its span; the shares always add up to the time the device was
    busy, where the spans of overlapping calls would count it several times."""
    starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
    if len(starts) == 0:
        return np.zeros(0)
    edges = np.unique(np.concatenate([starts, ends]))
    at = edges[:-1]  # each elementary segment [edges[j], edges[j + 1]) and how many are open in it
    open_count = np.searchsorted(np.sort(starts), at, side="right") - np.searchsorted(
        np.sort(ends), at, side="right"
    )
    share = np.where(open_count > 0, np.diff(edges) / np.maximum(open_count, 1), 0.0)
    cumulative = np.concatenate([[0.0], np.cumsum(share)])
    return cumulative[np.searchsorted(edges, ends)] - cumulative[np.searchsorted(edges, starts)]


def percentile(values: pd.Series, q: float, min_samples: int) -> float | None:
    """The q-quantile (0..1) where the sample has at least ``min_samples`` values, else None."""
    clean = values.dropna()
    if len(clean) < max(min_samples, 1):
        return None
    return float(np.quantile(clean.to_numpy(dtype=float), q))


def mean_in_flight(starts: np.ndarray, ends: np.ndarray, w0: float, w1: float) -> float:
    """Time-average number of open intervals over [w0, w1] (the L of Little's law)."""
    if w1 <= w0:
        return float("nan")
    clipped = np.clip(np.minimum(ends, w1) - np.maximum(starts, w0), 0.0, None)
    return float(clipped.sum() / (w1 - w0))
