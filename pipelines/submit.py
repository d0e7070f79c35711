"""Submitting the compiled pipeline to a KFP endpoint with kfp.Client: upload (pipeline and version), experiment,
run, recurring run. The pipeline version is named after the package's content, so uploading the same package
twice reuses the version instead of failing or piling up copies."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ctloop import __version__
from ctloop.errors import CtloopError, NotReadyError
from ctloop.pipelines.continuous_training import NAME


@dataclass
class Submitted:
    pipeline_id: str
    version_id: str
    run_id: str | None = None
    recurring_run_id: str | None = None
    url: str | None = None


def connect(host: str, namespace: str, token: str | None = None, in_cluster: bool = False):
    """A kfp.Client: a bearer token, or in a pod the service account token KFP mounts for pipelines."""
    import kfp

    credentials = kfp.client.ServiceAccountTokenVolumeCredentials() if in_cluster else None
    try:
        return kfp.Client(host=host, namespace=namespace, existing_token=token, credentials=credentials)
    except Exception as e:  # kfp raises bare exceptions for connection and auth failures
        raise NotReadyError(f"the KFP endpoint {host} did not answer: {str(e).splitlines()[0][:200]}") from None


def version_name(package: Path) -> str:
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    return f"{NAME}-{__version__}-{digest}"


def upload(client, package: Path) -> tuple[str, str]:
    """Pipeline and version ids for ``package``, uploading whatever is missing."""
    name = version_name(package)
    pipeline_id = client.get_pipeline_id(NAME)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(str(package), pipeline_name=NAME, description="ctloop continuous training")
        pipeline_id = pipeline.pipeline_id
    versions = client.list_pipeline_versions(pipeline_id, page_size=200).pipeline_versions or []
    for version in versions:
        if version.display_name == name:
            return pipeline_id, version.pipeline_version_id
    version = client.upload_pipeline_version(str(package), pipeline_version_name=name, pipeline_id=pipeline_id)
    return pipeline_id, version.pipeline_version_id


def run(client, host: str, package: Path, experiment: str, arguments: dict, cron: str | None = None,
        run_name: str | None = None, service_account: str | None = None) -> Submitted:  # fmt: skip
    pipeline_id, version_id = upload(client, package)
    experiment_id = client.create_experiment(experiment).experiment_id
    name = run_name or f"{NAME}-{version_id[:8]}"
    try:
        if cron:
            job = client.create_recurring_run(
                experiment_id=experiment_id, job_name=name, cron_expression=cron, max_concurrency=1,
                no_catchup=True, pipeline_id=pipeline_id, version_id=version_id, params=arguments,
                service_account=service_account,
            )  # fmt: skip
            return Submitted(pipeline_id, version_id, recurring_run_id=job.recurring_run_id)
        result = client.run_pipeline(experiment_id=experiment_id, job_name=name, pipeline_id=pipeline_id,
                                     version_id=version_id, params=arguments,
                                     service_account=service_account)  # fmt: skip
    except Exception as e:  # kfp_server_api's ApiException carries the server's message
        raise CtloopError(f"KFP refused the run: {str(e).splitlines()[0][:300]}") from None
    return Submitted(pipeline_id, version_id, run_id=result.run_id,
                     url=f"{host.rstrip('/')}/#/runs/details/{result.run_id}")  # fmt: skip
