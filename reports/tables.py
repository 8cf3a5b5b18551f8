"""What the HTML report and the Markdown summary both show as text: table columns and cells,
and the validity rules in words.

Two tables of load points: the compact one (each point over its trials, the headline
statistics with their 95% intervals; it must read at 1,400 px) and the full one (every trial,
every column; folded away in the HTML report and written as CSV beside it). Cells carry no
unit (the column header names it) and "—" where a value is missing.
"""

from __future__ import annotations

from reports.metrics.abandon import AbandonSummary
from reports.metrics.batching import BatchPoint
from reports.metrics.intervals import Interval
from reports.metrics.points import PointMetrics
from reports.metrics.profiler import ProfilerCheck
from reports.metrics.rules import ValidityRules
from reports.metrics.soak import PER_REQUESTS, ResourceTrend
from reports.metrics.summaries import PointSummary
from reports.metrics.sweeps import Knee

# The tables beside the documents, as CSV: every point over its trials, and every trial.
SUMMARY_CSV = "summary.csv"
TRIALS_CSV = "trials.csv"


def ms_cell(value: float | None) -> str:
    """Seconds as a millisecond figure without its unit (the column header carries it), or "—"."""
    return "—" if value is None else f"{value * 1e3:.1f}"


def num_cell(value: float | None, spec: str = ".2f") -> str:
    """A number formatted by ``spec``, or "—" where there is none."""
    return "—" if value is None else format(value, spec)


def pct_cell(value: float | None) -> str:
    """A fraction as a whole percentage, or "—"."""
    return "—" if value is None else f"{value:.0%}"


def mib_cell(value: int | None) -> str:
    """Bytes as whole MiB without the unit, or "—"."""
    return "—" if value is None else f"{value / 2**20:.0f}"


def interval_cell(interval: Interval | None, scale: float = 1.0, spec: str = ".2f") -> str:
    """An estimate and its 95% interval in the column's unit: "12.3 (11.9–12.7)", or "—"."""
    if interval is None:
        return "—"
    low, estimate, high = (format(v * scale, spec) for v in (interval.low, interval.estimate, interval.high))
    return f"{estimate} ({low}–{high})"


SUMMARY_COLUMNS: tuple[str, ...] = (
    "server",
    "client",
    "scenario",
    "load",
    "trials",
    "verdict",
    "img/s (95% CI)",
    "p50 ms (95% CI)",
    "p90 ms (95% CI)",
    "errors",
    "reasons / notes",
)


def summary_cells(s: PointSummary) -> list[str]:
    """A point's row of the compact table, in ``SUMMARY_COLUMNS`` order."""
    return [
        s.server,
        s.client,
        s.scenario,
        s.load_point,
        str(s.n_trials),
        s.verdict,
        interval_cell(s.intervals.get("throughput")),
        interval_cell(s.intervals.get("p50"), 1e3, ".1f"),
        interval_cell(s.intervals.get("p90"), 1e3, ".1f"),
        pct_cell(s.error_rate),
        "; ".join(s.reasons + s.notes) or "—",
    ]


POINT_COLUMNS: tuple[str, ...] = (
    "server",
    "client",
    "scenario",
    "load",
    "trial",
    "verdict",
    "measured / ok",
    "error rate",
    "errors",
    "img/s",
    "thirds spread",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "decomposed mean (n)",
    "wait",
    "pre",
    "gpu",
    "post",
    "protocol",
    "collisions",
    "max depth",
    "inflation",
    "peak MiB",
    "in flight (configured)",
    "completions/s client vs ledger",
    "send lag p99 ms",
    "reasons / notes",
)


def point_cells(m: PointMetrics) -> list[str]:
    """A trial's row of the full table, in ``POINT_COLUMNS`` order."""
    errors = ", ".join(f"{k}: {v}" for k, v in m.errors.items()) or "—"
    in_flight = (
        "—"
        if m.client_in_flight is None
        else f"{m.client_in_flight:.2f} ({'—' if m.configured_in_flight is None else m.configured_in_flight})"
    )
    completions = (
        "—"
        if m.client_completion_rps is None
        else f"{m.client_completion_rps:.2f} vs {num_cell(m.ledger_completion_rps)}"
    )
    return [
        m.server,
        m.client,
        m.scenario,
        m.load_point,
        str(m.trial),
        m.verdict,
        f"{m.n_measured} / {m.n_ok}",
        pct_cell(m.error_rate),
        errors,
        num_cell(m.throughput_rps),
        pct_cell(m.thirds_spread),
        ms_cell(m.p50_s),
        ms_cell(m.p90_s),
        ms_cell(m.p99_s),
        ms_cell(m.p999_s),
        ms_cell(m.max_s),
        "—" if m.decomposed_latency_s is None else f"{ms_cell(m.decomposed_latency_s)} ({m.n_decomposed})",
        ms_cell(m.wait_s),
        ms_cell(m.pre_s),
        ms_cell(m.gpu_s),
        ms_cell(m.post_s),
        ms_cell(m.protocol_s),
        pct_cell(m.collision_share),
        "—" if m.max_gpu_depth is None else str(m.max_gpu_depth),
        "—" if m.service_inflation is None else f"{m.service_inflation:.2f}×",
        mib_cell(m.peak_gpu_bytes),
        in_flight,
        completions,
        ms_cell(m.send_lag_p99_s),
        "; ".join(m.reasons + m.notes),
    ]


