"""The settings model, in every environment (the watch image runs it under pydantic 1.10)."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from ctloop import config
from ctloop.errors import ConfigError


def write(tmp_path, text: str, name: str = "ctloop.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def raw_example(example_config_text):
    return yaml.safe_load(example_config_text)


def problems(excinfo) -> dict[str, str]:
    return dict(excinfo.value.problems)


def test_example_is_valid(tmp_path, example_config_text):
    path = write(tmp_path, example_config_text)
    settings = config.load(path)
    assert settings.mode == config.Mode.local
    assert settings.data.label == "default"
    assert {f.name for f in settings.features} >= {"age", "region", "income"}
    # relative paths are resolved against the file's folder, not the working directory
    assert settings.data.uri == str(tmp_path / ".ctloop/demo/spans/2026-01")
    assert settings.local.state_dir == str(tmp_path / ".ctloop")
    assert settings.rollout.steps[-1] == 100


def test_unknown_keys_and_bad_values_are_all_reported_with_key_paths(example_config_text):
    raw = raw_example(example_config_text)
    raw["data"]["colour"] = "blue"
    raw["features"][2]["type"] = "text"
    raw["rollout"]["steps"] = [50, 10]
    raw["drift"]["p_value"] = 2
    raw["surprise"] = {}
    with pytest.raises(ConfigError) as excinfo:
        config.parse(raw, source="x.yaml", environ={})
    found = problems(excinfo)
    assert found["data.colour"] == "unknown key"
    assert "numeric" in found["features[2].type"]
    assert "ascending" in found["rollout.steps"]
    assert "drift.p_value" in found
    assert found["surprise"] == "unknown key"
    assert str(excinfo.value).startswith("x.yaml: 5 problem(s)")


@pytest.mark.parametrize(
    "mutate, path, words",
    [
        (lambda r: r["features"].append({"name": "age", "type": "numeric"}), "features", "twice"),
        (lambda r: r["features"].append({"name": "default", "type": "numeric"}), "(top level)", "data.label"),
        (lambda r: r["model"].update(objective="reg:squarederror"), "(top level)", "does not fit"),
        (lambda r: r["segments"].append({"name": "s", "column": "a", "cross": ["a", "b"]}), "segments[5]", "exactly"),
        (lambda r: r["segments"].append({"name": "s", "column": "region", "bins": [1, 2]}), "(top level)", "numeric"),
        (lambda r: r["segments"].append({"name": "s", "column": "age", "bins": [3, 2]}), "segments[5]", "ascending"),
        (lambda r: r["features"][0].update(domain=["a"]), "features[0]", "categorical"),
        (lambda r: r["drift"].update(confirm_windows=5, of_last_windows=3), "drift", "exceed"),
        (lambda r: r["drift"].update(evaluate_every=600, window_size=500), "drift", "evaluate_every"),
        (lambda r: r["drift"].update(evaluate_every=100, expected_run_time=500), "drift", "10 x evaluate_every"),
        (lambda r: r["drift"].update(detector="chi"), "drift.detector", "sequential"),
        (
            lambda r: r["drift"].update(online=True, online_expected_run_time=2000, online_bootstraps=4000),
            "drift",
            "online_expected_run_time must be at least expected_run_time",
        ),
        (lambda r: r["model"].update(split={"train": 0.9, "validation": 0.2, "test": 0.1}), "model.split", "add up"),
        (lambda r: r["endpoints"]["prometheus"].update(url="localhost:9090"), "endpoints.prometheus.url", "http"),
        (lambda r: r.update(mode="cloud"), "mode", "local"),
        (lambda r: r.update(name="Credit_Risk"), "name", "match"),
        (lambda r: r["data"].pop("label"), "data.label", "required"),
    ],
)
def test_each_rule_names_its_key(example_config_text, mutate, path, words):
    raw = raw_example(example_config_text)
    mutate(raw)
    with pytest.raises(ConfigError) as excinfo:
        config.parse(raw, environ={})
    found = problems(excinfo)
    assert path in found, found
    assert words in found[path], found


def test_environment_overrides_file_and_is_itself_validated(example_config_text):
    raw = raw_example(example_config_text)
    env = {"CTLOOP_ENDPOINTS__MLFLOW__TRACKING_URI": "http://mlflow:5000", "CTLOOP_MODEL__SEED": "7"}
    settings = config.parse(raw, environ=env)
    assert settings.endpoints.mlflow.tracking_uri == "http://mlflow:5000"
    assert settings.model.seed == 7

    with pytest.raises(ConfigError) as excinfo:
        config.parse(raw_example(example_config_text), environ={"CTLOOP_MODEL__SEEDS": "7"})
    assert problems(excinfo) == {"model.seeds": "unknown key"}

    with pytest.raises(ConfigError) as excinfo:
        config.parse(raw_example(example_config_text), environ={"CTLOOP_MODE__X": "1"})
    assert "CTLOOP_MODE__X" in problems(excinfo)


def test_variables_that_are_not_key_paths_are_left_alone(example_config_text):
    environ = {"CTLOOP_CONFIG": "x.yaml", "CTLOOP_GIT_SHA": "abc123", "CTLOOP_PIPELINE_RUN_ID": "run-1"}
    assert config.parse(raw_example(example_config_text), environ=environ).model.seed == 42


def test_file_problems_name_the_file_and_line(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        config.load(tmp_path / "missing.yaml")
    assert "missing.yaml" in str(excinfo.value) and "no such file" in str(excinfo.value)

    with pytest.raises(ConfigError) as excinfo:
        config.load(write(tmp_path, "data:\n  uri: [unclosed\n"))
    assert any(path.startswith("line 3") for path in problems(excinfo))

    with pytest.raises(ConfigError, match="is empty"):
        config.load(write(tmp_path, ""))

    with pytest.raises(ConfigError, match="must be a mapping"):
        config.load(write(tmp_path, "- a\n- b\n"))


def test_defaults_fill_what_the_file_leaves_out():
    settings = config.parse(
        {"data": {"uri": "s3://bucket/spans", "label": "y"}, "features": [{"name": "x", "type": "numeric"}]},
        environ={},
    )
    assert settings.data.uri == "s3://bucket/spans"  # URIs are left as they are
    assert settings.model.objective == "binary:logistic"
    assert settings.gates.segments.floors == {"roc_auc": 0.6}
    assert settings.endpoints.kfp.host is None


def test_each_loop_registers_under_its_own_name_unless_told():
    """Two loops on one MLflow server must not share a registered model: the second would take the first's champion
    as its own (its schema, figures and scores)."""
    base = {"data": {"uri": "s3://bucket/spans", "label": "y"}, "features": [{"name": "x", "type": "numeric"}]}
    bikes = config.parse({**base, "name": "bike-rentals"}, environ={})
    assert bikes.endpoints.mlflow.registered_model == "ctloop-bike-rentals"
    assert config.parse(base, environ={}).endpoints.mlflow.registered_model == "ctloop-credit-risk"
    told = {**base, "name": "bike-rentals", "endpoints": {"mlflow": {"registered_model": "rentals"}}}
    assert config.parse(told, environ={}).endpoints.mlflow.registered_model == "rentals"
    # what the pipeline's steps receive: the settings as JSON, read again
    assert config.parse(json.loads(bikes.json()), environ={}).endpoints.mlflow.registered_model == "ctloop-bike-rentals"


def test_a_count_objective_fits_a_regression():
    base = {"data": {"uri": "s3://bucket/spans", "label": "y", "task": "regression"},
            "features": [{"name": "x", "type": "numeric"}]}  # fmt: skip
    assert (
        config.parse({**base, "model": {"objective": "count:poisson"}}, environ={}).model.objective == "count:poisson"
    )
    with pytest.raises(ConfigError, match="does not fit"):
        config.parse({**base, "model": {"objective": "binary:logistic"}}, environ={})


def test_reference_doc_is_current():
    """docs/config.md is generated from the model; regenerate with `python -m ctloop.config > docs/config.md`."""
    from pathlib import Path

    committed = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    assert committed == config.reference_markdown()


def test_local_mode_endpoints_follow_the_stacks_ports_unless_set(tmp_path, example_config_text):
    raw = yaml.safe_load(example_config_text)
    raw.pop("endpoints", None)
    raw["local"].update(mlflow_port=6100, webhook_port=6101)
    raw["endpoints"] = {"watcher": {"url": "http://watcher.example:8080"}, "mlflow": {"registered_model": "m"}}
    settings = config.parse(raw, base=tmp_path, environ={})
    assert settings.endpoints.mlflow.tracking_uri == "http://127.0.0.1:6100"  # unset: the stack's MLflow
    assert settings.endpoints.webhook.url == "http://127.0.0.1:6101"
    assert settings.endpoints.watcher.url == "http://watcher.example:8080"  # set: used as set
    again = config.parse(yaml.safe_load(settings.json()), base=tmp_path, environ={})
    assert again.endpoints == settings.endpoints  # what a service reads back is what the CLI resolved
    raw["mode"] = "kubernetes"
    kube = config.parse(raw, base=tmp_path, environ={})
    assert kube.endpoints.mlflow.tracking_uri == "http://127.0.0.1:5500"  # no local stack: the field's default
