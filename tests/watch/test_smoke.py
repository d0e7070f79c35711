"""Smoke test of the watch image's environment: alibi-detect 0.11.4 detects drift on pydantic 1.10."""

import numpy as np
import pydantic
import pytest


@pytest.fixture(scope="module")
def detector():
    from alibi_detect.cd import TabularDrift

    x_ref = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    # An empty categories_per_feature: every column is numerical (KS test per feature).
    return TabularDrift(x_ref, p_val=0.05, categories_per_feature={})


def test_tabular_drift_flags_a_shifted_sample(detector):
    x = np.random.default_rng(1).normal(loc=1.0, size=(300, 3)).astype(np.float32)
    preds = detector.predict(x)
    assert preds["data"]["is_drift"] == 1
    assert preds["meta"]["name"] == "TabularDrift"


def test_tabular_drift_passes_a_same_distribution_sample(detector):
    x = np.random.default_rng(2).normal(size=(300, 3)).astype(np.float32)
    preds = detector.predict(x)
    assert preds["data"]["is_drift"] == 0


def test_pydantic_is_1_10_with_the_v1_namespace():
    assert pydantic.VERSION.startswith("1.10")
    from pydantic.v1 import BaseModel

    class Window(BaseModel):
        size: int

    assert Window(size="5").size == 5


def test_mlflow_and_prometheus_client_import():
    import mlflow
    import prometheus_client

    assert mlflow.__version__
    assert prometheus_client.Counter
