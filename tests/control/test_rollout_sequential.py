"""Method sequential (the default): the statistics against reference computations, the checks on scripted counts,
and the state machine driven by them. Error rates over many simulated rollouts: tests/dev/test_decisions_bench.py;
the count queries against a real Prometheus: test_rollout_prometheus.py."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from ctloop import deployment_target
from ctloop.components.deploy import executor
from ctloop.config import RolloutPolicy
from ctloop.contracts import rollout as status
from ctloop.contracts.rollout import Phase
from ctloop.metric_names import SCORE_BUCKETS
from ctloop.services.rollout_controller import confidence, sequential
from ctloop.services.rollout_controller.controller import Controller

from . import rollout_helpers as h

NS, NAME = "ctloop", "credit-risk"


# -- the statistics ----------------------------------------------------------------------------------------------


def test_rank_shift_equals_mann_whitney_over_every_pair():
    candidate, main = [3, 5, 0, 2], [1, 4, 4, 1]
    xs = [b for b, n in enumerate(candidate) for _ in range(n)]
    ys = [b for b, n in enumerate(main) for _ in range(n)]
    pairs = [(1.0 if x > y else 0.5 if x == y else 0.0) for x, y in itertools.product(xs, ys)]
    shift, variance = confidence.rank_shift(candidate, main)
    assert shift == pytest.approx(sum(pairs) / len(pairs) - 0.5)
    assert variance > 0
    assert confidence.rank_shift([0, 10, 0], [0, 10, 0])[0] == 0.0
    assert confidence.rank_shift([0, 0, 10], [10, 0, 0])[0] == pytest.approx(0.5)  # always slower


def test_the_radius_is_the_normal_mixture_boundary():
    # Robbins' normal mixture: the martingale int exp(l Z - l^2 I / 2) dN(0, r2)(l) reaches 1/alpha exactly at
    # |Z| = radius * I; checked by integrating numerically, not by the closed form under test.
    alpha, planned, variance = 0.01, 400.0, 1 / 250.0
    information = 1 / variance
    r = confidence.radius(variance, alpha, planned)
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / planned
    z, step = r * information, 0.001
    density = lambda lam: math.exp(-lam * lam / (2 * rho2)) / math.sqrt(2 * math.pi * rho2)  # noqa: E731
    mixture = sum(math.exp(lam * z - lam * lam * information / 2) * density(lam) * step
                  for lam in (i * step for i in range(-20000, 20001)))  # fmt: skip
    assert mixture == pytest.approx(1 / alpha, rel=1e-3)


def test_the_sequence_narrows_with_data_and_is_tightest_near_the_planned_information():
    alpha, margin = 0.01, 0.02
    planned = confidence.planned_information(alpha, 0.8, margin)
    widths = [confidence.radius(0.25 / n, alpha, planned) for n in (100, 1000, 10000, 100000)]
    assert widths == sorted(widths, reverse=True)
    # at the planned information the sequence is wider than the fixed test, but not by much more than half
    z = confidence._Z.inv_cdf(1 - alpha / 2)
    fixed = margin / (z + confidence._Z.inv_cdf(0.8)) * z
    at_plan = confidence.radius(1 / planned, alpha, planned)
    assert fixed < at_plan < 1.6 * fixed


def test_cbpe_of_calibrated_scores_is_the_expected_accuracy():
    # every score in its bucket's midpoint; threshold 0.5: right with probability s above, 1 - s below
    per_bucket = [10, 0, 0, 0, 20, 0, 0, 0, 0, 30, 0, 40, 0]  # buckets of SCORE_BUCKETS, then +Inf
    edges = [0.0, *SCORE_BUCKETS]
    mids = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    expected = sum(n * (m if m >= 0.5 else 1 - m) for n, m in zip(per_bucket, mids)) / 100
    cumulative = dict(zip([*map(str, SCORE_BUCKETS), "+Inf"], itertools.accumulate(per_bucket)))
    assert sequential.cbpe(cumulative, 0.5) == (pytest.approx(expected), 100)


# -- the checks on counts -----------------------------------------------------------------------------------------

SCORES = [50, 30, 40, 60, 50, 40, 40, 60, 50, 40, 20, 20, 0]


def counts(n: int, *, errors=(0, 0), accuracy=(0.9, 0.9), labelled=None, latency=None, scores=None, agree=0.97):
    labelled = n if labelled is None else labelled
    latency = latency or ([0, n // 2, n // 2] + [0] * 9, [0, n // 2, n // 2] + [0] * 9)
    scale = n / sum(SCORES)
    base = [round(c * scale) for c in SCORES]
    scores = scores or (base, base)
    out = {("requests", "step"): n}
    for i, who in enumerate(("candidate", "main")):
        out |= {("requests", who): n, ("errors", who): errors[i], ("labelled", who): labelled,
                ("correct", who): round(labelled * accuracy[i]), ("latency_buckets", who): latency[i],
                ("score_buckets", who): scores[i]}  # fmt: skip
    out |= {("compared", "candidate"): n, ("agreed", "candidate"): round(n * agree)}
    return out


def judge(source, shadow=True, **policy):
    return sequential.evaluate(source, RolloutPolicy(**policy), NAME, "shadow" if shadow else "canary", 60, 600, 0.5)


def test_equal_candidate_passes_every_check_with_enough_data_and_waits_with_little():
    little = judge(h.CountSource(counts(200)))
    assert set(little.results) == set(sequential.CHECKS) and "undecided" in little.results.values()
    assert not little.failed
    plenty = judge(h.CountSource(counts(40000)))
    assert plenty.results == dict.fromkeys(sequential.CHECKS, "passed"), plenty.figures
    f = plenty.figures["accuracy"]
    assert f["lower"] < f["estimate"] == 0 < f["upper"] < f["margin"] == 0.02 and f["samples"] == 40000
    assert f["source"] == "measured" and plenty.figures["accuracy_estimated"]["source"] == "estimated"


@pytest.mark.parametrize(
    ("bad", "check"),
    [
        ({"errors": (800, 0)}, "errors"),  # 2 % against none
        ({"latency": ([0, 0, 4000, 4000] + [0] * 8, [0, 4000, 4000, 0] + [0] * 8)}, "latency"),
        ({"latency": ([0, 0, 7000, 0, 0, 0, 0, 1000] + [0] * 4, [0, 4000, 4000] + [0] * 9)}, "latency_slo"),
        ({"accuracy": (0.8, 0.9)}, "accuracy"),
        ({"agree": 0.7}, "agreement"),
        ({"scores": ([0] * 6 + [8000] + [0] * 6, None)}, "scores"),
    ],
    ids=["errors", "latency", "latency_slo", "accuracy", "agreement", "scores"],
)
def test_a_candidate_worse_than_a_margin_fails_that_check(bad, check):
    made = counts(8000, **{k: v for k, v in bad.items() if k != "scores"})
    if "scores" in bad:
        made[("score_buckets", "candidate")] = bad["scores"][0]
    analysis = judge(h.CountSource(made))
    assert analysis.results[check] == "failed", analysis.figures[check]
    assert analysis.figures[check]["lower"] > analysis.figures[check]["margin"]


def test_a_machine_too_slow_for_the_slo_does_not_blame_the_candidate():
    slow = [0, 0, 4000, 0, 0, 0, 0, 4000] + [0] * 4  # half the requests of both predictors over 0.5 s
    analysis = judge(h.CountSource(counts(8000, latency=(slow, slow))))
    assert analysis.results["latency_slo"] == "skipped" and analysis.results["latency"] == "passed"
    assert "main misses the SLO too (50.0% slower)" in analysis.figures["latency_slo"]["skipped"]
    assert not analysis.missing and not analysis.failed  # it holds nothing back


def test_agreement_is_judged_in_the_shadow_phase_only():
    assert "agreement" not in judge(h.CountSource(counts(8000)), shadow=False).results


def test_too_few_labels_judge_accuracy_by_cbpe_unless_feedback_is_required():
    source = h.CountSource(counts(40000, labelled=10))
    analysis = judge(source, min_labelled_requests=50)
    assert analysis.figures["accuracy"]["source"] == "estimated" and analysis.results["accuracy"] == "passed"
    assert judge(source, min_labelled_requests=50, require_feedback=True).results["accuracy"] == "no_data"


def test_no_5xx_series_is_no_error_and_no_traffic_is_no_data():
    made = counts(8000)
    del made[("errors", "candidate")], made[("errors", "main")]
    assert judge(h.CountSource(made)).figures["errors"]["estimate"] == 0.0
    assert judge(h.CountSource({})).results == {**dict.fromkeys(sequential.CHECKS, "no_data"), "accuracy": "skipped"}
    assert judge(h.CountSource({}), require_feedback=True).results == dict.fromkeys(sequential.CHECKS, "no_data")


def test_without_labels_a_regressions_accuracy_is_skipped_not_estimated():
    source = h.CountSource(counts(40000, labelled=10))
    analysis = sequential.evaluate(source, RolloutPolicy(), NAME, "shadow", 60, 600, None)
    assert analysis.results["accuracy"] == "skipped" and "accuracy_estimated" not in analysis.figures


# -- the state machine on counts ---------------------------------------------------------------------------------


class SequentialWorld:
    def __init__(self, tmp_path, made: dict, **policy):
        self.settings = h.settings(tmp_path / "state", **{"method": "sequential", "max_failed_checks": 2, **policy})
        self.target = deployment_target.connect(self.settings)
        self.registry = h.MemoryRegistry()
        self.source = h.CountSource(made)
        self.clock = h.Clock()
        self.controller = Controller(self.settings, self.target, self.source, lambda: self.registry, clock=self.clock)
        executor.deploy(self.settings, self.target, self.registry, "1", "file:///models/1")
        executor.deploy(self.settings, self.target, self.registry, "2", "file:///models/2")

    def run(self, ticks=100):
        seen = []
        for _ in range(ticks):
            self.clock.advance(10)
            record = self.controller.tick()
            seen.append((record.phase, record.weight, record.reason))
            if record.phase.terminal:
                return record, seen
        raise AssertionError(seen[-5:])


def test_sequential_rollout_promotes_an_equal_candidate_and_records_its_figures(tmp_path):
    world = SequentialWorld(tmp_path, counts(40000))
    record, seen = world.run()
    assert record.phase == Phase.succeeded and world.registry.champion() == "2"
    assert [w for p, w, _ in seen if p == Phase.progressing] == [10, 50, 100]
    on_object = status.read(world.target.get(NS, NAME))
    assert on_object.figures["accuracy"]["decision"] == "passed" and on_object.started > 0
    text = world.controller.metrics.registry
    assert text.get_sample_value("ctloop_rollout_check_estimate",
                                 {"deployment": NAME, "check": "accuracy", "stat": "samples"}) == 40000  # fmt: skip


def test_one_failed_sequential_check_rolls_back_at_once_whatever_max_failed_checks_says(tmp_path):
    world = SequentialWorld(tmp_path, counts(8000, errors=(800, 0)), max_failed_checks=5)
    record, seen = world.run()
    assert record.phase == Phase.failed and record.failed_checks == ["errors"] and record.outcome == "rolled_back"
    assert len(seen) == 2  # declared, then the first analysis shows the harm


def test_undecided_checks_wait_and_the_deadline_names_them(tmp_path):
    world = SequentialWorld(tmp_path, counts(300), deadline_s=60)
    record, seen = world.run()
    assert any("waiting for data: " in reason and " in [" in reason for _, _, reason in seen), seen
    assert record.phase == Phase.failed and record.outcome == "failed" and record.failed_checks[0] == "deadline"
    assert "accuracy" in record.failed_checks


def test_a_check_that_passed_stays_passed_but_can_still_fail(tmp_path):
    world = SequentialWorld(tmp_path, counts(40000), steps=[10, 100], min_requests=10**9)  # held at the first step
    for _ in range(5):
        world.clock.advance(10)
        record = world.controller.tick()
    assert record.phase == Phase.progressing and record.checks["accuracy"] == "passed"
    world.source.counts = counts(300)  # as if the counts were few again: the interval widens over the margin
    world.clock.advance(10)
    record = world.controller.tick()
    assert record.checks["accuracy"] == "passed" and record.figures["accuracy"]["decision"] == "undecided"
    world.source.counts = counts(8000, errors=(800, 0))
    world.clock.advance(10)
    assert world.controller.tick().phase == Phase.failed


# -- accuracy on the shadow's pairs ---------------------------------------------------------------------------------


def paired_counts(n: int, worse: int, better: int, **kw) -> dict:
    made = counts(n, **kw)
    return made | {("paired", "candidate"): n, ("worse", "candidate"): worse, ("better", "candidate"): better}


def test_the_paired_variance_is_that_of_the_differences():
    # a reference computation on the pairs themselves: +1 where only main is right, -1 where only the candidate is
    rng = random.Random(3)
    d = rng.choices([1, -1, 0], weights=[0.06, 0.04, 0.9], k=5000)
    worse, better = d.count(1), d.count(-1)
    reference = statistics.pvariance(d) / len(d)
    assert confidence.paired_variance(worse, better, len(d)) == pytest.approx(reference, rel=0.01)
    assert confidence.paired_variance(0, 0, 1000) > 0  # no unequal pair yet still has some width


def test_an_equal_shadow_passes_on_pairs_long_before_independent_shares_would():
    # 4,000 labelled requests at 85 % accuracy, the two models unequal on 9 % of them: the independent shares'
    # interval is too wide for the 0.02 margin, the pairs' is not
    made = paired_counts(4000, 180, 180, accuracy=(0.85, 0.85))
    unpaired = {k: v for k, v in made.items() if k[0] not in ("paired", "worse", "better")}
    assert judge(h.CountSource(unpaired)).results["accuracy"] == "undecided"
    analysis = judge(h.CountSource(made))
    f = analysis.figures["accuracy"]
    assert analysis.results["accuracy"] == "passed" and f["source"] == "paired" and f["samples"] == 4000
    assert f["estimate"] == 0.0 and f["upper"] < 0.02


def test_a_shadow_worse_on_its_pairs_fails_accuracy():
    analysis = judge(h.CountSource(paired_counts(4000, 300, 60, accuracy=(0.85, 0.85))))  # 6 points worse
    f = analysis.figures["accuracy"]
    assert analysis.results["accuracy"] == "failed" and f["source"] == "paired"
    assert f["estimate"] == pytest.approx(240 / 4000) and f["lower"] > 0.02


def test_without_a_shadow_phase_pairs_are_not_judged():
    made = paired_counts(4000, 180, 180, accuracy=(0.85, 0.85))
    assert judge(h.CountSource(made), mode="canary").figures["accuracy"]["source"] == "measured"
