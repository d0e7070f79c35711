"""The MLflow side of a rollout: who the champion is, and what promotion, rejection and supersession write.

Every call is idempotent (a restarted controller repeats the last one). MLflow's errors become NotReadyError, so a
registry outage pauses the finishing phase instead of crashing the controller.
"""

from __future__ import annotations

from ctloop.errors import NotReadyError

CHAMPION, CANDIDATE = "champion", "candidate"
STATUS_TAG = "ctloop.rollout"  # champion | retired | rejected | superseded


class Registry:
    def __init__(self, client, model_name: str):
        self.client = client
        self.name = model_name

    def _call(self, fn, *args):
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args)
        except MlflowException as e:
            # A missing alias is INVALID_PARAMETER_VALUE "... alias champion not found", not RESOURCE_DOES_NOT_EXIST.
            if e.error_code == "RESOURCE_DOES_NOT_EXIST" or (
                e.error_code == "INVALID_PARAMETER_VALUE" and "not found" in e.message
            ):
                return None
            raise NotReadyError(f"MLflow registry ({self.name}): {e.message[:300]}") from None
        except OSError as e:
            raise NotReadyError(f"MLflow registry unreachable: {e}") from None

    def _alias(self, alias: str) -> str | None:
        found = self._call(self.client.get_model_version_by_alias, self.name, alias)
        return str(found.version) if found is not None else None

    def champion(self) -> str | None:
        return self._alias(CHAMPION)

    def tags(self, version: str) -> dict[str, str]:
        found = self._call(self.client.get_model_version, self.name, version)
        return dict(found.tags) if found is not None else {}

    def _drop_candidate_alias(self, version: str) -> None:
        if self._alias(CANDIDATE) == str(version):
            self._call(self.client.delete_registered_model_alias, self.name, CANDIDATE)

    def promote(self, version: str) -> None:
        """``champion`` moves to ``version``; the old champion is tagged retired (with its successor)."""
        previous = self.champion()
        if previous and previous != str(version):
            self._call(self.client.set_model_version_tag, self.name, previous, STATUS_TAG, "retired")
            self._call(self.client.set_model_version_tag, self.name, previous, "ctloop.retired_by", str(version))
        self._call(self.client.set_registered_model_alias, self.name, CHAMPION, str(version))
        self._call(self.client.set_model_version_tag, self.name, version, STATUS_TAG, "champion")
        self._drop_candidate_alias(version)

    def reject(self, version: str, failed_checks: list[str]) -> None:
        self._call(self.client.set_model_version_tag, self.name, version, STATUS_TAG, "rejected")
        self._call(self.client.set_model_version_tag, self.name, version, "ctloop.rollout_failed_checks",
                   ",".join(failed_checks) or "none")  # fmt: skip
        self._drop_candidate_alias(version)

    def supersede(self, version: str) -> None:
        self._call(self.client.set_model_version_tag, self.name, version, STATUS_TAG, "superseded")

    def apply(self, action: tuple) -> None:
        kind, version, *rest = action
        {"promote": self.promote, "reject": self.reject, "supersede": self.supersede}[kind](version, *rest)


def connect(settings) -> Registry:
    from ctloop import mlflow_client

    return Registry(mlflow_client.connect(settings, timeout=5), settings.endpoints.mlflow.registered_model)
