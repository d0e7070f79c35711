"""Runs a compiled KFP pipeline (the IR YAML) on this machine, with no cluster and no Docker.

Each container component's command runs in the local environment built from its image's lock
(``ctloop-<image>`` -> ``.venvs/<image>``), so the code and the pins are the ones the cluster runs. What the
runner implements of KFP's semantics: the DAG's order from task inputs and ``dependentTasks``; parameters
(pipeline inputs, task outputs, constants) and artifacts (a folder per output under the pipeline root, passed
by path and ``file://`` URI); the placeholders of container components (inputs, outputs, output files, the
executor-output file, ``IfPresent``, ``Concat``, the job id); ``triggerPolicy`` conditions; ``ParallelFor`` over a
parameter list with collected outputs; caching keyed on the component, the digests of its inputs and what its
image runs (the environment's ctloop code and lock, as KFP's key holds the image); the ExecutorOutput file's
artifact metadata. Iterations and tasks run one at a time (a small machine gains nothing from running them side
by side). A failed task stops what depends on it; the run summary says which and why.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ctloop.errors import BadInputError, CtloopError, NotReadyError
from ctloop.local import environments


class TaskFailed(CtloopError):
    """A task of the pipeline failed; the run stopped what depended on it."""


@dataclass
class Artifact:
    uri: str
    path: str
    type: str
    metadata: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"uri": self.uri, "path": self.path, "type": self.type, "metadata": self.metadata}


@dataclass
class TaskRecord:
    name: str  # qualified: "for-loop-1[0]/train"
    state: str = "pending"  # pending, running, succeeded, cached, skipped, failed
    seconds: float = 0.0
    log: str = ""
    reason: str = ""
    parameters: dict = field(default_factory=dict)  # output parameters, once it succeeded


@dataclass
class Outputs:
    parameters: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# Conditions: KFP writes CEL such as inputs.parameter_values['pipelinechannel--x'] == true


_CEL_TO_PYTHON = [(r"&&", " and "), (r"\|\|", " or "), (r"!(?!=)", " not "), (r"\btrue\b", "True"),
                  (r"\bfalse\b", "False"), (r"\bnull\b", "None")]  # fmt: skip
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.Compare, ast.Eq,
            ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Constant, ast.List, ast.Name, ast.Load, ast.In, ast.NotIn,
            ast.Call, ast.Subscript)  # fmt: skip


def evaluate_condition(condition: str, parameter_values: dict) -> bool:
    values: list = []

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in parameter_values:
            raise BadInputError(f"condition {condition!r} refers to an unknown input {name!r}")
        values.append(parameter_values[name])
        return f"__v[{len(values) - 1}]"

    text = re.sub(r"inputs\.parameter_values\['([^']+)'\]", value, condition)
    for pattern, replacement in _CEL_TO_PYTHON:
        text = re.sub(pattern, replacement, text)
    tree = ast.parse(text.strip(), mode="eval")
    for node in ast.walk(tree):
        known_name = not isinstance(node, ast.Name) or node.id in ("__v", "int", "True", "False", "None")
        if not isinstance(node, _ALLOWED) or not known_name:
            raise BadInputError(f"condition {condition!r} uses something the local runner does not evaluate")
    # The tree holds only comparisons, boolean logic, literals and the input values: nothing else can run.
    return bool(eval(compile(tree, "<condition>", "eval"), {"__builtins__": {}}, {"__v": values, "int": int}))  # noqa: S307


# ---------------------------------------------------------------------------------------------------------------
# Placeholders


def _render(value) -> str:
    """A parameter as KFP puts it on a command line: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


_PLACEHOLDER = re.compile(r"\{\{\$(?:\.([a-z_]+)(?:\.(parameters|artifacts)\['([^']+)'\](?:\.([a-z_]+))?)?)?\}\}")


