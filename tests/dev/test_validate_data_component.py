"""validate_data as KFP sees it (compiled IR) and as a user runs it (`ctloop validate`).

No `from __future__ import annotations`: kfp reads pipeline annotations as objects.
"""

import subprocess
import sys

import pytest
import yaml
from kfp import compiler, dsl

from ctloop import demo_data
from ctloop.components.validate_data import component, spec

IMAGE = "registry.example/ctloop-validate:1.2.3"


def compile_ir(tmp_path, **task_inputs) -> dict:
    op = component.make(IMAGE)

    @dsl.pipeline(name="validate-only")
    def pipeline(data_uri: str, config: str):
        op(data_uri=data_uri, config=config, **task_inputs)

    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    return yaml.safe_load(path.read_text())


def test_component_compiles_to_the_entry_program(tmp_path):
    ir = compile_ir(tmp_path)
    container = ir["deploymentSpec"]["executors"]["exec-validate-data"]["container"]
    assert container["image"] == IMAGE
    assert container["command"] == spec.ENTRY
    args = container["args"]
    assert args[:4] == ["--data", "{{$.inputs.parameters['data_uri']}}", "--config-yaml",
                        "{{$.inputs.parameters['config']}}"]  # fmt: skip
    assert "{{$.outputs.parameters['fingerprint'].output_file}}" in args
    outputs = ir["components"]["comp-validate-data"]["outputDefinitions"]
    assert outputs["artifacts"]["report"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert outputs["artifacts"]["summary"]["artifactType"]["schemaTitle"] == "system.Markdown"
    assert set(outputs["artifacts"]) | set(outputs["parameters"]) == set(spec.OUTPUT_FILES)
    inputs = ir["components"]["comp-validate-data"]["inputDefinitions"]["artifacts"]
    optional = {spec.PINNED_SCHEMA, spec.PREVIOUS_STATISTICS, spec.SERVING_STATISTICS}
    assert {name for name, i in inputs.items() if i.get("isOptional")} == optional
    # optional inputs become flags only when present
    assert any("IfPresent" in a and "--previous-statistics" in a for a in args)


def test_entry_program_accepts_every_flag_the_component_passes(tmp_path):
    """The compiled args and the entry program's parser must agree, or the container fails at its first run."""
    from ctloop.components.validate_data.__main__ import parse_args

    args = compile_ir(tmp_path)["deploymentSpec"]["executors"]["exec-validate-data"]["container"]["args"]
    flags = [a for a in args if a.startswith("--")]
    values = {f: "x" for f in flags}
    parsed = parse_args([token for flag in flags for token in (flag, values[flag])])
    assert parsed.data == "x" and parsed.config_yaml == "x" and parsed.fingerprint_out == "x"


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
