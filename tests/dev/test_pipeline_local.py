"""`ctloop pipeline run --local` end to end: the committed IR, every step in its image's environment, against a
real local stack (MLflow and Prometheus started by `ctloop up`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from ctloop.local import demo_data

from .local_stack import run_pipeline, running, write_config
from .local_stack import versions as registered_versions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stack")
    with running(folder) as (config, local):
        spans = {}
        for name, seed, drift in (("clean", 3, None), ("new-category", 4, "new-category")):
            spans[name] = str(folder / "spans" / name)
            demo_data.write_span(spans[name], rows=8_000, seed=seed, drift=drift)
        yield {"folder": folder, "local": local, "config": config, "spans": spans}


def first_run(stack) -> Path:
    runs = (Path(stack["local"]["state_dir"]) / "pipeline-root" / "runs").iterdir()
    return min(runs, key=lambda p: p.stat().st_mtime)


def versions(stack) -> list:
    return registered_versions(stack["local"])


def test_clean_span_runs_end_to_end_and_registers_a_candidate(stack):
    result = run_pipeline(stack["config"], stack["spans"]["clean"])
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = first_run(stack)
    assert (run_dir / "validate-data" / "artifacts" / "statistics").stat().st_size > 1000
    assert (run_dir / "train-2" / "artifacts" / "model" / "model.json").exists()
    blessing = json.loads((run_dir / "validate-segments" / "artifacts" / "blessing").read_text())
    assert blessing["blessed"] is True
    # every trial of the search ran, and the final train used the winner's parameters
    trials = sorted(p.name for p in run_dir.iterdir() if p.name.startswith("for-loop-1"))
    assert len(trials) == 2
    winner = json.loads((run_dir / "select-trial" / "parameters" / "best_params").read_text())
    metadata = json.loads((run_dir / "train-2" / "artifacts" / "model" / "metadata.json").read_text())
    assert all(metadata["params"][k] == v for k, v in winner.items())
    registered = versions(stack)
    assert len(registered) == 1 and "registered version 1" in result.stdout
    assert registered[0].tags["ctloop.pipeline_run_id"] == run_dir.name
    # deploy: the first version has no champion to be compared with, so it serves as main directly
    client = MlflowClient(f"http://127.0.0.1:{stack['local']['mlflow_port']}")
    assert client.get_model_version_by_alias("ctloop-credit-risk", "champion").version == "1"
    sdep = yaml.safe_load((Path(stack["local"]["state_dir"]) / "gateway" / "deployments" / "ctloop" /
                           "credit-risk.yaml").read_text())  # fmt: skip
    assert [p["name"] for p in sdep["spec"]["predictors"]] == ["main"]
    assert (run_dir / "condition-2__deploy" / "parameters" / "action").read_text() == "first_deployment"


def test_defective_span_stops_at_validation_and_registers_nothing(stack):
    """A never-seen category, against the schema and statistics the clean run emitted."""
    before = len(versions(stack))
    clean = first_run(stack) / "validate-data" / "artifacts"
    result = run_pipeline(stack["config"], stack["spans"]["new-category"], "--schema", str(clean / "schema"),
                          "--previous-statistics", str(clean / "statistics"))  # fmt: skip
    assert result.returncode == 1
    assert "validate-data failed" in result.stdout and "ENUM_TYPE_UNEXPECTED_STRING_VALUES" in result.stdout
    assert "for-loop-1 skipped" in result.stdout and "train-2 skipped" in result.stdout
    assert len(versions(stack)) == before


def test_unblessed_candidate_is_not_registered(stack, tmp_path):
    strict = write_config(tmp_path / "strict.yaml", stack["local"])
    raw = yaml.safe_load(strict.read_text())
    raw["gates"]["segments"]["floors"] = {"roc_auc": 0.99}
    strict.write_text(yaml.safe_dump(raw))
    before = len(versions(stack))
    result = run_pipeline(strict, stack["spans"]["clean"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "condition-2 skipped: condition not met" in result.stdout
    assert len(versions(stack)) == before


def test_stack_down_is_one_line(tmp_path):
    config = write_config(tmp_path / "down.yaml", {"state_dir": str(tmp_path), "mlflow_port": 1, "prometheus_port": 2})
    result = run_pipeline(config, str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: the local stack is down (no MLflow at http://127.0.0.1:1): run `ctloop up`"
    ]
