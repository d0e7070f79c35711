"""Per-segment metrics of a binary classifier, with bootstrap intervals and a paired comparison to the champion.

Everything is computed from one weighted core (:func:`_metric_table`): a bootstrap resample is the same rows with
integer weights (how many times each row was drawn), so the rows are sorted by score once per segment and every
resample reuses that order. That keeps 200 resamples over a few dozen segments of a 20k-row span to about a second,
where calling scikit-learn per resample would take minutes. The point estimates use the same core with unit weights
and agree with scikit-learn to floating-point precision (the tests check it).

Conventions, where the usual definitions leave a choice:

- a row is predicted positive when ``score >= threshold``;
- a metric that the data cannot define is ``nan``, never an exception: ROC AUC needs both classes, PR AUC and recall
  need a positive, precision needs a predicted positive, F1 (``2TP / (2TP + FP + FN)``) needs a positive or a
  predicted positive; log loss, Brier score, positive rate and ECE need only one row;
- log loss clips scores to ``[eps, 1 - eps]`` like scikit-learn, so a confident mistake costs ~36, not infinity;
- ECE uses 10 equal-width bins over [0, 1] (the last one closed), weighted by the share of rows in each bin.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from ctloop.config import SEGMENT_METRICS
from ctloop.segments import segment_masks

# Which direction is better, defined once with the settings that name these metrics. positive_rate has none: it
# describes the model's output (and feeds the fairness gap), so gates may bound it but non-inferiority cannot be
# judged on it.
METRICS: dict[str, str] = SEGMENT_METRICS

ECE_BINS = 10

_LINEAR_COLUMNS = 6

# Elements of one (resamples x rows) block: bounds memory at a few tens of MB whatever the segment size.
_BLOCK_ELEMENTS = 1_000_000


# ---------------------------------------------------------------------------------------------------------------------
# The weighted core


def _check_inputs(y, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float).ravel()
    score = np.asarray(score, dtype=float).ravel()
    if y.shape != score.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} != {score.size}")
    if y.size and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if score.size and not (np.isfinite(score).all() and score.min() >= 0.0 and score.max() <= 1.0):
        raise ValueError("scores must be probabilities in [0, 1]")
    return y, score


class _Prepared:
    """What does not change between resamples of one model on one segment: the score order, ties, bins, losses."""

    def __init__(self, y: np.ndarray, score: np.ndarray, threshold: float):
        self.n = y.size
        self.y = y
        self._rank(y, score)
        self.linear = self._linear_terms(y, score, threshold)

    @staticmethod
    def _linear_terms(y: np.ndarray, score: np.ndarray, threshold: float) -> np.ndarray:
        """Per-row terms whose weighted sums give every metric but the ranking ones: one matrix product for all.

        Columns: total, positive, predicted positive, true positive, log loss, squared error, then the residual
        (label - score) in each ECE bin.
        """
        predicted = (score >= threshold).astype(float)
        eps = np.finfo(float).eps
        clipped = np.clip(score, eps, 1 - eps)
        bins = np.minimum((score * ECE_BINS).astype(int), ECE_BINS - 1)
        terms = np.zeros((y.size, _LINEAR_COLUMNS + ECE_BINS))
        terms[:, 0] = 1.0
        terms[:, 1] = y
        terms[:, 2] = predicted
        terms[:, 3] = y * predicted
        terms[:, 4] = -(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))
        terms[:, 5] = (score - y) ** 2
        terms[np.arange(y.size), _LINEAR_COLUMNS + bins] = y - score
        return terms

    def _rank(self, y: np.ndarray, score: np.ndarray) -> None:
        """Positives and negatives each in descending score order, and where each one sits among the other class.

        With these, a resample's ranking metrics need one cumulative sum per class and a few gathers, instead of
        a sort per resample.
        """
        order = np.argsort(-score, kind="stable")
        self.pos_cols = order[y[order] == 1]
        self.neg_cols = order[y[order] == 0]
        pos_desc, neg_desc = -score[self.pos_cols], -score[self.neg_cols]  # ascending, for searchsorted
        # Positives strictly above each negative, and above or tied with it: a tie counts half, as in scikit-learn.
        self.pos_above_neg = np.searchsorted(pos_desc, neg_desc, side="left")
        self.pos_tied_neg = np.searchsorted(pos_desc, neg_desc, side="right")
        self.cross_ties = not np.array_equal(self.pos_above_neg, self.pos_tied_neg)
        # The precision of the threshold at each positive's score (ties included): TP and FP counts at that step.
        self.pos_at_pos = np.searchsorted(pos_desc, pos_desc, side="right")
        self.neg_at_pos = np.searchsorted(neg_desc, pos_desc, side="right")


def _divide(num: np.ndarray, den: np.ndarray, *, undefined: float = np.nan) -> np.ndarray:
    """num / den, ``undefined`` where den is 0: the undefined cases are exactly the empty denominators."""
    out = np.full(np.broadcast(num, den).shape, undefined)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _cumulative(weights: np.ndarray) -> np.ndarray:
    """Running totals with a leading 0 column, so that index k holds the total of the first k entries."""
    out = np.zeros((weights.shape[0], weights.shape[1] + 1))
    np.cumsum(weights, axis=1, out=out[:, 1:])
    return out


def _ranking_metrics(prep: _Prepared, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC and average precision for each row of weights (resamples x rows, in the original row order)."""
    w_pos, w_neg = weights[:, prep.pos_cols], weights[:, prep.neg_cols]
    cum_pos, cum_neg = _cumulative(w_pos), _cumulative(w_neg)
    positives, negatives = cum_pos[:, -1], cum_neg[:, -1]
    # Mann-Whitney: each negative counts the positives ranked above it (and half of those tied with it).
    above = cum_pos[:, prep.pos_above_neg]
    if prep.cross_ties:
        above = 0.5 * (above + cum_pos[:, prep.pos_tied_neg])
    auc = _divide(np.einsum("ij,ij->i", w_neg, above), positives * negatives)
    # scikit-learn's step-wise AP: every positive adds its share of recall times the precision at its own score.
    true_pos = cum_pos[:, prep.pos_at_pos]
    precision = _divide(true_pos, true_pos + cum_neg[:, prep.neg_at_pos], undefined=0.0)
    ap = _divide(np.einsum("ij,ij->i", w_pos, precision), positives)
    return auc, ap


