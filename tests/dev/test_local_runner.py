"""The local runner's KFP semantics on small pipelines whose steps run in the dev environment: order,
parameters and artifacts, placeholders, conditions, ParallelFor with collected outputs, caching, failures.

No `from __future__ import annotations`: kfp reads pipeline annotations as objects.
"""

import json
import shutil
import venv
from pathlib import Path
from typing import Optional

import pytest
from kfp import compiler, dsl

from ctloop.errors import BadInputError
from ctloop.local import runner as local_runner

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "local/ctloop-dev:test"  # the runner maps ctloop-<image> to .venvs/<image>


@dsl.container_component
def emit(n: int, value: dsl.OutputPath(float), table: dsl.Output[dsl.Dataset]):
    script = (
        "import sys, pathlib; n = int(sys.argv[1]);"
        "pathlib.Path(sys.argv[2]).write_text(str(n * 1.5));"
        "pathlib.Path(sys.argv[3]).write_text('x' * n)"
    )
    return dsl.ContainerSpec(image=IMAGE, command=["python", "-c", script], args=[n, value, table.path])


@dsl.container_component
def total(values: list[float], threshold: float, ok: dsl.OutputPath(bool), out: dsl.OutputPath(float)):
    script = (
        "import sys, json, pathlib; s = sum(json.loads(sys.argv[1]));"
        "pathlib.Path(sys.argv[3]).write_text(json.dumps(s > float(sys.argv[2])));"
        "pathlib.Path(sys.argv[4]).write_text(str(s))"
    )
    return dsl.ContainerSpec(image=IMAGE, command=["python", "-c", script], args=[values, threshold, ok, out])


@dsl.container_component
def read(table: dsl.Input[dsl.Dataset], label: str, size: dsl.OutputPath(int), note: Optional[str] = None):  # noqa: UP007, UP045
    script = "import sys, pathlib; pathlib.Path(sys.argv[3]).write_text(str(len(open(sys.argv[1]).read())))"
    return dsl.ContainerSpec(
        image=IMAGE,
        command=["python", "-c", script],
        args=[table.path, label, size, dsl.IfPresentPlaceholder(input_name="note", then=["--note", note])],
    )


@dsl.container_component
def niceness(value: dsl.OutputPath(int)):
    script = "import os, pathlib, sys; pathlib.Path(sys.argv[1]).write_text(str(os.nice(0)))"
    return dsl.ContainerSpec(image=IMAGE, command=["python", "-c", script], args=[value])


@dsl.pipeline(name="priority")
def priority():
    niceness()


@dsl.container_component
def fail(message: str):
    return dsl.ContainerSpec(image=IMAGE, command=["python", "-c", "import sys; print(sys.argv[1]); sys.exit(3)"],
                             args=[message])  # fmt: skip