def resolve_argument(arg: str, parameters: dict, artifacts_in: dict, outputs: dict, job: dict) -> list[str]:
    """One command-line item, after its placeholders; IfPresent may give none or several."""
    if arg.startswith("{") and ('"IfPresent"' in arg or '"Concat"' in arg):
        structure = json.loads(arg)
        if "IfPresent" in structure:
            spec = structure["IfPresent"]
            present = spec["InputName"] in parameters or spec["InputName"] in artifacts_in
            chosen = spec.get("Then", []) if present else spec.get("Else", [])
            chosen = [chosen] if isinstance(chosen, str) else chosen
            return [a for item in chosen for a in resolve_argument(item, parameters, artifacts_in, outputs, job)]
        return [
            "".join(resolve_argument(item, parameters, artifacts_in, outputs, job)[0] for item in structure["Concat"])
        ]

    def one(match: re.Match) -> str:
        scope, kind, name, attribute = match.groups()
        whole = match.group(0)
        if whole in job:
            return job[whole]
        if scope == "inputs" and kind == "parameters":
            return _render(parameters[name])
        if scope == "inputs" and kind == "artifacts":
            return getattr_artifact(artifacts_in[name], attribute)
        if scope == "outputs" and kind == "artifacts":
            return getattr_artifact(outputs["artifacts"][name], attribute)
        if scope == "outputs" and kind == "parameters" and attribute == "output_file":
            return outputs["parameter_files"][name]
        raise BadInputError(f"placeholder {whole} is not one the local runner knows")

    arg = arg.replace("{{$.outputs.output_file}}", outputs["executor_output"])
    return [_PLACEHOLDER.sub(one, arg)]


def getattr_artifact(artifact: Artifact, attribute: str | None) -> str:
    if attribute == "path":
        return artifact.path
    if attribute == "uri":
        return artifact.uri
    if attribute == "metadata":
        return json.dumps(artifact.metadata)
    raise BadInputError(f"artifact attribute {attribute!r} is not one the local runner knows")


def _typed(value, kind: str):
    """The IR keeps every number as a double (a protobuf Value): give integers back their type."""
    if kind == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _read_parameter(path: Path, kind: str):
    text = path.read_text()
    if kind == "STRING":
        return text
    if kind == "NUMBER_INTEGER":
        return int(float(text))
    if kind == "NUMBER_DOUBLE":
        return float(text)
    return json.loads(text)  # BOOLEAN, LIST, STRUCT


def _digest(path: str) -> str:
    """Content digest of an artifact: a file, or every file under a folder with its relative name."""
    h = hashlib.sha256()
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(root) if f != root else f.name).encode() + b"\0")
        with f.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# The runner


RUN_RECORD = "run.json"  # in runs/<run id>/: start, end, state and tasks of a finished run
# Tasks are batch work on a machine that also serves the model: a cluster runs a pipeline's pods apart from the
# model servers; here they run at a lower CPU priority, so that a run slows itself, not the served requests.
TASK_NICENESS = 10
Interpreter = Callable[[str], Path]  # image reference -> the interpreter of the environment built for it


def _batch_priority() -> None:
    os.nice(TASK_NICENESS)


def pipeline_root(settings) -> Path:
    """Where local runs keep their outputs, caches and records: pipeline.pipeline_root, else the state folder's."""
    return Path(settings.pipeline.pipeline_root or Path(settings.local.state_dir) / "pipeline-root")


def interpreter_for_images(venvs_dir: Path) -> Interpreter:
    def find(image: str) -> Path:
        match = re.search(r"ctloop-([a-z]+)(?::|@|$)", image)
        if not match or match.group(1) not in environments.IMAGES:
            raise BadInputError(f"image {image!r} is not a ctloop image: no local environment runs it")
        return environments.python_in(venvs_dir, match.group(1))

    return find


