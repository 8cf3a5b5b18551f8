"""What a server under test says about itself over HTTP: its ledger, and when it is idle."""

from __future__ import annotations

import json
import time

import httpx


def ledger(base: str) -> dict:
    return json.loads(httpx.get(f"{base}/ledger", timeout=30).content)


def wait_idle(base: str, timeout_s: float = 60.0) -> dict:
    """Poll ``/ledger`` until nothing is in flight or queued; returns that ledger."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = ledger(base)
        if state["in_flight"] == 0 and state["in_gpu"] == 0 and state["queued"] == 0:
            return state
        if time.monotonic() > deadline:
            gauges = {name: state[name] for name in ("in_flight", "in_gpu", "queued")}
            raise AssertionError(f"server not idle after {timeout_s} s: {gauges}")
        time.sleep(0.05)


def by_batch(rows: list[dict]) -> dict[int, list[dict]]:
    """Rows that reached the GPU, grouped by the GPU call (``batch_id``) they shared."""
    batches: dict[int, list[dict]] = {}
    for row in rows:
        if row["batch_id"] is not None:
            batches.setdefault(row["batch_id"], []).append(row)
    return batches
