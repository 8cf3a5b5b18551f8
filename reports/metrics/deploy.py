"""Which should I deploy? gradio.Server against FastAPI from one run's VALID points.

Each :class:`Finding` carries the rule that computed it and the points it read; the
verdict weighs saturation throughput and latency at the highest common VALID load, with
``TIE_MARGIN`` as the tie, and states its :class:`Choice`, the numbers it rests on and the
points it compared besides its text. ``DOCUMENTED_FACTS`` are what the documentation says
and no run measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from reports.metrics.points import PointMetrics
from reports.metrics.rules import BASELINE_SCENARIO, TIE_MARGIN
from reports.metrics.sweeps import saturation_throughput
from reports.schema import ScenarioName

# Client preference when pairing the two servers: the path a typical user of each takes
# (gradio_client uploads FileData; a FastAPI caller posts bytes), then the like-for-like ones.
FASTAPI_CLIENTS: tuple[str, ...] = ("fastapi", "fastapi-b64")
GRADIO_CLIENTS: tuple[str, ...] = ("gradio-file", "gradio-b64", "gradio-queue")

# Documented behaviour (docs/design.md §4, gradio 6.31.0); a run measures none of it.
DOCUMENTED_FACTS: tuple[str, ...] = (
    "ZeroGPU on Hugging Face Spaces needs gradio (`@spaces.GPU`); off Spaces that decorator is a no-op.",
    "`launch(mcp_server=True)` (with `gradio[mcp]`) exposes every public `@app.api` as an MCP tool at "
    "/gradio_api/mcp/.",
    "Gradio's queue serialises the whole function (pre, model and post) per `concurrency_limit`, default 1; "
    "results arrive over SSE; the queue lives in one process, so two uvicorn workers break result delivery.",
    "Off Spaces, `/gradio_api/run/<name>` bypasses the queue and its concurrency limit.",
    "Gradio's startup to first 200 takes 4-7 s, FastAPI's under 1 s.",
)


class Choice(StrEnum):
    """What the verdict says to deploy."""

    FASTAPI = "fastapi"  # more images/s and answers sooner
    GRADIO = "gradio"  # more images/s and answers sooner
    TIE = "tie"  # throughput within TIE_MARGIN: the features decide
    MIXED = "mixed"  # one has the throughput, the other answers sooner
    NONE = "none"  # too few VALID points to compare: nothing is recommended


@dataclass(frozen=True)
class Finding:
    """One measured comparison: what it says, the rule that computed it and the points it read."""

    label: str
    text: str
    rule: str
    points: tuple[PointMetrics, ...] = ()


@dataclass
class Recommendation:
    """The deploy section: findings from VALID points only, the verdict, documented facts."""

    verdict: str  # the verdict in words, its rule included
    choice: Choice = Choice.NONE
    findings: list[Finding] = field(default_factory=list)
    pair: tuple[str, str] | None = None  # (fastapi client, gradio client) compared
    facts: tuple[str, ...] = DOCUMENTED_FACTS
    # What the verdict rests on (None where nothing is recommended):
    saturation: tuple[PointMetrics, PointMetrics] | None = None  # (fastapi, gradio) most images/s
    common: tuple[PointMetrics, PointMetrics] | None = None  # (fastapi, gradio) highest common load
    throughput_gain: float | None = None  # fastapi / gradio saturation throughput − 1
    sooner_s: float | None = None  # gradio − fastapi latency at the common load (> 0: fastapi sooner)
    latency_statistic: str = ""  # which latency sooner_s compares: "p90", or "p50" with too few samples

    @property
    def recommends(self) -> bool:
        return self.choice is not Choice.NONE


def _pick_client(results: Sequence[PointMetrics], server: str, preference: Sequence[str]) -> str | None:
    valid_clients = {m.client for m in results if m.server == server and m.valid}
    return next((c for c in preference if c in valid_clients), None)


def _valid_point(
    results: Sequence[PointMetrics], server: str, client: str, scenario: str, load: float | None = None
) -> PointMetrics | None:
    """The VALID point of that series at that load (any load when None)."""
    return next(
        (
            m
            for m in results
            if (m.server, m.client, m.scenario) == (server, client, scenario)
            and m.valid
            and load in (None, m.load)
        ),
        None,
    )


def _ms_text(seconds: float) -> str:
    """Seconds as milliseconds with their unit, for prose: 0.0123 -> "12.3 ms"."""
    return f"{seconds * 1e3:.1f} ms"


def recommend(results: Sequence[PointMetrics], device: str = "") -> Recommendation:
    """Gradio against FastAPI from one run's VALID points, each finding with its rule."""
    if not any(m.valid for m in results):
        return Recommendation("No load point of this run is VALID: nothing is recommended.")
    fa_client = _pick_client(results, "fastapi", FASTAPI_CLIENTS)
    gr_client = _pick_client(results, "gradio", GRADIO_CLIENTS)
    if fa_client is None or gr_client is None:
        missing = "fastapi" if fa_client is None else "gradio"
        return Recommendation(
            f"No VALID point for the `{missing}` server: the two cannot be compared, nothing is recommended.",
        )
    rec = Recommendation("", pair=(fa_client, gr_client))
    pair = f"fastapi/{fa_client} vs gradio/{gr_client}"

    fa_single = _valid_point(results, "fastapi", fa_client, BASELINE_SCENARIO)
    gr_single = _valid_point(results, "gradio", gr_client, BASELINE_SCENARIO)
    if fa_single and gr_single and fa_single.protocol_s is not None and gr_single.protocol_s is not None:
        added = gr_single.protocol_s - fa_single.protocol_s
        rec.findings.append(
            Finding(
                "Gradio's added protocol time per request",
                f"{_ms_text(added)} ({_ms_text(gr_single.protocol_s)} vs {_ms_text(fa_single.protocol_s)})",
                "mean protocol component (latency − wait − pre − gpu − post) at the VALID single-user "
                f"`latency` point, {pair}",
                (fa_single, gr_single),
            )
        )

    fa_sat = saturation_throughput(results, "fastapi", fa_client)
    gr_sat = saturation_throughput(results, "gradio", gr_client)
    if fa_sat and gr_sat and gr_sat.throughput_rps > 0:
        ratio = fa_sat.throughput_rps / gr_sat.throughput_rps
        rec.findings.append(
            Finding(
                "Saturation throughput",
                f"fastapi {fa_sat.throughput_rps:.2f} img/s ({fa_sat.load_point}), gradio "
                f"{gr_sat.throughput_rps:.2f} img/s "
                f"({gr_sat.load_point}); fastapi/gradio = {ratio:.2f}",
                f"highest throughput over VALID closed-loop `throughput` points, {pair}",
                (fa_sat, gr_sat),
            )
        )

    common = _highest_common_load(results, fa_client, gr_client)
    if common is not None:
        fa_hi, gr_hi = common
        if fa_hi.p90_s is not None and gr_hi.p90_s is not None:
            rec.findings.append(
                Finding(
                    f"p90 at {fa_hi.load_point}",
                    f"fastapi {_ms_text(fa_hi.p90_s)}, gradio {_ms_text(gr_hi.p90_s)}",
                    f"p90 at the highest `throughput` load where both are VALID, {pair}",
                    common,
                )
            )
        if fa_hi.wait_s is not None and gr_hi.wait_s is not None:
            rec.findings.append(
                Finding(
                    "Serialising pre/post inside Gradio's queue",
                    f"mean wait gradio {_ms_text(gr_hi.wait_s)} vs fastapi {_ms_text(fa_hi.wait_s)} at "
                    f"{fa_hi.load_point}; "
                    "time each request holds the lock: gradio "
                    f"{_ms_text((gr_hi.pre_s or 0) + (gr_hi.gpu_s or 0) + (gr_hi.post_s or 0))} "
                    f"(pre+gpu+post) vs fastapi {_ms_text(fa_hi.gpu_s or 0)} (gpu only)",
                    "mean wait (t_gpu_start − t_recv − pre) and mean serialised span at the highest "
                    "common VALID `throughput` load",
                    common,
                )
            )
    naive = _naive_control(results, fa_client, device)
    if naive is not None:
        rec.findings.append(naive)

    _decide(rec, fa_sat, gr_sat, common)
    return rec


