"""The order a run measures in: every load point in ``--repeat`` independent trials, the servers
interleaved within each, so that drift on a shared machine spreads over every server instead of
landing on one (docs/design.md §5).

The run is a sequence of *rounds*. A round is one trial of one *unit* (a load point, or a
scenario whose points chain: a spike's users carry over from phase to phase) on every
(server, client) pair in turn: trial 1 of unit 1 on A, B, C, then trial 1 of unit 2 on A, B,
C, ..., then trial 2 of unit 1, ... A whole trial of the experiment comes before the next, so
a time budget that runs out cuts the last trials, never a load point's every trial.

``interleaved`` keeps the pairs in the same order in every round; ``random`` shuffles them in
each round with the run's seed (the same seed gives the same order).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

TrialOrder = Literal["interleaved", "random"]
TRIAL_ORDERS: tuple[TrialOrder, ...] = ("interleaved", "random")


@dataclass(frozen=True)
class Unit:
    """What one server runs between two waits for idle."""

    scenario: str
    points: tuple[int, ...]  # indices into the scenario's points, run back to back
    # None: every chosen server; else the server kinds that run it (a profile's choice)
    servers: frozenset[str] | None = None
    # run in the first trial only: added for another scenario's sake (the single-stream
    # latency the open-loop rates are fractions of)
    first_trial_only: bool = False
    # None: every pair's client; else the clients that run it (the mcp scenario brings its own)
    clients: frozenset[str] | None = None

    def runs_on(self, pair: str) -> bool:
        server, client = pair.split("/", 1)
        return (self.servers is None or server in self.servers) and (
            self.clients is None or client in self.clients
        )


def pair_key(server: str, client: str) -> str:
    """How a (server, client) pair is named in rounds and run.json: ``server/client``."""
    return f"{server}/{client}"


def pair_server(key: str) -> str:
    return key.split("/", 1)[0]


def scenario_units(
    scenario: str,
    points: int,
    *,
    chained: bool,
    servers: frozenset[str] | None = None,
    first_trial_only: bool = False,
    clients: frozenset[str] | None = None,
) -> list[Unit]:
    """A scenario's units: one per point, or one for all when its points chain."""
    groups = [tuple(range(points))] if chained else [(index,) for index in range(points)]
    return [Unit(scenario, group, servers, first_trial_only, clients) for group in groups if group]


@dataclass(frozen=True)
class Round:
    """One trial of one unit, on each of ``order``'s pairs in turn."""

    trial: int
    unit: Unit
    order: tuple[str, ...]  # pair keys, in the order they run


def trial_rounds(
    units: Sequence[Unit], pairs: Sequence[str], repeat: int, order: TrialOrder, seed: int
) -> Iterator[Round]:
    """Every round of the run, in the order they run: trial-major, units in the order given."""
    if order not in TRIAL_ORDERS:
        raise ValueError(f"trial order must be one of {', '.join(TRIAL_ORDERS)}, not {order!r}")
    rng = random.Random(seed)
    for trial in range(1, repeat + 1):
        for unit in units:
            if unit.first_trial_only and trial > 1:
                continue
            chosen = [pair for pair in pairs if unit.runs_on(pair)]
            if not chosen:
                continue
            if order == "random":
                rng.shuffle(chosen)
            yield Round(trial, unit, tuple(chosen))
