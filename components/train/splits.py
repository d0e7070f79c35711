"""Train, validation and test splits: stratified on the label, or by time so no future row reaches training."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctloop.errors import BadInputError

MIN_ROWS_PER_CLASS = 5  # in every split: fewer make early stopping and the test metrics meaningless


def labels(frame: pd.DataFrame, settings) -> tuple[np.ndarray, list]:
    """The label as the model's target, and the class names (empty for regression)."""
    name, task = settings.data.label, settings.data.task.value
    if name not in frame.columns:
        raise BadInputError(f"the label column {name!r} (data.label) is missing")
    y = frame[name]
    if y.isna().any():
        raise BadInputError(f"the label column {name!r} has {int(y.isna().sum())} missing values")
    if task == "regression":
        try:
            return pd.to_numeric(y).to_numpy(dtype=float), []
        except (ValueError, TypeError):
            raise BadInputError(f"the label column {name!r} is not numeric, as regression needs") from None
    classes = sorted(y.unique().tolist(), key=str)
    if len(classes) < 2:
        raise BadInputError(f"the label column {name!r} has a single class ({classes[0]!r}): nothing to learn")
    if task == "binary_classification":
        if len(classes) > 2 or not set(classes) <= {0, 1}:
            raise BadInputError(f"binary classification needs labels 0 and 1 in {name!r}, found {classes[:5]}")
        return y.astype(int).to_numpy(), [0, 1]
    return y.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=int), classes


def split(frame: pd.DataFrame, y: np.ndarray, settings) -> dict[str, np.ndarray]:
    """Row positions of each split. Deterministic for a given seed.

    Rows that share a ``data.id_column`` value, and rows that are exact duplicates, go wholly to one split: a copy in
    training and another in the test split would inflate the test metrics.
    """
    shares = settings.model.split
    n = len(frame)
    groups = row_groups(frame, settings)
    if settings.model.split_by == "time":
        column = settings.data.timestamp
        if not column or column not in frame.columns:
            raise BadInputError("model.split_by is time but data.timestamp names no column of the data")
        order = np.argsort(pd.to_datetime(frame[column]).to_numpy(), kind="stable")
        cut1 = int(round(n * shares["train"]))
        cut2 = cut1 + int(round(n * shares["validation"]))
        # A group goes to the split of its latest row, not its earliest: that only moves older rows out of training
        # into a later split, never a later row into training, so training still holds nothing newer than what is
        # held out. The held-out splits grow by those older rows instead.
        position = np.empty(n, dtype=int)
        position[order] = np.arange(n)
        latest = np.full(int(groups.max(initial=-1)) + 1, -1)
        np.maximum.at(latest, groups, position)
        side = np.searchsorted([cut1, cut2], latest, side="right")[groups[order]]
        parts = {"train": order[side == 0], "validation": order[side == 1], "test": order[side == 2]}
    elif len(np.unique(groups)) == n:  # nothing repeats: today's splits exactly, trained models and caches rely on them
        rng = np.random.default_rng(settings.model.seed)
        stratify = settings.data.task.value != "regression"
        classes = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(n)]
        parts = {"train": [], "validation": [], "test": []}
        for rows in classes:  # each class split by the same shares keeps the class balance in every split
            rows = rng.permutation(rows)
            cut1 = int(round(len(rows) * shares["train"]))
            cut2 = cut1 + int(round(len(rows) * shares["validation"]))
            parts["train"].append(rows[:cut1])
            parts["validation"].append(rows[cut1:cut2])
            parts["test"].append(rows[cut2:])
        parts = {k: np.sort(np.concatenate(v)) for k, v in parts.items()}
    else:
        parts = _stratified_groups(groups, y, settings)
    _check(parts, y, settings)
    return parts


def row_groups(frame: pd.DataFrame, settings) -> np.ndarray:
    """A group number for each row, numbered by first appearance: rows sharing a data.id_column value are one group,
    rows that are exact duplicates over all columns (missing values equal) are one group."""
    n = len(frame)
    if n == 0 or frame.shape[1] == 0:
        return np.arange(n)
    # groupby, not a row hash: it takes NaN as equal to NaN and -0.0 as equal to 0.0, as duplicates must.
    columns = [frame.iloc[:, i] for i in range(frame.shape[1])]  # by position: column names may repeat
    groups = frame.groupby(columns, dropna=False, sort=False, observed=True).ngroup().to_numpy()
    column = settings.data.id_column
    if column and column in frame.columns:
        ids = frame[column]
        if isinstance(ids, pd.DataFrame):
            raise BadInputError(f"the id column {column!r} (data.id_column) appears {ids.shape[1]} times in the data")
        by_id = pd.factorize(ids)[0]
        # A missing id says nothing about identity: such a row groups only with its exact duplicates. Those share no
        # non-missing id, so no row is in both kinds of group and the offset keeps their numbers apart.
        groups = np.where(by_id >= 0, by_id, by_id.max(initial=-1) + 1 + groups)
    return pd.factorize(groups)[0]


def _stratified_groups(groups: np.ndarray, y: np.ndarray, settings) -> dict[str, np.ndarray]:
    """Random splits of whole groups, stratified on the label of each group's first row, by the shares in rows."""
    shares = settings.model.split
    first = np.unique(groups, return_index=True)[1]  # groups are numbered 0..k-1 by first appearance
    sizes = np.bincount(groups)
    strata = y[first] if settings.data.task.value != "regression" else np.zeros(len(first), dtype=int)
    rng = np.random.default_rng(settings.model.seed)
    side = np.empty(len(first), dtype=int)
    for label in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == label))
        ends = np.cumsum(sizes[members])
        cut1 = int(round(ends[-1] * shares["train"]))
        cut2 = cut1 + int(round(ends[-1] * shares["validation"]))
        # Laid end to end in random order, a group goes where its middle row falls: each cut misses its row count by
        # at most half the group that straddles it. With single-row groups this is today's cut.
        side[members] = np.searchsorted([cut1, cut2], ends - sizes[members] / 2, side="right")
    rows = side[groups]
    return {name: np.flatnonzero(rows == i) for i, name in enumerate(("train", "validation", "test"))}


def _check(parts: dict[str, np.ndarray], y: np.ndarray, settings) -> None:
    for name, rows in parts.items():
        if settings.data.task.value == "regression":
            if len(rows) < MIN_ROWS_PER_CLASS:
                raise BadInputError(f"too few rows for the splits: {name} has {len(rows)}")
            continue
        counts = np.bincount(y[rows], minlength=int(y.max()) + 1)
        if counts.min() < MIN_ROWS_PER_CLASS:
            raise BadInputError(
                f"too few rows for the splits: the {name} split has {counts.min()} row(s) of a class "
                f"(at least {MIN_ROWS_PER_CLASS} each are needed); add data or change model.split"
            )
