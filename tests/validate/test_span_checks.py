"""span_checks: duplicates, repeated ids, label shift, new categories and label leakage, on seeded frames whose
expected figures come from independent computations (pairwise AUC counts, sets of row tuples)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop import config
from ctloop.components.validate_data import span_checks
from ctloop.local import demo_data

ROOT = Path(__file__).resolve().parents[2]
ROWS = 4000
# A separation of the two classes' normal scores whose AUC is 0.9: Phi(d / sqrt 2) = 0.9.
D_AUC_90 = math.sqrt(2) * 1.2815515655446004


def make_settings(task="binary_classification", id_column="id", timestamp="ts", gates=None, segments=None):
    objective = {"binary_classification": "binary:logistic", "regression": "reg:squarederror"}.get(
        task, "multi:softprob"
    )
    raw = {
        "data": {"uri": "unused", "label": "y", "task": task, "id_column": id_column, "timestamp": timestamp},
        "features": [
            {"name": "amount", "type": "numeric"},
            {"name": "signal", "type": "numeric"},
            {"name": "color", "type": "categorical"},
            {"name": "grade", "type": "categorical"},  # integer codes, declared categorical
        ],
        "model": {"objective": objective},
        "gates": {"data": gates or {}, "segments": segments or {}},
    }
    return config.parse(raw, environ={})


@pytest.fixture(scope="module")
def settings():
    return make_settings()


def clean_frame(seed: int, rows: int = ROWS, positive_rate: float = 0.3) -> pd.DataFrame:
    """A healthy span: unique ids, a feature that predicts the label well (AUC about 0.9) but not perfectly, a
    categorical with a strong but imperfect link to the label, missing values here and there."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < positive_rate).astype(int)
    grade = np.where(y == 1, rng.integers(1, 5, rows), rng.integers(0, 4, rows))
    amount = rng.lognormal(8, 1, rows).round(2)
    amount[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "id": np.arange(rows) + 10_000 * seed,
            "ts": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 30, rows), unit="D"),
            "amount": amount,
            "signal": D_AUC_90 * y + rng.normal(size=rows),
            "color": rng.choice(["red", "green", "blue", "black", None], rows, p=[0.3, 0.3, 0.2, 0.15, 0.05]),
            "grade": grade,
            "y": y,
        }
    )


