"""Splits keep exact duplicate rows and rows sharing an id on one side, and change nothing when nothing repeats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop import config
from ctloop.components.train import splits
from ctloop.errors import BadInputError

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("train", "validation", "test")


@pytest.fixture(scope="module")
def base():
    return json.loads(config.load(ROOT / "ctloop.yaml", environ={}).json())


def settings_with(base, data=None, **model):
    raw = json.loads(json.dumps(base))
    raw["data"].update(data or {})
    raw["model"].update(model)
    return config.parse(raw, environ={})


def todays_split(frame, y, settings):
    """A copy of the split before grouping, the reference for frames where nothing repeats."""
    shares = settings.model.split
    n = len(frame)
    if settings.model.split_by == "time":
        order = np.argsort(pd.to_datetime(frame[settings.data.timestamp]).to_numpy(), kind="stable")
        cut1 = int(round(n * shares["train"]))
        cut2 = cut1 + int(round(n * shares["validation"]))
        return {"train": order[:cut1], "validation": order[cut1:cut2], "test": order[cut2:]}
    rng = np.random.default_rng(settings.model.seed)
    stratify = settings.data.task.value != "regression"
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(n)]
    parts = {"train": [], "validation": [], "test": []}
    for rows in groups:
        rows = rng.permutation(rows)
        cut1 = int(round(len(rows) * shares["train"]))
        cut2 = cut1 + int(round(len(rows) * shares["validation"]))
        parts["train"].append(rows[:cut1])
        parts["validation"].append(rows[cut1:cut2])
        parts["test"].append(rows[cut2:])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def unique_frame(rows, seed, label_rate=0.3):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "application_id": [f"a{i}" for i in range(rows)],
            "event_date": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 30, rows), unit="D"),
            "income": rng.normal(size=rows),
            "channel": rng.choice(["branch", "online"], rows),
            "default": (rng.random(rows) < label_rate).astype(int),
        }
    )


def with_copies(frame, seed, share=0.3, most=3):
    """The frame plus 1..most extra copies of a random share of its rows, shuffled in."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(frame), int(len(frame) * share), replace=False)
    copies = frame.iloc[np.repeat(picked, rng.integers(1, most + 1, len(picked)))]
    both = pd.concat([frame, copies], ignore_index=True)
    return both.iloc[rng.permutation(len(both))].reset_index(drop=True)


def row_hashes(frame, rows):
    return set(pd.util.hash_pandas_object(frame.iloc[rows], index=False).tolist())


def assert_partition(parts, n):
    every = np.concatenate([parts[k] for k in NAMES])
    assert len(every) == len(np.unique(every)) == n


def assert_shares(parts, frame, y, strata, settings):
    """Rows per split and stratum within the bound the group-wise cut guarantees.

    Groups are laid end to end and each goes where its middle row falls, so a cut's boundary misses the rounded cut by
    at most half the largest group g of the stratum; the rounded cuts miss the exact shares by 0.5 (train), 0.5
    (validation, rounded on its own) and 1 (test, the rest). Validation has two boundaries: g + 0.5.
    """
    shares = settings.model.split
    for label in np.unique(strata):
        in_stratum = strata == label
        total = int(in_stratum.sum())
        g = int(frame[in_stratum].groupby("_group").size().max())
        slack = {"train": g / 2 + 0.5, "validation": g + 0.5, "test": g / 2 + 1}
        for name in NAMES:
            got = int(in_stratum[parts[name]].sum())
            assert abs(got - total * shares[name]) <= slack[name], (label, name, got, total * shares[name], g)


@pytest.mark.parametrize("seed", [0, 42, 7])
@pytest.mark.parametrize("mode", ["binary", "regression", "time", "no_id_column"])
def test_nothing_repeats_gives_todays_splits(base, seed, mode):
    frame = unique_frame(3_000, seed)
    data, model = {}, {"seed": seed}
    if mode == "regression":
        data, model["objective"] = {"task": "regression"}, "reg:squarederror"
        frame["default"] = frame["income"] * 2.0
    if mode == "time":
        model["split_by"] = "time"
    if mode == "no_id_column":
        data = {"id_column": None}
    settings = settings_with(base, data, **model)
    y = frame["default"].to_numpy()
    got, expected = splits.split(frame, y, settings), todays_split(frame, y, settings)
    for name in NAMES:
        np.testing.assert_array_equal(got[name], expected[name])