def _highest_common_load(
    results: Sequence[PointMetrics], fa_client: str, gr_client: str
) -> tuple[PointMetrics, PointMetrics] | None:
    pairs = []
    for fa in results:
        if (fa.server, fa.client, fa.scenario) == (
            "fastapi",
            fa_client,
            ScenarioName.THROUGHPUT,
        ) and fa.valid:
            gr = _valid_point(results, "gradio", gr_client, ScenarioName.THROUGHPUT, fa.load)
            if gr is not None:
                pairs.append((fa, gr))
    return max(pairs, key=lambda p: p[0].load) if pairs else None


def _naive_control(results: Sequence[PointMetrics], fa_client: str, device: str) -> Finding | None:
    naive_points = [
        m
        for m in results
        if m.server == "fastapi-naive"
        and m.client == fa_client
        and m.valid
        and m.scenario in (ScenarioName.COLLISIONS, ScenarioName.THROUGHPUT)
    ]
    if not naive_points:
        return None
    naive = max(naive_points, key=lambda m: (m.scenario == ScenarioName.COLLISIONS, m.load))
    locked = _valid_point(results, "fastapi", fa_client, naive.scenario, naive.load)
    simulated = " (simulated)" if device == "simulated" else ""
    memory = (
        "n/a on CPU" if naive.peak_gpu_bytes is None else f"{naive.peak_gpu_bytes / 2**20:.0f} MiB{simulated}"
    )
    text = (
        f"at {naive.scenario} {naive.load_point}: naive collision share {naive.collision_share or 0:.0%}, "
        f"max depth {naive.max_gpu_depth}, service-time inflation "
        f"{naive.service_inflation or float('nan'):.2f}x, "
        f"peak memory {memory}"
    )
    if locked is not None:
        locked_memory = (
            "n/a" if locked.peak_gpu_bytes is None else f"{locked.peak_gpu_bytes / 2**20:.0f} MiB{simulated}"
        )
        text += (
            f"; locked fastapi: collisions {locked.collision_share or 0:.0%}, inflation "
            f"{locked.service_inflation or float('nan'):.2f}x, peak memory {locked_memory}, "
            f"throughput {locked.throughput_rps:.2f} vs naive {naive.throughput_rps:.2f} img/s"
        )
    if device.startswith("cpu"):
        text += " (CPU: a collision here is thread oversubscription)"
    return Finding(
        "Collisions and memory against the naive (unlocked) control",
        text,
        "highest VALID `collisions` (else `throughput`) point of fastapi-naive against the locked "
        "fastapi at the same load",
        (naive,) if locked is None else (naive, locked),
    )


