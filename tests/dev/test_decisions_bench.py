"""The rollout's error rates: the confidence sequence's coverage over many looks, and bench/decisions.py's simulated
rollouts (the controller's real decision code) against the issue's targets at 20 requests/s, fewer rollouts than
`make bench-decisions` runs."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from ctloop.services.rollout_controller import confidence

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # the bench's worker processes import it by name
decisions = importlib.import_module("decisions")


def test_the_confidence_sequence_covers_the_truth_at_every_look_at_once():
    # 2,000 streams of Bernoulli(0.3), looked at every 25 draws up to 10,000: the share of streams whose interval
    # ever excludes 0.3 stays under alpha, where a fixed 90 % interval looked at 400 times would miss far more often.
    rng = np.random.default_rng(7)
    alpha, p, streams, every, looks = 0.1, 0.3, 2000, 25, 400
    draws = rng.random((streams, every * looks)) < p
    hits = draws.cumsum(axis=1)[:, every - 1 :: every]
    n = np.arange(1, looks + 1) * every
    planned = confidence.planned_information(alpha, 0.8, 0.02)
    ever_missed = naive_missed = 0
    for row in hits:
        estimate = row / n
        radii = np.array([confidence.radius(confidence.rate_variance(h, k), alpha, planned) for h, k in zip(row, n)])
        ever_missed += bool((np.abs(estimate - p) > radii).any())
        naive = 1.645 * np.sqrt(estimate * (1 - estimate) / n)
        naive_missed += bool((np.abs(estimate - p) > naive).any())
    assert ever_missed / streams <= alpha
    assert naive_missed / streams > 2 * alpha


@pytest.fixture(scope="module")
def simulated():
    return {name: decisions.run_case(("sequential", name, 20, 1.0, 200, 0))
            for name in ("equal", "accuracy_worse_2x_margin")}  # fmt: skip


def test_at_20_requests_a_second_an_equal_candidate_is_rarely_rolled_back(simulated):
    assert simulated["equal"]["rolled_back"] <= 0.05


def test_at_20_requests_a_second_a_candidate_twice_the_margin_worse_is_rarely_promoted(simulated):
    worse = simulated["accuracy_worse_2x_margin"]
    assert worse["candidate_accuracy_drop"] == pytest.approx(0.04)  # twice the default margin, 0.02
    assert worse["promoted"] <= 0.05 and worse["rolled_back"] >= 0.95


def test_an_equal_candidate_is_promoted_no_later_than_the_step_schedule(simulated):
    # the schedule method threshold follows when every check passes at its first look: the least shadow time,
    # then one analysis interval per canary step
    policy = decisions.RolloutPolicy()
    schedule = policy.shadow_duration_s + len(policy.steps) * policy.interval_s
    assert simulated["equal"]["median_promote_s"] <= schedule


def test_the_bench_writes_the_documented_json(tmp_path):
    decisions.main(["--out", str(tmp_path), "--rollouts", "2", "--workers", "1"])
    data = json.loads((tmp_path / "decisions.json").read_text())
    names = {s["name"] for s in data["scenarios"]}
    assert names == {"equal", "accuracy_worse_margin", "accuracy_worse_2x_margin", "errors_2pct", "latency_1_5x",
                     "score_shift"}  # fmt: skip
    for s in data["scenarios"]:
        assert s["method"] in ("sequential", "threshold") and s["rate"] in (20, 2) and s["label_share"] in (1.0, 0.1)
        assert 0 <= s["promoted"] <= 1 and 0 <= s["rolled_back"] <= 1 and s["median_decision_s"] > 0
    assert "| equal | 20 | 100% | " in (tmp_path / "decisions.md").read_text()


def test_the_docs_planning_table_is_the_one_the_bench_computes():
    docs = (ROOT / "docs" / "rollout.md").read_text()
    for line in decisions.planning_table():
        assert line in docs, f"docs/rollout.md shows an outdated planning row: {line}"


def test_simulated_pairs_differ_by_the_accuracy_gap():
    # the shadow's labelled pairs in the simulation: worse less better over pairs is main's accuracy less the
    # candidate's, and unequal pairs are the disagreement share, as for two binary decisions
    main = decisions.Behaviour()
    worse = decisions.scenarios(0.02)["accuracy_worse_2x_margin"]
    source = decisions.SimulatedSource(np.random.default_rng(1), main, worse, 200.0, 1.0, 60)
    for _ in range(60):
        source.advance({"main": 1.0, "shadow": 1.0})
    last = source.history["shadow"][-1]
    assert (last["worse"] - last["better"]) / last["paired"] == pytest.approx(main.accuracy - worse.accuracy, abs=0.005)
    assert (last["worse"] + last["better"]) / last["paired"] == pytest.approx(worse.disagreement, abs=0.005)
