"""The KFP container components as KFP sees them (compiled IR), and their entry programs' agreement with it.

No `from __future__ import annotations`: kfp reads pipeline annotations as objects.
"""

import importlib
import json
import subprocess
import sys

import pytest
import yaml
from kfp import compiler, dsl

from ctloop import demo_data

IMAGE = "registry.example/ctloop-{}:1.2.3"
# component -> the inputs a pipeline gives it (artifacts come from an importer)
COMPONENTS = {
    "validate_data": {"data_uri": "d", "config": "c"},
    "train": {"data_uri": "d", "config": "c"},
    "validate_segments": {"config": "c", "model": "artifact", "test_split": "artifact"},
    "select_trial": {"metrics": [0.5], "trials": ["{}"]},
    "register": {"config": "c", "model": "artifact", "blessing": "artifact", "reference_sample": "artifact",
                 "schema": "artifact", "segment_report": "artifact", "data_uri": "d", "fingerprint": "{}",
                 "mlflow_run_id": "r"},
    "deploy": {"config": "c", "model_version": "1", "model_uri": "file:///m"},
}  # fmt: skip


def compile_one(name: str, tmp_path) -> tuple[dict, object]:
    module = importlib.import_module(f"ctloop.components.{name}.component")
    spec = importlib.import_module(f"ctloop.components.{name}.spec")
    op = module.make(IMAGE.format(spec.IMAGE))

    @dsl.pipeline(name=f"only-{name.replace('_', '-')}")
    def pipeline():
        inputs = {}
        for key, value in COMPONENTS[name].items():
            if value == "artifact":
                inputs[key] = dsl.importer(artifact_uri="file:///x", artifact_class=dsl.Artifact).output
            else:
                inputs[key] = value
        op(**inputs)

    path = tmp_path / f"{name}.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    ir = yaml.safe_load(path.read_text())
    executor = next(v for k, v in ir["deploymentSpec"]["executors"].items() if "importer" not in v)
    return executor["container"], spec


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_component_runs_its_entry_program_in_its_image(name, tmp_path):
    container, spec = compile_one(name, tmp_path)
    assert container["image"] == IMAGE.format(spec.IMAGE)
    assert container["command"] == spec.ENTRY


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_entry_program_accepts_every_flag_the_component_passes(name, tmp_path):
    """The compiled args and the entry program's parser must agree, or the container fails at its first run."""
    container, _ = compile_one(name, tmp_path)
    main = importlib.import_module(f"ctloop.components.{name}.__main__")
    tokens = []
    for arg in container["args"]:
        if isinstance(arg, str) and arg.startswith("--"):
            tokens.append(arg)
        elif isinstance(arg, str) and arg.startswith('{"IfPresent"'):
            tokens += [t if t.startswith("--") else "x" for t in json.loads(arg)["IfPresent"]["Then"]]
        else:
            tokens.append("x")
    parsed = main.parse_args(tokens)
    assert getattr(parsed, "config_yaml", "x") == "x"


def test_validate_data_outputs_and_optional_inputs(tmp_path):
    from ctloop.components.validate_data import spec

    container, _ = compile_one("validate_data", tmp_path)
    assert "{{$.outputs.parameters['fingerprint'].output_file}}" in container["args"]
    args = container["args"]
    assert args[args.index("--previous-statistics") + 1] == "{{$.inputs.parameters['previous_statistics_uri']}}"
    assert spec.SCHEMA_JSON in spec.OUTPUT_FILES


def test_train_and_validate_segments_report_metrics_through_executor_output(tmp_path):
    for name in ("train", "validate_segments"):
        container, _ = compile_one(name, tmp_path)
        args = container["args"]
        assert args[args.index("--executor-output") + 1] == "{{$.outputs.output_file}}"
        assert args[args.index("--metrics-uri") + 1] == "{{$.outputs.artifacts['metrics'].uri}}"


@pytest.mark.slow
def test_ctloop_validate_runs_in_the_validate_environment(tmp_path):
    demo_data.write_span(str(tmp_path / "a"), rows=5_000, seed=1)
    demo_data.write_span(str(tmp_path / "b"), rows=5_000, seed=2, drift="new-category")
    ctloop = [sys.executable, "-m", "ctloop.cli", "validate", "--reference", str(tmp_path / "a")]
    ok = subprocess.run([*ctloop, "--data", str(tmp_path / "a"), "--out", str(tmp_path / "o1")],
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o1" / "stats.pb").exists()
    bad = subprocess.run([*ctloop, "--data", str(tmp_path / "b"), "--out", str(tmp_path / "o2")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1
    assert "channel: ENUM_TYPE_UNEXPECTED_STRING_VALUES" in bad.stderr
