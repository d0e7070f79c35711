"""The rows of each segment ctloop.yaml declares (``segments``): a value of a column, a bin of a numeric column, or a
pair of values of two columns. One definition for every place that judges a segment: validate_segments' metrics
and validate_data's per-segment drift and skew. Pandas and numpy, imported by the modules that use it only."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number

import numpy as np
import pandas as pd

MISSING = "(missing)"
OUT_OF_BINS = "out of bins"
OVERALL = ("overall", "all")


def _number_label(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:g}"


def _value_label(value) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Number) and not isinstance(value, bool):
        return _number_label(value)
    return str(value)


def _sort_key(value) -> tuple:
    """Numbers in numeric order, then everything else by its text: deterministic for mixed columns too."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Number) and not isinstance(value, bool | complex):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _column(frame: pd.DataFrame, column: str, segment: str) -> pd.Series:
    if column not in frame.columns:
        raise ValueError(f"segment {segment!r}: column {column!r} is not in the data")
    return frame[column]


def _value_labels(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """A label per row and the distinct labels in order; missing values last, as "(missing)"."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    unique_labels = [_value_label(v) for v in uniques]
    # Code -1 (missing) picks the last entry.
    per_row = np.array([*unique_labels, MISSING], dtype=object)[codes]
    labels = list(dict.fromkeys(_value_label(v) for v in sorted(uniques, key=_sort_key)))
    if (codes < 0).any():
        labels.append(MISSING)
    return per_row, labels


def _column_masks(frame: pd.DataFrame, name: str, column: str) -> list[tuple[str, str, np.ndarray]]:
    per_row, labels = _value_labels(_column(frame, column, name))
    return [(name, label, per_row == label) for label in labels]


def _bin_masks(
    frame: pd.DataFrame, name: str, column: str, edges: Sequence[float]
) -> list[tuple[str, str, np.ndarray]]:
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"segment {name!r}: bins must be at least two strictly increasing edges, got {edges}")
    values = pd.to_numeric(_column(frame, column, name), errors="raise").to_numpy(dtype=float, na_value=np.nan)
    missing = np.isnan(values)
    out, covered = [], missing.copy()
    # Every bin is reported, even an empty one: an empty band is news, not something to drop.
    for low, high in zip(edges, edges[1:]):
        mask = (values >= low) & (values < high)
        covered |= mask
        out.append((name, f"[{_number_label(low)}, {_number_label(high)})", mask))
    if (~covered).any():
        out.append((name, OUT_OF_BINS, ~covered))
    if missing.any():
        out.append((name, MISSING, missing))
    return out


def _cross_masks(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> list[tuple[str, str, np.ndarray]]:
    if len(columns) < 2:
        raise ValueError(f"segment {name!r}: a cross needs at least two columns")
    per_column = [_value_labels(_column(frame, c, name)) for c in columns]
    rank = [{label: i for i, label in enumerate(labels)} for _, labels in per_column]
    keys = list(zip(*(per_row for per_row, _ in per_column)))
    observed = sorted(set(keys), key=lambda key: tuple(r[part] for r, part in zip(rank, key)))
    joined = np.array([" & ".join(k) for k in keys], dtype=object)
    return [(name, " & ".join(key), joined == " & ".join(key)) for key in observed]


def segment_masks(frame: pd.DataFrame, segments: list[dict]) -> list[tuple[str, str, np.ndarray]]:
    """``(segment name, value label, boolean mask)`` per segment value, after ``("overall", "all", all rows)``.

    Values are ordered naturally (numbers numerically, text alphabetically, bins in edge order), with
    "out of bins" and "(missing)" last; cross values follow the order of their parts.
    """
    out = [(OVERALL[0], OVERALL[1], np.ones(len(frame), dtype=bool))]
    for spec in segments:
        name = spec.get("name")
        if not name:
            raise ValueError(f"segment without a name: {spec}")
        if "cross" in spec and "column" in spec:
            raise ValueError(f"segment {name!r}: give either column or cross, not both")
        if "cross" in spec:
            out += _cross_masks(frame, name, spec["cross"])
        elif "column" in spec and spec.get("bins") is not None:
            out += _bin_masks(frame, name, spec["column"], spec["bins"])
        elif "column" in spec:
            out += _column_masks(frame, name, spec["column"])
        else:
            raise ValueError(f"segment {name!r}: needs a column or a cross")
    return out
