"""validate_segments' numeric core: metrics against scikit-learn, segments, bootstrap intervals, gates and reports."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from ctloop.components.validate_segments import gates
from ctloop.components.validate_segments.metrics import (
    METRICS,
    _percentile_interval,
    binary_metrics,
    bootstrap_intervals,
    evaluate,
)
from ctloop.segments import segment_masks


def _scored(n: int, seed: int, *, signal: float = 1.5, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and informative probabilities; rounding the scores creates ties across classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    score = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=n))))
    if decimals is not None:
        score = np.round(score, decimals)
    return y, score


def _noisier(score: np.ndarray, seed: int, noise: float = 1.5) -> np.ndarray:
    """The same model with extra noise on the logit: strictly worse in expectation."""
    rng = np.random.default_rng(seed)
    logit = np.log(score / (1 - score)) + rng.normal(scale=noise, size=score.size)
    return 1 / (1 + np.exp(-logit))


def _ece_by_loop(y: np.ndarray, score: np.ndarray) -> float:
    total = 0.0
    for b in range(10):
        in_bin = (score >= b / 10) & (score < (b + 1) / 10) if b < 9 else (score >= 0.9)
        if in_bin.any():
            total += in_bin.mean() * abs(y[in_bin].mean() - score[in_bin].mean())
    return total


# ---------------------------------------------------------------------------------------------------------------------
# Point metrics


def test_metric_directions_are_declared():
    assert set(METRICS) == {
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "precision",
        "recall",
        "f1",
        "positive_rate",
        "ece",
    }
    assert METRICS["roc_auc"] == "higher" and METRICS["log_loss"] == "lower" and METRICS["ece"] == "lower"
    assert METRICS["positive_rate"] == "none"


@pytest.mark.parametrize(("seed", "threshold", "decimals"), [(0, 0.5, None), (1, 0.3, 2), (2, 0.7, 1)])
def test_binary_metrics_agree_with_sklearn(seed, threshold, decimals):
    y, score = _scored(3000, seed, decimals=decimals)
    got = binary_metrics(y, score, threshold)
    predicted = score >= threshold
    expected = {
        "roc_auc": skm.roc_auc_score(y, score),
        "pr_auc": skm.average_precision_score(y, score),
        "log_loss": skm.log_loss(y, score, labels=[0, 1]),
        "brier": skm.brier_score_loss(y, score),
        "precision": skm.precision_score(y, predicted),
        "recall": skm.recall_score(y, predicted),
        "f1": skm.f1_score(y, predicted),
        "positive_rate": predicted.mean(),
        "ece": _ece_by_loop(y, score),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert got["n"] == 3000 and got["positives"] == int(y.sum())


def test_log_loss_clips_like_sklearn():
    y = np.array([1, 0, 1, 0])
    score = np.array([0.0, 1.0, 0.9, 0.2])
    assert binary_metrics(y, score, 0.5)["log_loss"] == pytest.approx(skm.log_loss(y, score), rel=1e-9)


def test_undefined_metrics_are_nan_not_errors():
    only_negatives = binary_metrics(np.zeros(50), np.linspace(0, 1, 50), 0.5)
    assert math.isnan(only_negatives["roc_auc"]) and math.isnan(only_negatives["pr_auc"])
    assert math.isnan(only_negatives["recall"])
    assert only_negatives["f1"] == 0.0  # predicted positives exist, none right
    assert only_negatives["brier"] == pytest.approx(np.mean(np.linspace(0, 1, 50) ** 2))

    only_positives = binary_metrics(np.ones(50), np.linspace(0, 1, 50), 0.5)
    assert math.isnan(only_positives["roc_auc"])
    assert only_positives["pr_auc"] == pytest.approx(1.0)

    nothing_predicted = binary_metrics(np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4]), 0.9)
    assert math.isnan(nothing_predicted["precision"])
    assert nothing_predicted["recall"] == 0.0 and nothing_predicted["positive_rate"] == 0.0

    empty = binary_metrics(np.array([]), np.array([]), 0.5)
    assert empty["n"] == 0 and empty["positives"] == 0
    assert all(math.isnan(empty[name]) for name in METRICS)


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="labels"):
        binary_metrics(np.array([0, 2]), np.array([0.1, 0.2]), 0.5)
    with pytest.raises(ValueError, match="probabilities"):
        binary_metrics(np.array([0, 1]), np.array([0.1, 1.2]), 0.5)
    with pytest.raises(ValueError, match="length"):
        binary_metrics(np.array([0, 1]), np.array([0.1]), 0.5)


# ---------------------------------------------------------------------------------------------------------------------
# Segments


def test_segment_masks_by_column_with_missing_values():
    frame = pd.DataFrame({"region": ["south", "north", None, "north", np.nan, "east"]})
    masks = segment_masks(frame, [{"name": "region", "column": "region"}])
    assert [(s, v) for s, v, _ in masks] == [
        ("overall", "all"),
        ("region", "east"),
        ("region", "north"),
        ("region", "south"),
        ("region", "(missing)"),
    ]
    assert masks[0][2].all()
    by_label = {v: m.tolist() for _, v, m in masks}
    assert by_label["north"] == [False, True, False, True, False, False]
    assert by_label["(missing)"] == [False, False, True, False, True, False]


def test_segment_masks_numeric_column_sorts_numerically():
    frame = pd.DataFrame({"grade": [10, 2, 1, 2]})
    labels = [v for _, v, _ in segment_masks(frame, [{"name": "grade", "column": "grade"}])][1:]
    assert labels == ["1", "2", "10"]


def test_segment_masks_by_bins():
    frame = pd.DataFrame({"income": [100.0, 30000.0, 25000.0, 60000.0, -5.0, np.nan, 2e9]})
    spec = {"name": "income_band", "column": "income", "bins": [0, 25000, 50000, 1e9]}
    masks = segment_masks(frame, [spec])
    assert [v for _, v, _ in masks] == [
        "all",
        "[0, 25000)",
        "[25000, 50000)",
        "[50000, 1000000000)",
        "out of bins",
        "(missing)",
    ]
    by_label = {v: np.flatnonzero(m).tolist() for _, v, m in masks}
    assert by_label["[0, 25000)"] == [0]
    assert by_label["[25000, 50000)"] == [1, 2]  # the lower edge belongs to its bin
    assert by_label["[50000, 1000000000)"] == [3]
    assert by_label["out of bins"] == [4, 6]
    assert by_label["(missing)"] == [5]

    inside = segment_masks(frame.iloc[:4], [spec])
    assert "out of bins" not in [v for _, v, _ in inside] and "(missing)" not in [v for _, v, _ in inside]


def test_segment_masks_by_cross_lists_observed_pairs_only():
    frame = pd.DataFrame(
        {"region": ["north", "south", "north", "north", None], "product": ["auto", "home", "home", "auto", "auto"]}
    )
    masks = segment_masks(frame, [{"name": "region_x_product", "cross": ["region", "product"]}])
    assert [v for _, v, _ in masks] == ["all", "north & auto", "north & home", "south & home", "(missing) & auto"]
    assert {v: np.flatnonzero(m).tolist() for _, v, m in masks}["north & auto"] == [0, 3]
    assert all(s == "region_x_product" for s, _, _ in masks[1:])


def test_segment_masks_are_deterministic_and_reject_bad_specs():
    frame = pd.DataFrame({"a": list("cbacb"), "b": [1, 2, 1, 2, 3]})
    specs = [{"name": "a", "column": "a"}, {"name": "axb", "cross": ["a", "b"]}]
    first = segment_masks(frame, specs)
    second = segment_masks(frame.copy(), specs)
    assert [(s, v) for s, v, _ in first] == [(s, v) for s, v, _ in second]
    with pytest.raises(ValueError, match="not in the data"):
        segment_masks(frame, [{"name": "x", "column": "missing_column"}])
    with pytest.raises(ValueError, match="increasing"):
        segment_masks(frame, [{"name": "b", "column": "b", "bins": [3, 1]}])
    with pytest.raises(ValueError, match="column or a cross"):
        segment_masks(frame, [{"name": "x"}])


# ---------------------------------------------------------------------------------------------------------------------
# Bootstrap


def test_bootstrap_equals_resampling_rows_with_sklearn():
    """The weighted shortcut must give what resampling rows with default_rng(seed) and scikit-learn gives."""
    y, score = _scored(300, 5, decimals=2)
    resamples, seed = 60, 11
    got = bootstrap_intervals(y, score, 0.5, resamples=resamples, seed=seed)
    drawn = np.random.default_rng(seed).integers(0, 300, size=(resamples, 300))
    aucs = [skm.roc_auc_score(y[i], score[i]) for i in drawn]
    aps = [skm.average_precision_score(y[i], score[i]) for i in drawn]
    briers = [skm.brier_score_loss(y[i], score[i]) for i in drawn]
    for name, values in [("roc_auc", aucs), ("pr_auc", aps), ("brier", briers)]:
        assert got[name] == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])), rel=1e-9), name


def test_bootstrap_intervals_contain_the_point_and_narrow_with_more_rows():
    widths = []
    for n in (400, 6400):
        y, score = _scored(n, 3)
        point = binary_metrics(y, score, 0.5)
        intervals = bootstrap_intervals(y, score, 0.5, resamples=200, seed=0)
        assert set(intervals) == set(METRICS)
        for name in METRICS:
            low, high = intervals[name]
            assert low <= point[name] <= high, (n, name)
        widths.append(intervals["roc_auc"][1] - intervals["roc_auc"][0])
    # Width scales like 1/sqrt(n): 16x the rows, about a quarter of the width.
    assert widths[1] < widths[0] / 2.5


def test_bootstrap_is_deterministic_for_a_seed():
    y, score = _scored(1000, 4)
    champion = _noisier(score, 9)
    a = bootstrap_intervals(y, score, 0.5, reference_score=champion, resamples=100, seed=7)
    b = bootstrap_intervals(y, score, 0.5, reference_score=champion, resamples=100, seed=7)
    c = bootstrap_intervals(y, score, 0.5, reference_score=champion, resamples=100, seed=8)
    assert a == b
    assert a["roc_auc"] != c["roc_auc"]


def test_no_resamples_means_no_intervals():
    y, score = _scored(500, 4)
    out = bootstrap_intervals(y, score, 0.5, reference_score=score, resamples=0, seed=0)
    assert set(out) == {*METRICS, "diff"}
    assert all(math.isnan(out[name][0]) and math.isnan(out[name][1]) for name in METRICS)
    assert all(math.isnan(low) and math.isnan(high) for low, high in out["diff"].values())


def test_metric_undefined_in_most_resamples_has_no_interval():
    y = np.zeros(300)
    score = np.random.default_rng(0).random(300)
    out = bootstrap_intervals(y, score, 0.5, resamples=50, seed=0)
    assert all(math.isnan(v) for v in out["roc_auc"])
    assert not any(math.isnan(v) for v in out["brier"])
    # The rule itself: an interval needs at least half of the resamples to define the metric.
    assert all(math.isnan(v) for v in _percentile_interval(np.array([np.nan] * 6 + [0.5] * 4), 0.05))
    assert _percentile_interval(np.array([np.nan] * 4 + [0.5] * 6), 0.05) == (0.5, 0.5)


def test_paired_difference_is_zero_for_the_same_model():
    y, score = _scored(2000, 6)
    out = bootstrap_intervals(y, score, 0.5, reference_score=score.copy(), resamples=100, seed=1)
    for name in METRICS:
        low, high = out["diff"][name]
        assert low <= 0 <= high and abs(low) < 1e-12 and abs(high) < 1e-12, name


def test_paired_difference_is_negative_for_a_noisier_candidate():
    y, champion = _scored(3000, 7)
    candidate = _noisier(champion, 8)
    out = bootstrap_intervals(y, candidate, 0.5, reference_score=champion, resamples=200, seed=2)
    assert out["diff"]["roc_auc"][1] < -0.01  # the whole interval is below zero
    assert out["diff"]["log_loss"][0] > 0  # lower is better: worse means a positive difference
    # Pairing is the point: the difference interval is narrower than either model's own.
    diff_width = out["diff"]["roc_auc"][1] - out["diff"]["roc_auc"][0]
    assert diff_width < out["roc_auc"][1] - out["roc_auc"][0]


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation


def _portfolio(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "region": rng.choice(["north", "south", "east", "west"], size=n),
            "age_band": rng.choice(["young", "middle", "old"], size=n),
            "income": rng.lognormal(10.5, 0.7, size=n),
        }
    )
    y, score = _scored(n, seed + 1)
    return frame, y, score


SEGMENTS = [
    {"name": "region", "column": "region"},
    {"name": "age_band", "column": "age_band"},
    {"name": "income_band", "column": "income", "bins": [0, 25000, 50000, 1e9]},
]


def test_evaluate_reports_every_segment_value_with_intervals():
    frame, y, score = _portfolio(4000, 0)
    rows = evaluate(frame, y, score, 0.5, SEGMENTS, resamples=50, seed=0)
    assert [(r["segment"], r["value"]) for r in rows] == [(s, v) for s, v, _ in segment_masks(frame, SEGMENTS)]
    overall = rows[0]
    assert (overall["segment"], overall["value"], overall["n"], overall["status"]) == ("overall", "all", 4000, "ok")
    assert overall["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))
    assert overall["champion"] is None and overall["diff_intervals"] is None
    south = next(r for r in rows if r["value"] == "south")
    mask = frame["region"].to_numpy() == "south"
    assert south["n"] == mask.sum() and south["positives"] == y[mask].sum()
    assert south["metrics"]["brier"] == pytest.approx(skm.brier_score_loss(y[mask], score[mask]))
    low, high = south["intervals"]["roc_auc"]
    assert low < south["metrics"]["roc_auc"] < high
    assert evaluate(frame, y, score, 0.5, SEGMENTS, resamples=50, seed=0) == rows


def test_small_and_single_class_segments_are_insufficient_not_dropped():
    frame, y, score = _portfolio(3000, 1)
    frame.loc[:49, "region"] = "islands"  # 50 rows: below min_rows
    frame.loc[50:349, "region"] = "desert"  # 300 rows, all negative
    y = y.copy()
    y[50:350] = 0
    rows = evaluate(frame, y, score, 0.5, SEGMENTS, champion_score=_noisier(score, 3), resamples=30, min_rows=200)
    by_value = {r["value"]: r for r in rows}
    islands, desert = by_value["islands"], by_value["desert"]
    assert islands["status"] == desert["status"] == "insufficient data"
    assert islands["n"] == 50 and desert["n"] == 300 and desert["positives"] == 0
    assert islands["intervals"] is None and islands["diff_intervals"] is None
    assert islands["metrics"]["brier"] == pytest.approx(skm.brier_score_loss(y[:50], score[:50]))
    assert islands["champion"] is not None  # point metrics, for both models, are still reported
    assert math.isnan(desert["metrics"]["roc_auc"])

    blessing = gates.judge(rows, {"min_rows": 200, "floors": {"roc_auc": 0.6}})
    insufficient = {(i["segment"], i["value"]): i["n"] for i in blessing["insufficient"]}
    assert insufficient == {("region", "islands"): 50, ("region", "desert"): 300}
    assert not any(c["value"] in ("islands", "desert") for c in blessing["checks"])
    assert blessing["blessed"]


def test_evaluate_rejects_misaligned_inputs():
    frame, y, score = _portfolio(500, 2)
    with pytest.raises(ValueError, match="rows"):
        evaluate(frame.iloc[:400], y, score, 0.5, SEGMENTS)


def test_evaluate_speed_on_a_span_with_forty_segments():
    """200 resamples on 20k rows over ~45 segment values, with a champion: loose bound, not a benchmark."""
    rng = np.random.default_rng(0)
    n = 20_000
    frame = pd.DataFrame(
        {
            "region": rng.choice(list("abcde"), size=n),
            "product": rng.choice(list("vwxyz"), size=n),
            "age_band": rng.choice(list("pqrst"), size=n),
            "income": rng.lognormal(10.5, 0.7, size=n),
        }
    )
    y, score = _scored(n, 1)
    segments = [
        {"name": "region", "column": "region"},
        {"name": "product", "column": "product"},
        {"name": "age_band", "column": "age_band"},
        {"name": "income_band", "column": "income", "bins": [0, 25000, 50000, 100000, 1e9]},
        {"name": "region_x_product", "cross": ["region", "product"]},
    ]
    started = time.perf_counter()
    rows = evaluate(frame, y, score, 0.5, segments, champion_score=_noisier(score, 2), resamples=200, seed=0)
    elapsed = time.perf_counter() - started
    assert len(rows) >= 40 and all(r["status"] == "ok" for r in rows)
    assert elapsed < 60, f"{elapsed:.1f} s"


# ---------------------------------------------------------------------------------------------------------------------
# Gates


def _region_rows(*, degrade: str | None = None, resamples: int = 100) -> list[dict]:
    """Candidate equal to the champion everywhere, except much noisier in one region when asked."""
    frame, y, champion = _portfolio(6000, 3)
    candidate = champion.copy()
    if degrade:
        mask = frame["region"].to_numpy() == degrade
        candidate[mask] = _noisier(champion[mask], 4, noise=2.5)
    segments = [{"name": "region", "column": "region"}]
    return evaluate(frame, y, candidate, 0.5, segments, champion_score=champion, resamples=resamples, seed=0)


def _failed(blessing: dict, kind: str) -> set[tuple[str, str]]:
    return {(c["segment"], c["value"]) for c in blessing["failed"] if c["check"] == kind}


def test_floor_passes_and_fails_on_the_right_segment():
    frame, y, score = _portfolio(4000, 4)
    score = score.copy()
    north = frame["region"].to_numpy() == "north"
    score[north] = np.random.default_rng(0).random(north.sum())  # no signal in the north
    rows = evaluate(frame, y, score, 0.5, [{"name": "region", "column": "region"}], resamples=20)
    assert gates.judge(rows, {"floors": {"roc_auc": 0.55}})["blessed"] is False
    assert _failed(gates.judge(rows, {"floors": {"roc_auc": 0.6}}), "floor") == {("region", "north")}
    passing = gates.judge(rows, {"floors": {"roc_auc": 0.3}})
    assert passing["blessed"] and sum(c["check"] == "floor" for c in passing["checks"]) == 5


def test_undefined_floor_metric_fails():
    rows = _region_rows(resamples=10)
    rows[1]["metrics"]["roc_auc"] = float("nan")
    blessing = gates.judge(rows, {"floors": {"roc_auc": 0.6}})
    (failed,) = blessing["failed"]
    assert (failed["segment"], failed["value"], failed["detail"]) == ("region", rows[1]["value"], "undefined")


def test_ceiling_passes_and_fails_on_the_right_segment():
    frame, y, score = _portfolio(4000, 5)
    score = score.copy()
    east = frame["region"].to_numpy() == "east"
    score[east] = np.clip(score[east] + 0.3, 0, 1)  # badly calibrated in the east
    rows = evaluate(frame, y, score, 0.5, [{"name": "region", "column": "region"}], resamples=20)
    eces = {r["value"]: r["metrics"]["ece"] for r in rows}
    limit = (eces["east"] + max(v for k, v in eces.items() if k not in ("east", "all"))) / 2
    blessing = gates.judge(rows, {"ceilings": {"ece": limit}})
    assert _failed(blessing, "ceiling") == {("region", "east")} | (
        {("overall", "all")} if eces["all"] > limit else set()
    )
    assert gates.judge(rows, {"ceilings": {"ece": 0.5}})["blessed"]


def test_non_inferiority_passes_for_the_same_model():
    blessing = gates.judge(_region_rows(), {"max_degradation": {"roc_auc": 0.02, "brier": 0.01}})
    assert blessing["champion"] is True and blessing["blessed"]
    checks = [c for c in blessing["checks"] if c["check"] == "non_inferiority"]
    assert len(checks) == 10 and all("bound" in c["detail"] for c in checks)


def test_non_inferiority_fails_where_the_candidate_degrades():
    rows = _region_rows(degrade="west")
    blessing = gates.judge(rows, {"max_degradation": {"roc_auc": 0.02, "brier": 0.01}})
    assert not blessing["blessed"]
    failed = {(c["segment"], c["value"], c["metric"]) for c in blessing["failed"]}
    assert ("region", "west", "roc_auc") in failed and ("region", "west", "brier") in failed
    assert not any(value in ("north", "south", "east") for _, value, _ in failed)
    west_auc = next(c for c in blessing["failed"] if c["value"] == "west" and c["metric"] == "roc_auc")
    west = next(r for r in rows if r["value"] == "west")
    assert west_auc["observed"] == west["diff_intervals"]["roc_auc"][0]  # judged on the lower bound
    assert west_auc["limit"] == -0.02
    west_brier = next(c for c in blessing["failed"] if c["value"] == "west" and c["metric"] == "brier")
    assert west_brier["observed"] == west["diff_intervals"]["brier"][1] and west_brier["limit"] == 0.01


def test_non_inferiority_is_judged_on_the_interval_not_the_point():
    rows = _region_rows(resamples=10)
    row = rows[1]
    row["metrics"]["roc_auc"] = row["champion"]["roc_auc"]  # no point difference...
    row["diff_intervals"]["roc_auc"] = (-0.05, 0.05)  # ...but an interval too wide to rule out a regression
    blessing = gates.judge(rows, {"max_degradation": {"roc_auc": 0.02}})
    assert _failed(blessing, "non_inferiority") == {("region", row["value"])}


def test_non_inferiority_without_intervals_falls_back_to_the_point_difference():
    rows = _region_rows(degrade="west", resamples=0)
    blessing = gates.judge(rows, {"max_degradation": {"roc_auc": 0.02}})
    assert ("region", "west") in _failed(blessing, "non_inferiority")
    assert all("point difference" in c["detail"] for c in blessing["checks"] if c["check"] == "non_inferiority")


def test_non_inferiority_is_skipped_without_a_champion():
    frame, y, score = _portfolio(2000, 6)
    rows = evaluate(frame, y, score, 0.5, SEGMENTS, resamples=10)
    blessing = gates.judge(rows, {"max_degradation": {"roc_auc": 0.02}})
    assert blessing["champion"] is False and not blessing["blessed"]  # nothing was judged
    assert [c["check"] for c in blessing["checks"]] == ["coverage", "no_gates"]
    assert blessing["failed"][0]["detail"].startswith("gates configured but none applied")
    allowed = gates.judge(rows, {"max_degradation": {"roc_auc": 0.02}, "allow_ungated": True})
    assert allowed["blessed"] and [c["check"] for c in allowed["checks"]] == ["coverage", "no_gates"]


def _fairness_rows(young_recall_hit: bool) -> list[dict]:
    frame, y, score = _portfolio(6000, 7)
    score = score.copy()
    if young_recall_hit:
        young_positive = (frame["age_band"].to_numpy() == "young") & (y == 1)
        score[young_positive] *= 0.5  # positives among the young get pushed under the threshold
    return evaluate(frame, y, score, 0.5, SEGMENTS, resamples=10)


def test_fairness_gaps_pass_when_groups_are_treated_alike():
    gate = {"fairness": {"protected": ["age_band"], "max_tpr_gap": 0.1, "max_positive_rate_gap": 0.1}}
    blessing = gates.judge(_fairness_rows(False), gate)
    fairness = [c for c in blessing["checks"] if c["check"].startswith("fairness")]
    assert blessing["blessed"] and len(fairness) == 2
    assert all(c["segment"] == "age_band" and c["observed"] < 0.1 for c in fairness)


def test_fairness_gaps_fail_and_name_the_groups():
    gate = {"fairness": {"protected": ["age_band"], "max_tpr_gap": 0.1, "max_positive_rate_gap": 0.1}}
    rows = _fairness_rows(True)
    blessing = gates.judge(rows, gate)
    kinds = {c["check"]: c for c in blessing["failed"]}
    assert set(kinds) == {"fairness_tpr_gap", "fairness_positive_rate_gap"}
    tpr = kinds["fairness_tpr_gap"]
    assert tpr["segment"] == "age_band" and tpr["value"].endswith("vs young") and tpr["metric"] == "recall"
    recalls = [r["metrics"]["recall"] for r in rows if r["segment"] == "age_band"]
    assert tpr["observed"] == pytest.approx(max(recalls) - min(recalls)) and tpr["limit"] == 0.1


def test_fairness_on_a_segment_that_was_not_evaluated_fails():
    blessing = gates.judge(_fairness_rows(False), {"fairness": {"protected": ["gender"], "max_tpr_gap": 0.1}})
    (failed,) = blessing["failed"]
    assert failed["segment"] == "gender" and "not evaluated" in failed["detail"]


def test_coverage_fails_when_overall_has_too_little_data():
    frame, y, score = _portfolio(150, 8)
    rows = evaluate(frame, y, score, 0.5, SEGMENTS, resamples=10, min_rows=200)
    blessing = gates.judge(rows, {"min_rows": 200, "floors": {"roc_auc": 0.6}})
    assert not blessing["blessed"]
    (failed,) = blessing["failed"]
    assert (failed["check"], failed["segment"], failed["value"], failed["observed"]) == (
        "coverage",
        "overall",
        "all",
        150,
    )
    assert ("overall", "all") in {(i["segment"], i["value"]) for i in blessing["insufficient"]}


def test_gate_min_rows_is_applied_on_top_of_evaluate():
    frame, y, score = _portfolio(1000, 9)
    rows = evaluate(frame, y, score, 0.5, SEGMENTS, resamples=10, min_rows=50)
    blessing = gates.judge(rows, {"min_rows": 300, "floors": {"roc_auc": 0.6}})
    small = {(r["segment"], r["value"]) for r in rows if r["n"] < 300}
    assert small and small == {(i["segment"], i["value"]) for i in blessing["insufficient"]}


def test_no_gates_is_no_blessing_unless_allowed():
    frame, y, score = _portfolio(1000, 10)
    rows = evaluate(frame, y, score, 0.5, SEGMENTS, resamples=10)
    blessing = gates.judge(rows, {"min_rows": 200, "bootstrap": 200})
    assert not blessing["blessed"]
    (explicit,) = [c for c in blessing["checks"] if c["check"] == "no_gates"]
    assert not explicit["passed"] and explicit["detail"].startswith("no gates configured")
    allowed = gates.judge(rows, {"min_rows": 200, "bootstrap": 200, "allow_ungated": True})
    (explicit,) = [c for c in allowed["checks"] if c["check"] == "no_gates"]
    assert allowed["blessed"] and explicit["passed"] and "allow_ungated" in explicit["detail"]


def test_misspelt_gates_are_errors_not_silent_passes():
    rows = _region_rows(resamples=0)
    with pytest.raises(ValueError, match="floor"):
        gates.judge(rows, {"floor": {"roc_auc": 0.6}})
    with pytest.raises(ValueError, match="unknown metric"):
        gates.judge(rows, {"floors": {"auc": 0.6}})
    with pytest.raises(ValueError, match="positive_rate"):
        gates.judge(rows, {"max_degradation": {"positive_rate": 0.1}})


# ---------------------------------------------------------------------------------------------------------------------
# Reports


def test_reports_show_the_verdict_failures_and_segments():
    rows = _region_rows(degrade="west")
    rows[2]["value"] = "<script>x</script>"
    blessing = gates.judge(rows, {"max_degradation": {"roc_auc": 0.02}})
    text = gates.markdown(blessing, rows)
    assert text.startswith("# Model validation: NOT BLESSED")
    assert "| non_inferiority | region | west | roc_auc |" in text
    west = next(r for r in rows if r["value"] == "west")
    low, high = west["diff_intervals"]["roc_auc"]
    assert f"[{low:.4g}, {high:.4g}]" in text

    page = gates.html(blessing, rows)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "NOT BLESSED" in page and "<td>west</td>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page

    passing = gates.judge(_region_rows(), {"max_degradation": {"roc_auc": 0.02}})
    assert gates.markdown(passing, rows).startswith("# Model validation: BLESSED")