def knee_cells(k: Knee) -> list[str]:
    """A knee's row, in ``KNEE_COLUMNS`` order."""
    load = "none" if k.load is None else f"{k.load:g}"
    return [
        f"{k.server}/{k.client}",
        k.scenario,
        load,
        ms_cell(k.p90_s),
        ms_cell(k.baseline_p90_s),
        ms_cell(k.limit_s),
        k.reason,
    ]


KNEE_COLUMNS = ("series", "sweep", "knee load", "p90 ms", "single-stream p90 ms", "limit ms", "how")

PROFILER_COLUMNS = (
    "point",
    "requests joined",
    "wait: ledger − Gradio, median ms",
    "function: ledger − Gradio, median ms",
    "note",
)


def profiler_cells(c: ProfilerCheck) -> list[str]:
    """A gradio point's row of the profiler comparison, in ``PROFILER_COLUMNS`` order."""
    return [
        f"{c.client} {c.scenario} {c.load_point}",
        f"{c.n_joined} of {c.n_requests}",
        ms_cell(c.wait_difference_s),
        ms_cell(c.call_difference_s),
        c.note or "agree within the rule",
    ]


ABANDON_COLUMNS = (
    "server",
    "client",
    "offered",
    "clients giving up",
    "trials",
    "verdict",
    "goodput img/s (95% CI)",
    "wasted GPU s (95% CI)",
    "wasted share of GPU time",
    "gave up",
    "GPU ran for one gone",
    "reasons",
)


def abandon_cells(a: AbandonSummary) -> list[str]:
    """An abandon point's row, in ``ABANDON_COLUMNS`` order."""
    share = "—" if a.give_up_share is None else f"{a.give_up_share:.0%}"
    after = "—" if a.give_up_s is None else f"{a.give_up_s:.3g} s"
    return [
        a.server,
        a.client,
        a.load_point,
        f"{share} after {after}",
        str(a.n_trials),
        a.verdict,
        interval_cell(a.goodput),
        interval_cell(a.wasted_gpu_s, spec=".3f"),
        pct_cell(a.wasted_share),
        pct_cell(a.gave_up),
        str(a.ran_for_nobody),
        "; ".join(a.reasons) or "—",
    ]


BATCH_COLUMNS = (
    "server",
    "client",
    "scenario",
    "load",
    "verdict",
    "GPU calls",
    "calls by batch size",
    "mean batch",
    "img/s (95% CI)",
    "p90 ms (95% CI)",
)


def batch_cells(b: BatchPoint) -> list[str]:
    """A batched point's row, in ``BATCH_COLUMNS`` order."""
    return [
        b.server,
        b.client,
        b.scenario,
        b.load_point,
        b.verdict,
        str(b.calls),
        ", ".join(f"{size}: {count}" for size, count in b.calls_by_size.items()),
        num_cell(b.mean_batch),
        interval_cell(b.throughput),
        interval_cell(b.p90, scale=1e3, spec=".0f"),
    ]


def batch_rule() -> str:
    return (
        "GPU calls by batch size over the measured requests of every trial, counted per call (a batch "
        "of eight is one call of size 8: its requests share one GPU interval and are not a collision); "
        "mean batch = requests per GPU call."
    )


SOAK_COLUMNS = (
    "server",
    "client",
    "offered",
    "requests",
    "samples",
    "RSS MB first → last",
    f"MB per {PER_REQUESTS:,} requests (95% CI)",
    "memory",
    "fds first → last",
    "threads first → last",
    "temp MB",
    "GPU MB",
    "held at the end",
)


def _first_last(pair: tuple[float | int | None, float | int | None], spec: str = "d") -> str:
    first, last = pair
    return "—" if first is None or last is None else f"{format(first, spec)} → {format(last, spec)}"


def soak_cells(t: ResourceTrend) -> list[str]:
    """A soak point's row, in ``SOAK_COLUMNS`` order."""
    held = ", ".join(f"{k} {v}" for k, v in sorted(t.held_last.items())) or "—"
    return [
        t.server,
        t.client,
        t.load_point,
        f"{t.requests:,}",
        str(t.n_samples),
        _first_last((t.rss_first_mb, t.rss_last_mb), ".0f"),
        interval_cell(t.slope),
        t.verdict,
        _first_last(t.fds),
        _first_last(t.threads),
        num_cell(t.temp_mb_last, ".1f"),
        num_cell(t.gpu_mb_last, ".0f"),
        held,
    ]


def abandon_rule() -> str:
    """How an abandon point is judged, in words."""
    return (
        "Abandon (open loop above capacity, a share of the clients giving up at a timeout): a point is "
        "judged on goodput, not latency — images delivered to clients still waiting per second, and the "
        "GPU seconds spent on answers nobody received (the ledger's GPU spans of the requests whose "
        "client did not get the answer, each instant shared among overlapping calls), each with its "
        "95% interval over trials. Its abandoned requests do not count against the error-rate rule; its "
        "stability is judged on delivered images per third, as in closed loop; its latencies are those "
        "of the delivered requests only (a survivor sample) and back no claim."
    )


