"""Which should I deploy? gradio.Server against FastAPI, compared only on like evidence.

The two servers are compared at each closed-loop `throughput` load where both points are
VALID (every trial) and both show p90 (the pooled sample meets its floor): throughput as the
fastapi/gradio ratio and p90 as the difference gradio − fastapi, each with its 95% interval,
trial t of one paired with trial t of the other (``reports.metrics.summaries.compare``). A
difference is called only when its interval excludes "no difference" and it is material (at
least ``material_difference`` either way, the same test for both servers); otherwise the load
says "no measurable difference" with the interval. The verdict rests on the highest such load
(the most load both served validly) and states its :class:`Choice`, the comparisons it read
and, where nothing can be compared, what is missing. Findings add the single-stream protocol
time, the lock each server holds and the naive control, each with the rule that made it.
Where the model ran on the CPU, both sides are first brought to their common model speed
(``compare`` given ``model_speed_factors``): the machine's speed while each server ran is not
the framework's doing, and the verdict says how far the model calls differed.
``DOCUMENTED_FACTS`` are what the documentation says and no run measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from reports.metrics.intervals import Interval
from reports.metrics.rules import ValidityRules
from reports.metrics.summaries import (
    THROUGHPUT,
    PointSummary,
    compare,
    model_speed_factors,
    model_time_ratio,
    single_stream,
)
from reports.schema import ScenarioName

# Client preference when pairing the two servers: the path a typical user of each takes
# (gradio_client uploads FileData; a FastAPI caller posts bytes), then the like-for-like ones.
FASTAPI_CLIENTS: tuple[str, ...] = ("fastapi", "fastapi-b64")
GRADIO_CLIENTS: tuple[str, ...] = ("gradio-file", "gradio-b64", "gradio-queue")

# Documented behaviour (docs/design.md §4, gradio 6.31.0); a run measures none of it.
DOCUMENTED_FACTS: tuple[str, ...] = (
    "ZeroGPU on Hugging Face Spaces needs gradio (`@spaces.GPU`); off Spaces that decorator is a no-op.",
    "`gvf export-space DIR` writes the gradio server as a ready-to-push Space (its model call wrapped in "
    "`@spaces.GPU(duration=…)`). A Space changes numbers no run here measures: on ZeroGPU each call first "
    "waits for a GPU to be allocated to it (queue priority follows `duration`), a cold start reloads the "
    "model, and per-user GPU quotas apply. Measure a deployed Space with "
    "`gvf run --target-url https://OWNER-NAME.hf.space` (no ledger join; latency includes the internet).",
    "`launch(mcp_server=True)` (with `gradio[mcp]`) exposes every public `@app.api` as an MCP tool at "
    "/gradio_api/mcp/.",
    "Gradio's queue serialises the whole function (pre, model and post) per `concurrency_limit`, default 1; "
    "results arrive over SSE; the queue lives in one process, so two uvicorn workers break result delivery.",
    "Off Spaces, `/gradio_api/run/<name>` bypasses the queue and its concurrency limit.",
    "Gradio's startup to first 200 takes 4-7 s, FastAPI's under 1 s.",
)
FEATURES = "choose gradio.Server when you need Spaces, ZeroGPU, MCP or its queue UI"
RESOLVE = (
    "more trials (`gvf run --repeat N`, N ≥ 3) pool more samples per point and narrow the intervals; the "
    "`full` profile adds loads and requests per point"
)


class Choice(StrEnum):
    """What the verdict says to deploy."""

    FASTAPI = "fastapi"  # measurably better on one statistic, not worse on the other
    GRADIO = "gradio"  # measurably better on one statistic, not worse on the other
    TIE = "tie"  # no material difference either way: the features decide
    MIXED = "mixed"  # one has the throughput, the other answers sooner
    NONE = "none"  # nothing could be compared: nothing is recommended


class Favours(StrEnum):
    """Which server a comparison favours."""

    FASTAPI = "FastAPI"
    GRADIO = "gradio.Server"
    NEITHER = "neither"


@dataclass(frozen=True)
class LoadComparison:
    """fastapi against gradio at one closed-loop load both served validly."""

    load_point: str
    load: float
    fastapi: PointSummary
    gradio: PointSummary
    throughput_ratio: Interval | None  # fastapi / gradio
    p90_difference: Interval | None  # gradio − fastapi, s: > 0 where fastapi answers sooner
    throughput_favours: Favours
    p90_favours: Favours
    common_model_speed: bool = False  # both compared at the pair's common model speed (CPU runs)
    model_time_ratio: Interval | None = None  # gradio / fastapi median model call, paired

    @property
    def one_trial(self) -> bool:
        return self.fastapi.n_trials == 1 or self.gradio.n_trials == 1


@dataclass(frozen=True)
class Finding:
    """One measured comparison: what it says, the rule that computed it and the points it read."""

    label: str
    text: str
    rule: str
    points: tuple[PointSummary, ...] = ()


@dataclass
class Recommendation:
    """The deploy section: the verdict, what it compared, findings, documented facts."""

    verdict: str  # the verdict in words, its rule included
    choice: Choice = Choice.NONE
    findings: list[Finding] = field(default_factory=list)
    pair: tuple[str, str] | None = None  # (fastapi client, gradio client) compared
    facts: tuple[str, ...] = DOCUMENTED_FACTS
    comparisons: list[LoadComparison] = field(default_factory=list)  # every common load, by load
    decisive: LoadComparison | None = None  # the load the verdict rests on
    missing: list[str] = field(default_factory=list)  # loads not compared, and why

    @property
    def recommends(self) -> bool:
        return self.choice is not Choice.NONE


def _millis(seconds: float, sign: str = "") -> str:
    text = format(seconds * 1e3, f"{sign}.1f")
    return text.replace("+0.0", "0.0").replace("-0.0", "0.0").replace("-", "−")


def ms(seconds: float) -> str:
    """Seconds as milliseconds with their unit, for prose: 0.0123 -> "12.3 ms"."""
    return f"{_millis(seconds)} ms"


def ratio_text(interval: Interval) -> str:
    """A ratio with its interval: "1.04, 95% CI 0.97–1.11"."""
    return f"{interval.estimate:.2f}, 95% CI {interval.low:.2f}–{interval.high:.2f}"


def difference_text(interval: Interval) -> str:
    """A difference in seconds with its interval, signed: "+3.2 ms, 95% CI −8.0 to +14.4 ms"."""
    bounds = f"{_millis(interval.low, '+')} to {_millis(interval.high, '+')} ms"
    return f"{_millis(interval.estimate, '+')} ms, 95% CI {bounds}"


def material(larger: float, smaller: float, rules: ValidityRules) -> bool:
    """Whether two positive values differ by at least ``material_difference`` either way."""
    return smaller > 0 and larger / smaller >= 1 + rules.material_difference


def _favours_ratio(interval: Interval | None, rules: ValidityRules) -> Favours:
    if interval is None or not interval.excludes(1.0):
        return Favours.NEITHER
    if not material(max(interval.estimate, 1 / interval.estimate), 1.0, rules):
        return Favours.NEITHER
    return Favours.FASTAPI if interval.estimate > 1 else Favours.GRADIO


def _favours_sooner(
    interval: Interval | None, fastapi_s: float, gradio_s: float, rules: ValidityRules
) -> Favours:
    if interval is None or not interval.excludes(0.0):
        return Favours.NEITHER
    # the paired difference itself against the sooner level: the levels may be as measured
    # while the difference was compared at a common model speed
    sooner = min(fastapi_s, gradio_s)
    if not material(sooner + abs(interval.estimate), sooner, rules):
        return Favours.NEITHER
    return Favours.FASTAPI if interval.estimate > 0 else Favours.GRADIO


def _pick_client(summaries: Sequence[PointSummary], server: str, preference: Sequence[str]) -> str | None:
    valid_clients = {s.client for s in summaries if s.server == server and s.valid}
    return next((c for c in preference if c in valid_clients), None)


def _sweep(summaries: Sequence[PointSummary], server: str, client: str) -> dict[float, PointSummary]:
    return {
        s.load: s
        for s in summaries
        if (s.server, s.client, s.scenario) == (server, client, ScenarioName.THROUGHPUT)
    }


def _why_not(s: PointSummary | None, server: str) -> str | None:
    """Why a point cannot be compared (None: it can)."""
    if s is None:
        return f"{server} did not run it"
    if not s.valid:
        return f"{server} INVALID ({'; '.join(s.reasons)})"
    if "p90" not in s.intervals:
        return f"{server} has {s.n_latency} pooled samples, below the p90 floor"
    return None


def comparisons(
    summaries: Sequence[PointSummary],
    fa_client: str,
    gr_client: str,
    rules: ValidityRules,
    common_model_speed: bool = False,
) -> tuple[list[LoadComparison], list[str]]:
    """The comparison at every closed-loop load both servers served validly with p90, and
    for every other load of either sweep why it was not compared (``common_model_speed``:
    see ``reports.metrics.summaries.compare``)."""
    fastapi, gradio = _sweep(summaries, "fastapi", fa_client), _sweep(summaries, "gradio", gr_client)
    compared: list[LoadComparison] = []
    missing: list[str] = []
    for load in sorted(set(fastapi) | set(gradio)):
        fa, gr = fastapi.get(load), gradio.get(load)
        why = [w for w in (_why_not(fa, "fastapi"), _why_not(gr, "gradio")) if w]
        if why or fa is None or gr is None:
            label = (fa or gr).load_point if (fa or gr) else f"load {load:g}"
            missing.append(f"{label}: {'; '.join(why)}")
            continue
        # only where both sides' model times are known (no batching, a ledger): else as measured
        speed = model_speed_factors(fa, gr) if common_model_speed else None
        ratio = compare(fa, gr, THROUGHPUT, speed)
        difference = compare(gr, fa, "p90", None if speed is None else (speed[1], speed[0]))
        if ratio is None and difference is None:
            trials = f"fastapi {fa.n_trials}, gradio {gr.n_trials} trials"
            missing.append(f"{fa.load_point}: the trials do not pair ({trials})")
            continue
        fa_p90, gr_p90 = fa.estimate("p90") or 0.0, gr.estimate("p90") or 0.0
        compared.append(
            LoadComparison(
                fa.load_point,
                load,
                fa,
                gr,
                ratio,
                difference,
                _favours_ratio(ratio, rules),
                _favours_sooner(difference, fa_p90, gr_p90, rules),
                speed is not None,
                None if speed is None else model_time_ratio(gr, fa),
            )
        )
    return compared, missing


def _called(interval: Interval, none: float, favours: Favours, what: str) -> str:
    """How a comparison that favours neither server reads: not measurable, or not material."""
    if favours is not Favours.NEITHER:
        return ""
    return f"no {'material' if interval.excludes(none) else 'measurable'} {what} difference"


def throughput_phrase(c: LoadComparison) -> str:
    """What the throughput comparison at a load says, sign-aware and symmetric."""
    if c.throughput_ratio is None:
        return "throughput not compared (the trials do not pair)"
    numbers = f"fastapi/gradio throughput ratio {ratio_text(c.throughput_ratio)}"
    neither = _called(c.throughput_ratio, 1.0, c.throughput_favours, "throughput")
    if neither:
        return f"{neither} ({numbers})"
    ratio = c.throughput_ratio.estimate
    more = ratio - 1 if c.throughput_favours is Favours.FASTAPI else 1 / ratio - 1
    return f"{c.throughput_favours} serves {more:.0%} more images/s ({numbers})"


def p90_phrase(c: LoadComparison) -> str:
    """What the p90 comparison at a load says: who answers sooner, never by a negative amount."""
    levels = f"p90 fastapi {ms(c.fastapi.estimate('p90') or 0)}, gradio {ms(c.gradio.estimate('p90') or 0)}"
    if c.p90_difference is None:
        return f"p90 not compared ({levels}; the trials do not pair)"
    numbers = f"{levels}, gradio − fastapi {difference_text(c.p90_difference)}"
    neither = _called(c.p90_difference, 0.0, c.p90_favours, "p90")
    if neither:
        return f"{neither} ({numbers})"
    return f"{c.p90_favours} answers {ms(abs(c.p90_difference.estimate))} sooner at p90 ({numbers})"


def method_of(c: LoadComparison) -> str:
    """The interval method(s) a load's comparison used, and the model speed it compared at."""
    methods = "; ".join(sorted({i.method for i in (c.throughput_ratio, c.p90_difference) if i is not None}))
    if c.common_model_speed:
        methods = f"{methods or 'no interval'}; {speed_phrase(c)}"
    return methods or "no interval"


