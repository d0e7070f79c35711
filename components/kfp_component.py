"""The KFP container component of a declared component, and its tasks wired by name. Imports kfp: used where
pipelines are compiled (the dev environment), never inside an image.

No `from __future__ import annotations` here: kfp reads the parameter annotations as objects.
"""

import inspect

from kfp import dsl

from ctloop.components.declaration import (
    EXECUTOR_OUTPUT,
    Artifact,
    Component,
    OutputArtifact,
    OutputParameter,
    Parameter,
)


class WiringError(ValueError):
    """A task's input has no source or two: raised while the pipeline is compiled, naming the component and input."""


def _annotation(item):
    if isinstance(item, Parameter):
        return item.type
    if isinstance(item, Artifact):
        return dsl.Input[getattr(dsl, item.kind)]
    if isinstance(item, OutputArtifact):
        return dsl.Output[getattr(dsl, item.kind)]
    return dsl.OutputPath(item.type)


def _signature(declaration: Component) -> inspect.Signature:
    """What @dsl.container_component reads to make the component's interface."""
    parameters = []
    for item in (*declaration.inputs, *declaration.outputs):
        default = inspect.Parameter.empty
        if isinstance(item, Parameter) and not item.required:
            default = item.default
        elif isinstance(item, Artifact) and item.optional:
            default = None  # how KFP marks an input artifact optional
        # Keyword-only: then the declaration's order need not put the inputs with defaults last.
        parameters.append(inspect.Parameter(item.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=_annotation(item)))  # fmt: skip
    return inspect.Signature(parameters)


def _args(declaration: Component, values: dict) -> list:
    """The command line, in the declaration's order; ``values`` are the placeholders kfp hands the function."""
    args = []
    for item in declaration.inputs:
        value = values[item.name]
        if isinstance(item, Parameter):
            args += [item.flag, value]
        elif item.optional:
            args.append(dsl.IfPresentPlaceholder(input_name=item.name, then=[item.flag, value.path]))
        else:
            args += [item.flag, value.path]
    for item in declaration.outputs:
        value = values[item.name]
        if isinstance(item, OutputParameter):
            args += [item.flag, value]
        else:
            args += [item.flag, value.path]
            if item.uri:
                args += [item.uri_flag, value.uri]
    if declaration.executor_output:
        args += [EXECUTOR_OUTPUT, dsl.PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER]
    return args


class Op:
    """A declared component built for one image. Calling it makes a task: ``op(*upstream, **explicit)``."""

    def __init__(self, declaration: Component, component):
        self.declaration = declaration
        self.component = component  # the kfp ContainerComponent

    def __call__(self, *upstream, **explicit):
        return self.component(**arguments(self.declaration, upstream, explicit))


def make(declaration: Component, image: str) -> Op:
    """The component of ``declaration``, running ``image`` (with its registry and tag)."""
    names = [item.name for item in (*declaration.inputs, *declaration.outputs)]

    def container(*placeholders):
        args = _args(declaration, dict(zip(names, placeholders, strict=True)))
        return dsl.ContainerSpec(image=image, command=declaration.entry, args=args)

    container.__name__ = container.__qualname__ = declaration.name
    container.__doc__ = declaration.description
    container.__signature__ = _signature(declaration)
    return Op(declaration, dsl.container_component(container))


def arguments(declaration: Component, upstream, explicit: dict) -> dict:
    """A task's arguments: the ``explicit`` ones, then each other input from the one upstream task (a kfp
    PipelineTask) with an output of the same name. A required input with no source, or any input with two, fails."""
    unknown = sorted(set(explicit) - {item.name for item in declaration.inputs})
    if unknown:
        raise WiringError(f"{declaration.name} has no input {', '.join(unknown)}")
    found = dict(explicit)
    for item in declaration.inputs:
        if item.name in explicit:
            continue
        sources = [task for task in upstream if item.name in task.outputs]
        if len(sources) > 1:
            names = " and ".join(task.name for task in sources)
            raise WiringError(f"{declaration.name}: input {item.name!r} has two sources ({names}); give it explicitly")
        if sources:
            found[item.name] = sources[0].outputs[item.name]
        elif item.required:
            raise WiringError(
                f"{declaration.name}: required input {item.name!r} has no source: no value given and no upstream "
                f"task has an output of that name"
            )
    return found