def test_exact_duplicates_never_straddle_and_shares_hold(base):
    frame = with_copies(unique_frame(3_000, 1), seed=2)
    frame.loc[frame["income"] > 1.5, "income"] = np.nan  # missing values must still match their copies
    settings = settings_with(base, {"id_column": None})
    y = frame["default"].to_numpy()
    parts = splits.split(frame, y, settings)
    assert_partition(parts, len(frame))
    hashes = {name: row_hashes(frame, parts[name]) for name in NAMES}
    assert not hashes["train"] & hashes["validation"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["validation"] & hashes["test"]
    frame["_group"] = frame.groupby(list(frame.columns), dropna=False).ngroup()
    assert_shares(parts, frame, y, y, settings)


def test_repeated_ids_never_straddle_and_groups_follow_their_first_label(base):
    rng = np.random.default_rng(3)
    frame = unique_frame(4_000, 3)
    frame["application_id"] = [f"a{i}" for i in rng.integers(0, 2_500, len(frame))]  # ids repeat, rows differ
    settings = settings_with(base)
    y = frame["default"].to_numpy()
    assert frame.groupby("application_id")["default"].nunique().max() == 2  # some groups mix the labels
    parts = splits.split(frame, y, settings)
    assert_partition(parts, len(frame))
    ids = {name: set(frame["application_id"].iloc[parts[name]]) for name in NAMES}
    assert not ids["train"] & ids["validation"]
    assert not ids["train"] & ids["test"]
    assert not ids["validation"] & ids["test"]
    frame["_group"] = frame["application_id"]
    strata = frame.groupby("application_id")["default"].transform("first").to_numpy()
    assert_shares(parts, frame, y, strata, settings)


def test_a_missing_id_groups_only_exact_duplicates(base):
    frame = pd.DataFrame(
        {
            "application_id": ["a", "a", None, None, None, "b", "c", "c"],
            "income": [1.0, 2.0, np.nan, np.nan, 3.0, 0.0, -0.0, 0.0],
            "default": [0, 1, 0, 0, 0, 1, 1, 1],
        }
    )
    groups = splits.row_groups(frame, settings_with(base))
    # a's two rows; the two identical rows without an id (NaN equal to NaN); the other row without an id; b; c
    # (whose -0.0 and 0.0 rows share the id anyway).
    assert groups.tolist() == [0, 0, 1, 1, 2, 3, 4, 4]
    no_ids = splits.row_groups(frame.drop(columns="application_id"), settings_with(base))
    assert no_ids.tolist() == [0, 1, 2, 2, 3, 4, 4, 4]  # -0.0 equals 0.0, as pandas compares them


def test_same_seed_same_splits_other_seed_other_splits(base):
    frame = with_copies(unique_frame(2_000, 4), seed=5)
    y = frame["default"].to_numpy()
    first = splits.split(frame, y, settings_with(base, seed=11))
    again = splits.split(frame, y, settings_with(base, seed=11))
    other = splits.split(frame, y, settings_with(base, seed=12))
    assert all(np.array_equal(first[k], again[k]) for k in NAMES)
    assert not np.array_equal(first["test"], other["test"])


def test_time_split_sends_a_group_to_the_split_of_its_latest_row(base):
    rng = np.random.default_rng(6)
    frame = unique_frame(3_000, 6)
    frame["application_id"] = [f"a{i}" for i in rng.integers(0, 2_000, len(frame))]
    frame = with_copies(frame, seed=7, share=0.1)
    settings = settings_with(base, split_by="time")
    y = frame["default"].to_numpy()
    parts = splits.split(frame, y, settings)
    assert_partition(parts, len(frame))

    # Reference: today's time split by rows, then every row of an id takes the split of that id's latest row (the
    # last of them in the stable time order).
    before = todays_split(frame, y, settings)
    side = np.empty(len(frame), dtype=object)
    for name in NAMES:
        side[before[name]] = name
    position = np.empty(len(frame), dtype=int)
    position[np.concatenate([before[k] for k in NAMES])] = np.arange(len(frame))
    latest = pd.Series(position).groupby(frame["application_id"]).transform("max").to_numpy()
    order = np.argsort(position)
    expected = side[order[latest]]
    for name in NAMES:
        assert set(parts[name]) == set(np.flatnonzero(expected == name)), name
        positions = position[parts[name]]
        assert np.all(np.diff(positions) > 0)  # still in time order, as before

    # Nothing newer than a held-out id's latest row reaches training.
    dates = pd.to_datetime(frame["event_date"])
    latest_date = dates.groupby(frame["application_id"]).transform("max").to_numpy()
    train_max = dates.to_numpy()[parts["train"]].max()
    assert train_max <= latest_date[parts["validation"]].min()
    assert latest_date[parts["validation"]].max() <= latest_date[parts["test"]].min()


def test_too_few_rows_of_a_class_still_fails_with_groups(base):
    frame = unique_frame(600, 8, label_rate=0.0)
    rare = pd.DataFrame({**frame.iloc[:1].to_dict("list"), "default": [1]}).iloc[[0] * 60]
    settings = settings_with(base)
    rare["application_id"] = [f"r{i}" for i in range(60)]  # 60 distinct rows of the class: enough for every split
    distinct = pd.concat([frame, rare], ignore_index=True)
    splits.split(distinct, distinct["default"].to_numpy(), settings)
    rare["application_id"] = ["r1"] * 30 + ["r2"] * 30  # the same 60 rows, but two groups for three splits
    grouped = pd.concat([frame, rare], ignore_index=True)
    with pytest.raises(BadInputError, match="too few rows for the splits"):
        splits.split(grouped, grouped["default"].to_numpy(), settings)


def test_a_repeated_id_column_name_is_named_in_the_error(base):
    frame = unique_frame(50, 9)
    frame = pd.concat([frame, frame[["application_id"]]], axis=1)
    with pytest.raises(BadInputError, match="application_id"):
        splits.row_groups(frame, settings_with(base))