def speed_phrase(c: LoadComparison) -> str:
    """How far the model call itself differed between the two servers, and what was done about it."""
    ratio = c.model_time_ratio
    differed = (
        f"the model call took {ratio.estimate:.2f}× as long in gradio's process as in fastapi's "
        f"(95% CI {ratio.low:.2f}–{ratio.high:.2f})"
        if ratio is not None
        else "the model calls' times were compared trial by trial"
    )
    return (
        f"both at their common model speed — on the CPU {differed}, the machine's speed while each "
        "ran, not the framework's doing; the p90 levels shown are as measured"
    )


def recommend(
    summaries: Sequence[PointSummary],
    rules: ValidityRules,
    device: str = "",
    lock_scope: str | None = None,
) -> Recommendation:
    """Gradio against FastAPI from one run's point summaries. ``lock_scope`` is the FastAPI
    server's (run.json), None where the run did not record it."""
    if not any(s.valid for s in summaries):
        return Recommendation("No load point of this run is VALID: nothing is recommended.")
    fa_client = _pick_client(summaries, "fastapi", FASTAPI_CLIENTS)
    gr_client = _pick_client(summaries, "gradio", GRADIO_CLIENTS)
    if fa_client is None or gr_client is None:
        missing = "fastapi" if fa_client is None else "gradio"
        return Recommendation(
            f"No VALID point for the `{missing}` server: the two cannot be compared, nothing is recommended."
        )
    rec = Recommendation("", pair=(fa_client, gr_client))
    # a model on the CPU runs at the machine's speed of the moment: see reports.metrics.summaries
    on_cpu = device.startswith("cpu")
    rec.comparisons, rec.missing = comparisons(summaries, fa_client, gr_client, rules, on_cpu)
    protocol = _protocol_finding(summaries, fa_client, gr_client)
    if protocol is not None:
        rec.findings.append(protocol)
    for c in rec.comparisons:
        rec.findings.append(
            Finding(
                f"At {c.load_point}",
                f"{throughput_phrase(c)}; {p90_phrase(c)}; intervals: {method_of(c)}",
                "paired comparison at a closed-loop `throughput` load where both servers are VALID in every "
                f"trial with the p90 floor met (pooled); fastapi/{fa_client} vs gradio/{gr_client}",
                (c.fastapi, c.gradio),
            )
        )
    if rec.missing:
        rec.findings.append(
            Finding(
                "Loads not compared",
                "; ".join(rec.missing),
                "a load is compared only where both servers are VALID in every trial and show p90",
            )
        )
    rec.decisive = rec.comparisons[-1] if rec.comparisons else None
    if rec.decisive is not None:
        rec.findings.append(_lock_finding(rec.decisive, lock_scope))
    naive = _naive_control(summaries, fa_client, device)
    if naive is not None:
        rec.findings.append(naive)
    _decide(rec, rules)
    return rec


