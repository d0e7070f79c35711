"""A component's inputs and outputs, declared once in its ``spec`` module.

The entry program's argument parser is made here, and the KFP container component in ``kfp_component`` (where
pipelines are compiled), both from the same declaration: the flags KFP passes and the flags the program accepts
cannot drift apart. The standard library only at import: every image imports this, and so does the compiler.

A component's command line, from its declaration:

- an input parameter is ``--<name> VALUE`` (or its own ``flag``); ``config`` is the ``--config FILE | --config-yaml
  TEXT`` pair, of which KFP passes ``--config-yaml``;
- an input artifact is ``--<name> PATH``; KFP leaves an optional one out when the pipeline gives it nothing;
- an output is ``--<name>-out PATH``, else ``<--out>/<file>``, else not written; an output artifact declared with
  ``uri`` also gets ``--<name>-uri URI`` (the ExecutorOutput file names the artifact by its URI);
- ``--executor-output FILE``: KFP's ``{{$.outputs.output_file}}``, for components that report metrics to the UI.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from ctloop import artifacts

REQUIRED = object()  # the default of a parameter that has none
EXECUTOR_OUTPUT = "--executor-output"
OUT = "--out"
# The artifact classes of kfp.dsl that ctloop's components use; named by string so that images need no kfp.
ARTIFACT_KINDS = {"Artifact", "Dataset", "Model", "Metrics", "ClassificationMetrics", "HTML", "Markdown"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_kind(name: str, kind: str) -> None:
    if kind not in ARTIFACT_KINDS:
        raise ValueError(f"{name}: artifact kind {kind!r} is not one of {sorted(ARTIFACT_KINDS)}")


@dataclass(frozen=True)
class Parameter:
    """An input value: text on the command line (JSON for lists), typed for KFP by ``type``."""

    name: str
    type: type  # str, int, float, bool, list[...]: what KFP checks the pipeline's argument against
    help: str
    default: object = REQUIRED
    flag: str = ""  # default --<name>; set where people type a shorter one

    def __post_init__(self):
        object.__setattr__(self, "flag", self.flag or _flag(self.name))

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Artifact:
    """An input artifact: KFP passes the path of its local copy."""

    name: str
    kind: str  # one of ARTIFACT_KINDS
    help: str
    optional: bool = False
    flag: str = ""

    def __post_init__(self):
        _check_kind(self.name, self.kind)
        object.__setattr__(self, "flag", self.flag or _flag(self.name))

    @property
    def required(self) -> bool:
        return not self.optional


@dataclass(frozen=True)
class OutputArtifact:
    """An output artifact, written at a path KFP chooses or as ``file`` under ``--out``."""

    name: str
    kind: str
    file: str  # a file, or a folder for the model
    help: str
    uri: bool = False  # also pass the artifact's URI (--<name>-uri): ExecutorOutput metadata is keyed by it

    def __post_init__(self):
        _check_kind(self.name, self.kind)

    @property
    def flag(self) -> str:
        return _flag(self.name) + "-out"

    @property
    def uri_flag(self) -> str:
        return _flag(self.name) + "-uri"


@dataclass(frozen=True)
class OutputParameter:
    """An output value: the program writes it as text to a file, KFP reads it from there."""

    name: str
    type: type
    file: str
    help: str

    @property
    def flag(self) -> str:
        return _flag(self.name) + "-out"


CONFIG = Parameter("config", str, "The text of ctloop.yaml (what a KFP parameter carries).", flag="--config-yaml")


@dataclass(frozen=True)
class Component:
    """A component: what it runs, what it takes, what it gives."""

    name: str  # the package under ctloop.components
    image: str  # the image (and local environment) it runs in: validate, train, control
    description: str
    inputs: list[Parameter | Artifact] = field(default_factory=list)
    outputs: list[OutputArtifact | OutputParameter] = field(default_factory=list)
    executor_output: bool = False  # writes KFP's ExecutorOutput file (Metrics for the UI)

    def __post_init__(self):
        names = [item.name for item in (*self.inputs, *self.outputs)]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"{self.name}: {repeated} declared more than once")

    @property
    def entry(self) -> list[str]:
        return ["python", "-m", f"ctloop.components.{self.name}"]

    @property
    def output_files(self) -> dict[str, str]:
        return {item.name: item.file for item in self.outputs}

    def parser(self) -> argparse.ArgumentParser:
        """The entry program's parser: every flag the KFP component passes, and --out (--config for people too).

        Entry programs add the options only people use on top.
        """
        # Imported here, not at the top: it brings the settings model (pydantic), which importing a spec must not.
        from ctloop.entrypoint import add_config_arguments

        p = argparse.ArgumentParser(prog=self.name, description=self.description)
        for item in self.inputs:
            if item == CONFIG:
                add_config_arguments(p)
            elif isinstance(item, Parameter):
                convert = item.type if item.type in (int, float) else None
                default = None if item.required else item.default
                p.add_argument(item.flag, dest=item.name, type=convert, required=item.required, default=default,
                               help=item.help)  # fmt: skip
            else:
                p.add_argument(item.flag, dest=item.name, required=item.required, help=item.help)
        if self.outputs:
            p.add_argument(OUT, help="Folder for every output not given its own path.")
        for item in self.outputs:
            p.add_argument(item.flag, dest=f"{item.name}_out", help=f"Where to write {item.name}: {item.help}")
            if isinstance(item, OutputArtifact) and item.uri:
                p.add_argument(item.uri_flag, dest=f"{item.name}_uri", default="", help=f"KFP's URI of {item.name}.")
        if self.executor_output:
            p.add_argument(EXECUTOR_OUTPUT, help="KFP's {{$.outputs.output_file}}: metrics for the UI.")
        return p

    def output_paths(self, args: argparse.Namespace) -> dict[str, str]:
        """Output name -> where to write it: its own --<name>-out, else <--out>/<file>; neither: left out."""
        paths = {}
        for item in self.outputs:
            given = getattr(args, f"{item.name}_out")
            if given:
                paths[item.name] = given
            elif args.out:
                paths[item.name] = artifacts.join(args.out, item.file)
        return paths
