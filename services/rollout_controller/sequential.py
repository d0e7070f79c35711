"""The rollout's sequential checks (``rollout.method: sequential``, the default): counts from Prometheus over the
whole rollout, each judged by a confidence sequence (confidence.py) at its margin.

Every check estimates how much worse the candidate is than main (or than a budget), oriented so that larger is
worse. It passes once its interval lies below the margin, fails once the interval lies above it, and is undecided
in between; the controller promotes when all pass and rolls back as soon as one fails. The counts run from the
rollout's start and take in the candidate's answers as shadow and as canary, so the evidence of the shadow phase
carries into the canary steps; ``rollout.alpha`` is split evenly between the checks, so the chance that an
equal candidate is ever rolled back, or one worse than a margin ever promoted, is at most ``alpha``.

| check | estimate (candidate minus main unless said) | margin |
| --- | --- | --- |
| errors | share of 5xx answers | max_error_rate |
| latency | P(candidate slower than main) - 1/2, ranks on the latency histograms | max_latency_shift |
| latency_slo | the candidate's share of requests slower than max_p99_latency_s (skipped: main misses it too) | 0.01 |
| scores | largest gap between the score histograms' CDFs | max_score_divergence |
| agreement | share of shadow decisions that differ from main's (shadow phase only) | 1 - min_agreement |
| accuracy | main's live accuracy minus the candidate's (from feedback) | max_accuracy_drop |

While the candidate shadows main, both answer the same requests, so accuracy is also judged on those pairs: the
share the candidate got wrong and main right, less the reverse. Two models that mostly agree differ on few pairs,
and only those move the difference: its variance is the share of unequal pairs (about 0.09 in the demo) where two
independent shares have 2p(1-p) (about 0.3), so the pairs decide on about a third of the labels. Each of the two
sequences gets half the check's alpha.

With fewer than ``min_labelled_requests`` labelled answers per predictor, accuracy is estimated from the calibrated
scores instead (confidence-based performance estimation, CBPE: a calibrated score s is right with probability s
when it decides positive, 1 - s otherwise), unless ``require_feedback`` is true. The estimate is reported beside
the measured accuracy in any case.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

from ctloop.contracts import seldon
from ctloop.services.rollout_controller import confidence
from ctloop.services.rollout_controller.checks import AGREE, CORRECT, ERRORS, Analysis, MetricSource, NoData, queries

__all__ = ["CHECKS", "count_queries", "evaluate"]

CHECKS = ("errors", "latency", "latency_slo", "scores", "agreement", "accuracy")
_SERVER = "seldon_api_executor_server_requests_seconds"
_CANDIDATE = f"{seldon.SHADOW}|{seldon.CANARY}"


def _sel(deployment: str, who: str, server: bool, extra: str = "") -> str:
    pred = f'=~"{_CANDIDATE}"' if who == "candidate" else f'="{seldon.MAIN}"'
    base = (f'deployment_name="{deployment}",predictor_name{pred},service="predictions"' if server
            else f'deployment="{deployment}",predictor{pred}')  # fmt: skip
    return base + (f",{extra}" if extra else "")


def count_queries(deployment: str, since_s: int) -> dict[str, str]:
    """Every count the sequential checks read, by ``<count>.<candidate|main>``; ``*_buckets`` are vectors by le."""
    r = f"[{max(int(since_s), 1)}s]"
    out = {}
    for who in ("candidate", "main"):
        server, watcher = _sel(deployment, who, True), _sel(deployment, who, False)
        errors, correct = _sel(deployment, who, True, ERRORS), _sel(deployment, who, False, CORRECT)
        out |= {
            f"requests.{who}": f"sum(increase({_SERVER}_count{{{server}}}{r}))",
            f"errors.{who}": f"sum(increase({_SERVER}_count{{{errors}}}{r}))",
            f"latency_buckets.{who}": f"sum by (le) (increase({_SERVER}_bucket{{{server}}}{r}))",
            f"score_buckets.{who}": f"sum by (le) (increase(ctloop_watcher_scores_bucket{{{watcher}}}{r}))",
            f"labelled.{who}": f"sum(increase(ctloop_watcher_feedback_total{{{watcher}}}{r}))",
            f"correct.{who}": f"sum(increase(ctloop_watcher_feedback_total{{{correct}}}{r}))",
        }
    compared, agreed = _sel(deployment, "candidate", False), _sel(deployment, "candidate", False, AGREE)
    out["compared.candidate"] = f"sum(increase(ctloop_watcher_agreement_total{{{compared}}}{r}))"
    out["agreed.candidate"] = f"sum(increase(ctloop_watcher_agreement_total{{{agreed}}}{r}))"
    out["paired.candidate"] = f"sum(increase(ctloop_watcher_paired_feedback_total{{{compared}}}{r}))"
    for vs in ("better", "worse"):
        pairs = _sel(deployment, "candidate", False, f'vs_main="{vs}"')
        out[f"{vs}.candidate"] = f"sum(increase(ctloop_watcher_paired_feedback_total{{{pairs}}}{r}))"
    return out


def _per_bucket(cumulative: dict[str, float]) -> list[float]:
    """Prometheus's cumulative ``le`` buckets (+Inf included) as counts per bucket, in bucket order."""
    ordered = sorted(((math.inf if le == "+Inf" else float(le)), max(v, 0.0)) for le, v in cumulative.items())
    counts, previous = [], 0.0
    for _, v in ordered:
        v = max(v, previous)  # increase() extrapolates each series alone; keep the histogram monotone
        counts.append(v - previous)
        previous = v
    return counts


