"""What each server the run started took before and while it served, as the run recorded it
(run.json ``servers.<kind>.footprint``): process start to the first ``/healthz`` 200 (the
server's own start-up warm-up included), RSS (the process and its children) idle right after
start-up, after one warm-up call through each of its clients, and at the end of the run with
the requests its ledger counted by then.

One start per server per run: the figures carry no interval. Install size, import time and the
median of several starts from a fresh venv come from ``scripts/footprint.py`` (README).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

Number = TypeVar("Number", int, float)


@dataclass(frozen=True)
class ServerFootprint:
    server: str
    startup_s: float | None
    rss_idle_bytes: int | None
    rss_warm_bytes: int | None
    rss_end_bytes: int | None
    requests_served: int | None


def footprints(meta: Mapping[str, Any]) -> list[ServerFootprint]:
    """One per server of the run that recorded a footprint (none for --target-url)."""
    found = []
    for server, info in (meta.get("servers") or {}).items():
        recorded = (info or {}).get("footprint")
        if not recorded:
            continue
        found.append(
            ServerFootprint(
                server,
                recorded.get("startup_s"),
                recorded.get("rss_idle_bytes"),
                recorded.get("rss_warm_bytes"),
                recorded.get("rss_end_bytes"),
                recorded.get("requests_served"),
            )
        )
    return found


def _minus(x: Number | None, y: Number | None) -> Number | None:
    return None if x is None or y is None else x - y


def difference(a: ServerFootprint, b: ServerFootprint) -> ServerFootprint:
    """``a`` less ``b``, figure by figure (what one server costs beyond the other)."""
    return ServerFootprint(
        f"{a.server} − {b.server}",
        _minus(a.startup_s, b.startup_s),
        _minus(a.rss_idle_bytes, b.rss_idle_bytes),
        _minus(a.rss_warm_bytes, b.rss_warm_bytes),
        _minus(a.rss_end_bytes, b.rss_end_bytes),
        _minus(a.requests_served, b.requests_served),
    )