def pairwise_auc(scores, labels) -> float:
    """The probability that a positive outscores a negative, ties half: counted over every pair."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    keep = ~np.isnan(scores)
    pos, neg = scores[keep & labels], scores[keep & ~labels]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def only(problems, kind):
    return [p for p in problems if p.kind == kind]


# ---------------------------------------------------------------------------------------------------------------
# AUC and association


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_a_pairwise_count_with_ties_and_missing_values(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(300) < 0.4
    scores = rng.integers(0, 6, 300) + labels * rng.integers(0, 3, 300)  # many ties
    scores = scores.astype(float)
    scores[rng.random(300) < 0.1] = np.nan
    assert span_checks.auc(scores, labels) == pytest.approx(pairwise_auc(scores, labels), abs=1e-12)


def test_auc_needs_both_classes():
    assert span_checks.auc([0.1, 0.5, 0.9], [1, 1, 1]) is None
    assert span_checks.auc([np.nan, 0.5, np.nan], [0, 1, 0]) is None


def test_association_of_every_column_matches_an_independent_computation(settings):
    frame = clean_frame(seed=3, rows=600)
    rng = np.random.default_rng(3)
    # A string column with categories both above and below 30 rows; its small categories are left out.
    frame["city"] = rng.choice(
        [f"c{i}" for i in range(4)] + [f"small{i}" for i in range(40)], 600, p=[0.2] * 4 + [0.005] * 40
    )
    associations = span_checks.figures(frame, settings)["label_association"]

    assert set(associations) == {"amount", "signal", "color", "grade", "city"}  # not y, id or ts
    y = frame["y"].to_numpy()
    for column in ("amount", "signal"):
        assert associations[column] == pytest.approx(abs(2 * pairwise_auc(frame[column], y) - 1), abs=1e-12)
    for column in ("color", "grade", "city"):
        sizes = frame.groupby(column)["y"].transform("size")
        kept = frame[column].notna() & (sizes >= 30)
        scores = frame.loc[kept].groupby(column)["y"].transform("mean")
        expected = abs(2 * pairwise_auc(scores, y[kept.to_numpy()]) - 1)
        assert associations[column] == pytest.approx(expected, abs=1e-12), column
    # The strong features are strong, and still far from a leak.
    assert 0.7 < associations["signal"] < 0.9
    assert associations["grade"] > 0.4


def test_clean_data_has_no_problems_first_run_or_against_a_reference(settings):
    reference = span_checks.figures(clean_frame(seed=1), settings)
    for ref in (None, reference):
        own, problems = span_checks.check(clean_frame(seed=2), settings, ref)
        assert problems == [], problems
    assert 0.75 < own["label_association"]["signal"] < 0.85  # AUC about 0.9


def test_label_copies_and_values_recorded_after_the_outcome_leak(settings):
    frame = clean_frame(seed=4)
    y = frame["y"].to_numpy()
    rng = np.random.default_rng(4)
    frame["y_copy"] = y.astype(float)
    frame["status"] = np.where(y == 1, "charged_off", "paid")  # a string column, target-encoded
    frame["days_late"] = np.where(y == 1, rng.integers(30, 90, len(y)), 0)  # inverted direction works too
    frame["recovered"] = -frame["days_late"]
    frame["ts"] = y  # the timestamp column is never judged, whatever it holds
    own, problems = span_checks.check(frame, settings, None)

    leaks = {p.feature: p for p in only(problems, "LABEL_LEAKAGE")}
    assert set(leaks) == {"y_copy", "status", "days_late", "recovered"}
    assert all(p.severity == "ERROR" for p in leaks.values())
    assert "association 1.000" in leaks["status"].description
    assert "gates.data.max_label_association 0.98" in leaks["status"].description
    assert "ts" not in own["label_association"] and "id" not in own["label_association"]
    assert "signal" not in leaks


def test_threshold_decides_leakage(settings):
    frame = clean_frame(seed=5)
    strict = make_settings(gates={"max_label_association": 0.75})
    assert only(span_checks.check(frame, settings, None)[1], "LABEL_LEAKAGE") == []
    flagged = only(span_checks.check(frame, strict, None)[1], "LABEL_LEAKAGE")
    assert "signal" in {p.feature for p in flagged}


def test_id_like_columns_are_not_target_encoded(settings):
    frame = clean_frame(seed=6)
    frame["ref"] = [f"r{i}" for i in range(len(frame))]  # unique per row: in-sample means would fit the label
    frame["half_small"] = np.where(np.arange(len(frame)) < len(frame) * 0.6, frame["ref"], "common")
    frame["constant"] = 7
    own, problems = span_checks.check(frame, settings, None)
    assert own["label_association"]["ref"] is None
    assert own["label_association"]["half_small"] is None  # 40% of rows in categories of 30+: under half
    assert own["label_association"]["constant"] == 0.0
    assert any(s.startswith("LABEL_LEAKAGE ref:") for s in own["skipped"])
    assert only(problems, "LABEL_LEAKAGE") == []


@pytest.mark.parametrize(
    "task, labels, why",
    [
        ("regression", None, None),
        ("multiclass", lambda y, rng: rng.integers(0, 3, len(y)), None),
        ("binary_classification", lambda y, rng: np.where(y == 1, "yes", "no"), "not numeric"),
        ("binary_classification", lambda y, rng: y + 1, "other than 0 and 1"),
    ],
)
def test_leakage_is_only_judged_for_0_1_binary_labels(task, labels, why):
    frame = clean_frame(seed=7)
    rng = np.random.default_rng(7)
    frame["y_copy"] = frame["y"]
    if labels is not None:
        frame["y"] = labels(frame["y"].to_numpy(), rng)
    own, problems = span_checks.check(frame, make_settings(task=task), None)
    assert own["label_association"] == {}
    assert only(problems, "LABEL_LEAKAGE") == []
    if why:
        assert any(why in s for s in own["skipped"])


def test_unlabelled_rows_are_left_out(settings):
    frame = clean_frame(seed=8)
    frame["y_copy"] = frame["y"]
    frame["y"] = frame["y"].astype(float)
    frame.loc[frame.index[:100], "y"] = np.nan
    problems = span_checks.check(frame, settings, None)[1]
    assert [p.feature for p in only(problems, "LABEL_LEAKAGE")] == ["y_copy"]


# ---------------------------------------------------------------------------------------------------------------
# Duplicate rows


def with_copies(frame: pd.DataFrame, copies: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    picked = frame.iloc[rng.integers(0, len(frame), copies)]
    return pd.concat([frame, picked], ignore_index=True).sample(frac=1.0, random_state=seed, ignore_index=True)


def tuple_duplicate_share(frame: pd.DataFrame) -> float:
    seen, repeats = set(), 0
    for row in frame.itertuples(index=False):
        key = tuple("<missing>" if pd.isna(v) else v for v in row)
        repeats += key in seen
        seen.add(key)
    return repeats / len(frame)


def test_duplicate_share_counts_rows_with_missing_values_as_equal():
    settings = make_settings(id_column=None)
    frame = clean_frame(seed=9, rows=1000).drop(columns="id")
    frame.loc[frame.index[:200], "amount"] = np.nan
    frame = with_copies(frame, 150, seed=9)
    share = span_checks.figures(frame, settings)["duplicate_share"]
    assert share == pytest.approx(tuple_duplicate_share(frame), abs=1e-12)
    assert share == pytest.approx(150 / 1150, abs=1e-12)  # the clean rows are all distinct


def test_duplicates_first_run_warn_above_the_setting(settings):
    no_ids = make_settings(id_column=None)
    frame = clean_frame(seed=10).drop(columns="id")
    many = with_copies(frame, 800, seed=10)  # 800 / 4800 = 0.167 > 0.1
    few = with_copies(frame, 200, seed=10)  # 0.048
    problems = only(span_checks.check(many, no_ids, None)[1], "DUPLICATE_ROWS")
    assert [(p.feature, p.severity) for p in problems] == [("(dataset)", "WARNING")]
    assert "gates.data.max_duplicate_increase 0.1" in problems[0].description
    assert only(span_checks.check(few, no_ids, None)[1], "DUPLICATE_ROWS") == []


def test_duplicates_against_the_reference_stop_a_rise_only():
    no_ids = make_settings(id_column=None)
    frame = clean_frame(seed=11).drop(columns="id")
    reference = span_checks.figures(with_copies(frame, 800, seed=1), no_ids)  # already 0.167
    same = with_copies(clean_frame(seed=12).drop(columns="id"), 1000, seed=2)  # 0.2: a rise of 0.03
    risen = with_copies(clean_frame(seed=12).drop(columns="id"), 2500, seed=2)  # 0.385
    assert only(span_checks.check(same, no_ids, reference)[1], "DUPLICATE_ROWS") == []
    problems = only(span_checks.check(risen, no_ids, reference)[1], "DUPLICATE_ROWS")
    assert [(p.feature, p.severity) for p in problems] == [("(dataset)", "ERROR")]
    assert "0.385" in problems[0].description and "0.167" in problems[0].description


# ---------------------------------------------------------------------------------------------------------------
# Repeated ids


def test_repeated_ids(settings):
    frame = clean_frame(seed=13)
    rng = np.random.default_rng(13)
    repeated = frame.copy()
    rows = rng.choice(len(frame), 80, replace=False)  # 2% of rows take another row's id
    repeated.loc[rows, "id"] = frame["id"].iloc[(rows + 1) % len(frame)].to_numpy()
    own, problems = span_checks.check(repeated, settings, None)
    # Every row after the first of an id repeats it: all rows less the distinct ids.
    assert own["id_repeat_share"] == pytest.approx((len(frame) - repeated["id"].nunique()) / len(frame))
    assert [(p.feature, p.kind, p.severity) for p in only(problems, "REPEATED_IDS")] == [
        ("id", "REPEATED_IDS", "ERROR")
    ]
    assert "gates.data.max_id_repeat_share 0.01" in only(problems, "REPEATED_IDS")[0].description

    few = frame.copy()
    few.loc[rows[:20], "id"] = frame["id"].iloc[(rows[:20] + 1) % len(frame)].to_numpy()  # 0.5%
    assert only(span_checks.check(few, settings, None)[1], "REPEATED_IDS") == []


def test_missing_ids_repeat_nothing_and_no_id_column_means_no_check(settings):
    frame = clean_frame(seed=14)
    frame["id"] = frame["id"].astype(float)
    frame.loc[frame.index[:400], "id"] = np.nan
    assert span_checks.figures(frame, settings)["id_repeat_share"] == 0.0
    frame["id"] = 1
    assert span_checks.figures(frame, make_settings(id_column=None))["id_repeat_share"] is None
    assert span_checks.figures(frame.drop(columns="id"), settings)["id_repeat_share"] is None


# ---------------------------------------------------------------------------------------------------------------
# Label shift


def test_label_shares_and_a_shift_against_the_reference(settings):
    reference = span_checks.figures(clean_frame(seed=15, positive_rate=0.3), settings)
    expected = clean_frame(seed=15, positive_rate=0.3)["y"].value_counts(normalize=True)
    assert reference["label_shares"] == pytest.approx({str(k): v for k, v in expected.items()})

    inverted = clean_frame(seed=16, positive_rate=0.3)
    inverted["y"] = 1 - inverted["y"]
    problems = only(span_checks.check(inverted, settings, reference)[1], "LABEL_SHIFT")
    assert [(p.feature, p.severity) for p in problems] == [("y", "ERROR")]
    assert "labels inverted or a population change?" in problems[0].description
    assert "gates.segments.accept_label_change" in problems[0].description
    assert only(span_checks.check(inverted, settings, None)[1], "LABEL_SHIFT") == []  # first run: nothing to compare

    accepting = make_settings(segments={"accept_label_change": True})
    problems = only(span_checks.check(inverted, accepting, reference)[1], "LABEL_SHIFT")
    assert [(p.feature, p.severity) for p in problems] == [("y", "WARNING")]


def test_small_label_changes_pass_and_float_labels_match_integer_ones(settings):
    reference = span_checks.figures(clean_frame(seed=17, positive_rate=0.3), settings)
    later = clean_frame(seed=18, positive_rate=0.36)
    later["y"] = later["y"].astype(float)
    later.loc[later.index[:10], "y"] = np.nan  # the column turns float; classes still read "0" and "1"
    own, problems = span_checks.check(later, settings, reference)
    assert set(own["label_shares"]) == {"0", "1"}
    assert only(problems, "LABEL_SHIFT") == []


def test_regression_has_no_label_shares():
    regression = make_settings(task="regression")
    frame = clean_frame(seed=19)
    frame["y"] = np.random.default_rng(19).normal(size=len(frame))
    reference = span_checks.figures(frame, regression)
    assert reference["label_shares"] == {}
    frame["y"] = frame["y"] + 100
    assert only(span_checks.check(frame, regression, reference)[1], "LABEL_SHIFT") == []


# ---------------------------------------------------------------------------------------------------------------
# New categories


def test_new_categories_against_the_reference(settings):
    reference = span_checks.figures(clean_frame(seed=20), settings)
    assert reference["categories"] == {"color": ["black", "blue", "green", "red"], "grade": ["0", "1", "2", "3", "4"]}

    frame = clean_frame(seed=21)
    rng = np.random.default_rng(21)
    rows = rng.choice(len(frame), 200, replace=False)  # 5% of rows
    frame.loc[rows, "color"] = np.repeat(["magenta", "teal", "ochre", "neon"], [80, 60, 40, 20])
    problems = only(span_checks.check(frame, settings, reference)[1], "NEW_CATEGORY")
    assert [(p.feature, p.severity) for p in problems] == [("color", "ERROR")]
    assert "0.050" in problems[0].description
    assert "'magenta', 'teal', 'ochre'" in problems[0].description and "neon" not in problems[0].description
    assert only(span_checks.check(frame, settings, None)[1], "NEW_CATEGORY") == []  # first run

    frame.loc[rows[40:], "color"] = "red"  # 40 rows, 1%
    assert only(span_checks.check(frame, settings, reference)[1], "NEW_CATEGORY") == []


def test_new_categories_the_logged_requests_hold_as_well_are_said_not_stopped(settings):
    """A value in at least the limit's share of the logged requests is the traffic's; what the span's other new
    values hold is judged as before. Integer codes in the span and strings in the requests are the same value."""
    reference = span_checks.figures(clean_frame(seed=20), settings)
    frame = clean_frame(seed=21)
    rows = np.random.default_rng(21).choice(len(frame), 200, replace=False)  # 5% of rows
    frame.loc[rows, "color"] = np.repeat(["magenta", "teal", "ochre", "neon"], [80, 60, 40, 20])
    frame.loc[frame.index[:100], "grade"] = 7  # 2.5%, a code the reference never had
    requests = clean_frame(seed=22, rows=1000).drop(columns=["y"])
    requests["grade"] = requests["grade"].astype(str)  # as the model server takes categories: strings
    requests.loc[requests.index[:20], "color"] = "magenta"  # 2%: at the limit
    requests.loc[requests.index[20:30], "color"] = "teal"  # 1%: under it
    requests.loc[requests.index[30:60], "grade"] = "7"

    def judged(logged):
        problems = only(span_checks.check(frame, settings, reference, logged)[1], "NEW_CATEGORY")
        return {(p.feature, p.severity): p.description for p in problems}

    found = judged(requests)
    assert set(found) == {("color", "WARNING"), ("color", "ERROR"), ("grade", "WARNING")}
    assert "'magenta' (0.020 of rows, 0.020 of the requests)" in found[("color", "WARNING")]
    # what is left of color's new values: teal, ochre, neon, 120 rows of 4,000
    assert (
        f"{120 / len(frame):.3f} of rows" in found[("color", "ERROR")] and "'magenta'" not in found[("color", "ERROR")]
    )
    assert "'7' (0.025 of rows, 0.030 of the requests)" in found[("grade", "WARNING")]

    requests.loc[requests.index[20:40], "color"] = "teal"  # 2%: teal is the traffic's too; 60 rows (1.5%) are left
    assert set(judged(requests)) == {("color", "WARNING"), ("grade", "WARNING")}
    assert set(judged(None)) == {("color", "ERROR"), ("grade", "ERROR")}  # no logged requests: as before


def test_missing_values_and_float_codes_are_not_new_categories(settings):
    reference = span_checks.figures(clean_frame(seed=22), settings)
    frame = clean_frame(seed=23)
    frame["grade"] = frame["grade"].astype(float)
    frame.loc[frame.index[:300], ["grade", "color"]] = np.nan
    own, problems = span_checks.check(frame, settings, reference)
    assert own["categories"]["grade"] == ["0", "1", "2", "3", "4"]
    assert only(problems, "NEW_CATEGORY") == []


def test_a_truncated_category_list_keeps_the_most_frequent_and_is_not_judged(settings):
    rows = 6000
    frame = clean_frame(seed=24, rows=rows)
    # 1500 values: v0..v99 in 9 rows each, w0..w1399 in at most 4: the v's must survive the cut.
    frame["color"] = [f"v{i % 100}" if i < 900 else f"w{i % 1400}" for i in range(rows)]
    reference = span_checks.figures(frame, settings)
    assert len(reference["categories"]["color"]) == span_checks.MAX_CATEGORIES
    assert {f"v{i}" for i in range(100)} <= set(reference["categories"]["color"])
    assert reference["categories_truncated"] == ["color"]

    later = clean_frame(seed=25)
    later["color"] = [f"x{i}" for i in range(len(later))]  # nothing the reference recorded
    own, problems = span_checks.check(later, settings, reference)
    assert only(problems, "NEW_CATEGORY") == []
    assert any(s.startswith("NEW_CATEGORY color:") for s in own["skipped"])


# ---------------------------------------------------------------------------------------------------------------
# Figures as the verdict keeps them


def test_figures_survive_json_and_serve_as_the_reference(settings):
    frame = clean_frame(seed=26)
    own = span_checks.figures(frame, settings)
    stored = json.loads(json.dumps(own, allow_nan=False))
    assert stored == own
    assert {"rows", "duplicate_share", "id_repeat_share", "label_shares", "categories", "label_association"} <= set(own)
    assert own["rows"] == len(frame)
    again, problems = span_checks.check(frame, settings, stored)
    assert again == own and problems == []


def test_demo_spans_with_the_repository_settings():
    settings = config.load(ROOT / "ctloop.yaml", environ={})
    reference = span_checks.figures(demo_data.generate(5000, seed=7, start="2026-01-01")[0], settings)
    clean, _ = demo_data.generate(5000, seed=10, start="2026-02-01")
    assert [p for p in span_checks.check(clean, settings, reference)[1] if p.severity == "ERROR"] == []
    drifted, _ = demo_data.generate(5000, seed=9, start="2026-02-01", drift="new-category")
    problems = only(span_checks.check(drifted, settings, reference)[1], "NEW_CATEGORY")
    assert [p.feature for p in problems] == [demo_data.NEW_CATEGORY_FEATURE]
    assert repr(demo_data.NEW_CATEGORY_LEVEL) in problems[0].description


# -- drift on the previous span's deciles


def counts_in(values, edges) -> list[int]:
    """Rows per bin, each row compared with the edges one by one: below, [e0, e1], (e1, e2], ..., above."""
    values = [v for v in values if v == v]
    inner = [sum(edges[0] <= v <= edges[1] for v in values)]
    inner += [sum(edges[i - 1] < v <= edges[i] for v in values) for i in range(2, len(edges))]
    return [sum(v < edges[0] for v in values), *inner, sum(v > edges[-1] for v in values)]


def jensen_shannon_bits(a, b) -> float:
    p, q = [x / sum(a) for x in a], [x / sum(b) for x in b]
    m = [(x + y) / 2 for x, y in zip(p, q)]
    return (
        sum(x * math.log2(x / z) for x, z in zip(p, m) if x) / 2
        + sum(y * math.log2(y / z) for y, z in zip(q, m) if y) / 2
    )


def test_decile_bins_count_every_row_once_with_ties_and_missing_values(settings):
    frame = clean_frame(seed=30)
    frame["signal"] = np.random.default_rng(30).integers(0, 4, len(frame)) * 1.5  # four values: deciles tie
    bins = span_checks.quantile_bins(frame, settings)
    assert set(bins) == {"amount", "signal"}  # numeric features only
    for name in bins:
        finite = frame[name].dropna().to_numpy()
        edges = sorted(set(np.quantile(finite, np.linspace(0, 1, span_checks.QUANTILE_BINS + 1)).tolist()))
        assert bins[name]["edges"] == edges
        assert bins[name]["counts"] == counts_in(frame[name].tolist(), edges)
        assert sum(bins[name]["counts"]) == len(finite)
    assert bins["signal"]["edges"] == [0.0, 1.5, 3.0, 4.5]


def test_decile_divergence_matches_an_independent_computation_and_a_far_out_value_barely_moves_it(settings):
    previous, current = clean_frame(seed=31), clean_frame(seed=32)
    bins = span_checks.quantile_bins(previous, settings)
    got = span_checks.quantile_divergence(current, bins)
    edges = bins["amount"]["edges"]
    expected = jensen_shannon_bits(counts_in(previous["amount"], edges), counts_in(current["amount"], edges))
    assert got["amount"] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert span_checks.quantile_divergence(previous, bins) == {"amount": 0.0, "signal": 0.0}
    stop = config.DataGate().stop_jsd
    assert got["amount"] < stop / 10  # another draw of the same population
    # One reading a thousand times the largest in the previous span, or in this one: the measure barely moves.
    far = previous["amount"].max() * 1000
    stretched = span_checks.quantile_bins(previous.assign(amount=previous["amount"].mask(previous.index == 0, far)),
                                          settings)  # fmt: skip
    assert span_checks.quantile_divergence(current, stretched)["amount"] == pytest.approx(got["amount"], abs=0.002)
    one_off = current.assign(amount=current["amount"].mask(current.index == 0, far))
    assert span_checks.quantile_divergence(one_off, bins)["amount"] == pytest.approx(got["amount"], abs=0.002)
    # A unit change moves the values beyond the previous span's range: nearly disjoint.
    assert span_checks.quantile_divergence(current.assign(amount=current["amount"] * 1000), bins)["amount"] > 0.9


def test_decile_divergence_skips_what_it_cannot_compare(settings):
    bins = span_checks.quantile_bins(clean_frame(seed=33), settings)
    text = clean_frame(seed=34).assign(amount=lambda f: f["amount"].astype(str)).drop(columns=["signal"])
    assert span_checks.quantile_divergence(text, bins) == {}  # text: the schema's type check says so; no column
    assert span_checks.quantile_divergence(clean_frame(seed=34), {}) == {}


def test_far_out_share_counts_rows_beyond_the_previous_range_by_more_than_its_width(settings):
    previous, current = clean_frame(seed=35), clean_frame(seed=36)
    bins = span_checks.quantile_bins(previous, settings)
    low, high = previous["amount"].min(), previous["amount"].max()
    assert span_checks.far_out(current, bins, settings) == []  # another draw of the same population
    hit = np.random.default_rng(36).random(len(current)) < 0.05  # a part of the rows in other units
    moved = current.assign(amount=current["amount"].where(~hit, current["amount"] * 1000))
    values = moved["amount"].dropna().tolist()
    expected = sum(v > high + (high - low) or v < low - (high - low) for v in values) / len(values)
    (problem,) = span_checks.far_out(moved, bins, settings)
    assert (problem.feature, problem.kind, problem.severity) == ("amount", "FAR_OUT_VALUES", "ERROR")
    assert f"{expected:.3f} of rows lie beyond the previous span's range [{low:g}, {high:g}]" in problem.description
    assert "gates.data.max_far_out_share 0.01" in problem.description
    # One such row is no share at all; a limit at the share lets it pass.
    one = current.assign(amount=current["amount"].mask(current.index == 0, high * 1000))
    assert span_checks.far_out(one, bins, settings) == []
    assert span_checks.far_out(moved, bins, make_settings(gates={"max_far_out_share": expected})) == []
