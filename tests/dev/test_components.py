"""The KFP container components as KFP sees them (compiled IR), made from the declarations in the components' spec
modules; the entry programs' agreement with them; wiring tasks by name.

No `from __future__ import annotations`: kfp reads pipeline annotations as objects.
"""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl

from ctloop.components import kfp_component
from ctloop.components.declaration import (
    CONFIG,
    EXECUTOR_OUTPUT,
    OUT,
    Artifact,
    Component,
    OutputArtifact,
    OutputParameter,
    Parameter,
)
from ctloop.components.kfp_component import WiringError
from ctloop.local import demo_data

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example/ctloop-{}:1.2.3"
# component -> the inputs a pipeline gives it (artifacts come from an importer)
COMPONENTS = {
    "resolve_champion": {"config": "c"},
    "validate_data": {"data_uri": "d", "config": "c"},
    "train": {"data_uri": "d", "config": "c"},
    "validate_segments": {"config": "c", "model": "artifact", "test_split": "artifact"},
    "select_trial": {"metrics": [0.5], "trials": ["{}"]},
    "register": {"config": "c", "model": "artifact", "blessing": "artifact", "reference_sample": "artifact",
                 "schema": "artifact", "segment_report": "artifact", "statistics": "artifact",
                 "anomalies_summary": "artifact", "data_uri": "d", "fingerprint": "{}",
                 "mlflow_run_id": "r"},
    "deploy": {"config": "c", "model_version": "1", "model_uri": "file:///m"},
}  # fmt: skip


def declaration(name: str) -> Component:
    return importlib.import_module(f"ctloop.components.{name}.spec").COMPONENT


def compile_container(component: Component, inputs: dict, tmp_path) -> dict:
    """The container of ``component`` as compiled in a pipeline of its own; "artifact" inputs come from importers."""
    op = kfp_component.make(component, IMAGE.format(component.image))

    @dsl.pipeline(name=f"only-{component.name.replace('_', '-')}")
    def pipeline():
        arguments = {}
        for key, value in inputs.items():
            if value == "artifact":
                arguments[key] = dsl.importer(artifact_uri="file:///x", artifact_class=dsl.Artifact).output
            else:
                arguments[key] = value
        op(**arguments)

    path = tmp_path / f"{component.name}.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    ir = yaml.safe_load(path.read_text())
    executor = next(v for k, v in ir["deploymentSpec"]["executors"].items() if "importer" not in v)
    return executor["container"]


def compile_one(name: str, tmp_path) -> tuple[dict, Component]:
    component = declaration(name)
    return compile_container(component, COMPONENTS[name], tmp_path), component


def flags_passed(container: dict) -> set[str]:
    """Every flag in the compiled args, those inside IfPresent included."""
    flags = set()
    for arg in container["args"]:
        if arg.startswith('{"IfPresent"'):
            flags |= {t for t in json.loads(arg)["IfPresent"]["Then"] if t.startswith("--")}
        elif arg.startswith("--"):
            flags.add(arg)
    return flags