def _decide(
    rec: Recommendation,
    fa_sat: PointMetrics | None,
    gr_sat: PointMetrics | None,
    common: tuple[PointMetrics, PointMetrics] | None,
) -> None:
    """Set the verdict of ``rec``: its choice, the points and numbers it rests on, its text."""
    features = "choose gradio.Server when you need Spaces, ZeroGPU, MCP or its queue UI"
    if fa_sat is None or gr_sat is None or gr_sat.throughput_rps <= 0 or common is None:
        rec.verdict = (
            "Not enough VALID `throughput` points on both servers to compare: nothing is recommended."
        )
        return
    fa_hi, gr_hi = common
    gain = fa_sat.throughput_rps / gr_sat.throughput_rps - 1
    if fa_hi.p90_s is not None and gr_hi.p90_s is not None:
        rec.latency_statistic = "p90"
        sooner = gr_hi.p90_s - fa_hi.p90_s
        at = f" at {fa_hi.load_point} (p90)"
    else:
        rec.latency_statistic = "p50"
        sooner = (gr_hi.p50_s or 0) - (fa_hi.p50_s or 0)
        at = f" at {fa_hi.load_point} (p50: too few samples for p90)"
    rec.saturation, rec.common = (fa_sat, gr_sat), common
    rec.throughput_gain, rec.sooner_s = gain, sooner
    rule = (
        f"Rule: saturation throughput ratio and latency at the highest common VALID load; "
        f"differences under {TIE_MARGIN:.0%} of throughput count as a tie."
    )
    if abs(gain) < TIE_MARGIN:
        rec.choice = Choice.TIE
        text = (
            f"Throughput is a tie (fastapi {gain:+.0%}); fastapi answers {_ms_text(sooner)} sooner{at}. "
            f"With no material cost either way, {features}; otherwise plain FastAPI."
        )
    elif gain > 0 and sooner >= 0:
        rec.choice = Choice.FASTAPI
        text = (
            f"FastAPI serves {gain:.0%} more images/s and answers {_ms_text(sooner)} sooner{at}; {features}."
        )
    elif gain < 0 and sooner <= 0:
        rec.choice = Choice.GRADIO
        text = (
            f"gradio.Server serves {1 / (1 + gain) - 1:.0%} more images/s and answers {_ms_text(-sooner)} "
            f"sooner{at}: "
            "deploy gradio.Server; hand-rolled FastAPI buys nothing here."
        )
    else:
        rec.choice = Choice.MIXED
        faster = "FastAPI" if gain > 0 else "gradio.Server"
        text = (
            f"Mixed: {faster} has the higher saturation throughput ({gain:+.0%} for FastAPI) but the "
            "other answers "
            f"sooner{at} ({_ms_text(abs(sooner))}); pick by which matters to you, and {features}."
        )
    rec.verdict = f"{text} {rule}"
