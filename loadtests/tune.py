"""``gvf tune``: each server at its best settings for a latency target, and the two bests compared.

The objective is *goodput* (``reports.metrics.tune``): the most images/s a configuration serves
with p90 within the SLO. Each candidate configuration is one ``gvf run`` of the run machinery
(:mod:`loadtests.orchestrate`: its server started with the candidate's flags as ``KIND:FLAG``
server args, trials, validity rules, intervals), its `throughput` scenario at two closed-loop
loads that saturate it: S = concurrency × batch users (every slot of the configuration busy) and
2S (one more request waiting per slot: the server never idles between calls). Its goodput is the
better of the two that meets the SLO.

The search is **coordinate ascent from the defaults**, one flag at a time in the order of their
expected effect (``--batch``, ``--concurrency``, ``--lock-scope``, ``--batch-wait-ms``): every
other value of the flag is measured with the others held at the best so far, and the best is
moved when a value beats it by more than ``min_gain`` (a shared box drifts by a few percent);
passes repeat until one moves nothing or the budget is spent. The servers' searches take turns,
one candidate each, so a budget that runs out cuts both alike. Why not successive halving: it
needs the whole grid's first rung measured (112 FastAPI and 16 gradio configurations) before it
prunes, which 10 minutes on 2 cores cannot hold; the flags' effects are largely separable
(batching multiplies what a GPU call serves, concurrency overlaps calls), which is what
coordinate ascent assumes.

Order of work: (1) the defaults of every server in one run, interleaved, 1 and 2 users: the
single-stream p90 sets the SLO (``--slo-factor`` × the fastest server's, unless
``--slo-p90-ms``) and it is the "default vs default" verdict; (2) the search, one run per
candidate, a candidate predicted not to fit the budget (what is left after a reserve for step 3)
skipped and listed; (3) the best configuration of every server in one run, interleaved, at each
server's goodput load: "best vs best", re-measured rather than taken from the search (the
search's maximum is biased upwards by the noise it selected on).

The tune directory: ``runs/`` (every run's table and run.json), ``tune.json`` (the search, the
SLO, each candidate, the best flags; rewritten after each candidate, so an interrupted tune
keeps what it measured) and the report (``reports.tune_report``). ``gvf run --best-of DIR``
reads ``tune.json``'s best flags.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from loadtests import provenance
from loadtests.clients import SERVER_FAMILY
from loadtests.orchestrate import RunOptions, run
from loadtests.progress import Progress
from loadtests.scenarios import Profile, ThroughputScenario
from loadtests.targets import server_args_for
from reports.analysis import analyse
from reports.load import load_run
from reports.metrics.summaries import PointSummary
from reports.metrics.tune import goodput
from reports.schema import TUNE_FILE, ScenarioName

RUNS_DIR = "runs"
DEFAULT_SLO_FACTOR = 2.0
DEFAULT_BUDGET_S = 600.0
Value = int | str
Config = tuple[tuple[str, Value], ...]  # (flag without dashes, value) in the dimensions' order


@dataclass(frozen=True)
class Dimension:
    """One server flag the search sets: its values and the server's default."""

    flag: str  # without the leading dashes, e.g. "batch"
    values: tuple[Value, ...]
    default: Value
    needs_batch: bool = False  # means something only with --batch > 1 (the server refuses it otherwise)

    def applies(self, config: dict[str, Value]) -> bool:
        return not self.needs_batch or int(config.get("batch", 1)) > 1


BATCH = Dimension("batch", (1, 2, 4, 8), 1)
CONCURRENCY = Dimension("concurrency", (1, 2, 4, 8), 1)
LOCK_SCOPE = Dimension("lock-scope", ("gpu", "request"), "gpu")
# 2 ms is the server's default wait; the values are 0, 5 and 20
BATCH_WAIT = Dimension("batch-wait-ms", (0, 2, 5, 20), 2, needs_batch=True)

# per server family: the flags it takes, in the search's order (the no-lock control takes none)
SEARCH_SPACE: dict[str, tuple[Dimension, ...]] = {
    "gradio": (BATCH, CONCURRENCY),
    "fastapi": (BATCH, CONCURRENCY, LOCK_SCOPE, BATCH_WAIT),
}