def flags_accepted(parser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_every_component_is_declared():
    assert sorted(COMPONENTS) == sorted(
        p.parent.name for p in ROOT.joinpath("components").glob("*/spec.py")
    )  # fmt: skip


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_component_runs_its_entry_program_in_its_image(name, tmp_path):
    container, component = compile_one(name, tmp_path)
    assert container["image"] == IMAGE.format(component.image)
    assert container["command"] == ["python", "-m", f"ctloop.components.{name}"]
    assert component.image in {"validate", "train", "control"}


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_declared_parser_has_exactly_the_flags_the_component_passes(name, tmp_path):
    """Nothing KFP passes is unknown to the program, and nothing the program takes from KFP is left out; people
    also get --out and --config."""
    container, component = compile_one(name, tmp_path)
    accepted = flags_accepted(component.parser()) - {"-h", "--help"}
    for_people = {OUT, "--config"} if CONFIG in component.inputs else {OUT}
    assert accepted - for_people == flags_passed(container)


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_entry_program_accepts_every_flag_the_component_passes(name, tmp_path):
    """The compiled args and the entry program's parser must agree, or the container fails at its first run."""
    container, _ = compile_one(name, tmp_path)
    main = importlib.import_module(f"ctloop.components.{name}.__main__")  # the declared parser and its extras
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


# ---------------------------------------------------------------------------------------------------------------
# The declaration itself, on a component of its own

TOY = Component(
    name="toy",
    image="train",
    description="A component that exercises every kind of input and output.",
    inputs=[
        Parameter("data_uri", str, "A span.", flag="--data"),
        CONFIG,
        Parameter("limit", int, "How many.", default=3),
        Artifact("model", "Model", "A model folder."),
        Artifact("schema", "Artifact", "A schema.", optional=True),
    ],
    outputs=[
        OutputArtifact("metrics", "Metrics", "metrics.json", "metrics", uri=True),
        OutputArtifact("table", "Dataset", "table.parquet", "rows"),
        OutputParameter("score", float, "score.txt", "a number"),
    ],
    executor_output=True,
)


def test_the_command_line_follows_the_declaration(tmp_path):
    container = compile_container(TOY, {"data_uri": "d", "config": "c", "model": "artifact"}, tmp_path)
    assert container["command"] == ["python", "-m", "ctloop.components.toy"]
    assert container["args"] == [
        "--data", "{{$.inputs.parameters['data_uri']}}",
        "--config-yaml", "{{$.inputs.parameters['config']}}",
        "--limit", "{{$.inputs.parameters['limit']}}",
        "--model", "{{$.inputs.artifacts['model'].path}}",
        '{"IfPresent": {"InputName": "schema", "Then": ["--schema", "{{$.inputs.artifacts[\'schema\'].path}}"]}}',
        "--metrics-out", "{{$.outputs.artifacts['metrics'].path}}",
        "--metrics-uri", "{{$.outputs.artifacts['metrics'].uri}}",
        "--table-out", "{{$.outputs.artifacts['table'].path}}",
        "--score-out", "{{$.outputs.parameters['score'].output_file}}",
        EXECUTOR_OUTPUT, "{{$.outputs.output_file}}",
    ]  # fmt: skip


def test_the_interface_follows_the_declaration(tmp_path):
    interface = kfp_component.make(TOY, "x").component.component_spec
    assert {name: (spec.type, spec.optional) for name, spec in interface.inputs.items()} == {
        "data_uri": ("String", False), "config": ("String", False), "limit": ("Integer", True),
        "model": ("system.Model@0.0.1", False), "schema": ("system.Artifact@0.0.1", True),
    }  # fmt: skip
    assert interface.inputs["limit"].default == 3
    assert {name: spec.type for name, spec in interface.outputs.items()} == {
        "metrics": "system.Metrics@0.0.1", "table": "system.Dataset@0.0.1", "score": "Float",
    }  # fmt: skip


def test_the_parser_requires_what_is_required_and_types_numbers():
    parser = TOY.parser()
    args = parser.parse_args(["--data", "d", "--config", "c.yaml", "--model", "m"])
    assert (args.data_uri, args.config, args.limit, args.model, args.schema) == ("d", "c.yaml", 3, "m", None)
    assert parser.parse_args(["--data", "d", "--config-yaml", "{}", "--model", "m", "--limit", "7"]).limit == 7
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "d", "--config", "c.yaml"])  # no --model
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "d", "--config", "c.yaml", "--config-yaml", "{}", "--model", "m"])


def test_outputs_go_to_their_own_path_else_under_out():
    parser = TOY.parser()
    base = ["--data", "d", "--config", "c.yaml", "--model", "m"]
    assert TOY.output_paths(parser.parse_args(base)) == {}
    args = parser.parse_args([*base, "--out", "s3://b/run", "--score-out", "elsewhere/score.txt"])
    assert TOY.output_paths(args) == {
        "metrics": "s3://b/run/metrics.json", "table": "s3://b/run/table.parquet", "score": "elsewhere/score.txt",
    }  # fmt: skip
    assert args.metrics_uri == "" and args.executor_output is None


