"""bench/blessing.py: its simulated test splits hold what it says they hold (checked with scikit-learn), and its
runs of the real evaluation and gates refuse a far worse candidate and bless an equal one where the split is large
enough for the margin, on fewer runs than `make bench-blessing`."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # a script beside common.py, not a package
blessing = importlib.import_module("blessing")


def test_the_simulated_split_has_the_asked_roc_auc_per_value_and_calibrated_scores():
    aucs = blessing.candidate_aucs("worse_2x_smallest", 0.05)
    assert aucs == pytest.approx({"a": 0.8, "b": 0.8, "c": 0.8, "d": 0.7})
    frame, y, candidate, champion = blessing.draw(200_000, aucs, seed=3)
    assert y.mean() == pytest.approx(blessing.BASE_RATE, abs=0.005)
    for value, share in blessing.SHARES.items():
        rows = (frame["region"] == value).to_numpy()
        assert rows.mean() == pytest.approx(share, abs=0.005)
        assert roc_auc_score(y[rows], candidate[rows]) == pytest.approx(aucs[value], abs=0.01)
        assert roc_auc_score(y[rows], champion[rows]) == pytest.approx(blessing.CHAMPION_AUC, abs=0.01)
    # calibrated: in each score decile, the share of positives is the mean score
    for low in np.arange(0.0, 1.0, 0.1):
        inside = (candidate >= low) & (candidate < low + 0.1)
        if inside.sum() > 2000:
            assert y[inside].mean() == pytest.approx(candidate[inside].mean(), abs=0.02)


def test_a_candidate_far_worse_everywhere_is_refused_on_non_inferiority_every_time():
    cell = blessing.run_cell(("ctloop.yaml", 5_000, "worse_2x_everywhere", 4))
    assert cell["blessed"] == 0 and cell["wrong"] == 0
    assert cell["failed_checks"].get("non_inferiority") == 4


def test_an_equal_candidate_is_blessed_when_the_split_is_large_enough_for_the_margin():
    # At 60,000 rows the smallest value holds 6,000, where the lower bound of two equal models' paired ROC AUC
    # difference lies near -0.01: inside the default margin of 0.02 in every value.
    cell = blessing.run_cell(("package defaults", 60_000, "equal", 1))
    assert cell["blessed"] == 1 and cell["wrong"] == 0 and cell["failed_checks"] == {}