def _edges(cumulative: dict[str, float]) -> list[float]:
    return sorted(math.inf if le == "+Inf" else float(le) for le in cumulative)


class _Counts:
    """The answers to count_queries, read lazily: a check whose counts have no data is ``no_data``."""

    def __init__(self, source: MetricSource, promql: dict[str, str]):
        self.source, self.promql, self.cache = source, promql, {}

    def __call__(self, name: str):
        if name not in self.cache:
            q = self.promql[name]
            try:
                value = self.source.vector(q) if "_buckets." in name else self.source.query(q)
            except NoData:
                value = None
            self.cache[name] = value
        return self.cache[name]

    def total(self, name: str) -> float:
        """A denominator: no data (or nothing counted yet) leaves its check undecided as ``no_data``."""
        value = self(name)
        if value is None or value <= 0:
            raise NoData(name)
        return value

    def part(self, name: str) -> float:
        """A numerator: no series (no 5xx answer yet, say) is a count of 0."""
        return self(name) or 0.0

    def histogram(self, name: str) -> dict[str, float]:
        value = self(name)
        if not value:
            raise NoData(name)
        return value


def cbpe(score_buckets: dict[str, float], threshold: float) -> tuple[float, float]:
    """Accuracy expected of calibrated scores (each bucket at its midpoint) and the number of scores behind it."""
    counts, edges = _per_bucket(score_buckets), _edges(score_buckets)
    total = sum(counts)
    if total <= 0:
        raise NoData("score_buckets")
    expected, lower = 0.0, 0.0
    for count, upper in zip(counts, edges):
        s = min((lower + min(upper, 1.0)) / 2, 1.0)
        expected += count * (s if s >= threshold else 1 - s)
        lower = min(upper, 1.0)
    return expected / total, total