def _protocol_finding(summaries: Sequence[PointSummary], fa_client: str, gr_client: str) -> Finding | None:
    fa, gr = single_stream(summaries, "fastapi", fa_client), single_stream(summaries, "gradio", gr_client)
    if fa is None or gr is None:
        return None
    difference = compare(gr, fa, "protocol")
    fa_mean, gr_mean = fa.estimate("protocol"), gr.estimate("protocol")
    if difference is None or fa_mean is None or gr_mean is None:
        return None
    levels = f"gradio {ms(gr_mean)}, fastapi {ms(fa_mean)} per request"
    numbers = f"gradio − fastapi {difference_text(difference)}, {difference.method}"
    if not difference.excludes(0.0):
        text = f"no measurable difference ({levels}; {numbers})"
    elif difference.estimate > 0:
        text = f"gradio adds {ms(difference.estimate)} per request ({levels}; {numbers})"
    else:
        text = f"gradio's protocol time is {ms(-difference.estimate)} shorter ({levels}; {numbers})"
    return Finding(
        "Gradio's added protocol time per request",
        text,
        "mean protocol component (latency − wait − pre − gpu − post) at the VALID single-stream point "
        f"(`latency`, else users=1) of fastapi/{fa_client} and gradio/{gr_client}, paired by trial",
        (fa, gr),
    )


