"""train in the train environment: splits, categorical encoding, early stopping, outputs, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop import config, model_format
from ctloop.components.train import executor, splits
from ctloop.errors import BadInputError
from ctloop.local import demo_data

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def settings():
    return config.load(ROOT / "ctloop.yaml", environ={})


@pytest.fixture(scope="module")
def span(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("span") / "s")
    demo_data.write_span(out, rows=8_000, seed=5, start="2026-01-01")
    return out


@pytest.fixture(scope="module")
def trained(settings, span):
    return executor.train(executor.Request(span, settings))


def with_changes(settings, **model_changes):
    raw = json.loads(settings.json())
    raw["model"].update(model_changes)
    return config.parse(raw, environ={})


def test_learns_the_known_relationship(trained):
    assert trained.metrics["roc_auc"] > 0.75  # the generator's label model allows about 0.8
    assert 0 < trained.model.metadata["best_iteration"] < 400  # early stopping stopped it
    assert trained.validation_metric == pytest.approx(trained.model.metadata["validation_metric"]["value"])


def test_splits_are_stratified_disjoint_and_deterministic(settings, trained):
    parts = trained.parts
    y = trained.frame["default"].to_numpy()
    all_rows = np.concatenate(list(parts.values()))
    assert len(all_rows) == len(np.unique(all_rows)) == len(y)
    rates = {name: y[rows].mean() for name, rows in parts.items()}
    assert max(rates.values()) - min(rates.values()) < 0.01, rates
    again = splits.split(trained.frame, y, settings)
    assert all(np.array_equal(again[k], parts[k]) for k in parts)


def test_same_seed_gives_the_same_model(settings, span, trained):
    again = executor.train(executor.Request(span, settings))
    assert bytes(again.model.booster.save_raw("json")) == bytes(trained.model.booster.save_raw("json"))


def test_time_split_keeps_the_future_out_of_training(settings, span):
    result = executor.train(executor.Request(span, with_changes(settings, split_by="time")))
    dates = pd.to_datetime(result.frame["event_date"]).to_numpy()
    assert dates[result.parts["train"]].max() <= dates[result.parts["validation"]].min()
    assert dates[result.parts["validation"]].max() <= dates[result.parts["test"]].min()


def test_categories_are_fixed_and_saved_with_the_model(trained, tmp_path):
    spec = trained.model.spec
    channel = next(f for f in spec["features"] if f["name"] == "channel")
    assert channel["categories"] == ["branch", "broker", "online"]  # sorted levels of the training split
    model_format.write(str(tmp_path), trained.model.booster, spec, trained.model.policy, trained.model.metadata)
    loaded = model_format.load(str(tmp_path))
    frame = trained.frame.iloc[trained.parts["test"]]
    assert np.allclose(loaded.predict(frame), trained.test_scores)
    # a category never seen in training becomes missing, never another category's code
    unseen = frame.head(50).copy()
    unseen["channel"] = "marketplace"
    missing = unseen.copy()
    missing["channel"] = None
    assert np.allclose(loaded.predict(unseen), loaded.predict(missing))


def test_schema_domains_fix_the_categories(settings, span, tmp_path):
    schema = {"feature": [{"name": "channel", "stringDomain": {"value": ["online", "branch", "broker", "agent"]}}]}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    result = executor.train(executor.Request(span, settings, schema_json=str(tmp_path / "schema.json")))
    channel = next(f for f in result.model.spec["features"] if f["name"] == "channel")
    assert channel["categories"] == ["online", "branch", "broker", "agent"]


def test_trial_parameters_override_the_config(settings, span):
    result = executor.train(executor.Request(span, settings, params={"max_depth": 2, "eta": 0.3}))
    assert result.params["max_depth"] == 2 and result.params["eta"] == 0.3
    assert result.params["tree_method"] == "hist" and result.params["nthread"] >= 1
    trees = json.loads(bytes(result.model.booster.save_raw("json")))["learner"]["gradient_booster"]["model"]["trees"]

    def depth(tree, node=0) -> int:
        left, right = tree["left_children"][node], tree["right_children"][node]
        return 0 if left == -1 else 1 + max(depth(tree, left), depth(tree, right))

    assert trees and max(depth(t) for t in trees) == 2  # the trial's max_depth, not the config's 5


def test_reference_sample_is_stratified_and_scored(settings, trained):
    ref = trained.reference
    assert len(ref) == pytest.approx(settings.model.reference_rows, abs=2)
    train_rate = trained.frame["default"].to_numpy()[trained.parts["train"]].mean()
    assert ref["default"].mean() == pytest.approx(train_rate, abs=0.005)
    assert ref["score"].between(0, 1).all()


def test_roc_and_confusion_matrix_for_the_ui(trained):
    assert trained.roc["fpr"][0] == 0.0 and trained.roc["tpr"][-1] == 1.0
    assert len(trained.roc["fpr"]) <= 200
    matrix = np.array(trained.confusion["matrix"])
    assert matrix.sum() == len(trained.parts["test"])


@pytest.mark.parametrize("task, objective, label", [("regression", "reg:squarederror", "income_k"),
                                                    ("multiclass", "multi:softprob", "tier")])  # fmt: skip
def test_regression_and_multiclass_through_the_objective(settings, span, tmp_path, task, objective, label):
    frame = pd.read_parquet(Path(span) / "data.parquet")
    noise = np.random.default_rng(0).normal(0, 2, len(frame))
    frame["income_k"] = frame["age"] * 0.5 + frame["num_open_accounts"] * 2 + noise
    frame["tier"] = pd.cut(frame["utilization"], [-1, 0.3, 0.6, 2], labels=["low", "mid", "high"]).astype(str)
    frame = frame.drop(columns=["default"])
    (tmp_path / "d").mkdir()
    frame.to_parquet(tmp_path / "d" / "data.parquet", index=False)
    raw = json.loads(settings.json())
    raw["data"].update(label=label, task=task)
    raw["model"]["objective"] = objective
    raw["features"] = [f for f in raw["features"] if f["name"] != "utilization"]  # tier is made from it
    result = executor.train(executor.Request(str(tmp_path / "d"), config.parse(raw, environ={})))
    if task == "regression":
        assert result.metrics["r2"] > 0.8 and result.metrics["rmse"] < 3
    else:
        assert result.test_scores.shape[1] == 3 and result.metrics["accuracy"] > 0.34
        assert result.model.spec["classes"] == ["high", "low", "mid"]


def write_frame(tmp_path, frame) -> str:
    (tmp_path / "bad").mkdir(exist_ok=True)
    frame.to_parquet(tmp_path / "bad" / "data.parquet", index=False)
    return str(tmp_path / "bad")


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda f: f.drop(columns=["default"]), "label column 'default'"),
        (lambda f: f.assign(default=0), "single class"),
        (lambda f: f.head(60), "too few rows for the splits"),
        (lambda f: f.drop(columns=["region"]), "features missing from the data: ['region']"),
        (lambda f: f.assign(income="lots"), "feature 'income' is numeric but holds non-numbers"),
        (lambda f: f.assign(default=f["default"] * 2), "labels 0 and 1"),
    ],
)
def test_bad_input_is_named(settings, span, tmp_path, change, words):
    frame = change(pd.read_parquet(Path(span) / "data.parquet"))
    with pytest.raises(BadInputError, match=words.replace("[", r"\[").replace("]", r"\]")):
        executor.train(executor.Request(write_frame(tmp_path, frame), settings))


def test_entry_program_writes_outputs_and_kfp_metrics(span, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "ctloop.components.train", "--config", str(ROOT / "ctloop.yaml"), "--data", span,
         "--no-mlflow", "--out", str(out), "--executor-output", str(tmp_path / "executor_output.json"),
         "--metrics-uri", "minio://b/metrics", "--params-json", '{"max_depth": 3}'],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "model").iterdir()) == sorted(
        [model_format.BOOSTER, model_format.FEATURES, model_format.POLICY, model_format.METADATA]
    )
    assert json.loads((out / "model" / "metadata.json").read_text())["params"]["max_depth"] == 3
    assert float((out / "validation_metric.txt").read_text()) > 0.7
    assert abs(len(pd.read_parquet(out / "test.parquet")) - 1200) <= 2  # 15% of 8,000, rounded per class
    executor_output = json.loads((tmp_path / "executor_output.json").read_text())
    metrics = executor_output["artifacts"]["metrics"]["artifacts"][0]
    assert metrics["uri"] == "minio://b/metrics" and metrics["metadata"]["roc_auc"] > 0.7
    classification = executor_output["artifacts"]["classification_metrics"]["artifacts"][0]["metadata"]
    assert classification["confusionMatrix"]["annotationSpecs"] == [{"displayName": "0"}, {"displayName": "1"}]
    assert {"confidenceThreshold", "recall", "falsePositiveRate"} == set(classification["confidenceMetrics"][0])


def test_entry_program_bad_input_exits_2_and_writes_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ctloop.components.train", "--config", str(ROOT / "ctloop.yaml"),
         "--data", str(tmp_path / "none"), "--no-mlflow", "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and str(tmp_path / "none") in result.stderr
    assert not (tmp_path / "out").exists()
