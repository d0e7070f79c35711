"""deploy's work, on the deployment-target adapter and the registry (both passed in)."""

from __future__ import annotations

from dataclasses import dataclass

from ctloop import deployment_target
from ctloop.contracts import rollout as rollout_status
from ctloop.contracts import seldon as shape
from ctloop.contracts.registry import BLESSED, FAILED_CHECKS_TAG, STATUS_TAG, VALIDATION_TAG, RolloutTag
from ctloop.contracts.rollout import Outcome, Phase, RolloutStatus
from ctloop.errors import BadInputError, CtloopError


class NotBlessedError(CtloopError):
    """The version does not carry register's blessing (or was rejected before): it is not deployed."""


@dataclass
class Deployed:
    action: str  # first_deployment | declared | unchanged
    namespace: str
    name: str
    predictor: str  # where the version went: main, shadow or canary


def _check_version(registry, version: str) -> None:
    tags = registry.tags(version)
    if not tags:
        raise BadInputError(f"model version {version!r} is not in the registry ({registry.name})")
    if tags.get(VALIDATION_TAG) != BLESSED:
        raise NotBlessedError(f"version {version} is not blessed (tag {VALIDATION_TAG}), so it is not deployed")
    if tags.get(STATUS_TAG) == RolloutTag.rejected:
        raise NotBlessedError(f"version {version} was rejected by an earlier rollout "
                              f"({tags.get(FAILED_CHECKS_TAG, 'no detail')})")  # fmt: skip


def deploy(settings, target, registry, version: str, model_uri: str) -> Deployed:
    if not version or not model_uri:
        raise BadInputError("--model-version and --model-uri are required (register's outputs)")
    if model_uri.startswith(("models:", "mlflow-artifacts:")):
        raise BadInputError(f"--model-uri {model_uri!r} is not a physical location Seldon's storage initializer "
                            "can read (use MLflow's get_model_version_download_uri)")  # fmt: skip
    _check_version(registry, version)
    namespace, name = settings.endpoints.seldon.namespace, settings.name
    champion = registry.champion()
    token = target.ingest_token(settings)
    sdep = target.get(namespace, name)
    main = shape.predictor(sdep, shape.MAIN)

    if sdep is None or main is None or champion is None or not shape.model_version(main):
        # First deployment: nothing to compare the candidate with, so it serves as main directly.
        first = shape.new_predictor(settings, shape.MAIN, version, model_uri, token, like=main)
        done = RolloutStatus(phase=Phase.succeeded, candidate=version, champion=version,
                             outcome=Outcome.first_deployment,
                             reason="first deployment: no champion to compare with")  # fmt: skip

        def first_deployment(obj: dict) -> dict:
            return rollout_status.write(shape.serve_as_main(obj, first), done)

        if sdep is None:
            try:
                written = target.create(first_deployment(shape.new_deployment(settings, first)))
            except deployment_target.ConflictError:  # created in between: fall back to updating it
                written = deployment_target.update(target, namespace, name, first_deployment)
        else:
            written = deployment_target.update(target, namespace, name, first_deployment)
        registry.promote(version)
        target.event(written, "FirstDeployment", f"version {version} serves as main (no champion before)")
        return Deployed("first_deployment", namespace, name, shape.MAIN)

    if shape.model_version(main) == str(version):
        return Deployed("unchanged", namespace, name, shape.MAIN)

    as_shadow = settings.rollout.mode == "shadow-then-canary"
    where = shape.SHADOW if as_shadow else shape.CANARY

    def declare(obj: dict) -> dict:
        like = shape.predictor(obj, shape.MAIN)
        return shape.declare(obj, shape.new_predictor(settings, where, version, model_uri, token, like=like), as_shadow)

    written = deployment_target.update(target, namespace, name, declare)
    target.event(written, "CandidateDeclared", f"version {version} declared as the {where} predictor")
    return Deployed("declared", namespace, name, where)