def _lock_finding(c: LoadComparison, lock_scope: str | None) -> Finding:
    """How long each request holds what serialises it, and the wait for it, at the decisive load."""
    held = {
        name: sum(s.mean_over_trials(f"{part}_s") or 0.0 for part in parts)
        for name, s, parts in (
            ("gradio", c.gradio, ("pre", "gpu", "post")),
            ("fastapi-gpu", c.fastapi, ("gpu",)),
            ("fastapi-request", c.fastapi, ("pre", "gpu", "post")),
        )
    }
    if lock_scope == "request":
        fastapi_lock = f"{ms(held['fastapi-request'])} (pre+gpu+post: --lock-scope request)"
    elif lock_scope == "gpu":
        fastapi_lock = f"{ms(held['fastapi-gpu'])} (the GPU stage only: --lock-scope gpu)"
    else:
        fastapi_lock = f"{ms(held['fastapi-gpu'])} to {ms(held['fastapi-request'])} (lock scope not recorded)"
    waits = []
    for name, s in (("gradio", c.gradio), ("fastapi", c.fastapi)):
        wait = s.intervals.get("wait")
        waits.append(f"{name} {'—' if wait is None else ms(wait.estimate)}")
    wait_ci = compare(c.gradio, c.fastapi, "wait")
    wait_difference = "" if wait_ci is None else f" (gradio − fastapi {difference_text(wait_ci)})"
    return Finding(
        "What each server serialises",
        f"at {c.load_point}: mean wait {', '.join(waits)}{wait_difference}; time each request holds the "
        f"lock: gradio {ms(held['gradio'])} (pre+gpu+post: Gradio's queue wraps the whole function), "
        f"fastapi {fastapi_lock}",
        "mean wait (t_gpu_start − t_recv − pre) and the mean span under the lock at the load the verdict "
        "rests on; the lock scope read from run.json",
        (c.fastapi, c.gradio),
    )


