"""register's work: the lineage-tagged model version, its artifacts, and the `candidate` alias."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ctloop import artifacts, provenance
from ctloop.contracts import verdicts
from ctloop.contracts.registry import (
    ACCEPTED_TAG,
    BLESSED,
    CANDIDATE,
    LINEAGE,
    VALIDATION_TAG,
    VERSION_ARTIFACTS,
    is_not_found,
)
from ctloop.contracts.span import Fingerprint
from ctloop.errors import BadInputError, CtloopError, NotFoundError, NotReadyError


class NotBlessedError(CtloopError):
    """The segment validation did not bless the model: registration refuses."""


@dataclass
class Request:
    model_dir: str
    blessing: str  # URI of the blessing JSON
    mlflow_run_id: str
    data_uri: str
    fingerprint: Fingerprint
    pipeline_run_id: str = ""
    reference_sample: str | None = None
    schema: str | None = None
    segment_report: str | None = None
    statistics: str | None = None
    data_verdict: str | None = None
    accept_label_change: bool = False  # gates.segments.accept_label_change: recorded on the version


@dataclass
class Registered:
    name: str
    version: str
    source: str
    created: bool


def read_blessing(uri: str) -> dict:
    return verdicts.read_blessing(artifacts.read_bytes(uri), uri)


def lineage_tags(request: Request, blessing: dict) -> dict[str, str]:
    metadata = json.loads(artifacts.read_bytes(artifacts.join(request.model_dir, "metadata.json")))
    schema_sha = hashlib.sha256(artifacts.read_bytes(request.schema)).hexdigest() if request.schema else "none"
    failed = blessing.get("failed", [])
    values = (
        request.data_uri,
        request.fingerprint.sha256,
        str(request.fingerprint.rows),
        schema_sha,
        request.pipeline_run_id or "none",
        request.mlflow_run_id,
        provenance.code_version(),
        str(metadata.get("image_lock_sha256")),
        str(provenance.image_lock_sha256()),
        str(bool(blessing["blessed"])).lower(),
        f"{len(blessing.get('checks', []))} checks, {len(failed)} failed, "
        f"champion {'compared' if blessing.get('champion') else 'absent'}",
    )
    tags = {**dict(zip(LINEAGE, values, strict=True)), VALIDATION_TAG: BLESSED}
    accepted = sorted(set(blessing.get("overrides", [])) | ({"label_change"} if request.accept_label_change else set()))
    if accepted:
        tags[ACCEPTED_TAG] = ",".join(accepted)
    return tags


def _local_copy(uri: str, folder: Path, name: str = "") -> Path:
    """MLflow logs local files: bring an s3:// object or folder down first; a file is logged as ``name``, the name
    a later step looks for (KFP names artifact files after the output, the local runner after the file)."""
    if name:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(artifacts.read_bytes(uri))
        return target
    if not uri.startswith("s3:"):
        return artifacts.local_path(uri)
    listed = artifacts.list_uris(uri)
    base = uri.rstrip("/")
    for item in listed:
        relative = item[len(base) :].lstrip("/") or Path(item).name
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(artifacts.read_bytes(item))
    return folder if len(listed) > 1 or listed[0] != uri else folder / Path(uri).name


def register(client, registered_model: str, request: Request) -> Registered:
    blessing = read_blessing(request.blessing)
    if not blessing["blessed"]:
        failed = "; ".join(
            f"{c.get('check')} {c.get('segment')}={c.get('value')} {c.get('metric', '')}".strip()
            for c in blessing.get("failed", [])[:5]
        )
        raise NotBlessedError(f"the model is not blessed, so it is not registered ({failed or 'no detail'})")
    if not request.mlflow_run_id:
        raise BadInputError("an MLflow run id is needed: the version records the training run")
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(request.mlflow_run_id)
    except MlflowException as e:
        if is_not_found(e):
            raise NotFoundError(f"MLflow run {request.mlflow_run_id} does not exist") from None
        raise NotReadyError(f"MLflow: {e.message[:300]}") from None
    source = f"{run.info.artifact_uri.rstrip('/')}/model"
    if source.startswith("mlflow-artifacts:"):
        raise CtloopError(
            "the tracking server proxies artifacts (mlflow-artifacts:/...), which Seldon's storage initializer "
            "cannot read: run it with --no-serve-artifacts and an s3:// (or file://) --default-artifact-root"
        )
    try:
        client.create_registered_model(registered_model)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # One version per training run: a retried or re-run step finds it instead of adding a second one.
    existing = client.search_model_versions(f"name='{registered_model}' and run_id='{request.mlflow_run_id}'")
    if existing:
        version, created = existing[0], False
    else:
        with tempfile.TemporaryDirectory(prefix="ctloop-register-") as tmp:
            tmp = Path(tmp)
            client.log_artifacts(request.mlflow_run_id, str(_local_copy(request.model_dir, tmp / "model")), "model")
            for name, uri in (
                ("reference_sample", request.reference_sample),
                ("schema", request.schema),
                ("statistics", request.statistics),
                ("data_verdict", request.data_verdict),
                ("segment_report", request.segment_report),
                ("blessing", request.blessing),
            ):
                if uri:
                    folder, file = VERSION_ARTIFACTS[name]
                    local = _local_copy(uri, tmp / name, file)
                    client.log_artifact(request.mlflow_run_id, str(local), folder)
        version = client.create_model_version(
            registered_model,
            source,
            run_id=request.mlflow_run_id,
            tags=lineage_tags(request, blessing),
            description=f"Trained on {request.data_uri}; blessed by segment validation.",
        )
        created = True
    client.set_registered_model_alias(registered_model, CANDIDATE, version.version)
    return Registered(registered_model, str(version.version), client.get_model_version_download_uri(
        registered_model, version.version), created)  # fmt: skip