def _metric_table(prep: _Prepared, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of METRICS (plus n and positives) for each row of weights: one value per resample."""
    sums = weights @ prep.linear
    total, positives, predicted, hits, loss, squared = sums[:, :_LINEAR_COLUMNS].T
    auc, ap = _ranking_metrics(prep, weights)
    return {
        "roc_auc": auc,
        "pr_auc": ap,
        "log_loss": _divide(loss, total),
        "brier": _divide(squared, total),
        "precision": _divide(hits, predicted),
        "recall": _divide(hits, positives),
        "f1": _divide(2 * hits, predicted + positives),
        "positive_rate": _divide(predicted, total),
        # Within a bin, |sum(label - score)| / total = bin share x |mean label - mean score|.
        "ece": _divide(np.abs(sums[:, _LINEAR_COLUMNS:]).sum(axis=1), total),
        "n": total,
        "positives": positives,
    }


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """All of METRICS on the given rows, plus ``n`` and ``positives`` (ints); undefined metrics are nan."""
    y, score = _check_inputs(y, score)
    table = _metric_table(_Prepared(y, score, threshold), np.ones((1, y.size)))
    out: dict[str, float] = {name: float(table[name][0]) for name in METRICS}
    out["n"] = int(y.size)
    out["positives"] = int(y.sum())
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Bootstrap


def _resample_weights(rng: np.random.Generator, resamples: int, n: int) -> np.ndarray:
    """How many times each row is drawn in each resample: the same as indexing rows drawn with replacement."""
    drawn = rng.integers(0, n, size=(resamples, n))
    drawn += np.arange(resamples)[:, None] * n
    return np.bincount(drawn.ravel(), minlength=resamples * n).reshape(resamples, n).astype(float)


def _percentile_interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    defined = values[~np.isnan(values)]
    # A metric defined on a minority of resamples would get an interval from a biased subset of them.
    if values.size == 0 or defined.size * 2 < values.size:
        return (math.nan, math.nan)
    low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    return (float(low), float(high))


def bootstrap_intervals(
    y,
    score,
    threshold,
    *,
    reference_score=None,
    resamples: int,
    seed: int,
    alpha=0.05,
) -> dict:
    """Percentile bootstrap intervals ``{metric: (low, high)}`` for every metric in METRICS.

    With ``reference_score`` (the champion's scores on the same rows), also ``{"diff": {metric: (low, high)}}`` for
    candidate - champion, both computed on the same resampled rows: the pairing removes the row-to-row variance the
    two models share, so the difference interval is much narrower than the two separate intervals suggest.
    """
    y, score = _check_inputs(y, score)
    paired = reference_score is not None
    if paired:
        _, reference_score = _check_inputs(y, reference_score)
    n = y.size
    if resamples <= 0 or n == 0:
        empty = {name: (math.nan, math.nan) for name in METRICS}
        return {**empty, "diff": dict(empty)} if paired else empty

    rng = np.random.default_rng(seed)
    candidate = _Prepared(y, score, threshold)
    champion = _Prepared(y, reference_score, threshold) if paired else None
    values = {name: np.empty(resamples) for name in METRICS}
    diffs = {name: np.empty(resamples) for name in METRICS}
    block = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, resamples, block):
        stop = min(start + block, resamples)
        weights = _resample_weights(rng, stop - start, n)
        table = _metric_table(candidate, weights)
        reference = _metric_table(champion, weights) if paired else None
        for name in METRICS:
            values[name][start:stop] = table[name]
            if paired:
                diffs[name][start:stop] = table[name] - reference[name]

    out: dict = {name: _percentile_interval(values[name], alpha) for name in METRICS}
    if paired:
        out["diff"] = {name: _percentile_interval(diffs[name], alpha) for name in METRICS}
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation


def _segment_seed(seed: int, segment: str, value: str) -> int:
    """A stream per segment value: adding a segment to the config does not move the others' intervals."""
    return zlib.crc32(f"{segment}\x00{value}".encode()) ^ (seed * 0x9E3779B1 & 0xFFFFFFFF)


def evaluate(
    frame,
    y,
    score,
    threshold,
    segments,
    *,
    champion_score=None,
    resamples=200,
    seed=0,
    min_rows=200,
) -> list[dict]:
    """One result per (segment, value); see the module docstring for the metric conventions.

    ``y``, ``score`` and ``champion_score`` are aligned with ``frame``'s rows by position. A segment value with fewer
    than ``min_rows`` rows or a single class is reported with status "insufficient data": point metrics where
    defined, no intervals.
    """
    y, score = _check_inputs(y, score)
    if len(frame) != y.size:
        raise ValueError(f"frame has {len(frame)} rows but there are {y.size} labels")
    if champion_score is not None:
        _, champion_score = _check_inputs(y, champion_score)
    rows = []
    for segment, value, mask in segment_masks(frame, segments):
        rows.append(
            _evaluate_one(
                segment,
                value,
                y[mask],
                score[mask],
                None if champion_score is None else champion_score[mask],
                threshold=threshold,
                resamples=resamples,
                seed=_segment_seed(seed, segment, value),
                min_rows=min_rows,
            )
        )
    return rows


def _evaluate_one(segment, value, y, score, champion, *, threshold, resamples, seed, min_rows) -> dict:
    point = binary_metrics(y, score, threshold)
    n, positives = point["n"], point["positives"]
    enough = n >= min_rows and 0 < positives < n
    row = {
        "segment": segment,
        "value": value,
        "n": n,
        "positives": positives,
        "status": "ok" if enough else "insufficient data",
        "metrics": point,
        "intervals": None,
        "champion": None if champion is None else binary_metrics(y, champion, threshold),
        "diff_intervals": None,
        "champion_intervals": None,
    }
    if enough:
        intervals = bootstrap_intervals(y, score, threshold, reference_score=champion, resamples=resamples, seed=seed)
        row["diff_intervals"] = intervals.pop("diff", None)
        row["intervals"] = intervals
        if champion is not None:
            # The same seed draws the same resampled rows: the champion's own interval on this span, for the sanity
            # check against the interval recorded at its validation.
            row["champion_intervals"] = bootstrap_intervals(y, champion, threshold, resamples=resamples, seed=seed)
    return row
