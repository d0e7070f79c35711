"""The model registry as the loop uses it: MLflow's registered model, its aliases and the tags ctloop writes on
its versions, and the one place where MLflow's errors are translated.

    register            creates a version with lineage tags (``LINEAGE``) and ``ctloop.validation_status``
                        blessed, and points the ``candidate`` alias at it
    deploy              reads those tags (blessed, not rejected) and the ``champion`` alias; the first version
                        becomes the champion directly
    validate_segments   judges a candidate against the model behind ``champion``
    rollout controller  moves ``champion`` (promote), tags versions retired, rejected or superseded
    drift watcher       uses the training sample of the version behind ``champion`` as its reference
    resolve_champion    hands validate_data the champion's schema, training statistics and data verdict

Every write is idempotent, so a restarted step or controller may repeat its last call. MLflow's errors become
``NotReadyError`` (a registry outage pauses, it does not crash); a missing alias or version is ``None``.
mlflow is imported when first needed: the serve and validate images do not have it.
"""

from __future__ import annotations

from enum import Enum

from ctloop.errors import NotReadyError

__all__ = ["CANDIDATE", "CHAMPION", "LINEAGE", "VERSION_ARTIFACTS", "Registry", "RolloutTag", "connect", "is_not_found"]

CHAMPION, CANDIDATE = "champion", "candidate"

# Tags on a model version.
VALIDATION_TAG, BLESSED = "ctloop.validation_status", "blessed"  # register sets it; deploy requires it
STATUS_TAG = "ctloop.rollout"  # a RolloutTag
FAILED_CHECKS_TAG = "ctloop.rollout_failed_checks"  # with rejected: the checks that failed, comma-separated
RETIRED_BY_TAG = "ctloop.retired_by"  # with retired: the version that took over
# Lineage register records with every version: where it came from, and what it was checked by.
LINEAGE = (
    "ctloop.dataset_uri",
    "ctloop.dataset_sha256",
    "ctloop.dataset_rows",
    "ctloop.schema_sha256",
    "ctloop.pipeline_run_id",
    "ctloop.mlflow_run_id",
    "ctloop.code_version",
    "ctloop.train_image_lock_sha256",
    "ctloop.register_image_lock_sha256",
    "ctloop.blessed",
    "ctloop.blessing",
)
ACCEPTED_TAG = "ctloop.accepted"  # checks a person let pass on purpose (gates.segments.accept_label_change)

# What register logs with every version, in its training run's artifacts: (folder, file name). A later span is
# judged against the champion's schema, statistics and data verdict; its blessing records its own validation.
VERSION_ARTIFACTS = {
    "model": ("model", ""),
    "reference_sample": ("reference", "reference.parquet"),
    "schema": ("schema", "schema.pbtxt"),
    "statistics": ("data", "stats.pb"),
    "data_verdict": ("data", "anomalies.json"),
    "segment_report": ("validation", "segments.html"),
    "blessing": ("validation", "blessing.json"),
}


class RolloutTag(str, Enum):
    champion = "champion"  # promoted (or the first deployment)
    retired = "retired"  # a champion a newer version replaced
    rejected = "rejected"  # rolled back or aborted; deploy refuses it from then on
    superseded = "superseded"  # a newer candidate replaced it before its rollout finished


def is_not_found(error) -> bool:
    """Whether an MlflowException means "no such model, version or alias" (a missing alias is answered with
    INVALID_PARAMETER_VALUE "... alias champion not found", not RESOURCE_DOES_NOT_EXIST)."""
    code = getattr(error, "error_code", "")
    message = getattr(error, "message", str(error))
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in message
    )


class Registry:
    def __init__(self, client, model_name: str):
        self.client = client
        self.name = model_name

    def _call(self, fn, *args):
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args)
        except MlflowException as e:
            if is_not_found(e):
                return None
            raise NotReadyError(f"MLflow registry ({self.name}): {e.message[:300]}") from None
        except OSError as e:
            raise NotReadyError(f"MLflow registry unreachable: {e}") from None

    # -- reading

    def by_alias(self, alias: str):
        """The ModelVersion behind ``alias``, or None."""
        return self._call(self.client.get_model_version_by_alias, self.name, alias)

    def _alias(self, alias: str) -> str | None:
        found = self.by_alias(alias)
        return str(found.version) if found is not None else None

    def champion(self) -> str | None:
        return self._alias(CHAMPION)

    def tags(self, version: str) -> dict[str, str]:
        found = self._call(self.client.get_model_version, self.name, version)
        return dict(found.tags) if found is not None else {}

    def artifact_uri(self, version: str, name: str) -> str | None:
        """Where register put the artifact ``name`` (a VERSION_ARTIFACTS key) of ``version``; None: no such version."""
        found = self._call(self.client.get_model_version, self.name, version)
        if found is None:
            return None
        run = self._call(self.client.get_run, found.run_id)
        if run is None:
            return None
        from ctloop import artifacts

        return artifacts.join(run.info.artifact_uri, *filter(None, VERSION_ARTIFACTS[name]))

    def download_uri(self, version: str) -> str:
        """The version's physical artifact location (what Seldon's storage initializer and the model server read)."""
        return self._call(self.client.get_model_version_download_uri, self.name, version)

    # -- writing

    def _tag(self, version: str, key: str, value: str) -> None:
        self._call(self.client.set_model_version_tag, self.name, version, key, value)

    def _drop_candidate_alias(self, version: str) -> None:
        if self._alias(CANDIDATE) == str(version):
            self._call(self.client.delete_registered_model_alias, self.name, CANDIDATE)

    def set_candidate(self, version: str) -> None:
        self._call(self.client.set_registered_model_alias, self.name, CANDIDATE, str(version))

    def promote(self, version: str) -> None:
        """``champion`` moves to ``version``; the old champion is tagged retired (with its successor)."""
        previous = self.champion()
        if previous and previous != str(version):
            self._tag(previous, STATUS_TAG, RolloutTag.retired.value)
            self._tag(previous, RETIRED_BY_TAG, str(version))
        self._call(self.client.set_registered_model_alias, self.name, CHAMPION, str(version))
        self._tag(version, STATUS_TAG, RolloutTag.champion.value)
        self._drop_candidate_alias(version)

    def reject(self, version: str, failed_checks: list[str]) -> None:
        self._tag(version, STATUS_TAG, RolloutTag.rejected.value)
        self._tag(version, FAILED_CHECKS_TAG, ",".join(failed_checks) or "none")
        self._drop_candidate_alias(version)

    def supersede(self, version: str) -> None:
        self._tag(version, STATUS_TAG, RolloutTag.superseded.value)

    def apply(self, action: tuple) -> None:
        kind, version, *rest = action
        {"promote": self.promote, "reject": self.reject, "supersede": self.supersede}[kind](version, *rest)


def connect(settings, timeout: float = 5.0) -> Registry:
    """The registered model named in the settings, on the tracking server named there (checked to answer)."""
    from ctloop import mlflow_client

    return Registry(mlflow_client.connect(settings, timeout=timeout), settings.endpoints.mlflow.registered_model)
