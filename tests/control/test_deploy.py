"""The deploy step and the registry side of a rollout against a REAL MLflow tracking server (SQLite, run from the
dev environment, which has the server; the control image has only the client), with the local deployment target
(the gateway's state folder). The entry program runs as the pipeline runs it: a process in this environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctloop import deployment_target, mlflow_client
from ctloop.contracts import registry as rollout_registry
from ctloop.contracts import rollout as status
from ctloop.contracts import seldon as shape
from ctloop.contracts.rollout import Phase
from ctloop.services.rollout_controller.controller import Controller

from . import rollout_helpers as h

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
MODEL = "ctloop-credit-risk"


@pytest.fixture
def world(tmp_path, mlflow_server):
    settings = h.settings(tmp_path / "state", mode="canary", steps=[50, 100])
    settings.endpoints.mlflow.tracking_uri = mlflow_server
    settings.endpoints.mlflow.registered_model = f"{MODEL}-{tmp_path.name[-12:]}".replace("_", "-")
    client = mlflow_client.connect(settings)
    name = settings.endpoints.mlflow.registered_model
    client.create_registered_model(name)
    for version in ("1", "2", "3"):
        # what register leaves: a blessed, lineage-tagged version with the alias candidate on the newest
        created = client.create_model_version(name, f"s3://models/m{version}",
                                              tags={"ctloop.validation_status": "blessed"})  # fmt: skip
        assert created.version == version
    config = tmp_path / "ctloop.yaml"
    raw = yaml.safe_load((h.ROOT / "ctloop.yaml").read_text())
    raw["rollout"] = settings.rollout.dict()
    raw["local"]["state_dir"] = settings.local.state_dir
    raw["endpoints"]["mlflow"] = {"tracking_uri": mlflow_server, "registered_model": name}
    config.write_text(yaml.safe_dump(raw))
    return {"settings": settings, "client": client, "name": name, "config": config, "tmp": tmp_path}


def deploy(world, version: str, *extra: str) -> subprocess.CompletedProcess:
    out = world["tmp"] / f"action-{version}"
    result = subprocess.run(
        [sys.executable, "-m", "ctloop.components.deploy", "--config", str(world["config"]), "--model-version",
         version, "--model-uri", (world["tmp"] / f"m{version}").as_uri(), "--action-out", str(out), *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    result.action = out.read_text() if out.exists() else None
    return result


def test_deploy_and_roll_out_against_a_real_registry(world):
    client, name = world["client"], world["name"]
    client.set_registered_model_alias(name, "candidate", "1")
    first = deploy(world, "1")
    assert first.returncode == 0 and first.action == "first_deployment", first.stderr
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    target = deployment_target.connect(world["settings"])
    sdep = target.get("ctloop", "credit-risk")
    main = shape.predictor(sdep, "main")
    assert main["graph"]["modelUri"] == (world["tmp"] / "m1").as_uri() and shape.model_version(main) == "1"
    # No token in the environment: the local stack's own, made on first use in its state folder, as the stack's
    # watcher gets it.
    made = json.loads((Path(world["settings"].local.state_dir) / "stack" / "secrets.json").read_text())
    assert main["graph"]["logger"]["url"].startswith(f"http://ctloop:{made['CTLOOP_WATCHER_TOKEN']}@127.0.0.1:")
    assert main["graph"]["logger"]["url"].endswith("/v1/events")

    client.set_registered_model_alias(name, "candidate", "2")
    second = deploy(world, "2")
    assert second.returncode == 0 and second.action == "declared", second.stderr
    assert "canary" in second.stdout
    canary = shape.predictor(target.get("ctloop", "credit-risk"), "canary")
    assert canary["graph"]["logger"] == main["graph"]["logger"]  # the same token for every predictor

    registry = rollout_registry.connect(world["settings"])
    clock = h.Clock()
    controller = Controller(world["settings"], target, h.ScriptedSource(), lambda: registry, clock=clock)
    for _ in range(4):
        clock.advance(10)
        record = controller.tick()
    assert record.phase == Phase.succeeded
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert client.get_model_version(name, "1").tags["ctloop.rollout"] == "retired"
    assert client.get_model_version(name, "1").tags["ctloop.retired_by"] == "2"
    assert client.get_model_version(name, "2").tags["ctloop.rollout"] == "champion"
    assert "candidate" not in client.get_registered_model(name).aliases

    # a bad candidate: rolled back, tagged rejected with the failed check, and refused if deployed again
    client.set_registered_model_alias(name, "candidate", "3")
    assert deploy(world, "3").returncode == 0
    controller.source = h.ScriptedSource(error_rate=0.5)
    for _ in range(2):
        clock.advance(10)
        record = controller.tick()
    assert record.phase == Phase.failed and record.failed_checks == ["error_rate"]
    tags = client.get_model_version(name, "3").tags
    assert tags["ctloop.rollout"] == "rejected" and tags["ctloop.rollout_failed_checks"] == "error_rate"
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    again = deploy(world, "3")
    assert again.returncode == 1 and "rejected" in again.stderr
    assert status.read(target.get("ctloop", "credit-risk")).phase == Phase.failed


def test_deploy_exit_statuses(world):
    client, name = world["client"], world["name"]
    client.set_model_version_tag(name, "2", "ctloop.validation_status", "not blessed")
    unblessed = deploy(world, "2")
    assert unblessed.returncode == 1 and "not blessed" in unblessed.stderr
    missing = deploy(world, "42")
    assert missing.returncode == 2 and "not in the registry" in missing.stderr
    proxied = subprocess.run([sys.executable, "-m", "ctloop.components.deploy", "--config", str(world["config"]),
                              "--model-version", "1", "--model-uri", "mlflow-artifacts:/1/abc/artifacts/model"],
                             capture_output=True, text=True)  # fmt: skip
    assert proxied.returncode == 2 and "physical location" in proxied.stderr
    assert deployment_target.connect(world["settings"]).get("ctloop", "credit-risk") is None


def test_registry_without_a_champion_answers_none(world):
    registry = rollout_registry.connect(world["settings"])
    assert registry.champion() is None
    assert registry.tags("1") == {"ctloop.validation_status": "blessed"}