def _judgements(counts: _Counts, policy, threshold: float | None, shadowing: bool) -> dict[str, confidence.Judgement]:
    alpha = policy.alpha / len(CHECKS)
    judge = lambda est, var, margin, n, source="measured": confidence.judge(  # noqa: E731
        est, var, margin, int(n), alpha, policy.power, source
    )
    out: dict[str, confidence.Judgement | None] = {}

    def attempt(name, fn):
        try:
            out[name] = fn()
        except NoData:
            out[name] = None

    def errors():
        n_c, n_m = counts.total("requests.candidate"), counts.total("requests.main")
        e_c, e_m = counts.part("errors.candidate"), counts.part("errors.main")
        var = confidence.rate_variance(e_c, n_c) + confidence.rate_variance(e_m, n_m)
        return judge(e_c / n_c - e_m / n_m, var, policy.max_error_rate, n_c)

    def latency_buckets():
        c, m = counts.histogram("latency_buckets.candidate"), counts.histogram("latency_buckets.main")
        c_counts, m_counts = _per_bucket(c), _per_bucket(m)
        if sum(c_counts) < 1 or sum(m_counts) < 1 or len(c_counts) != len(m_counts):
            raise NoData("latency_buckets")
        return _edges(c), c_counts, m_counts

    def latency():
        _, c_counts, m_counts = latency_buckets()
        shift, var = confidence.rank_shift(c_counts, m_counts)
        return judge(shift, var, policy.max_latency_shift, sum(c_counts))

    def latency_slo():
        edges, c_counts, m_counts = latency_buckets()
        # Requests above the smallest bucket bound at or over the SLO (Seldon's buckets: 0.25, 0.5, 1, 2.5 ...).
        first = next(i for i, e in enumerate(edges) if e >= policy.max_p99_latency_s)
        slow_c, n_c = sum(c_counts[first + 1 :]), sum(c_counts)
        slow_m, n_m = sum(m_counts[first + 1 :]), sum(m_counts)
        candidate = judge(slow_c / n_c, confidence.rate_variance(slow_c, n_c), 0.01, n_c)
        if judge(slow_m / n_m, confidence.rate_variance(slow_m, n_m), 0.01, n_m).decision == "failed":
            # Main misses the SLO too: the machine, not the candidate, is slow; the latency check compares them.
            return dataclasses.replace(candidate, skipped=f"main misses the SLO too ({slow_m / n_m:.1%} slower)")
        return candidate

    def scores():
        c = _per_bucket(counts.histogram("score_buckets.candidate"))
        m = _per_bucket(counts.histogram("score_buckets.main"))
        n_c, n_m = sum(c), sum(m)
        if n_c < 1 or n_m < 1 or len(c) != len(m):
            raise NoData("score_buckets")
        per = alpha / (len(c) - 1)  # each bucket's CDF gap has its own sequence; the last is 1 for both
        planned = confidence.planned_information(per, policy.power, policy.max_score_divergence)
        gaps = []
        for fc, fm in zip(confidence.cdf(c)[:-1], confidence.cdf(m)[:-1]):
            var = confidence.rate_variance(fc * n_c, n_c) + confidence.rate_variance(fm * n_m, n_m)
            gaps.append((abs(fc - fm), confidence.radius(var, per, planned)))
        return confidence.Judgement(max(g for g, _ in gaps), max(g - r for g, r in gaps), max(g + r for g, r in gaps),
                                    policy.max_score_divergence, int(n_c))  # fmt: skip

    def agreement():
        compared = counts.total("compared.candidate")
        differ = max(compared - counts.part("agreed.candidate"), 0.0)
        return judge(differ / compared, confidence.rate_variance(differ, compared), 1 - policy.min_agreement,
                     compared)  # fmt: skip

    # With a shadow phase, accuracy has two sequences, each at half the check's alpha: one on the pairs (requests
    # both answered, only while shadowing), one on all labelled answers (shadow and canary).
    paired_too = policy.mode == "shadow-then-canary"
    accuracy_alpha = alpha / 2 if paired_too else alpha

    def unpaired_accuracy():
        n_c, n_m = counts.total("labelled.candidate"), counts.total("labelled.main")
        if min(n_c, n_m) < policy.min_labelled_requests:
            raise NoData("labelled")
        ok_c, ok_m = counts.part("correct.candidate"), counts.part("correct.main")
        var = confidence.rate_variance(ok_c, n_c) + confidence.rate_variance(ok_m, n_m)
        return confidence.judge(ok_m / n_m - ok_c / n_c, var, policy.max_accuracy_drop, int(n_c), accuracy_alpha,
                                policy.power)  # fmt: skip

    def paired_accuracy():
        n = counts.total("paired.candidate")
        if n < policy.min_labelled_requests:
            raise NoData("paired")
        worse, better = counts.part("worse.candidate"), counts.part("better.candidate")
        return confidence.judge((worse - better) / n, confidence.paired_variance(worse, better, n),
                                policy.max_accuracy_drop, int(n), accuracy_alpha, policy.power, "paired")  # fmt: skip

    def measured_accuracy():
        judged = []
        for fn in (paired_accuracy, unpaired_accuracy) if paired_too else (unpaired_accuracy,):
            with contextlib.suppress(NoData):
                judged.append(fn())
        if not judged:
            raise NoData("labelled")
        # Either sequence showing harm fails the check, either showing non-inferiority passes it (the union bound
        # keeps both errors within the check's alpha); otherwise the narrower interval is reported.
        for decision in ("failed", "passed"):
            shown = [j for j in judged if j.decision == decision]
            if shown:
                return shown[0]
        return min(judged, key=lambda j: j.upper - j.lower)

    def estimated_accuracy():
        if threshold is None:  # not a binary classifier: its scores are no probabilities of being right
            raise NoData("score_buckets")
        c, m = counts.histogram("score_buckets.candidate"), counts.histogram("score_buckets.main")
        (acc_c, n_c), (acc_m, n_m) = cbpe(c, threshold), cbpe(m, threshold)
        var = acc_c * (1 - acc_c) / n_c + acc_m * (1 - acc_m) / n_m
        return judge(acc_m - acc_c, var, policy.max_accuracy_drop, n_c, "estimated")

    attempt("errors", errors)
    attempt("latency", latency)
    attempt("latency_slo", latency_slo)
    attempt("scores", scores)
    if shadowing:
        attempt("agreement", agreement)
    attempt("accuracy", measured_accuracy)
    attempt("accuracy_estimated", estimated_accuracy)
    return out


def evaluate(source: MetricSource, policy, deployment: str, candidate: str, since_phase_s: float,
             since_rollout_s: float, threshold: float | None) -> Analysis:  # fmt: skip
    """Judge ``candidate`` (the predictor: shadow or canary) on the counts since the rollout began; ``requests``
    counts its requests since the phase (or canary step) began, which gate advancing as in method threshold.
    ``threshold`` is the decision threshold of a binary classifier (None for other tasks: no CBPE)."""
    try:
        requests = source.query(queries(deployment, candidate, policy.window_s, int(since_phase_s))["requests"])
    except NoData:
        requests = 0.0
    judged = _judgements(_Counts(source, count_queries(deployment, int(since_rollout_s))), policy, threshold,
                         candidate == seldon.SHADOW)  # fmt: skip
    estimated = judged.pop("accuracy_estimated")
    if judged["accuracy"] is None and not policy.require_feedback:
        judged["accuracy"] = estimated
    results, values, figures = {}, {}, {}
    for name, j in judged.items():
        if j is None:
            # Too few labels and nothing to estimate accuracy from: as with method threshold, accuracy is skipped
            # unless feedback is required.
            results[name] = "skipped" if name == "accuracy" and not policy.require_feedback else "no_data"
            continue
        results[name], values[name], figures[name] = j.decision, j.estimate, j.as_dict()
    if estimated is not None:
        figures["accuracy_estimated"] = estimated.as_dict()
    return Analysis(requests, results, values, figures)
