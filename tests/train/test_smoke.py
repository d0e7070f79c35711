"""Smoke test of the train image's environment: XGBoost trains, scores and round-trips a model."""

import numpy as np
import pytest
import xgboost as xgb


def _separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs, far apart: any working booster separates them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 4)) + (y[:, None] * 3.0)
    return x.astype(np.float32), y.astype(np.float32)


@pytest.fixture(scope="module")
def booster():
    x, y = _separable(2000, seed=0)
    dtrain = xgb.DMatrix(x, label=y)
    params = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_depth": 3,
        "eta": 0.3,
        "eval_metric": "auc",
        "nthread": 2,
        "seed": 0,
    }
    return xgb.train(params, dtrain, num_boost_round=10)


def test_xgboost_learns_a_separable_problem(booster):
    from sklearn.metrics import accuracy_score, roc_auc_score

    x, y = _separable(1000, seed=1)
    proba = booster.predict(xgb.DMatrix(x))
    assert proba.shape == (1000,)
    assert roc_auc_score(y, proba) > 0.99
    assert accuracy_score(y, proba > 0.5) > 0.97


def test_xgboost_json_round_trip_keeps_predictions(booster, tmp_path):
    path = tmp_path / "model.json"
    booster.save_model(path)
    assert path.read_text().lstrip().startswith("{")
    loaded = xgb.Booster()
    loaded.load_model(path)
    x, _ = _separable(200, seed=2)
    np.testing.assert_array_equal(booster.predict(xgb.DMatrix(x)), loaded.predict(xgb.DMatrix(x)))


def test_sklearn_api_and_pandas_frame():
    import pandas as pd

    x, y = _separable(500, seed=3)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    clf = xgb.XGBClassifier(n_estimators=5, tree_method="hist", max_depth=2, n_jobs=2)
    clf.fit(frame, y.astype(int))
    assert clf.score(frame, y.astype(int)) > 0.97
    assert list(clf.get_booster().feature_names) == list(frame.columns)


def test_mlflow_skinny_imports():
    import mlflow

    assert mlflow.__version__
    assert callable(mlflow.log_metric)
