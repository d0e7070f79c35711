"""The metric source (Prometheus's HTTP API) and method threshold's checks, Flagger-style point estimates over a
window: every query in ``queries()`` so that the chart's tests and docs/rollout.md can list and parse them.
Method sequential (the default) reads counts instead: sequential.py.

Series used (all in ctloop.metric_names): Seldon's executor histogram
``seldon_api_executor_server_requests_seconds`` (labels deployment_name, predictor_name, service, code) and the
drift watcher's per-predictor series ``ctloop_watcher_scores``, ``ctloop_watcher_agreement_total`` and
``ctloop_watcher_feedback_total`` (labels deployment, predictor, outcome / agree).

A metric source answers ``query(promql) -> float`` and ``vector(promql) -> {le: float}``; an empty answer or NaN
is ``NoData`` (no traffic yet: the analysis waits, which counts toward the deadline; it never passes), an
unreachable server ``SourceDown``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from ctloop.contracts import seldon

__all__ = ["CHECKS", "Check", "MetricSource", "NoData", "PrometheusSource", "SourceDown", "evaluate", "queries"]


class NoData(Exception):
    """The query answered nothing, or NaN."""


class SourceDown(Exception):
    """The metric source could not be asked."""


class MetricSource(Protocol):
    def query(self, promql: str) -> float: ...

    def vector(self, promql: str) -> dict[str, float]:
        """A histogram's buckets, ``{le: value}`` (``sum by (le) (...)``)."""
        ...


class PrometheusSource:
    """Instant queries against Prometheus's HTTP API (``/api/v1/query``); one scalar per query."""

    def __init__(self, url: str, client: httpx.Client | None = None, timeout: float = 5.0):
        self.url = url.rstrip("/")
        self.client = client or httpx.Client(timeout=timeout)

    def query(self, promql: str) -> float:
        data = self._ask(promql)
        try:
            if data["resultType"] == "scalar":
                value = float(data["result"][1])
            elif data["resultType"] == "vector":
                if len(data["result"]) != 1:
                    raise NoData(f"{len(data['result'])} series for {promql!r}")
                value = float(data["result"][0]["value"][1])
            else:
                raise SourceDown(f"Prometheus at {self.url}: result type {data['resultType']!r} for {promql!r}")
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise SourceDown(f"Prometheus at {self.url}: malformed result for {promql!r}: {e!r}") from None
        if math.isnan(value) or math.isinf(value):
            raise NoData(f"{value} for {promql!r}")
        return value

    def vector(self, promql: str) -> dict[str, float]:
        data = self._ask(promql)
        try:
            if data["resultType"] != "vector":
                raise SourceDown(f"Prometheus at {self.url}: result type {data['resultType']!r} for {promql!r}")
            out = {r["metric"].get("le", ""): float(r["value"][1]) for r in data["result"]}
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise SourceDown(f"Prometheus at {self.url}: malformed result for {promql!r}: {e!r}") from None
        out = {le: v for le, v in out.items() if le and not math.isnan(v)}
        if not out:
            raise NoData(f"no buckets for {promql!r}")
        return out

    def _ask(self, promql: str) -> dict:
        """The ``data`` of a clean answer. Anything else (no answer, a status other than 200, a redirect, a body
        that is not Prometheus's JSON, a refused query) is the source being down: the controller pauses and, after
        ``prometheus_outage_s``, rolls back, rather than stalling a canary at its weight on an exception."""
        try:
            response = self.client.get(f"{self.url}/api/v1/query", params={"query": promql})
        except httpx.HTTPError as e:
            raise SourceDown(f"Prometheus at {self.url}: {e}") from None
        if response.status_code != 200:
            raise SourceDown(f"Prometheus at {self.url} answered {response.status_code}: {response.text[:200]!r}")
        try:
            body = response.json()
        except ValueError:
            raise SourceDown(f"Prometheus at {self.url} answered 200 without JSON: {response.text[:200]!r}") from None
        if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("data"), dict):
            error = body.get("error") if isinstance(body, dict) else body
            raise SourceDown(f"Prometheus at {self.url} refused {promql!r}: {str(error)[:200]}")
        return body["data"]


# ---------------------------------------------------------------------------------------------------------------
# The queries

_SERVER = "seldon_api_executor_server_requests_seconds"
ERRORS, CORRECT, AGREE = 'code=~"5.."', 'outcome="correct"', 'agree="true"'


def _seldon(deployment: str, pred: str, extra: str = "") -> str:
    return f'deployment_name="{deployment}",predictor_name="{pred}",service="predictions"' + (
        f",{extra}" if extra else ""
    )


def _watcher(deployment: str, pred: str, extra: str = "") -> str:
    return f'deployment="{deployment}",predictor="{pred}"' + (f",{extra}" if extra else "")


def _p99(deployment: str, pred: str, w: str) -> str:
    return f"histogram_quantile(0.99, sum by (le) (rate({_SERVER}_bucket{{{_seldon(deployment, pred)}}}[{w}])))"


def _score_cdf(deployment: str, pred: str, w: str) -> str:
    sel = _watcher(deployment, pred)
    return (f"sum by (le) (increase(ctloop_watcher_scores_bucket{{{sel}}}[{w}]))"
            f" / scalar(sum(increase(ctloop_watcher_scores_count{{{sel}}}[{w}])))")  # fmt: skip