class LocalRunner:
    def __init__(self, ir: dict, pipeline_root: Path, interpreter: Interpreter, cache: bool = True,
                 on_change: Callable[[TaskRecord], None] | None = None):  # fmt: skip
        self.ir = ir
        self.root = pipeline_root
        self.interpreter = interpreter
        self.cache = cache
        self.on_change = on_change or (lambda record: None)
        self.run_id = uuid.uuid4().hex[:12]
        self.run_dir = self.root / "runs" / self.run_id
        self.cache_dir = self.root / "cache"
        self.records: dict[str, TaskRecord] = {}
        self._identities: dict[Path, dict] = {}
        self.job = {
            "{{$.pipeline_job_uuid}}": self.run_id,
            "{{$.pipeline_job_name}}": f"{ir['pipelineInfo']['name']}-{self.run_id}",
            "{{$.pipeline_root}}": self.root.as_uri(),
        }

    # -- public

    def run(self, arguments: dict) -> dict:
        root = self.ir["root"]
        parameters = self._pipeline_parameters(root.get("inputDefinitions", {}).get("parameters", {}), arguments)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "arguments.json").write_text(json.dumps(parameters, indent=2))
        started = time.time()
        try:
            return self._run_dag(root["dag"], "", parameters, {}).parameters
        finally:
            # What the run did and how long it took, for whoever looks at it later (the demo's loop report).
            tasks = [{"name": r.name, "state": r.state, "seconds": round(r.seconds, 3)} for r in self.records.values()]
            record = {"run_id": self.run_id, "started": started, "finished": time.time(),
                      "state": "failed" if self.failed() else "succeeded", "tasks": tasks}  # fmt: skip
            (self.run_dir / RUN_RECORD).write_text(json.dumps(record, indent=2))

    def failed(self) -> list[TaskRecord]:
        return [r for r in self.records.values() if r.state == "failed"]

    # -- DAGs

    @staticmethod
    def _pipeline_parameters(definitions: dict, arguments: dict) -> dict:
        unknown = sorted(set(arguments) - set(definitions))
        if unknown:
            raise BadInputError(f"the pipeline has no parameter(s) {unknown}; it takes {sorted(definitions)}")
        out = {}
        for name, spec in definitions.items():
            if name in arguments:
                out[name] = arguments[name]
            elif "defaultValue" in spec:
                out[name] = spec["defaultValue"]
            elif not spec.get("isOptional"):
                raise BadInputError(f"the pipeline parameter {name!r} is required")
        return out

    def _order(self, tasks: dict) -> list[str]:
        def upstream(spec: dict) -> set[str]:
            return set(self._producers(spec)) & set(tasks)

        done: list[str] = []
        pending = dict(sorted((name, upstream(spec)) for name, spec in tasks.items()))
        while pending:
            ready = [name for name, needs in pending.items() if needs <= set(done)]
            if not ready:
                raise BadInputError(f"the pipeline's tasks depend on each other in a cycle: {sorted(pending)}")
            done.append(ready[0])
            del pending[ready[0]]
        return done

    def _run_dag(self, dag: dict, prefix: str, parameters: dict, artifacts_in: dict) -> Outputs:
        results: dict[str, Outputs | None] = {}  # None: skipped or failed
        for name in self._order(dag["tasks"]):
            spec = dag["tasks"][name]
            qualified = f"{prefix}{name}"
            upstream_missing = [p for p in self._producers(spec) if results.get(p) is None]
            if upstream_missing:
                self._set(qualified, "skipped", reason=f"upstream {', '.join(upstream_missing)} did not succeed")
                results[name] = None
                continue
            task_parameters, task_artifacts = self._inputs(spec, parameters, artifacts_in, results)
            condition = spec.get("triggerPolicy", {}).get("condition")
            if condition and not evaluate_condition(condition, task_parameters):
                self._set(qualified, "skipped", reason=f"condition not met: {condition}")
                results[name] = None
                continue
            component = self.ir["components"][spec["componentRef"]["name"]]
            for input_name, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
                if input_name not in task_parameters and "defaultValue" in definition:
                    task_parameters[input_name] = definition["defaultValue"]
                if input_name in task_parameters:
                    task_parameters[input_name] = _typed(task_parameters[input_name], definition["parameterType"])
            try:
                if "dag" in component:
                    results[name] = self._run_sub_dag(spec, component, qualified, task_parameters, task_artifacts)
                else:
                    results[name] = self._run_container(spec, component, qualified, task_parameters, task_artifacts)
            except TaskFailed:
                results[name] = None
        return self._dag_outputs(dag, results)

    @staticmethod
    def _producers(spec: dict) -> list[str]:
        found = list(spec.get("dependentTasks", []))
        for kind in ("parameters", "artifacts"):
            for value in spec.get("inputs", {}).get(kind, {}).values():
                for key in ("taskOutputParameter", "taskOutputArtifact"):
                    if key in value and value[key]["producerTask"] not in found:
                        found.append(value[key]["producerTask"])
        return found

    def _inputs(self, spec: dict, parameters: dict, artifacts_in: dict, results: dict) -> tuple[dict, dict]:
        task_parameters, task_artifacts = {}, {}
        for name, value in spec.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in value:
                source = value["componentInputParameter"]
                if source in parameters:
                    task_parameters[name] = parameters[source]
            elif "taskOutputParameter" in value:
                ref = value["taskOutputParameter"]
                task_parameters[name] = results[ref["producerTask"]].parameters[ref["outputParameterKey"]]
            elif "runtimeValue" in value:
                constant = value["runtimeValue"]["constant"]
                task_parameters[name] = self.job.get(constant, constant) if isinstance(constant, str) else constant
        for name, value in spec.get("inputs", {}).get("artifacts", {}).items():
            if "componentInputArtifact" in value:
                source = value["componentInputArtifact"]
                if source in artifacts_in:
                    task_artifacts[name] = artifacts_in[source]
            elif "taskOutputArtifact" in value:
                ref = value["taskOutputArtifact"]
                task_artifacts[name] = results[ref["producerTask"]].artifacts[ref["outputArtifactKey"]]
        return task_parameters, task_artifacts

    @staticmethod
    def _dag_outputs(dag: dict, results: dict) -> Outputs:
        out = Outputs()
        for name, value in dag.get("outputs", {}).get("parameters", {}).items():
            ref = value.get("valueFromParameter")
            if ref and results.get(ref["producerSubtask"]) is not None:
                out.parameters[name] = results[ref["producerSubtask"]].parameters[ref["outputParameterKey"]]
        for name, value in dag.get("outputs", {}).get("artifacts", {}).items():
            for selector in value.get("artifactSelectors", []):
                if results.get(selector["producerSubtask"]) is not None:
                    out.artifacts[name] = results[selector["producerSubtask"]].artifacts[selector["outputArtifactKey"]]
        return out

    def _run_sub_dag(self, spec, component, qualified, parameters, artifacts_in) -> Outputs:
        iterator = spec.get("parameterIterator")
        if not iterator:
            outputs = self._run_dag(component["dag"], f"{qualified}/", parameters, artifacts_in)
            if any(r.state == "failed" for key, r in self.records.items() if key.startswith(f"{qualified}/")):
                raise TaskFailed(f"{qualified} failed")
            return outputs
        items = iterator["items"]
        values = parameters[items["inputParameter"]] if "inputParameter" in items else json.loads(items["raw"])
        if isinstance(values, str):
            values = json.loads(values)
        collected: dict[str, list] = {name: [] for name in component["dag"].get("outputs", {}).get("parameters", {})}
        for index, item in enumerate(values):
            iteration = self._run_dag(component["dag"], f"{qualified}[{index}]/",
                                      {**parameters, iterator["itemInput"]: item}, artifacts_in)  # fmt: skip
            if any(r.state == "failed" for key, r in self.records.items() if key.startswith(f"{qualified}[{index}]/")):
                raise TaskFailed(f"{qualified}[{index}] failed")
            for name in collected:
                collected[name].append(iteration.parameters.get(name))
        return Outputs(parameters=collected)

    # -- containers

    def _environment(self, python: Path) -> dict:
        """The code and lock of the environment that runs a step, as that environment reports them: an edited
        component or an upgraded ctloop changes them, so a result cached before is not reused after."""
        if python not in self._identities:
            out = subprocess.run([str(python), "-m", "ctloop.provenance"], capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                tail = out.stderr.strip()[-600:]
                raise NotReadyError(f"the environment of {python} cannot say what code it runs: {tail}")
            self._identities[python] = json.loads(out.stdout)
        return self._identities[python]

    def _cache_key(self, component: dict, executor: dict, parameters: dict, artifacts_in: dict) -> str:
        doc = {
            "component": component,
            "executor": executor,
            "environment": self._environment(self.interpreter(executor["image"])),
            "parameters": parameters,
            "artifacts": {name: _digest(a.path) for name, a in sorted(artifacts_in.items())},
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()

    def _run_container(self, spec, component, qualified, parameters, artifacts_in) -> Outputs:
        executor = self.ir["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        folder = self.run_dir / qualified.replace("/", "__")
        cacheable = self.cache and spec.get("cachingOptions", {}).get("enableCache", False)
        key = self._cache_key(component, executor, parameters, artifacts_in) if cacheable else None
        if key and (self.cache_dir / f"{key}.json").exists():
            cached = json.loads((self.cache_dir / f"{key}.json").read_text())
            if all(Path(a["path"]).exists() for a in cached["artifacts"].values()):
                self._set(qualified, "cached", log=cached.get("log", ""), parameters=cached["parameters"])
                return Outputs(cached["parameters"], {n: Artifact(**a) for n, a in cached["artifacts"].items()})

        outputs_spec = component.get("outputDefinitions", {})
        artifacts_out = {}
        for name, definition in outputs_spec.get("artifacts", {}).items():
            path = folder / "artifacts" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            artifacts_out[name] = Artifact(path.as_uri(), str(path), definition["artifactType"]["schemaTitle"])
        parameter_files = {name: str(folder / "parameters" / name) for name in outputs_spec.get("parameters", {})}
        (folder / "parameters").mkdir(parents=True, exist_ok=True)
        executor_output = folder / "executor_output.json"
        context = {
            "artifacts": artifacts_out,
            "parameter_files": parameter_files,
            "executor_output": str(executor_output),
        }
        argv = [a for arg in executor["command"] + executor.get("args", [])
                for a in resolve_argument(arg, parameters, artifacts_in, context, self.job)]  # fmt: skip
        python = self.interpreter(executor["image"])
        if argv[0] in ("python", "python3"):
            argv[0] = str(python)
        log = folder / "log.txt"
        env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
               "CTLOOP_PIPELINE_RUN_ID": self.run_id}  # fmt: skip
        self._set(qualified, "running", log=str(log))
        started = time.monotonic()
        with log.open("wb") as stream:
            stream.write(("$ " + shlex.join(argv) + "\n").encode())
            stream.flush()
            code = subprocess.call(argv, stdout=stream, stderr=subprocess.STDOUT, env=env, cwd=folder,
                                   preexec_fn=_batch_priority)  # fmt: skip
        seconds = time.monotonic() - started
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-12:])
            self._set(qualified, "failed", seconds=seconds, reason=f"exit status {code}; its log ends:\n{tail}")
            raise TaskFailed(qualified)
        try:
            produced = {name: _read_parameter(Path(path), outputs_spec["parameters"][name]["parameterType"])
                        for name, path in parameter_files.items()}  # fmt: skip
        except (FileNotFoundError, ValueError) as e:
            self._set(qualified, "failed", seconds=seconds, reason=f"an output parameter is missing or unreadable: {e}")
            raise TaskFailed(qualified) from None
        if executor_output.exists():
            reported = json.loads(executor_output.read_text()).get("artifacts", {})
            for name, listed in reported.items():
                if name in artifacts_out and listed.get("artifacts"):
                    artifacts_out[name].metadata.update(listed["artifacts"][0].get("metadata", {}))
        self._set(qualified, "succeeded", seconds=seconds, parameters=produced)
        if key:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            record = {"parameters": produced, "artifacts": {n: a.as_dict() for n, a in artifacts_out.items()},
                      "log": str(log)}  # fmt: skip
            (self.cache_dir / f"{key}.json").write_text(json.dumps(record))
        return Outputs(produced, artifacts_out)

    def _set(self, qualified: str, state: str, **changes) -> None:
        record = self.records.setdefault(qualified, TaskRecord(qualified))
        record.state = state
        for name, value in changes.items():
            setattr(record, name, value)
        self.on_change(record)


def load_ir(path: Path | str) -> dict:
    try:
        ir = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise BadInputError(f"{path}: cannot be read as a compiled pipeline: {e}") from None
    if not isinstance(ir, dict) or "root" not in ir or "deploymentSpec" not in ir:
        raise BadInputError(f"{path}: not a compiled KFP pipeline (no root DAG or deployment spec)")
    return ir
