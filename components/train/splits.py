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
    """Row positions of each split. Deterministic for a given seed."""
    shares = settings.model.split
    n = len(frame)
    if settings.model.split_by == "time":
        column = settings.data.timestamp
        if not column or column not in frame.columns:
            raise BadInputError("model.split_by is time but data.timestamp names no column of the data")
        order = np.argsort(pd.to_datetime(frame[column]).to_numpy(), kind="stable")
        cut1 = int(round(n * shares["train"]))
        cut2 = cut1 + int(round(n * shares["validation"]))
        parts = {"train": order[:cut1], "validation": order[cut1:cut2], "test": order[cut2:]}
    else:
        rng = np.random.default_rng(settings.model.seed)
        stratify = settings.data.task.value != "regression"
        groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(n)]
        parts = {"train": [], "validation": [], "test": []}
        for rows in groups:  # each class split by the same shares keeps the class balance in every split
            rows = rng.permutation(rows)
            cut1 = int(round(len(rows) * shares["train"]))
            cut2 = cut1 + int(round(len(rows) * shares["validation"]))
            parts["train"].append(rows[:cut1])
            parts["validation"].append(rows[cut1:cut2])
            parts["test"].append(rows[cut2:])
        parts = {k: np.sort(np.concatenate(v)) for k, v in parts.items()}
    _check(parts, y, settings)
    return parts


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