@dsl.pipeline(name="toy")
def toy(items: list[int] = [1, 2, 3], threshold: float = 5.0, broken: bool = False):  # noqa: B006 - KFP defaults
    with dsl.ParallelFor(items) as item:
        emitted = emit(n=item)
    summed = total(values=dsl.Collected(emitted.outputs["value"]), threshold=threshold)
    first = emit(n=4)
    with dsl.If(summed.outputs["ok"] == True):  # noqa: E712 - a KFP condition
        read(table=first.outputs["table"], label=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    with dsl.If(broken == True):  # noqa: E712
        failed = fail(message="boom")
        read(table=first.outputs["table"], label="after").after(failed)


@dsl.pipeline(name="chain")
def chain(n: int = 3):
    first = emit(n=n)
    read(table=first.outputs["table"], label="fixed")


@pytest.fixture(scope="module")
def ir(tmp_path_factory):
    path = tmp_path_factory.mktemp("ir") / "toy.yaml"
    compiler.Compiler().compile(toy, str(path))
    return local_runner.load_ir(path)


def runner(ir, tmp_path, cache=True):
    return local_runner.LocalRunner(ir, tmp_path / "root", local_runner.interpreter_for_images(ROOT / ".venvs"),
                                    cache=cache)  # fmt: skip


def states(r) -> dict:
    return {name: record.state for name, record in r.records.items()}


def test_tasks_run_below_the_served_models_cpu_priority(tmp_path):
    import os

    path = tmp_path / "priority.yaml"
    compiler.Compiler().compile(priority, str(path))
    r = runner(local_runner.load_ir(path), tmp_path)
    r.run({})
    assert r.records["niceness"].parameters == {"value": min(os.nice(0) + local_runner.TASK_NICENESS, 19)}


def test_parallel_for_collected_outputs_conditions_and_artifacts(ir, tmp_path):
    r = runner(ir, tmp_path)
    r.run({})
    assert states(r) == {
        "for-loop-1[0]/emit": "succeeded",
        "for-loop-1[1]/emit": "succeeded",
        "for-loop-1[2]/emit": "succeeded",
        "emit-2": "succeeded",
        "total": "succeeded",
        "condition-2/read": "succeeded",
        "condition-3": "skipped",
    }
    assert r.records["total"].parameters == {"ok": True, "out": 9.0}  # 1.5 + 3 + 4.5, in iteration order
    assert r.records["condition-2/read"].parameters == {"size": 4}  # the artifact travelled by path
    assert r.records["for-loop-1[1]/emit"].parameters == {"value": 3.0}
    log = Path(r.records["condition-2/read"].log).read_text()
    assert r.run_id in log  # the job id placeholder
    assert "--note" not in log  # IfPresent: no note given


def test_condition_false_skips_and_says_why(ir, tmp_path):
    r = runner(ir, tmp_path)
    r.run({"threshold": 100.0})
    assert states(r)["condition-2"] == "skipped"
    assert "condition not met" in r.records["condition-2"].reason


def test_failed_task_stops_its_dependents_and_names_the_cause(ir, tmp_path):
    r = runner(ir, tmp_path)
    r.run({"broken": True})
    assert states(r)["condition-3/fail"] == "failed"
    assert states(r)["condition-3/read-2"] == "skipped"
    assert "exit status 3" in r.records["condition-3/fail"].reason and "boom" in r.records["condition-3/fail"].reason
    assert [f.name for f in r.failed()] == ["condition-3/fail"]
    assert states(r)["total"] == "succeeded"  # what does not depend on the failure still ran


def test_caching_reuses_results_until_an_input_changes(ir, tmp_path):
    first = runner(ir, tmp_path)
    first.run({})
    second = runner(ir, tmp_path)
    second.run({})
    # read takes the job id, new with every run, so it alone runs again
    assert {name for name, state in states(second).items() if state == "succeeded"} == {"condition-2/read"}
    assert states(second)["total"] == "cached" and states(second)["for-loop-1[2]/emit"] == "cached"
    assert second.records["total"].parameters == first.records["total"].parameters
    third = runner(ir, tmp_path)
    third.run({"items": [1, 2, 4]})
    assert states(third)["for-loop-1[2]/emit"] == "succeeded" and states(third)["for-loop-1[0]/emit"] == "cached"
    assert third.records["total"].parameters["out"] == 10.5
    fresh = runner(ir, tmp_path, cache=False)
    fresh.run({})
    assert "cached" not in states(fresh).values()


def fake_environment(venvs: Path) -> Path:
    """Image ctloop-dev's environment of its own: a bare venv with a copy of ctloop's core and a lock. Returns the
    copy, which a test edits as a user edits a component."""
    env = venvs / "dev"
    venv.create(env, with_pip=False, symlinks=True)
    (site,) = (env / "lib").glob("python*/site-packages")
    shutil.copytree(ROOT / "src" / "ctloop", site / "ctloop", ignore=shutil.ignore_patterns("__pycache__"))
    (env / "ctloop-image.lock").write_text("numpy==2.0.0 --hash=sha256:00\n")
    return site / "ctloop"


def test_cache_paths_changed_artifact_deleted_outputs_edited_code_new_lock(tmp_path):
    path = tmp_path / "chain.yaml"
    compiler.Compiler().compile(chain, str(path))
    ir = local_runner.load_ir(path)
    code = fake_environment(tmp_path / "venvs")

    def run():
        r = local_runner.LocalRunner(ir, tmp_path / "root", local_runner.interpreter_for_images(tmp_path / "venvs"))
        r.run({})
        return r

    first = run()
    assert states(first) == {"emit": "succeeded", "read": "succeeded"}
    assert states(run()) == {"emit": "cached", "read": "cached"}

    # An input artifact changed where it lies: its consumer runs again, on what is there now.
    table = first.run_dir / "emit" / "artifacts" / "table"
    table.write_text("x" * 5)
    changed = run()
    assert states(changed) == {"emit": "cached", "read": "succeeded"}
    assert changed.records["read"].parameters == {"size": 5}

    # The cached outputs deleted: the step runs again, and its consumer's input is the first run's once more.
    shutil.rmtree(first.run_dir / "emit")
    rerun = run()
    assert states(rerun) == {"emit": "succeeded", "read": "cached"}
    assert rerun.records["read"].parameters == {"size": 3}

    # A user edits the code the image runs: nothing cached before is reused, what runs after is cached again.
    (code / "policy.py").write_text((code / "policy.py").read_text() + "\n# edited\n")
    assert states(run()) == {"emit": "succeeded", "read": "succeeded"}
    assert states(run()) == {"emit": "cached", "read": "cached"}

    # An upgrade: the environment rebuilt from another lock.
    (tmp_path / "venvs" / "dev" / "ctloop-image.lock").write_text("numpy==2.1.0 --hash=sha256:11\n")
    assert states(run()) == {"emit": "succeeded", "read": "succeeded"}


def test_a_failed_task_is_never_cached(ir, tmp_path):
    for _ in range(2):
        r = runner(ir, tmp_path)
        r.run({"broken": True})
        assert states(r)["condition-3/fail"] == "failed"
        assert states(r)["emit-2"] in ("succeeded", "cached")


def test_bad_arguments_and_files_are_named(ir, tmp_path):
    with pytest.raises(BadInputError, match=r"no parameter\(s\) \['colour'\]"):
        runner(ir, tmp_path).run({"colour": "red"})
    (tmp_path / "x.yaml").write_text("a: 1\n")
    with pytest.raises(BadInputError, match="not a compiled KFP pipeline"):
        local_runner.load_ir(tmp_path / "x.yaml")
    with pytest.raises(BadInputError, match="not a ctloop image"):
        local_runner.interpreter_for_images(ROOT / ".venvs")("python:3.11")


@pytest.mark.parametrize(
    "condition, values, expected",
    [
        ("inputs.parameter_values['a'] == true", {"a": True}, True),
        ("inputs.parameter_values['a'] == true", {"a": False}, False),
        ("inputs.parameter_values['a'] != 'x' && inputs.parameter_values['b'] > 2", {"a": "y", "b": 3}, True),
        ("!(inputs.parameter_values['a'] == 1) || false", {"a": 1}, False),
    ],
)
def test_conditions(condition, values, expected):
    assert local_runner.evaluate_condition(condition, values) is expected


def test_conditions_evaluate_nothing_else():
    with pytest.raises(BadInputError):
        local_runner.evaluate_condition("__import__('os').system('true')", {})


def test_placeholders():
    artifact = local_runner.Artifact("file:///a", "/a", "system.Dataset")
    context = {"artifacts": {"o": artifact}, "parameter_files": {"p": "/p"}, "executor_output": "/e.json"}
    resolve = local_runner.resolve_argument
    assert resolve("{{$.inputs.parameters['x']}}", {"x": {"k": 1}}, {}, context, {}) == ['{"k": 1}']
    assert resolve("--in={{$.inputs.artifacts['i'].uri}}", {}, {"i": artifact}, context, {}) == ["--in=file:///a"]
    assert resolve("{{$.outputs.parameters['p'].output_file}}", {}, {}, context, {}) == ["/p"]
    assert resolve("{{$.outputs.output_file}}", {}, {}, context, {}) == ["/e.json"]
    present = json.dumps({"IfPresent": {"InputName": "x", "Then": ["--x", "{{$.inputs.parameters['x']}}"]}})
    assert resolve(present, {"x": "v"}, {}, context, {}) == ["--x", "v"]
    assert resolve(present, {}, {}, context, {}) == []
    concat = json.dumps({"Concat": ["a-", "{{$.inputs.parameters['x']}}"]})
    assert resolve(concat, {"x": 2}, {}, context, {}) == ["a-2"]


def test_the_compiled_pipeline_loads():
    ir = local_runner.load_ir(ROOT / "pipelines" / "compiled" / "continuous_training.yaml")
    tasks = ir["root"]["dag"]["tasks"]
    order = local_runner.LocalRunner(ir, Path("/nonexistent"), lambda image: Path("/bin/false"))._order(tasks)
    assert sorted(order) == sorted(tasks) and order[:2] == ["resolve-champion", "validate-data"]
    assert order.index("select-trial") < order.index("train-2") < order.index("validate-segments")
