"""The ``ctloop`` command. Each subcommand is a thin layer over a module that does the work."""

from __future__ import annotations

import functools
import sys

import click

from ctloop import __version__
from ctloop.errors import CtloopError

CONFIG_HELP = "Settings file (default: ./ctloop.yaml, or $CTLOOP_CONFIG)."


def _fail(error: CtloopError) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(error.exit_code)


def reports_errors(fn):
    """Turn ctloop's errors into one clear message and the error's exit status; bugs keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CtloopError as e:
            _fail(e)

    return wrapper


def _settings(path: str):
    from ctloop.entrypoint import settings_from_file

    return settings_from_file(path)


config_option = click.option(
    "--config", "-c", "config_path", default="ctloop.yaml", envvar="CTLOOP_CONFIG", show_envvar=True, help=CONFIG_HELP
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """ctloop: continuous training for tabular models on Kubeflow Pipelines, Seldon Core and MLflow."""


@main.command()
def version() -> None:
    """Print ctloop's version."""
    click.echo(__version__)


@main.group("config")
def config_group() -> None:
    """Check settings files."""


@config_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@reports_errors
def config_validate(file: str) -> None:
    """Validate FILE; print every bad key path and exit 2 when it is invalid."""
    from ctloop import config

    settings = config.load(file)
    click.echo(
        f"{file}: valid ({len(settings.features)} features, {len(settings.segments)} segments, "
        f"task {settings.data.task.value}, mode {settings.mode.value})"
    )
    if settings.data.task.value != "binary_classification":  # said before a run trains for nothing
        click.echo(
            f"note: data.task {settings.data.task.value}: train fits it, but validate-segments blesses binary "
            "classification only (unsupported_task), so no version is registered or served "
            "(docs/training.md#validate_segments)"
        )


@main.group("data")
def data_group() -> None:
    """Demo data."""