def test_declarations_import_with_the_standard_library_only():
    """Every image imports the specs; the compiler's kfp and the settings model's pydantic stay out."""
    specs = "; ".join(f"import ctloop.components.{name}.spec" for name in COMPONENTS)
    code = f"import sys; {specs}; print(sorted(m for m in ('kfp', 'pydantic', 'yaml') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_declarations_refuse_repeated_names_and_unknown_artifact_kinds():
    with pytest.raises(ValueError, match=r"toy: \['model'\] declared more than once"):
        Component("toy", "train", "x", inputs=[Artifact("model", "Model", "")],
                  outputs=[OutputArtifact("model", "Model", "model", "")])  # fmt: skip
    with pytest.raises(ValueError, match="model: artifact kind 'Modle'"):
        Artifact("model", "Modle", "")


# ---------------------------------------------------------------------------------------------------------------
# Wiring tasks by name


def ops():
    return {name: kfp_component.make(declaration(name), IMAGE.format(declaration(name).image)) for name in COMPONENTS}


def test_inputs_come_from_upstream_outputs_of_the_same_name(tmp_path):
    op = ops()

    @dsl.pipeline(name="wired")
    def wired(data_uri: str):
        validated = op["validate_data"](data_uri=data_uri, config="c")
        trained = op["train"](validated, data_uri=data_uri, config="c")
        op["validate_segments"](trained, config="c")

    compiler.Compiler().compile(wired, str(tmp_path / "wired.yaml"))
    tasks = yaml.safe_load((tmp_path / "wired.yaml").read_text())["root"]["dag"]["tasks"]
    train = tasks["train"]["inputs"]
    assert train["artifacts"]["schema_json"]["taskOutputArtifact"]["producerTask"] == "validate-data"
    assert train["parameters"]["fingerprint"]["taskOutputParameter"]["producerTask"] == "validate-data"
    assert "pipeline_run_id" not in train["parameters"]  # optional, no source: its default
    segments = tasks["validate-segments"]["inputs"]["artifacts"]
    assert {name: a["taskOutputArtifact"] for name, a in segments.items()} == {
        "model": {"outputArtifactKey": "model", "producerTask": "train"},
        "test_split": {"outputArtifactKey": "test_split", "producerTask": "train"},
    }  # fmt: skip


def test_a_required_input_without_a_source_fails_compilation_naming_it():
    op = ops()
    with pytest.raises(WiringError, match="validate_segments: required input 'model' has no source"):

        @dsl.pipeline(name="unwired")
        def unwired():
            validated = op["validate_data"](data_uri="d", config="c")
            op["validate_segments"](validated, config="c")


def test_an_input_with_two_sources_fails_compilation_naming_both():
    op = ops()
    with pytest.raises(WiringError, match=r"validate_segments: input 'model' has two sources \(train and train-2\)"):

        @dsl.pipeline(name="ambiguous")
        def ambiguous():
            first = op["train"](data_uri="d", config="c")
            second = op["train"](data_uri="d", config="c")
            op["validate_segments"](first, second, config="c")


def test_an_explicit_value_for_no_input_fails():
    op = ops()
    with pytest.raises(WiringError, match="deploy has no input model_versoin"):

        @dsl.pipeline(name="typo")
        def typo():
            op["deploy"](config="c", model_version="1", model_versoin="1", model_uri="u")


@pytest.mark.slow
def test_ctloop_validate_runs_in_the_validate_environment(tmp_path):
    demo_data.write_span(str(tmp_path / "a"), rows=5_000, seed=1)
    demo_data.write_span(str(tmp_path / "b"), rows=5_000, seed=2, drift="new-category")
    ctloop = [sys.executable, "-m", "ctloop.local.cli", "validate", "--reference", str(tmp_path / "a")]
    ok = subprocess.run([*ctloop, "--data", str(tmp_path / "a"), "--out", str(tmp_path / "o1")],
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o1" / "stats.pb").exists()
    bad = subprocess.run([*ctloop, "--data", str(tmp_path / "b"), "--out", str(tmp_path / "o2")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1
    assert "channel: ENUM_TYPE_UNEXPECTED_STRING_VALUES" in bad.stderr
