"""The continuous-training pipeline: resolve_champion -> validate_data -> train -> validate_segments -> if blessed:
register -> deploy.

resolve_champion finds what production knows (the champion's registered schema, training statistics and data
verdict); validate_data holds the span to it unless a pinned schema or previous statistics are given.

With trials in ``model.search``, train first runs once per trial in a ``dsl.ParallelFor``; select_trial picks the
trial with the best validation metric from the collected metrics (a fan-in of parameters only), and the final
train runs with the winner's parameters (same seed, same data: the same model as the winning trial).

``build(settings)`` returns the ``@dsl.pipeline`` function with the images, resources and accelerator the
settings call for; ``compile_to(settings, path)`` writes KFP's IR. Pipeline parameters: the span's URI, the text
of ctloop.yaml (its default is the file the pipeline was compiled with), the previous span's statistics (drift)
and the hyper-parameter trials (default: ``model.search``).

Caching: resolve_champion and validate_segments read the registry's champion, validate_data reads a URI whose
content may change, and
register and deploy write to the registry and the SeldonDeployment, so none of them is cached. train is: its
inputs include validate_data's content fingerprint, so a changed span never hits an old entry. Steps that talk to
MLflow retry.

Wiring: a task's inputs come from the upstream tasks it is given, output to input of the same name (the components'
declarations in their ``spec`` modules); pipeline parameters and values whose names differ are given explicitly.
A required input with no source, or an input with two, fails compilation.

No `from __future__ import annotations` here: kfp reads the pipeline's annotations as objects.
"""

import json
from pathlib import Path

from kfp import compiler, dsl

from ctloop.components import kfp_component
from ctloop.components.deploy import spec as deploy
from ctloop.components.register import spec as register
from ctloop.components.resolve_champion import spec as resolve_champion
from ctloop.components.select_trial import spec as select_trial
from ctloop.components.train import spec as train
from ctloop.components.validate_data import spec as validate_data
from ctloop.components.validate_segments import spec as validate_segments

NAME = "continuous-training"
COMPILED = Path(__file__).resolve().parent / "compiled" / "continuous_training.yaml"

# cpu request, cpu limit, memory request, memory limit: sized for spans of about a million rows.
RESOURCES = {
    "resolve": ("100m", "500m", "256M", "512M"),
    "validate": ("1", "2", "2G", "8G"),
    "train": ("2", "4", "2G", "8G"),
    "segments": ("1", "2", "1G", "4G"),
    "register": ("250m", "1", "512M", "1G"),
    "select": ("100m", "500m", "256M", "512M"),
    "deploy": ("100m", "500m", "256M", "512M"),
}


def _size(task, name: str):
    cpu, cpu_limit, memory, memory_limit = RESOURCES[name]
    return task.set_cpu_request(cpu).set_cpu_limit(cpu_limit).set_memory_request(memory).set_memory_limit(memory_limit)


def _op(spec, settings) -> kfp_component.Op:
    return kfp_component.make(spec.COMPONENT, settings.pipeline.image(spec.COMPONENT.image))


def build(settings, config_text: str):
    resolve_op = _op(resolve_champion, settings)
    validate_op = _op(validate_data, settings)
    train_op = _op(train, settings)
    segments_op = _op(validate_segments, settings)
    register_op = _op(register, settings)
    select_op = _op(select_trial, settings)
    deploy_op = _op(deploy, settings)
    cuda = settings.model.device == "cuda"
    # Trials travel as JSON text: as protobuf Structs their key order would change from one compile to the next.
    search = [json.dumps(dict(trial), sort_keys=True) for trial in settings.model.search]

    def train_task(validated, data_uri, config, params_json, name):
        task = train_op(validated, data_uri=data_uri, config=config, params_json=params_json)
        _size(task, "train").set_retry(num_retries=2, backoff_duration="30s").set_display_name(name)
        if cuda:
            task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        return task

    @dsl.pipeline(name=NAME, description="Validate a span, train, judge per segment; if blessed, register and deploy.")
    def continuous_training(
        data_uri: str,
        config: str = config_text,
        previous_statistics_uri: str = "",
        schema_uri: str = "",
        trials: list = search,
    ):
        resolved = resolve_op(config=config)
        _size(resolved, "resolve").set_caching_options(False).set_retry(num_retries=2, backoff_duration="30s")
        resolved.set_display_name("resolve champion")
        validated = validate_op(
            resolved,
            data_uri=data_uri,
            config=config,
            previous_statistics_uri=previous_statistics_uri,
            pinned_schema_uri=schema_uri,
        )
        _size(validated, "validate").set_caching_options(False).set_display_name("validate data")

        if search:
            with dsl.ParallelFor(trials, parallelism=2, name="search") as trial:
                tried = train_task(validated, data_uri, config, trial, "train trial")
            selected = select_op(metrics=dsl.Collected(tried.outputs[train.VALIDATION_METRIC]), trials=trials)
            _size(selected, "select").set_display_name("select trial")
            trained = train_task(validated, data_uri, config, selected.outputs[select_trial.BEST_PARAMS], "train")
        else:
            trained = train_task(validated, data_uri, config, "{}", "train")

        judged = segments_op(trained, config=config)
        _size(judged, "segments").set_caching_options(False).set_retry(num_retries=2, backoff_duration="30s")
        judged.set_display_name("validate segments")

        blessed = judged.outputs[validate_segments.BLESSED]
        with dsl.If(blessed == True, name="blessed"):  # noqa: E712 - a KFP condition, not Python
            registered = register_op(
                validated,
                trained,
                judged,
                config=config,
                data_uri=data_uri,
                segment_report=judged.outputs[validate_segments.REPORT_HTML],  # validate_data has a report too
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            )
            _size(registered, "register").set_caching_options(False).set_retry(num_retries=2, backoff_duration="30s")
            registered.set_display_name("register")
            # The candidate joins the SeldonDeployment; the rollout controller decides from there.
            deployed = deploy_op(registered, config=config)
            _size(deployed, "deploy").set_caching_options(False).set_retry(num_retries=2, backoff_duration="30s")
            deployed.set_display_name("deploy")

    return continuous_training


def config_parameter(path: Path | str) -> str:
    """The settings file as the pipeline's `config` default: one line of JSON (YAML reads it as it is).

    Multi-line text would not do: the compiler copies defaults into the YAML comment heading the IR, where a
    newline ends the comment and breaks the file.
    """
    import yaml

    return json.dumps(yaml.safe_load(Path(path).read_text()), separators=(",", ":"))


def compile_to(settings, config_text: str, path: Path | str = COMPILED) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build(settings, config_text), str(path))
    return path


def compile_kubernetes_manifests(settings, config_text: str, path: Path | str, namespace: str = "kubeflow") -> Path:
    """KFP's Kubernetes-native Pipeline and PipelineVersion objects, for `kubectl apply -f`."""
    from ctloop import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = compiler.KubernetesManifestOptions(
        pipeline_name=NAME,
        pipeline_display_name="ctloop continuous training",
        pipeline_version_name=f"{NAME}-{__version__.replace('.', '-')}",
        pipeline_version_display_name=f"ctloop {__version__}",
        namespace=namespace,
        include_pipeline_manifest=True,
    )
    compiler.Compiler().compile(
        build(settings, config_text), str(path), kubernetes_manifest_format=True, kubernetes_manifest_options=options
    )
    return path
