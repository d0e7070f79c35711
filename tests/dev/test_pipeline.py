"""The continuous-training pipeline as compiled IR and as KFP Kubernetes-native objects.

No `from __future__ import annotations`: kfp reads pipeline annotations as objects.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctloop import config
from ctloop.pipelines import continuous_training as ct

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ct.COMPILED.parent / "kubernetes" / "continuous_training.yaml"


def compiled(tmp_path, **changes) -> dict:
    raw = yaml.safe_load((ROOT / "ctloop.yaml").read_text())
    for section, values in changes.items():
        raw.setdefault(section, {}).update(values)
    settings = config.parse(raw, environ={})
    (tmp_path / "ctloop.yaml").write_text(yaml.safe_dump(raw))
    path = ct.compile_to(settings, ct.config_parameter(tmp_path / "ctloop.yaml"), tmp_path / "ct.yaml")
    return yaml.safe_load(path.read_text())


def test_committed_pipeline_is_current(tmp_path):
    """CI fails when the committed IR is stale: run `ctloop pipeline compile` and commit the result."""
    result = subprocess.run(
        [sys.executable, "-m", "ctloop.local.cli", "pipeline", "compile", "--config", "ctloop.yaml",
         "--out", str(tmp_path / "ir.yaml"), "--kubernetes-out", str(tmp_path / "k8s.yaml")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ir.yaml").read_text() == ct.COMPILED.read_text(), "stale: run `ctloop pipeline compile`"
    assert (tmp_path / "k8s.yaml").read_text() == KUBERNETES.read_text(), "stale: run `ctloop pipeline compile`"


def test_compilation_is_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert compiled(tmp_path / "a") == compiled(tmp_path / "b")


def test_tasks_images_and_condition(tmp_path):
    ir = compiled(tmp_path, pipeline={"image_registry": "registry.example/ml", "image_tag": "9.9"})
    tasks = ir["root"]["dag"]["tasks"]
    assert set(tasks) == {"resolve-champion", "validate-data", "for-loop-1", "select-trial", "train-2",
                          "validate-segments", "condition-2"}  # fmt: skip
    # validate_data holds the span to what resolve_champion found, output to input of the same name
    champion = {name: p["taskOutputParameter"] for name, p in tasks["validate-data"]["inputs"]["parameters"].items()
                if "taskOutputParameter" in p}  # fmt: skip
    assert champion == {
        name: {"outputParameterKey": name, "producerTask": "resolve-champion"}
        for name in ("champion_version", "champion_schema_uri", "champion_statistics_uri", "champion_verdict_uri",
                     "serving_data_uri")
    }  # fmt: skip
    assert tasks["resolve-champion"]["cachingOptions"] == {}  # not cached: it reads the registry's champion
    assert set(tasks["train-2"]["dependentTasks"]) == {"validate-data", "select-trial"}
    assert tasks["train-2"]["inputs"]["parameters"]["params_json"]["taskOutputParameter"] == {
        "outputParameterKey": "best_params", "producerTask": "select-trial"}  # fmt: skip
    # the search: one train per trial, their metrics collected for select-trial
    loop = tasks["for-loop-1"]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--trials"
    assert set(ir["components"]["comp-for-loop-1"]["dag"]["tasks"]) == {"train"}
    metrics = tasks["select-trial"]["inputs"]["parameters"]["metrics"]["taskOutputParameter"]
    assert metrics["producerTask"] == "for-loop-1"
    condition = tasks["condition-2"]
    assert condition["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--validate-segments-blessed'] == true"
    )
    inner = ir["components"]["comp-condition-2"]["dag"]["tasks"]
    assert set(inner) == {"register", "deploy"}
    assert inner["deploy"]["inputs"]["parameters"]["model_uri"]["taskOutputParameter"] == {
        "outputParameterKey": "model_uri", "producerTask": "register"}  # fmt: skip
    assert inner["deploy"]["cachingOptions"] == {}  # not cached: it writes the SeldonDeployment
    images = {name: e["container"]["image"] for name, e in ir["deploymentSpec"]["executors"].items()}
    assert images == {
        "exec-resolve-champion": "registry.example/ml/ctloop-train:9.9",
        "exec-validate-data": "registry.example/ml/ctloop-validate:9.9",
        "exec-train": "registry.example/ml/ctloop-train:9.9",
        "exec-train-2": "registry.example/ml/ctloop-train:9.9",
        "exec-select-trial": "registry.example/ml/ctloop-train:9.9",
        "exec-validate-segments": "registry.example/ml/ctloop-train:9.9",
        "exec-register": "registry.example/ml/ctloop-train:9.9",
        "exec-deploy": "registry.example/ml/ctloop-control:9.9",
    }
    params = ir["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"data_uri", "config", "previous_statistics_uri", "schema_uri", "trials"}
    assert params["trials"]["defaultValue"] == ['{"max_depth": 4}', '{"eta": 0.05, "max_depth": 6}']
    assert config.parse(yaml.safe_load(params["config"]["defaultValue"]), environ={}).name == "credit-risk"


def test_caching_retries_and_resources(tmp_path):
    ir = compiled(tmp_path)
    tasks = ir["root"]["dag"]["tasks"]
    caching = {name: t.get("cachingOptions", {}).get("enableCache", False) for name, t in tasks.items()}
    assert caching["validate-data"] is False and caching["validate-segments"] is False
    assert caching["train-2"] is True  # keyed on the span's content fingerprint
    train_inputs = tasks["train-2"]["inputs"]["parameters"]
    assert train_inputs["fingerprint"]["taskOutputParameter"]["producerTask"] == "validate-data"
    assert tasks["train-2"]["retryPolicy"]["maxRetryCount"] == 2
    resources = ir["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["cpuRequest"] == 2.0 and resources["memoryLimit"] == 8.0
    assert "accelerator" not in resources


def test_register_gets_every_input_from_its_producer(tmp_path):
    """Wired by name; the reference sample, schema and report are optional to register, so only this says they
    are given."""
    ir = compiled(tmp_path)
    inputs = ir["components"]["comp-condition-2"]["dag"]["tasks"]["register"]["inputs"]
    assert {name: a["componentInputArtifact"] for name, a in inputs["artifacts"].items()} == {
        "model": "pipelinechannel--train-2-model",
        "blessing": "pipelinechannel--validate-segments-blessing",
        "reference_sample": "pipelinechannel--train-2-reference_sample",
        "schema": "pipelinechannel--validate-data-schema",
        "segment_report": "pipelinechannel--validate-segments-report",
        "statistics": "pipelinechannel--validate-data-statistics",
        "anomalies_summary": "pipelinechannel--validate-data-anomalies_summary",
    }
    parameters = {name: p.get("componentInputParameter") for name, p in inputs["parameters"].items()}
    assert parameters == {
        "config": "pipelinechannel--config",
        "data_uri": "pipelinechannel--data_uri",
        "fingerprint": "pipelinechannel--validate-data-fingerprint",
        "mlflow_run_id": "pipelinechannel--train-2-mlflow_run_id",
        "pipeline_run_id": None,  # the job id placeholder
    }


def test_without_search_there_is_one_train(tmp_path):
    ir = compiled(tmp_path, model={"search": []})
    assert set(ir["root"]["dag"]["tasks"]) == {
        "resolve-champion", "validate-data", "train", "validate-segments", "condition-1"}  # fmt: skip


def test_cuda_puts_a_gpu_on_train_only(tmp_path):
    ir = compiled(tmp_path, model={"device": "cuda"})
    executors = ir["deploymentSpec"]["executors"]
    accelerator = executors["exec-train"]["container"]["resources"]["accelerator"]
    assert accelerator["resourceType"] == "nvidia.com/gpu" and str(accelerator["resourceCount"]) == "1"
    assert "accelerator" not in executors["exec-validate-data"]["container"].get("resources", {})


def test_kubernetes_native_objects():
    documents = list(yaml.safe_load_all(KUBERNETES.read_text()))
    kinds = {d["kind"]: d for d in documents}
    assert set(kinds) == {"Pipeline", "PipelineVersion"}
    for d in documents:
        assert d["apiVersion"] == "pipelines.kubeflow.org/v2beta1"
        assert d["metadata"]["namespace"] == "kubeflow"
    version = kinds["PipelineVersion"]
    assert version["spec"]["pipelineName"] == kinds["Pipeline"]["metadata"]["name"] == ct.NAME
    ir = yaml.safe_load(ct.COMPILED.read_text())
    assert json.dumps(version["spec"]["pipelineSpec"]["root"], sort_keys=True) == json.dumps(ir["root"], sort_keys=True)


@pytest.mark.parametrize("flag", ["--out", "--kubernetes-out"])
def test_compile_rejects_a_broken_config(tmp_path, flag):
    (tmp_path / "bad.yaml").write_text("data: {uri: x}\nfeatures: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "ctloop.local.cli", "pipeline", "compile", "--config", str(tmp_path / "bad.yaml"),
         flag, str(tmp_path / "x.yaml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and "data.label" in result.stderr
    assert not (tmp_path / "x.yaml").exists()