def _accuracy(deployment: str, pred: str, w: str) -> str:
    sel = _watcher(deployment, pred)
    return (f"(sum(increase(ctloop_watcher_feedback_total{{{_watcher(deployment, pred, CORRECT)}}}[{w}])) or vector(0))"
            f" / sum(increase(ctloop_watcher_feedback_total{{{sel}}}[{w}]))")  # fmt: skip


def queries(deployment: str, candidate: str, window_s: int, since_s: int | None = None) -> dict[str, str]:
    """Every PromQL expression the controller sends, by name; ``candidate`` is the predictor (shadow or canary).

    ``requests`` and ``labelled`` gate an analysis (enough traffic, enough feedback); the others are checks.
    """
    w = f"{window_s}s"
    since = f"{max(since_s or window_s, 1)}s"
    main = seldon.MAIN
    server, agreement = f"{_SERVER}_count", "ctloop_watcher_agreement_total"
    return {
        "requests": f"sum(increase({server}{{{_seldon(deployment, candidate)}}}[{since}]))",
        "labelled": f"sum(increase(ctloop_watcher_feedback_total{{{_watcher(deployment, candidate)}}}[{w}]))",
        "error_rate": f"(sum(rate({server}{{{_seldon(deployment, candidate, ERRORS)}}}[{w}])) or vector(0))"
        f" / sum(rate({server}{{{_seldon(deployment, candidate)}}}[{w}]))",
        "latency_p99": _p99(deployment, candidate, w),
        "latency_p99_ratio": f"{_p99(deployment, candidate, w)} / clamp_min({_p99(deployment, main, w)}, 0.005)",
        "score_divergence": f"max(abs(({_score_cdf(deployment, candidate, w)}) - ({_score_cdf(deployment, main, w)})))",
        "agreement": f"(sum(increase({agreement}{{{_watcher(deployment, candidate, AGREE)}}}[{w}])) or vector(0))"
        f" / sum(increase({agreement}{{{_watcher(deployment, candidate)}}}[{w}]))",
        "accuracy_delta": f"({_accuracy(deployment, candidate, w)}) - ({_accuracy(deployment, main, w)})",
    }  # fmt: skip


@dataclass(frozen=True)
class Check:
    name: str
    policy_key: str  # the rollout.* threshold
    passes_when: str  # "<=" or ">="
    phases: tuple[str, ...]  # "shadow", "canary"
    needs_labels: bool = False  # judged only with rollout.min_labelled_requests labelled requests

    def passed(self, value: float, threshold: float) -> bool:
        return value <= threshold if self.passes_when == "<=" else value >= threshold


CHECKS: tuple[Check, ...] = (
    Check("error_rate", "max_error_rate", "<=", ("shadow", "canary")),
    Check("latency_p99", "max_p99_latency_s", "<=", ("shadow", "canary")),
    Check("latency_p99_ratio", "max_p99_latency_ratio", "<=", ("shadow", "canary")),
    Check("score_divergence", "max_score_divergence", "<=", ("shadow", "canary")),
    Check("agreement", "min_agreement", ">=", ("shadow",)),
    Check("accuracy_delta", "max_accuracy_drop", ">=", ("shadow", "canary"), needs_labels=True),
)


@dataclass
class Analysis:
    requests: float  # candidate requests since the phase (or step) began
    results: dict[str, str]  # check -> passed | failed | no_data | skipped | undecided (method sequential)
    values: dict[str, float]
    figures: dict[str, dict] = field(default_factory=dict)  # method sequential: estimate, interval, samples

    @property
    def failed(self) -> list[str]:
        return [name for name, result in self.results.items() if result == "failed"]

    @property
    def missing(self) -> list[str]:
        """Checks that hold the candidate where it is: no data yet, or (sequential) not yet conclusive."""
        return [name for name, result in self.results.items() if result in ("no_data", "undecided")]


def evaluate(source: MetricSource, policy, deployment: str, candidate: str, since_s: float) -> Analysis:
    """Ask every check for ``candidate`` ("shadow" or "canary"); SourceDown propagates (the caller pauses)."""
    phase = "shadow" if candidate == "shadow" else "canary"
    q = queries(deployment, candidate, policy.window_s, int(since_s))
    try:
        requests = source.query(q["requests"])
    except NoData:
        requests = 0.0
    try:
        labelled = source.query(q["labelled"])
    except NoData:
        labelled = 0.0
    results, values = {}, {}
    for check in CHECKS:
        if phase not in check.phases:
            continue
        if check.needs_labels and labelled < policy.min_labelled_requests:
            results[check.name] = "no_data" if policy.require_feedback else "skipped"
            continue
        threshold = getattr(policy, check.policy_key)
        if check.name == "accuracy_delta":
            threshold = -threshold  # candidate accuracy minus main's may fall at most this far below 0
        try:
            value = source.query(q[check.name])
        except NoData:
            results[check.name] = "no_data"
            continue
        values[check.name] = value
        results[check.name] = "passed" if check.passed(value, threshold) else "failed"
    return Analysis(requests, results, values)
