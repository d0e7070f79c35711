"""ctloop.local.demo_data: determinism, shape, a learnable label, and that each drift kind is what it claims."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ctloop.errors import BadInputError
from ctloop.local import demo_data

ROWS = 20_000
NUMERIC = [f["name"] for f in demo_data.generate(1_000, 0)[1]["features"] if f["type"] == "numeric"]


@pytest.fixture(scope="module")
def spans() -> dict:
    """No-drift spans of seeds 1 and 2, and each drift kind at seed 2, generated once for the module."""
    out = {"base1": demo_data.generate(ROWS, 1), "base2": demo_data.generate(ROWS, 2)}
    for kind in demo_data.DRIFT_KINDS:
        out[kind] = demo_data.generate(ROWS, 2, drift=kind)
    return out


def design(frame: pd.DataFrame) -> pd.DataFrame:
    x = frame[NUMERIC].astype(float)
    x["income"] = np.log(x["income"])
    x["loan_amount"] = np.log(x["loan_amount"])
    categorical = pd.get_dummies(frame[list(demo_data.CATEGORICAL)], dtype=float)
    return pd.concat([x, categorical], axis=1)


def fit(frame: pd.DataFrame):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(design(frame), frame["default"])


def predict(model, frame: pd.DataFrame) -> np.ndarray:
    x = design(frame).reindex(columns=model.feature_names_in_, fill_value=0.0)
    return model.predict_proba(x)[:, 1]


@pytest.fixture(scope="module")
def base_model(spans):
    return fit(spans["base1"][0])


# --- determinism ---


def test_same_seed_gives_the_same_frame_and_manifest():
    a, manifest_a = demo_data.generate(5_000, 7, drift="covariate")
    b, manifest_b = demo_data.generate(5_000, 7, drift="covariate")
    pd.testing.assert_frame_equal(a, b)
    assert manifest_a == manifest_b


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_arguments_give_byte_identical_files(tmp_path: Path, fmt: str):
    first = demo_data.write_span(str(tmp_path / "a"), 5_000, 11, drift="new-category", fmt=fmt)
    second = demo_data.write_span(str(tmp_path / "b"), 5_000, 11, drift="new-category", fmt=fmt)
    assert first == second
    for name in (f"data.{fmt}", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_different_seeds_differ(spans):
    (a, manifest_a), (b, manifest_b) = spans["base1"], spans["base2"]
    assert manifest_a["seed"] != manifest_b["seed"]
    for column in ("income", "age", "region", "default"):
        assert not a[column].equals(b[column]), column
    assert set(a["application_id"]).isdisjoint(b["application_id"])


# --- shape, dates, label ---


def test_columns_rows_and_date_range():
    start = datetime.date(2024, 3, 1)
    frame, manifest = demo_data.generate(5_000, 3, start=start, days=10)
    assert len(frame) == 5_000 == manifest["rows"]
    assert list(frame.columns) == list(demo_data.COLUMNS)
    assert frame["application_id"].is_unique
    assert frame["event_date"].min() >= pd.Timestamp(start)
    assert frame["event_date"].max() <= pd.Timestamp(2024, 3, 10)
    assert frame["event_date"].dt.normalize().equals(frame["event_date"])
    assert frame["event_date"].nunique() == 10
    assert frame["event_date"].is_monotonic_increasing
    assert (manifest["start"], manifest["end"]) == ("2024-03-01", "2024-03-10")


def test_default_start_is_fixed_and_iso_string_is_accepted():
    frame, manifest = demo_data.generate(1_000, 3)
    assert manifest["start"] == "2024-01-01" and manifest["end"] == "2024-01-30"
    other, _ = demo_data.generate(1_000, 3, start="2024-01-01")
    pd.testing.assert_frame_equal(frame, other)


def test_value_ranges_and_segments(spans):
    frame, manifest = spans["base1"]
    assert frame["age"].between(18, 80).all()
    assert frame["utilization"].between(0, 1).all()
    assert (frame["income"] > 0).all() and (frame["loan_amount"] > 0).all()
    assert set(frame["loan_term_months"]) <= {12, 24, 36, 60}
    assert (frame["credit_history_months"] <= (frame["age"] - 18) * 12).all()
    assert set(frame["region"]) == {"north", "south", "east", "west", "central"}
    assert set(frame["product"]) == {"personal", "auto", "mortgage", "card"}
    assert set(frame["channel"]) == {"branch", "online", "broker"}
    assert set(frame["default"]) == {0, 1}
    bands = pd.cut(frame["age"], [17, 25, 35, 50, 64, 200], labels=list(demo_data.AGE_BANDS)).astype(str)
    assert (bands == frame["age_band"]).all()
    assert manifest["segments"] == ["region", "age_band", "product"]
    names = {f["name"]: f["type"] for f in manifest["features"]}
    assert names["income"] == "numeric" and names["region"] == "categorical"
    assert len(names) == 14 and not {
        "default",
        "event_date",
        "application_id",
        "age_band",
    } & set(names)


def test_base_rate_is_in_range(spans):
    frame, manifest = spans["base1"]
    assert 0.10 <= frame["default"].mean() <= 0.20
    assert manifest["positive_rate"] == pytest.approx(frame["default"].mean(), abs=1e-6)
    assert manifest["drift"] == {"kind": None, "features": [], "details": {}}


def test_a_model_learns_the_label_relationship(spans, base_model):
    held_out = spans["base2"][0]
    auc = roc_auc_score(held_out["default"], predict(base_model, held_out))
    assert 0.75 < auc < 0.9


# --- drift ---


def test_covariate_drift_moves_the_named_features_only(spans):
    base, _ = spans["base1"]
    drifted, manifest = spans["covariate"]
    assert manifest["drift"]["kind"] == "covariate"
    named = set(manifest["drift"]["features"])
    assert named == {"income", "utilization", "region"}
    for column in NUMERIC:
        statistic = ks_2samp(base[column], drifted[column]).statistic
        if column in named:
            assert statistic > 0.1, (column, statistic)
        else:
            assert statistic < 0.05, (column, statistic)
    mix_base = base["region"].value_counts(normalize=True)
    mix_drifted = drifted["region"].value_counts(normalize=True)
    assert (mix_drifted - mix_base).abs().sum() / 2 > 0.2  # total variation distance
    for column in set(demo_data.CATEGORICAL) - named:
        shares = base[column].value_counts(normalize=True) - drifted[column].value_counts(normalize=True)
        assert shares.abs().sum() / 2 < 0.03, column


def test_covariate_drift_keeps_the_label_relationship(spans, base_model):
    drifted, _ = spans["covariate"]
    predicted = predict(base_model, drifted)
    # P(default | features) is unchanged: a model from the no-drift span stays calibrated and as good.
    assert predicted.mean() == pytest.approx(drifted["default"].mean(), abs=0.02)
    assert roc_auc_score(drifted["default"], predicted) > 0.75


def test_covariate_drift_leaves_other_columns_of_the_same_seed_identical(spans):
    base, _ = spans["base2"]
    drifted, manifest = spans["covariate"]
    untouched = set(base.columns) - set(manifest["drift"]["features"]) - {"default"}
    pd.testing.assert_frame_equal(base[sorted(untouched)], drifted[sorted(untouched)])


def test_concept_drift_keeps_features_and_changes_labels(spans, base_model):
    base, base_manifest = spans["base2"]
    drifted, manifest = spans["concept"]
    assert manifest["drift"]["kind"] == "concept"
    assert set(manifest["drift"]["features"]) == set(manifest["drift"]["details"]["coefficients"])
    features = [c for c in base.columns if c != "default"]
    pd.testing.assert_frame_equal(base[features], drifted[features])
    assert (base["default"] != drifted["default"]).mean() > 0.05
    assert 0.10 <= drifted["default"].mean() <= 0.20
    assert manifest["positive_rate"] != base_manifest["positive_rate"]
    # The old model no longer ranks well; a model refit on the drifted span does.
    assert roc_auc_score(drifted["default"], predict(base_model, drifted)) < 0.65
    half = len(drifted) // 2
    refit = fit(drifted.iloc[:half])
    assert roc_auc_score(drifted["default"].iloc[half:], predict(refit, drifted.iloc[half:])) > 0.7


def test_new_category_adds_an_unseen_level(spans):
    drifted, manifest = spans["new-category"]
    details = manifest["drift"]["details"]
    assert manifest["drift"]["features"] == ["channel"]
    level = details["new_level"]
    for key in ("base1", "base2"):
        assert level not in set(spans[key][0]["channel"])
    assert set(drifted["channel"]) == set(details["known_levels"]) | {level}
    assert (drifted["channel"] == level).mean() == pytest.approx(details["share"], abs=0.02)
    base, _ = spans["base2"]
    others = [c for c in base.columns if c != "channel"]
    pd.testing.assert_frame_equal(base[others], drifted[others])


# --- files and manifest ---


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_manifest_matches_the_file_and_the_file_round_trips(tmp_path: Path, fmt: str):
    manifest = demo_data.write_span(str(tmp_path), 5_000, 5, start=datetime.date(2024, 2, 1), fmt=fmt)
    data = (tmp_path / f"data.{fmt}").read_bytes()
    assert manifest["file"] == f"data.{fmt}" and manifest["format"] == fmt
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert manifest["generator"] == "ctloop.local.demo_data" and manifest["version"] == 1 and manifest["seed"] == 5

    if fmt == "parquet":
        back = pd.read_parquet(io.BytesIO(data))
    else:
        back = pd.read_csv(io.BytesIO(data), parse_dates=["event_date"])
    expected, _ = demo_data.generate(5_000, 5, start=datetime.date(2024, 2, 1))
    assert len(back) == manifest["rows"]
    assert back["default"].mean() == pytest.approx(manifest["positive_rate"], abs=1e-6)
    back["event_date"] = back["event_date"].astype("datetime64[ms]")
    pd.testing.assert_frame_equal(back, expected, check_dtype=False, check_exact=True)


def test_write_span_accepts_a_file_uri(tmp_path: Path):
    manifest = demo_data.write_span(tmp_path.as_uri() + "/span", 1_000, 1, fmt="csv")
    assert (tmp_path / "span" / "data.csv").exists()
    assert json.loads((tmp_path / "span" / "manifest.json").read_text())["sha256"] == manifest["sha256"]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"rows": 5}, "rows"),
        ({"rows": 1_000_001}, "rows"),
        ({"rows": 2_000.0}, "rows"),
        ({"rows": True}, "rows"),
        ({"seed": -1}, "seed"),
        ({"seed": "1"}, "seed"),
        ({"start": "yesterday"}, "start"),
        ({"start": 20240101}, "start"),
        ({"days": 0}, "days"),
        ({"drift": "label"}, "drift"),
        ({"fmt": "json"}, "fmt"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(tmp_path: Path, kwargs: dict, argument: str):
    arguments = {"rows": 1_000, "seed": 1, **kwargs}
    with pytest.raises(BadInputError, match=f"^{argument}: "):
        demo_data.write_span(str(tmp_path), **arguments)
    assert not any(tmp_path.iterdir())
    if "fmt" not in kwargs:
        with pytest.raises(BadInputError, match=f"^{argument}: "):
            demo_data.generate(**arguments)


def test_a_million_rows_is_fast(tmp_path: Path):
    began = time.perf_counter()
    manifest = demo_data.write_span(str(tmp_path), 1_000_000, 3)
    elapsed = time.perf_counter() - began
    assert manifest["rows"] == 1_000_000
    assert pd.read_parquet(tmp_path / "data.parquet", columns=["application_id"])["application_id"].is_unique
    assert elapsed < 15, elapsed