def soak_rule(rules: ValidityRules) -> str:
    """How a soak's memory growth is judged, in words."""
    return (
        "Soak: memory grew X MB per 1,000 requests is the least-squares slope of the server's RSS "
        f"against the requests it had finished, through {rules.soak_blocks} block means of the soak's "
        "second half (blocks of consecutive samples, for autocorrelated samples; the first half is "
        "warm-up), with a t-interval on blocks − 2 degrees of freedom; GROWTH where the interval lies "
        f"above {rules.max_memory_growth_mb_per_1000:g} MB per 1,000 requests, a plateau where it lies "
        "at or below, inconclusive otherwise."
    )


def rules_text(rules: ValidityRules) -> list[str]:
    """The verdict rules, as applied, in words (the README's "Validity rules" say the same)."""
    limit = f"{rules.max_littles_law_disagreement:.0%}"
    return [
        f"Warm-up excluded: the first {rules.warmup_fraction:.0%} of the window or "
        f"{rules.warmup_requests_per_user} requests per user (one user in open loop), whichever is longer.",
        f"Percentiles shown only with enough samples: p90 ≥ {rules.min_samples_p90}, p99 ≥ "
        f"{rules.min_samples_p99}, p99.9 ≥ {rules.min_samples_p999}, counted per trial in the trial table "
        "and over the pooled trials in the point summary; a point missing a percentile is VALID for what "
        "it shows.",
        "Latencies are those of the successful and the timed-out requests; a fast failure (4xx, 503) is "
        f"no latency. INVALID when more than {rules.max_error_rate:.0%} of the measured requests failed "
        "(the error rate is shown): such a point backs no latency or throughput claim.",
        f"INVALID when the load process averaged > {rules.max_load_cpu_percent:g}% CPU.",
        f"INVALID (open loop) when p99 send lag > max({rules.max_send_lag_s * 1e3:g} ms, "
        f"{rules.max_send_lag_gap_fraction:.0%} of the mean scheduled gap); for bursts (`collisions`) "
        f"when p99 send lag > max({rules.max_send_lag_s * 1e3:g} ms, "
        f"{rules.max_send_lag_gap_fraction:.0%} of the median burst makespan), i.e. the burst's "
        "requests did not leave together.",
        "INVALID (unstable) when a third of the window strays from its expected count by more than the "
        f"larger of {rules.max_thirds_spread:.0%} of it and {rules.stability_sigmas:g} standard deviations "
        "of chance: closed loop, completions per third against a third of the total (binomial); bursts "
        "(`collisions`), images per third of the bursts against the total's share of burst makespan "
        "(binomial); open loop, completions (counted one median latency later) against the arrivals "
        "scheduled in that third (Poisson).",
        "Burst throughput is images per second of burst makespan (release to last completion): the drains "
        "between bursts are no serving time.",
        f"INVALID when the client's mean in-flight is off the configured load by more than {limit}: "
        "closed loop, requests in flight over the window against the configured users; bursts, requests "
        "in flight at each release against the burst size.",
        "INVALID when the client's successful completions per second are off the server ledger's (its "
        f"requests answered 200, by t_send) over the same window by more than {limit}; not checked where "
        "the run kept no ledger.",
        "INVALID when requests were still in the server as the point started (a backlog: the previous "
        "point's wait for idle timed out), when no request succeeded in the measured window, or when the "
        "run ended before the point finished.",
        "A point measured in N trials is VALID only when every trial is VALID (the failing trials' reasons "
        "are listed). Its statistics carry 95% intervals: the t-interval of the per-trial values for "
        "N ≥ 2; for N = 1 a bootstrap over the trial's requests (its completion gaps, or its bursts, for "
        "throughput).",
        "Which should I deploy: fastapi and gradio are compared only at closed-loop loads where both are "
        "VALID and show p90, trial t against trial t (one trial each: both bootstrapped); the verdict "
        "rests on the highest such load and calls a difference only when its 95% interval excludes none "
        f"and it is at least {rules.material_difference:.0%} either way. Where the model ran on the CPU, "
        "each trial's values are first brought to the pair's common model speed (times scaled by the "
        "geometric mean of the two servers' median model calls over the server's own; throughput "
        "inversely): a CPU's speed drifts by ±20% on a shared machine, more than a framework adds, and "
        "the verdict states how far the model calls differed.",
        "Single-stream baseline (service-time inflation, knees): the VALID `latency` point, else the VALID "
        "closed-loop users=1 point; none otherwise.",
        f"Knee: the highest VALID load whose p90 stays within {rules.knee_factor:g}× the single-stream p90.",
        "Gradio's profiler, where the run collected it: a note when the median of the ledger's wait or "
        "function span minus Gradio's queue wait or function call exceeds "
        f"{rules.max_profiler_disagreement_s * 1e3:g} ms.",
        abandon_rule(),
        soak_rule(rules),
    ]