def _naive_control(summaries: Sequence[PointSummary], fa_client: str, device: str) -> Finding | None:
    naive_points = [
        s
        for s in summaries
        if s.server == "fastapi-naive"
        and s.client == fa_client
        and s.valid
        and s.scenario in (ScenarioName.COLLISIONS, ScenarioName.THROUGHPUT)
    ]
    if not naive_points:
        return None
    naive = max(naive_points, key=lambda s: (s.scenario == ScenarioName.COLLISIONS, s.load))
    locked = next(
        (
            s
            for s in summaries
            if (s.server, s.client, s.scenario, s.load) == ("fastapi", fa_client, naive.scenario, naive.load)
            and s.valid
        ),
        None,
    )
    simulated = " (simulated)" if device == "simulated" else ""

    def described(s: PointSummary) -> str:
        share = s.mean_over_trials("collision_share")
        inflation = s.mean_over_trials("service_inflation")
        depths = [m.max_gpu_depth for m in s.trials if m.max_gpu_depth is not None]
        peaks = [m.peak_gpu_bytes for m in s.trials if m.peak_gpu_bytes is not None]
        memory = "n/a" if not peaks else f"{max(peaks) / 2**20:.0f} MiB{simulated}"
        return (
            f"collision share {'—' if share is None else f'{share:.0%}'}, max depth "
            f"{max(depths) if depths else '—'}, service-time inflation "
            f"{'—' if inflation is None else f'{inflation:.2f}x'}, peak memory {memory}, "
            f"throughput {s.estimate(THROUGHPUT) or 0:.2f} img/s"
        )

    text = f"at {naive.scenario} {naive.load_point}: naive {described(naive)}"
    if locked is not None:
        text += f"; locked fastapi {described(locked)}"
        ratio = compare(naive, locked, THROUGHPUT)
        if ratio is not None:
            text += f"; naive/locked throughput ratio {ratio_text(ratio)} ({ratio.method})"
    if device.startswith("cpu"):
        text += " (CPU: a collision here is thread oversubscription)"
    return Finding(
        "Collisions and memory against the naive (unlocked) control",
        text,
        "highest VALID `collisions` (else `throughput`) point of fastapi-naive against the locked fastapi "
        "at the same load; burst throughput is images per second of burst makespan",
        (naive,) if locked is None else (naive, locked),
    )