@data_group.command("generate")
@click.option("--rows", type=int, required=True, help="Rows in the span, 1,000 to 1,000,000.")
@click.option("--out", required=True, help="Folder or URI (file://, s3://) for the data file and manifest.json.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--drift", type=click.Choice(["covariate", "concept", "new-category"]), help="Drift to inject.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="parquet", show_default=True)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="First day of the span (default 2024-01-01).")
@click.option("--days", type=int, default=30, show_default=True, help="Days the span covers.")
@reports_errors
def data_generate(rows, out, seed, drift, fmt, start, days) -> None:
    """Write a seeded, credit-risk style span and its manifest."""
    from ctloop.local import demo_data

    start_date = start.date() if start else None
    manifest = demo_data.write_span(out, rows=rows, seed=seed, start=start_date, days=days, drift=drift, fmt=fmt)
    drift_text = manifest["drift"]["kind"] or "none"
    click.echo(
        f"wrote {manifest['rows']} rows ({manifest['start']} to {manifest['end']}, drift: {drift_text}, "
        f"positive rate {manifest['positive_rate']:.3f}) to {out}"
    )


@main.command()
@click.option("--data", required=True, help="The span to validate: a CSV/Parquet file or folder, path or URI.")
@click.option("--reference", help="The previous span: the schema is inferred from it, drift measured against it.")
@click.option("--schema", help="A pinned schema (text proto) to validate against instead of inferring one.")
@click.option("--out", help="Folder for the outputs (default: <state_dir>/validate).")
@click.option("--beam", is_flag=True, help="Compute statistics with Apache Beam (DirectRunner unless --beam-arg).")
@click.option("--beam-arg", multiple=True, help="A Beam pipeline option, e.g. --beam-arg=--runner=FlinkRunner.")
@config_option
@reports_errors
def validate(data, reference, schema, out, beam, beam_arg, config_path) -> None:
    """Validate a data span with TFDV; exit 1 on ERROR anomalies, 2 on bad input.

    Runs the validate_data component's own entry program in the validate environment.
    """
    import subprocess
    from pathlib import Path

    from ctloop.local import environments

    settings = _settings(config_path)
    python = environments.python_for(settings, "validate")
    out = out or str(Path(settings.local.state_dir) / "validate")
    argv = [str(python), "-m", "ctloop.components.validate_data", "--config", config_path, "--data", data]
    argv += ["--out", out]
    for flag, value in (("--reference", reference), ("--schema", schema)):
        if value:
            argv += [flag, value]
    if not reference:
        argv += _champion_arguments(settings, config_path, Path(out) / "champion")
    if beam:
        argv += ["--beam", *[f"--beam-arg={a}" for a in beam_arg]]
    code = subprocess.call(argv)
    if code == 0:
        click.echo(f"outputs in {out}", err=True)
    sys.exit(code)


def _champion_arguments(settings, config_path: str, out) -> list[str]:
    """What the pipeline's resolve-champion step hands validate_data, found by the same entry program; an
    unreachable registry is said in one line and the span is judged without it."""
    import subprocess

    from ctloop.components.resolve_champion import __main__ as resolver
    from ctloop.components.resolve_champion import spec as resolved
    from ctloop.local import environments

    python = environments.python_for(settings, "train")
    found = subprocess.run([str(python), "-m", "ctloop.components.resolve_champion", "--config", config_path,
                            "--out", str(out)], capture_output=True, text=True)  # fmt: skip
    if found.returncode != 0:
        why = (found.stderr.strip().splitlines() or [f"exit status {found.returncode}"])[-1]
        click.echo(f"not held to a champion: {why}", err=True)
        return []
    argv = []
    for name in (resolved.CHAMPION_VERSION, *resolver.ARTIFACTS):
        value = (out / resolved.COMPONENT.output_files[name]).read_text()
        argv += [f"--{name.replace('_', '-')}", value] if value else []
    return argv


@main.group("schema")
def schema_group() -> None:
    """Review the schema spans are validated against, and pin it."""


def _schema_sources(fn):
    fn = click.option("--file", "file", help="A schema file (text proto or its JSON), path or URI.")(fn)
    fn = click.option("--champion", is_flag=True, help="The schema registered with the champion (MLflow).")(fn)
    fn = click.option("--data", help="Infer one from this span, as validate_data does without a pinned schema.")(fn)
    return fn


def _find_schema(config_path, data, champion, file):
    from ctloop.local import schema

    settings = _settings(config_path)
    found = schema.find(settings, data, champion, file, note=lambda line: click.echo(line, err=True))
    return settings, found


@schema_group.command("show")
@_schema_sources
@click.option(
    "--json", "as_json", is_flag=True, help="Print the schema as JSON (what validate_data's schema.json holds)."
)
@config_option
@reports_errors
def schema_show(data, champion, file, as_json, config_path) -> None:
    """Show a schema: per feature its type, presence, domain and drift threshold.

    Default source: the pinned schema (data.schema_uri), else the champion's registered one, else one inferred
    from data.uri.
    """
    import json

    from ctloop.local import schema

    _, found = _find_schema(config_path, data, champion, file)
    if as_json:
        click.echo(f"schema: {found.source}", err=True)
        click.echo(json.dumps(found.data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    click.echo(f"schema: {found.source}")
    table = Table("feature", "type", "presence", "domain", "drift threshold")
    for row in schema.rows(found):
        table.add_row(*row)
    Console().print(table)


@schema_group.command("pin")
@_schema_sources
@click.option(
    "--out", type=click.Path(dir_okay=False), help="Where to write it (default: schema.pbtxt beside the settings file)."
)
@click.option("--force", is_flag=True, help="Replace an existing file that holds a different schema.")
@config_option
@reports_errors
def schema_pin(data, champion, file, out, force, config_path) -> None:
    """Write a schema (same sources as `show`) as a text proto, to pin with data.schema_uri.

    The settings file is not edited: the line to add is printed.
    """
    from pathlib import Path

    from ctloop.local import schema

    settings, found = _find_schema(config_path, data, champion, file)
    target = Path(out) if out else Path(config_path).parent / "schema.pbtxt"
    written = schema.pin(found, target, force)
    click.echo(f"{'wrote' if written else 'unchanged'} {target} (schema: {found.source})")
    line = schema.config_line(settings, config_path, target)
    if line:
        click.echo(f"to pin it, add to {config_path}: {line}")


@main.group("pipeline")
def pipeline_group() -> None:
    """The continuous-training pipeline (Kubeflow Pipelines)."""


@pipeline_group.command("compile")
@click.option("--out", default=None, help="IR file (default: pipelines/compiled/continuous_training.yaml).")
@click.option(
    "--kubernetes-out",
    default=None,
    help="Pipeline and PipelineVersion objects for kubectl (default: pipelines/compiled/kubernetes/).",
)
@click.option(
    "--namespace", default=None, help="Namespace of the Kubernetes objects (default: endpoints.kfp.namespace)."
)
@config_option
@reports_errors
def pipeline_compile(out, kubernetes_out, namespace, config_path) -> None:
    """Compile the pipeline to KFP's IR and to KFP's Kubernetes-native objects.

    The settings file's text becomes the pipeline's default `config` parameter; its `pipeline` section names
    the images, and `model.device: cuda` puts a GPU on the train step.
    """
    from ctloop.pipelines import continuous_training as ct

    settings = _settings(config_path)
    text = ct.config_parameter(config_path)
    ir = ct.compile_to(settings, text, out or ct.COMPILED)
    manifests = ct.compile_kubernetes_manifests(
        settings,
        text,
        kubernetes_out or ct.COMPILED.parent / "kubernetes" / "continuous_training.yaml",
        namespace or settings.endpoints.kfp.namespace,
    )
    click.echo(f"wrote {ir}\nwrote {manifests}")


def _kfp_options(fn):
    fn = click.option("--in-cluster", is_flag=True, help="Authenticate with the pod's KFP service account token.")(fn)
    fn = click.option("--token", envvar="KFP_TOKEN", help="Bearer token for the KFP endpoint ($KFP_TOKEN).")(fn)
    return fn


@pipeline_group.command("upload")
@click.option("--host", required=True, help="KFP endpoint, e.g. https://kubeflow.example/pipeline.")
@click.option("--pipeline", "pipeline_file", default=None, help="Compiled pipeline (default: the committed one).")
@_kfp_options
@config_option
@reports_errors
def pipeline_upload(host, pipeline_file, token, in_cluster, config_path) -> None:
    """Upload the compiled pipeline and a version named after its content (reused when it exists)."""
    from pathlib import Path

    from ctloop.pipelines import continuous_training as ct
    from ctloop.pipelines import submit

    settings = _settings(config_path)
    client = submit.connect(host, settings.endpoints.kfp.namespace, token, in_cluster)
    pipeline_id, version_id = submit.upload(client, Path(pipeline_file or ct.COMPILED))
    click.echo(f"pipeline {pipeline_id}\nversion {version_id}")


@pipeline_group.command("run")
@click.option("--local", "local", is_flag=True, help="Run on this machine, against the local stack.")
@click.option("--host", default=None, help="Or: submit to this KFP endpoint.")
@click.option("--data", required=True, help="The span: a CSV/Parquet file or folder, path or URI.")
@click.option("--previous-statistics", default="", help="The previous span's stats.pb, for drift.")
@click.option("--schema", default="", help="A pinned schema (schema.pbtxt) to validate against.")
@click.option("--pipeline", "pipeline_file", default=None, help="Compiled pipeline (default: the committed one).")
@click.option("--no-cache", is_flag=True, help="--local: run every task, even those with a cached result.")
@click.option(
    "--accept-label-change",
    is_flag=True,
    help="Let the span's label shift and the champion's collapse on it pass, on purpose; recorded on the version.",
)
@click.option("--cron", default=None, help="--host: a recurring run on this schedule (KFP's 6-field cron).")
@click.option("--experiment", default=None, help="--host: experiment (default: endpoints.kfp.experiment).")
@_kfp_options
@config_option
@reports_errors
def pipeline_run(local, host, data, previous_statistics, schema, pipeline_file, no_cache, accept_label_change, cron,
                 experiment, token, in_cluster, config_path) -> None:  # fmt: skip
    """Run the compiled pipeline: --local on this machine, or --host on a KFP endpoint."""
    from pathlib import Path

    from ctloop.errors import BadInputError
    from ctloop.pipelines import continuous_training as ct

    if bool(local) == bool(host):
        raise BadInputError("give exactly one of --local and --host")
    if local and (cron or experiment or token or in_cluster):
        raise BadInputError("--cron, --experiment, --token and --in-cluster are for --host")
    settings = _settings(config_path)
    package = Path(pipeline_file or ct.COMPILED)
    if accept_label_change:
        settings.gates.segments.accept_label_change = True
    if host:
        import json

        from ctloop.pipelines import submit

        client = submit.connect(host, settings.endpoints.kfp.namespace, token, in_cluster)
        config = json.loads(ct.config_parameter(config_path))
        if accept_label_change:
            config.setdefault("gates", {}).setdefault("segments", {})["accept_label_change"] = True
        arguments = {"data_uri": data, "config": json.dumps(config, separators=(",", ":")),
                     "previous_statistics_uri": previous_statistics, "schema_uri": schema,
                     "trials": _trials(settings)}  # fmt: skip
        done = submit.run(
            client,
            host,
            package,
            experiment or settings.endpoints.kfp.experiment,
            arguments,
            cron,
            service_account=settings.endpoints.kfp.service_account,
        )
        if done.recurring_run_id:
            click.echo(f"recurring run {done.recurring_run_id} ({cron}) of version {done.version_id}")
        else:
            click.echo(f"run {done.run_id}\n{done.url}")
        return
    _run_locally(settings, package, data, previous_statistics, schema, no_cache)


def _trials(settings) -> list[str]:
    """The search of these settings, not the one the pipeline was compiled with. No search is one trial with no
    overrides: the compiled search always runs at least one, and the final train then finds it in the cache."""
    import json

    return [json.dumps(dict(trial), sort_keys=True) for trial in settings.model.search] or ["{}"]


def _run_locally(settings, package, data, previous_statistics, schema, no_cache) -> None:
    from pathlib import Path

    from ctloop import mlflow_client
    from ctloop.local import progress
    from ctloop.local import runner as local_runner

    try:
        mlflow_client.connect(settings, timeout=5)
    except CtloopError:
        raise CtloopError(
            f"the local stack is down (no MLflow at {settings.endpoints.mlflow.tracking_uri}): run `ctloop up`"
        ) from None
    ir = local_runner.load_ir(package)
    root = local_runner.pipeline_root(settings)
    if "://" not in data:
        data = str(Path(data).resolve())
    # Resolved settings: the steps run in their own folders, where relative paths would mean something else.
    arguments = {"data_uri": data, "config": settings.json(), "previous_statistics_uri": previous_statistics,
                 "schema_uri": schema, "trials": _trials(settings)}  # fmt: skip
    runner = local_runner.LocalRunner(ir, root, local_runner.interpreter_for_images(Path(settings.local.venvs_dir)),
                                      cache=not no_cache)  # fmt: skip
    with progress.Display(runner) as display:
        runner.on_change = display.update
        runner.run(arguments)
    progress.summary(runner)
    if runner.failed():
        sys.exit(1)


def _print_status(statuses) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("service", "state", "pid", "url")
    for s in statuses:
        color = {"healthy": "green", "starting": "yellow"}.get(s.state, "red")
        table.add_row(s.name, f"[{color}]{s.state}[/]", str(s.pid or "-"), s.url)
    Console().print(table)


@main.command()
@config_option
@reports_errors
def up(config_path: str) -> None:
    """Start the local stack (MLflow, Prometheus, gateway, webhook, watcher, rollout controller) and wait for it."""
    from ctloop.local import stack

    statuses = stack.up(_settings(config_path), progress=lambda line: click.echo(line, err=True))
    _print_status(statuses)


@main.command()
@click.option(
    "--out",
    default=None,
    help="Spans, summary.json, report.html and the demo's own state, emptied first (default: <state_dir>/demo).",
)
@click.option("--keep-running", is_flag=True, help="Leave the local stack up afterwards, to explore it.")
@click.option("--rate", type=float, default=20.0, show_default=True, help="Client requests per second.")
@config_option
@reports_errors
def demo(out, keep_running, rate, config_path) -> None:
    """Play the whole loop on the local stack: train, serve, drift, retrain, promote, roll back a bad candidate."""
    from pathlib import Path

    from ctloop.local import demo as story

    settings = _settings(config_path)
    folder = Path(out) if out else Path(settings.local.state_dir) / "demo"
    summary = story.run(settings, folder.resolve(), keep=keep_running, rate=rate,
                        echo=lambda line: click.echo(line, err=True))  # fmt: skip
    failed = {phase: t["failed"] for phase, t in summary["traffic"].items() if t["failed"]}
    click.echo(f"loop completed; report: {folder / 'report.html'}; failed client requests: {failed or 'none'}")
    if failed:
        sys.exit(1)


@main.command()
@config_option
@reports_errors
def down(config_path: str) -> None:
    """Stop the local stack."""
    from ctloop.local import stack

    _print_status(stack.down(_settings(config_path), progress=lambda line: click.echo(line, err=True)))


@main.command()
@config_option
@reports_errors
def status(config_path: str) -> None:
    """Show the local stack's services with their URLs; exit 1 unless all are healthy."""
    from ctloop.local import stack

    statuses = stack.status(_settings(config_path))
    _print_status(statuses)
    if any(s.state != "healthy" for s in statuses):
        sys.exit(1)


@main.command()
@click.option("--reason", required=True, help="Why: recorded with the run and in the webhook's audit log.")
@click.option("--data", "data_uri", default=None, help="Span (default: webhook.default_data_uri, else data.uri).")
@click.option("--force", is_flag=True, help="Start a run even while the pipeline is cooling down.")
@click.option("--key", default=None, help="Idempotency key: sending the same key again starts nothing new.")
@config_option
@reports_errors
def retrain(reason, data_uri, force, key, config_path) -> None:
    """Ask the retrain webhook (endpoints.webhook.url) for a pipeline run; signed with the shared secret."""
    import json
    import uuid

    from pydantic.v1 import ValidationError

    from ctloop.contracts import retrain
    from ctloop.errors import BadInputError, key_path

    settings = _settings(config_path)
    try:
        request = retrain.RetrainRequest(
            reason=reason, data_uri=data_uri or settings.webhook.default_data_uri or settings.data.uri,
            idempotency_key=key or f"cli-{uuid.uuid4().hex}", force=force, source="cli",
        )  # fmt: skip
    except ValidationError as e:
        raise BadInputError("; ".join(f"{key_path(err['loc'])}: {err['msg']}" for err in e.errors())) from None
    secret = _webhook_secret(settings)
    answer = retrain.send(settings.endpoints.webhook.url, secret, request).raise_for_refusal()
    click.echo(f"{answer.status} {json.dumps(answer.body)}")


def _webhook_secret(settings) -> bytes:
    """The shared secret from the environment; against the local stack, the one `ctloop up` made, unless set."""
    import os

    from ctloop import shared_secrets
    from ctloop.contracts import signing

    env = settings.webhook.secret_env
    if env not in os.environ and settings.mode.value == "local":
        made = shared_secrets.made(settings)
        if made:
            return made[env].encode()
    return signing.read_secret(env)


@main.group("drift")
def drift_group() -> None:
    """Try the drift watcher's policy on your own history before going live."""


@drift_group.command("backtest")
@click.option("--reference", required=True, help="Reference sample: the champion's training rows (CSV or Parquet).")
@click.option("--stream", required=True, help="Rows to replay, in order (CSV or Parquet).")
@click.option("--events-per-second", type=float, default=10.0, show_default=True,
              help="Pace of a stream without the data.timestamp column (the cooldown is in seconds).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout: events, triggers, details.")
@config_option
@reports_errors
def drift_backtest(reference, stream, events_per_second, as_json, config_path) -> None:
    """Replay STREAM against REFERENCE with the watcher's own detection code and the settings' drift.* policy, and
    print after which events a retrain would have been triggered, with the drifting features.

    Runs in the watch environment, as the watcher does.
    """
    import subprocess

    from ctloop.local import environments

    python = environments.python_for(_settings(config_path), "watch")
    argv = [str(python), "-m", "ctloop.services.drift_watcher.backtest", "--config", config_path, "--reference",
            reference, "--stream", stream, "--events-per-second", str(events_per_second)]  # fmt: skip
    sys.exit(subprocess.call(argv + (["--json"] if as_json else [])))


@main.group("rollout")
def rollout_group() -> None:
    """Look at and steer the rollout of a SeldonDeployment (the state the rollout controller keeps on it)."""


def _rollout_object(config_path: str, deployment: str, namespace: str | None):
    from ctloop import deployment_target
    from ctloop.errors import NotFoundError

    settings = _settings(config_path)
    namespace = namespace or settings.endpoints.seldon.namespace
    target = deployment_target.connect(settings)
    sdep = target.get(namespace, deployment)
    if sdep is None:
        raise NotFoundError(f"no SeldonDeployment {namespace}/{deployment}")
    return target, namespace, sdep


namespace_option = click.option("--namespace", "-n", help="Namespace (default: endpoints.seldon.namespace).")


@rollout_group.command("status")
@click.argument("deployment")
@namespace_option
@click.option("--json", "as_json", is_flag=True, help="Print the status record as JSON.")
@config_option
@reports_errors
def rollout_status(deployment, namespace, as_json, config_path) -> None:
    """Show the rollout's phase, canary weight and last check results."""
    from ctloop.contracts import rollout as status
    from ctloop.contracts import seldon as shape

    _, namespace, sdep = _rollout_object(config_path, deployment, namespace)
    record = status.read(sdep)
    if as_json:
        click.echo(record.to_json())
        return
    main_version = shape.model_version(shape.predictor(sdep, shape.MAIN)) or "-"
    click.echo(f"{namespace}/{deployment}: {record.phase.value}  main serves version {main_version}")
    if record.candidate:
        click.echo(f"candidate {record.candidate} (champion then {record.champion or '-'}), canary weight "
                   f"{record.weight}%, step {record.step}, failed analyses {record.failed_analyses}")  # fmt: skip
    if record.reason:
        click.echo(f"reason: {record.reason}")
    for check, result in sorted(record.checks.items()):
        f = record.figures.get(check)
        shown = f"  {check}: {result}"
        if f:  # method sequential: how much worse the candidate is, its interval and what it is judged at
            source = ", from scores" if f["source"] == "estimated" else ""
            shown += (f"  (estimate {f['estimate']:.4f}, interval [{f['lower']:.4f}, {f['upper']:.4f}], "
                      f"margin {f['margin']}, n={f['samples']}{source})")  # fmt: skip
        click.echo(shown)
    if record.failed_checks:
        click.echo(f"failed checks: {', '.join(record.failed_checks)}")
    pending = status.read_request(sdep)
    if pending:
        click.echo(f"requested: {pending['action']} (the controller acts on its next pass)")


def _request(config_path: str, deployment: str, namespace: str | None, action: str) -> None:
    import json

    from ctloop import deployment_target
    from ctloop.contracts import rollout as status
    from ctloop.errors import BadInputError

    target, namespace, sdep = _rollout_object(config_path, deployment, namespace)
    record = status.read(sdep)
    if record.phase not in (status.Phase.shadowing, status.Phase.progressing):
        raise BadInputError(f"{namespace}/{deployment}: no rollout to {action} (phase {record.phase.value})")
    request = json.dumps({"action": action, "version": record.candidate})

    def ask(obj: dict) -> dict:
        obj["metadata"].setdefault("annotations", {})[status.REQUEST_ANNOTATION] = request
        return obj

    deployment_target.update(target, namespace, deployment, ask)
    click.echo(f"{action} of version {record.candidate} requested; the rollout controller acts on its next pass")


@rollout_group.command("promote")
@click.argument("deployment")
@namespace_option
@config_option
@reports_errors
def rollout_promote(deployment, namespace, config_path) -> None:
    """Promote the candidate now, skipping the remaining checks and steps."""
    _request(config_path, deployment, namespace, "promote")


@rollout_group.command("abort")
@click.argument("deployment")
@namespace_option
@config_option
@reports_errors
def rollout_abort(deployment, namespace, config_path) -> None:
    """Roll the candidate back now; its version is tagged rejected (failed check: aborted)."""
    _request(config_path, deployment, namespace, "abort")


if __name__ == "__main__":
    main()
