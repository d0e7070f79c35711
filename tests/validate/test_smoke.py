"""Smoke test of the validate image's environment: TFDV computes statistics, infers a schema and finds anomalies.

Importing TFDV loads TensorFlow and Apache Beam (about 15 s); the module-scoped fixtures share that cost.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: fewer log lines

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tensorflow_data_validation as tfdv  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def _frame(rows: int = 60, colors=("red", "green", "blue")) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [float(i % 17) + 0.5 for i in range(rows)],
            "count": [i % 5 for i in range(rows)],
            "color": [colors[i % len(colors)] for i in range(rows)],
        }
    )


@pytest.fixture(scope="module")
def stats():
    return tfdv.generate_statistics_from_dataframe(_frame())


@pytest.fixture(scope="module")
def schema(stats):
    return tfdv.infer_schema(stats)


def test_statistics_from_a_dataframe(stats):
    (dataset,) = stats.datasets
    assert dataset.num_examples == 60
    names = {feature.path.step[0] for feature in dataset.features}
    assert names == {"amount", "count", "color"}


def test_inferred_schema_has_the_color_domain(schema):
    assert {feature.name for feature in schema.feature} == {"amount", "count", "color"}
    domain = tfdv.get_domain(schema, "color")
    assert set(domain.value) == {"red", "green", "blue"}


def test_same_statistics_have_no_anomalies(stats, schema):
    anomalies = tfdv.validate_statistics(stats, schema)
    assert dict(anomalies.anomaly_info) == {}


def test_new_category_is_an_anomaly(schema):
    drifted = tfdv.generate_statistics_from_dataframe(_frame(colors=("red", "green", "purple")))
    anomalies = tfdv.validate_statistics(drifted, schema)
    assert set(anomalies.anomaly_info) == {"color"}
    assert "purple" in anomalies.anomaly_info["color"].description


def test_missing_column_is_an_anomaly(schema):
    missing = tfdv.generate_statistics_from_dataframe(_frame().drop(columns=["count"]))
    anomalies = tfdv.validate_statistics(missing, schema)
    assert "count" in anomalies.anomaly_info
    assert "amount" not in anomalies.anomaly_info