def _decide(rec: Recommendation, rules: ValidityRules) -> None:
    """Set the verdict of ``rec``: its choice and its text, from the decisive comparison."""
    rule = (
        "Rule: compared at the highest closed-loop load where both servers are VALID in every trial "
        "and the pooled sample meets the p90 floor; a difference is called only when its 95% interval "
        f"excludes none and it is at least {rules.material_difference:.0%} either way"
        + (
            "; on the CPU, at the pair's common model speed."
            if rec.decisive and rec.decisive.common_model_speed
            else "."
        )
    )
    c = rec.decisive
    if c is None:
        missing = "; ".join(rec.missing) or "the run has no closed-loop `throughput` sweep on both servers"
        rec.verdict = (
            f"Nothing can be compared, so nothing is recommended: {missing}. To resolve it: {RESOLVE}. {rule}"
        )
        return
    favours = {c.throughput_favours, c.p90_favours} - {Favours.NEITHER}
    at = f"at {c.load_point}"
    intervals = f"intervals: {method_of(c)}"
    if not favours:
        rec.choice = Choice.TIE
        text = (
            f"No material difference {at}: {throughput_phrase(c)}; {p90_phrase(c)}; {intervals}. With no "
            f"material cost either way, {FEATURES}; otherwise plain FastAPI. A difference smaller than these "
            f"intervals may exist: {RESOLVE}."
        )
    elif len(favours) == 2:
        rec.choice = Choice.MIXED
        text = (
            f"Mixed {at}: {throughput_phrase(c)}, but {p90_phrase(c)}; {intervals}. Pick by which matters "
            f"to you, and {FEATURES}."
        )
    else:
        (winner,) = favours
        rec.choice = Choice.FASTAPI if winner is Favours.FASTAPI else Choice.GRADIO
        advice = (
            f"Deploy FastAPI, and {FEATURES}"
            if winner is Favours.FASTAPI
            else "Deploy gradio.Server; hand-rolled FastAPI buys nothing here"
        )
        text = f"{winner} is ahead {at}: {throughput_phrase(c)}; {p90_phrase(c)}; {intervals}. {advice}."
    if c.one_trial:
        text += (
            " One trial per point: these intervals hold the sampling noise within the trial, not the "
            "drift between runs (`gvf run --repeat 3` measures that)."
        )
    rec.verdict = f"{text} {rule}"
