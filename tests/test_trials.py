"""The order a run measures in: trial-major rounds, every pair in each round, interleaved in a
fixed order or shuffled with the seed; units per point or per chained scenario."""

from __future__ import annotations

from collections import Counter

import pytest

from loadtests.trials import Round, Unit, pair_key, pair_server, scenario_units, trial_rounds

PAIRS = [
    pair_key("gradio", "gradio-b64"),
    pair_key("fastapi", "fastapi"),
    pair_key("fastapi-naive", "fastapi"),
]


def test_pair_keys_name_server_and_client() -> None:
    assert PAIRS[0] == "gradio/gradio-b64" and pair_server(PAIRS[2]) == "fastapi-naive"


def test_a_unit_per_point_or_one_for_chained_points() -> None:
    assert scenario_units("throughput", 3, chained=False) == [
        Unit("throughput", (0,)),
        Unit("throughput", (1,)),
        Unit("throughput", (2,)),
    ]
    assert scenario_units("spike", 3, chained=True) == [Unit("spike", (0, 1, 2))]
    assert scenario_units("spike", 0, chained=True) == []


def test_interleaved_rounds_run_every_pair_in_the_same_order_trial_by_trial() -> None:
    units = scenario_units("throughput", 2, chained=False)
    rounds = list(trial_rounds(units, PAIRS, repeat=3, order="interleaved", seed=1))
    assert [(r.trial, r.unit.points) for r in rounds] == [
        (1, (0,)),
        (1, (1,)),
        (2, (0,)),
        (2, (1,)),
        (3, (0,)),
        (3, (1,)),
    ]
    assert all(r.order == tuple(PAIRS) for r in rounds)


def test_random_order_is_seeded_and_still_runs_every_pair_once_per_round() -> None:
    units = scenario_units("throughput", 3, chained=False)

    def orders(seed: int) -> list[tuple[str, ...]]:
        return [r.order for r in trial_rounds(units, PAIRS, repeat=4, order="random", seed=seed)]

    first = orders(7)
    assert first == orders(7) and first != orders(8)
    assert all(sorted(order) == sorted(PAIRS) for order in first)
    # shuffled: over 12 rounds, more than one pair goes first
    assert len(Counter(order[0] for order in first)) > 1


def test_a_unit_limited_to_some_servers_and_a_first_trial_only_unit() -> None:
    naive_only_in_bursts = Unit("collisions", (0,), servers=frozenset({"fastapi-naive", "gradio"}))
    added_latency = Unit("latency", (0,), first_trial_only=True)
    sweep = Unit("throughput", (0,), servers=frozenset({"gradio", "fastapi"}))
    rounds = list(trial_rounds([added_latency, sweep, naive_only_in_bursts], PAIRS, 2, "interleaved", 1))
    assert rounds == [
        Round(1, added_latency, tuple(PAIRS)),
        Round(1, sweep, ("gradio/gradio-b64", "fastapi/fastapi")),
        Round(1, naive_only_in_bursts, ("gradio/gradio-b64", "fastapi-naive/fastapi")),
        Round(2, sweep, ("gradio/gradio-b64", "fastapi/fastapi")),
        Round(2, naive_only_in_bursts, ("gradio/gradio-b64", "fastapi-naive/fastapi")),
    ]
    # a unit no chosen server runs yields no round
    assert list(trial_rounds([Unit("x", (0,), servers=frozenset({"other"}))], PAIRS, 1, "random", 1)) == []


def test_an_unknown_order_is_refused() -> None:
    with pytest.raises(ValueError, match="interleaved, random"):
        list(trial_rounds([], PAIRS, 1, "alphabetical", 1))  # type: ignore[arg-type]


def test_a_unit_limited_to_some_clients_runs_only_their_pairs() -> None:
    """The mcp scenario brings its own clients (REST base64 and MCP on each server): its rounds
    run only those pairs, interleaved per server; the other scenarios never run them."""
    pairs = [
        "gradio/gradio-b64",
        "gradio/mcp",
        "fastapi/fastapi",
        "fastapi/fastapi-b64",
        "fastapi/mcp",
    ]
    mcp = Unit("mcp", (0,), clients=frozenset({"gradio-b64", "fastapi-b64", "mcp"}))
    sweep = Unit("throughput", (0,), clients=frozenset({"gradio-b64", "fastapi"}))
    rounds = list(trial_rounds([sweep, mcp], pairs, 1, "interleaved", 1))
    assert [r.order for r in rounds] == [
        ("gradio/gradio-b64", "fastapi/fastapi"),
        ("gradio/gradio-b64", "gradio/mcp", "fastapi/fastapi-b64", "fastapi/mcp"),
    ]
    assert scenario_units("mcp", 2, chained=False, clients=mcp.clients) == [
        mcp,
        Unit("mcp", (1,), clients=mcp.clients),
    ]