def space_for(server: str, only: Sequence[str] | None = None) -> tuple[Dimension, ...]:
    """The dimensions searched on ``server`` (``only``: just these flags, where it has them)."""
    if server == "fastapi-naive":
        return ()
    dims = SEARCH_SPACE[SERVER_FAMILY[server]]
    return tuple(d for d in dims if only is None or d.flag in only)


def default_config(dims: Sequence[Dimension]) -> Config:
    return tuple((d.flag, d.default) for d in dims)


def config_flags(config: Config, dims: Sequence[Dimension]) -> list[str]:
    """The server flags of a configuration, as ``--flag=value`` (a flag that means nothing for
    it, e.g. ``--batch-wait-ms`` at batch 1, is left out: the server would refuse it)."""
    values = dict(config)
    return [f"--{d.flag}={values[d.flag]}" for d in dims if d.flag in values and d.applies(values)]


def slots(config: Config) -> int:
    """Requests a configuration serves at once: concurrency × batch."""
    values = dict(config)
    return int(values.get("concurrency", 1)) * int(values.get("batch", 1))


def saturating_users(config: Config, max_users: int) -> tuple[int, ...]:
    """The two closed-loop loads a candidate is measured at: S and 2S users (S = its slots),
    capped at ``max_users``."""
    s = min(slots(config), max_users)
    return tuple(sorted({s, min(2 * s, max_users)}))


class CoordinateAscent:
    """Coordinate ascent over ``dims`` from the defaults: :meth:`propose` the next configuration
    to measure (None when the search is over), :meth:`record` its score.

    For each dimension in turn, every other value (where the dimension applies) is scored with
    the others at the best so far; the best moves to the dimension's best value when that beats
    it by more than ``min_gain`` (relative). Passes repeat until one moves nothing or
    ``max_passes`` are done. A configuration is measured once: a later pass reuses its score."""

    def __init__(self, dims: Sequence[Dimension], min_gain: float = 0.05, max_passes: int = 2) -> None:
        self.dims = tuple(dims)
        self.min_gain = min_gain
        self.max_passes = max_passes
        self.scores: dict[Config, float] = {}
        self.best: Config = default_config(self.dims)
        self._pass = 1
        self._dim = -1  # the dimension being searched; -1: the start is not scored yet
        self._moved = False
        self._done = False

    @property
    def best_score(self) -> float | None:
        return self.scores.get(self.best)

    def record(self, config: Config, score: float) -> None:
        self.scores[config] = score

    def propose(self) -> Config | None:
        while not self._done:
            if self.best not in self.scores:
                return self.best
            candidates = self._candidates()
            pending = [c for c in candidates if c not in self.scores]
            if pending:
                return pending[0]
            self._settle(candidates)
            self._advance()
        return None

    def _candidates(self) -> list[Config]:
        """The current dimension's other values with the rest at the best (none before the first)."""
        if self._dim < 0:
            return []
        dim = self.dims[self._dim]
        values = dict(self.best)
        if not dim.applies(values):
            return []
        return [self._with(dim.flag, v) for v in dim.values if v != values[dim.flag]]

    def _with(self, flag: str, value: Value) -> Config:
        return tuple((f, value if f == flag else v) for f, v in self.best)

    def _settle(self, candidates: list[Config]) -> None:
        """Move the best to the dimension's best value when it beats the best by ``min_gain``."""
        current = self.scores[self.best]
        top = max(candidates, key=lambda c: self.scores[c], default=None)
        if top is not None and self.scores[top] > current * (1 + self.min_gain) and self.scores[top] > 0:
            self.best = top
            self._moved = True

    def _advance(self) -> None:
        self._dim += 1
        if self._dim < len(self.dims):
            return
        if not self._moved or self._pass >= self.max_passes:
            self._done = True
            return
        self._pass += 1
        self._dim, self._moved = 0, False


@dataclass
class TuneOptions:
    servers: list[str]
    model: str
    image: Path
    out_dir: Path  # the tune directory
    budget_s: float = DEFAULT_BUDGET_S
    slo_p90_ms: float | None = None  # None: slo_factor × the fastest single-stream p90
    slo_factor: float = DEFAULT_SLO_FACTOR
    server_args: list[str] = field(default_factory=list)  # every run's extra flags (KIND:FLAG syntax)
    only: list[str] | None = None  # search just these flags
    repeat: int = 2  # trials of each candidate
    final_repeat: int = 3  # trials of the defaults run and the best run (the verdicts)
    max_users: int = 32
    point_s: float = 30.0  # a point's time box
    request_timeout_s: float = 60.0
    min_gain: float = 0.05
    max_passes: int = 2


@dataclass
class Measured:
    """One run of the tune: which configuration each server ran, and what came of it."""

    role: str  # defaults | candidate | best
    configs: dict[str, Config]
    users: tuple[int, ...]
    run_dir: Path
    outcome: str
    duration_s: float
    summaries: list[PointSummary]
    skipped: list[Any]


class Tune:
    """One ``gvf tune`` from its options to its tune directory."""

    def __init__(self, options: TuneOptions, progress: Progress | None = None) -> None:
        self.options = options
        self.progress = progress or Progress()
        self.dir = options.out_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.t_started = time.time()
        self.spaces = {server: space_for(server, options.only) for server in options.servers}
        self.searches = {
            server: CoordinateAscent(dims, options.min_gain, options.max_passes)
            for server, dims in self.spaces.items()
        }
        self.slo_s: float | None = None
        self.data: dict[str, Any] = {
            "format": "gvf-tune/1",
            **provenance.record_header(),
            "model": options.model,
            "image": str(options.image),
            "server_args": list(options.server_args),
            "servers": list(options.servers),
            "budget_s": options.budget_s,
            "search": {
                "method": "coordinate ascent from the defaults",
                "dimensions": {s: [d.flag for d in dims] for s, dims in self.spaces.items()},
                "values": {d.flag: list(d.values) for dims in self.spaces.values() for d in dims},
                "min_gain": options.min_gain,
                "max_passes": options.max_passes,
                "loads": f"S and 2S closed-loop users, S = concurrency × batch, at most {options.max_users}",
                "repeat": options.repeat,
                "final_repeat": options.final_repeat,
            },
            "slo": {},
            "runs": [],
            "skipped": [],
            "best": {},
            "elapsed_s": None,
        }
        self.record = provenance.RunRecord(self.dir / TUNE_FILE, self.data)  # rewritten atomically

    # -- the whole tune

    def execute(self) -> int:
        outcome, detail = "complete", ""
        try:
            self._tune()
        except KeyboardInterrupt as error:
            outcome, detail = "interrupted", str(error) or "interrupted by Ctrl-C"
        except TuneError as error:
            outcome, detail = "failed", str(error)
        self.data.update(outcome=outcome, outcome_detail=detail, ended=provenance.now_iso())
        self.data["elapsed_s"] = round(time.time() - self.t_started, 1)
        self._write()
        self.progress.event(f"tune {outcome}{': ' + detail if detail else ''} -> {self.dir}")
        self._build_report()
        return {"complete": 0, "interrupted": 130}.get(outcome, 1)

    def _tune(self) -> None:
        options = self.options
        defaults = {s: default_config(dims) for s, dims in self.spaces.items()}
        first = self._measure("defaults", defaults, (1, 2), options.final_repeat, None)
        if first.outcome != "complete":
            raise TuneError(f"the defaults run {first.run_dir.name} {first.outcome}")
        self.slo_s = self._slo(first.summaries)
        for server, config in defaults.items():
            self._score(server, config, first)
        reserve_s = first.duration_s  # the best run: the same servers, trials and loads
        costs: dict[str, list[float]] = {s: [first.duration_s / len(defaults)] for s in defaults}
        active = [s for s in options.servers if self.spaces[s]]
        while active:
            for server in list(active):
                config = self.searches[server].propose()
                if config is None:
                    active.remove(server)
                    continue
                predicted = sum(costs[server]) / len(costs[server])
                left = options.budget_s - (time.time() - self.t_started) - reserve_s
                if predicted > left:
                    self._skip(server, config, predicted, left)
                    active.remove(server)
                    continue
                measured = self._measure(
                    "candidate", {server: config}, self._users(config), options.repeat, left
                )
                costs[server].append(measured.duration_s)
                self._score(server, config, measured)
        self._measure_best()

    def _users(self, config: Config) -> tuple[int, ...]:
        return saturating_users(config, self.options.max_users)

    def _slo(self, summaries: Sequence[PointSummary]) -> float:
        options = self.options
        single = {
            s.server: s.estimate("p90")
            for s in summaries
            if s.scenario == ScenarioName.THROUGHPUT and s.users == 1 and s.estimate("p90") is not None
        }
        if options.slo_p90_ms is not None:
            slo_s = options.slo_p90_ms / 1000
            how = f"given: --slo-p90-ms {options.slo_p90_ms:g}"
        elif not single:
            raise TuneError(
                "cannot set the SLO: no server's single-stream point showed a p90 (too few samples, or "
                "failures); give one with --slo-p90-ms"
            )
        else:
            fastest = min(single, key=lambda server: single[server] or math.inf)
            slo_s = options.slo_factor * (single[fastest] or 0.0)
            how = (
                f"{options.slo_factor:g} × the fastest single-stream p90 ({fastest}, "
                f"{(single[fastest] or 0.0) * 1e3:.1f} ms, default configuration)"
            )
        self.data["slo"] = {
            "p90_ms": round(slo_s * 1e3, 2),
            "how": how,
            "single_stream_p90_ms": {k: round((v or 0.0) * 1e3, 2) for k, v in single.items()},
        }
        self.progress.event(f"SLO: p90 ≤ {slo_s * 1e3:.1f} ms ({how})")
        return slo_s

    def _score(self, server: str, config: Config, measured: Measured) -> None:
        assert self.slo_s is not None
        found = goodput(measured.summaries, server, self.slo_s)
        complete = measured.outcome == "complete" and not measured.skipped
        score = found.score if complete else 0.0
        self.searches[server].record(config, score)
        entry = self._run_entry(measured)
        entry.setdefault("scores", {})[server] = {
            "goodput_rps": round(score, 3),
            "at_users": found.users if complete else None,
            "p90_ms": None if found.p90 is None or not complete else round(found.p90.estimate * 1e3, 1),
            "counted": complete,
        }
        self._note_best()
        self.progress.event(
            f"{server} {' '.join(config_flags(config, self.spaces[server])) or '(defaults)'}: "
            f"goodput {score:.2f} images/s"
            + (f" at {found.users} users" if found.users and complete else " (no load within the SLO)")
        )

    def _note_best(self) -> None:
        for server, search in self.searches.items():
            dims = self.spaces[server]
            flags = config_flags(search.best, dims)
            command = ["python", "-m", "servers", server, "--model", self.options.model]
            self.data["best"][server] = {
                "config": dict(search.best),
                "flags": flags,
                "goodput_rps": search.best_score,
                "command": [*command, *server_args_for(server, self.options.server_args), *flags],
            }
        self._write()

    def _skip(self, server: str, config: Config, predicted: float, left: float) -> None:
        flags = " ".join(config_flags(config, self.spaces[server]))
        self.data["skipped"].append(
            {
                "server": server,
                "flags": config_flags(config, self.spaces[server]),
                "why": f"predicted {predicted:.0f} s does not fit the {max(left, 0):.0f} s left of the "
                f"{self.options.budget_s:.0f} s budget (after the best run's reserve)",
            }
        )
        self._write()
        self.progress.event(f"search of {server} stops: {flags} does not fit the budget")

    def _measure_best(self) -> None:
        assert self.slo_s is not None
        self._note_best()  # the searches' last moves
        configs: dict[str, Config] = {}
        users: set[int] = set()
        for server, search in self.searches.items():
            configs[server] = search.best
            at = self._goodput_users(server, search.best)
            users.update(at if at else self._users(search.best)[:1])
        self._measure("best", configs, tuple(sorted(users)), self.options.final_repeat, None)

    def _goodput_users(self, server: str, config: Config) -> list[int]:
        """The load the configuration's goodput was reached at in the tune's runs."""
        for entry in self.data["runs"]:
            score = (entry.get("scores") or {}).get(server)
            if score and entry["configs"].get(server) == dict(config) and score["at_users"]:
                return [int(score["at_users"])]
        return []

    # -- one run

    def _measure(
        self,
        role: str,
        configs: dict[str, Config],
        users: tuple[int, ...],
        repeat: int,
        budget_s: float | None,
    ) -> Measured:
        options = self.options
        server_args = list(options.server_args)
        for server, config in configs.items():
            server_args += [f"{server}:{flag}" for flag in config_flags(config, self.spaces[server])]
        profile = Profile(
            name=f"tune-{role}",
            description=f"gvf tune: {role}",
            model=options.model,
            image=options.image,
            scenarios={
                ScenarioName.THROUGHPUT: ThroughputScenario(
                    users=users, percentile="p90", max_s=options.point_s
                )
            },
            request_timeout_s=options.request_timeout_s,
            budget_s=budget_s,
            default_scenarios=(ScenarioName.THROUGHPUT,),
            repeat=repeat,
        )
        run_options = RunOptions(
            profile=profile,
            servers=list(configs),
            scenarios=[ScenarioName.THROUGHPUT],
            out_dir=self.dir / RUNS_DIR,
            image=options.image,
            model=options.model,
            server_args=server_args,
            build_report=False,
            repeat=repeat,
            gradio_profiling=False,
        )
        what = ", ".join(
            f"{s} {' '.join(config_flags(c, self.spaces[s])) or '(defaults)'}" for s, c in configs.items()
        )
        self.progress.event(f"{role}: {what} at {', '.join(map(str, users))} users, {repeat} trials")
        t0 = time.time()
        outcome = run(run_options, self.progress)
        duration_s = time.time() - t0
        loaded = load_run(outcome.run_dir)
        summaries = analyse(loaded).summaries if not loaded.table.empty else []
        measured = Measured(
            role,
            configs,
            users,
            outcome.run_dir,
            outcome.outcome,
            duration_s,
            summaries,
            list(loaded.meta.get("skipped") or []),
        )
        self.data["runs"].append(
            {
                "role": role,
                "run_id": outcome.run_dir.name,
                "path": str(outcome.run_dir.relative_to(self.dir)),
                "configs": {s: dict(c) for s, c in configs.items()},
                "flags": {s: config_flags(c, self.spaces[s]) for s, c in configs.items()},
                "users": list(users),
                "repeat": repeat,
                "outcome": outcome.outcome,
                "outcome_detail": outcome.detail,
                "duration_s": round(duration_s, 1),
                "skipped_rounds": len(measured.skipped),
            }
        )
        self._write()
        if outcome.outcome == "interrupted":
            raise KeyboardInterrupt(outcome.detail)
        return measured

    def _run_entry(self, measured: Measured) -> dict[str, Any]:
        return next(e for e in self.data["runs"] if e["run_id"] == measured.run_dir.name)

    def _write(self) -> None:
        self.record.write()

    def _build_report(self) -> None:
        from reports.tune_report import build_tune_report

        try:
            report = build_tune_report(self.dir)
        except Exception as error:  # the tune's data stands without its report
            self.progress.event(f"tune report failed: {type(error).__name__}: {error}")
            return
        self.progress.event(f"tune report: {report}")


class TuneError(RuntimeError):
    """The tune cannot go on (its first run failed, or it has no SLO)."""


def default_tune_dir(parent: Path) -> Path:
    return parent / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-tune"


def best_flags(tune_dir: Path) -> dict[str, list[str]]:
    """The best flags per server of a tune directory (its tune.json), for ``gvf run --best-of``."""
    path = tune_dir / TUNE_FILE
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise TuneError(
            f"{path}: cannot read it ({error.strerror or error}); is it a gvf tune directory?"
        ) from error
    except json.JSONDecodeError as error:
        raise TuneError(f"{path}: not JSON ({error.msg})") from error
    best = data.get("best") or {}
    if not best:
        raise TuneError(
            f"{path}: no best configuration (the tune measured none: outcome {data.get('outcome')})"
        )
    return {server: list(entry.get("flags") or []) for server, entry in best.items()}


def tuned_server_args(flags: dict[str, list[str]], servers: Sequence[str]) -> list[str]:
    """``KIND:FLAG`` server args for the chosen servers the tune has flags for."""
    return [f"{server}:{flag}" for server in servers for flag in flags.get(server, [])]
