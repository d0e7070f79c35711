"""The rollout state machine driven through the controller, with the local deployment target (real files, the
gateway's state folder), a scripted metric source (each check's query answered from a table) and an in-memory
registry. The checks' PromQL against a real Prometheus is in test_rollout_prometheus.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ctloop import deployment_target, metric_names
from ctloop.components.deploy import executor
from ctloop.contracts import rollout as status
from ctloop.contracts import seldon as shape
from ctloop.contracts.rollout import Phase
from ctloop.services.rollout_controller.controller import Controller

from . import rollout_helpers as h

NS, NAME = "ctloop", "credit-risk"


class World:
    def __init__(self, tmp_path: Path, source=None, **policy):
        self.settings = h.settings(tmp_path / "state", **policy)
        self.target = deployment_target.connect(self.settings)
        self.registry = h.MemoryRegistry()
        self.source = source or h.ScriptedSource()
        self.clock = h.Clock()
        self.controller = self.new_controller()

    def new_controller(self) -> Controller:
        return Controller(self.settings, self.target, self.source, lambda: self.registry, clock=self.clock)

    def deploy(self, version: str):
        return executor.deploy(self.settings, self.target, self.registry, version, f"file:///models/{version}")

    def sdep(self) -> dict:
        return self.target.get(NS, NAME)

    def status(self):
        return status.read(self.sdep())

    def weights(self) -> dict[str, int | str]:
        return {
            p["name"]: ("shadow" if p.get("shadow") else p.get("traffic")) for p in self.sdep()["spec"]["predictors"]
        }

    def versions(self) -> dict[str, str]:
        return {p["name"]: shape.model_version(p) for p in self.sdep()["spec"]["predictors"]}

    def tick(self, advance: float = 10):
        self.clock.advance(advance)
        return self.controller.tick()


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    assert w.deploy("1").action == "first_deployment"
    yield w
    # whatever the test made the controller do, it counted only label values the alert rules may select
    assert metric_names.undeclared(w.controller.metrics.registry) == []


def test_first_deployment_serves_the_candidate_as_main_and_makes_it_champion(world):
    assert world.versions() == {"main": "1"} and world.weights() == {"main": 100}
    assert world.registry.champion() == "1"
    record = world.status()
    assert record.phase == Phase.succeeded and record.outcome == "first_deployment"
    # the file the gateway reads, written whole (no partial file left beside it)
    folder = Path(world.settings.local.state_dir) / "gateway" / "deployments" / NS
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".lock")) == ["credit-risk.yaml"]
    assert world.deploy("1").action == "unchanged"


def test_healthy_candidate_is_promoted_step_by_step(world):
    assert world.deploy("2").predictor == "shadow"
    assert world.weights() == {"main": 100, "shadow": "shadow"}
    seen = []
    for _ in range(12):
        record = world.tick()
        seen.append((record.phase.value, record.weight))
        if record.phase.terminal:
            break
    # shadowing lasts shadow_duration_s (30 s: analyses at 10, 20 pass but wait), then 10 -> 50 -> 100 -> promoted
    assert seen == [("Shadowing", 0), ("Shadowing", 0), ("Shadowing", 0), ("Progressing", 10), ("Progressing", 50),
                    ("Progressing", 100), ("Succeeded", 100)]  # fmt: skip
    assert world.versions() == {"main": "2"} and world.weights() == {"main": 100}
    assert world.registry.champion() == "2"
    assert world.registry.version_tags["1"]["ctloop.rollout"] == "retired"
    assert world.status().outcome == "promoted"
    # the shadow phase asked the shadow's series and the agreement check; the canary phase did not ask agreement
    assert ("shadow", "agreement") in world.source.asked and ("canary", "agreement") not in world.source.asked
    reasons = [e["reason"] for e in world.target.events(NS, NAME)]
    assert reasons == ["FirstDeployment", "CandidateDeclared", "RolloutStarted", "Progressing", "Progressing",
                       "Progressing", "Promoting", "Promoted"]  # fmt: skip


def test_canary_mode_starts_at_the_first_step(tmp_path):
    w = World(tmp_path, mode="canary")
    w.deploy("1")
    assert w.deploy("2").predictor == "canary"
    assert w.weights() == {"main": 100, "canary": 0}
    assert w.tick().phase == Phase.progressing and w.weights() == {"main": 90, "canary": 10}


def test_direct_mode_promotes_without_analysis(tmp_path):
    w = World(tmp_path, mode="direct")
    w.deploy("1")
    w.deploy("2")
    record = w.tick()
    assert record.phase == Phase.succeeded and w.versions() == {"main": "2"} and w.registry.champion() == "2"
    assert w.source.asked == []


@pytest.mark.parametrize(
    ("injected", "failed"),
    [
        ({"error_rate": 0.2}, ["error_rate"]),
        ({"latency_p99": 1.4, "latency_p99_ratio": 7.0}, ["latency_p99", "latency_p99_ratio"]),
        ({"accuracy_delta": -0.08}, ["accuracy_delta"]),
        ({"score_divergence": 0.4}, ["score_divergence"]),
    ],
    ids=["errors", "latency", "accuracy", "scores"],
)
def test_bad_canary_is_rolled_back_naming_the_failed_check(world, injected, failed):
    world.deploy("2")
    for _ in range(4):  # through shadowing into the first canary step
        world.tick()
    assert world.status().phase == Phase.progressing and world.weights() == {"main": 90, "canary": 10}
    world.source.values.update(injected)
    record = world.tick()
    assert record.phase == Phase.failed and record.failed_checks == failed and record.outcome == "rolled_back"
    assert world.versions() == {"main": "1"} and world.weights() == {"main": 100}
    assert world.registry.version_tags["2"]["ctloop.rollout"] == "rejected"
    assert world.registry.version_tags["2"]["ctloop.rollout_failed_checks"] == ",".join(failed)
    assert world.registry.champion() == "1"


def test_disagreeing_shadow_never_reaches_traffic(world):
    world.deploy("2")
    world.source.values["agreement"] = 0.6
    assert world.tick().phase == Phase.shadowing  # the rollout starts; the first analysis comes an interval later
    record = world.tick()
    assert record.phase == Phase.failed and record.failed_checks == ["agreement"]
    assert world.weights() == {"main": 100}


def test_failed_analyses_are_tolerated_up_to_the_policy(tmp_path):
    w = World(tmp_path, max_failed_checks=1, mode="canary")
    w.deploy("1")
    w.deploy("2")
    w.tick()
    w.source.values["error_rate"] = 0.5
    assert w.tick().phase == Phase.progressing  # first failure tolerated
    assert w.tick().phase == Phase.failed


def test_too_few_labels_skip_accuracy_unless_feedback_is_required(tmp_path):
    lax = World(tmp_path / "lax", source=h.ScriptedSource(labelled=3, accuracy_delta=-0.5), mode="canary")
    lax.deploy("1")
    lax.deploy("2")
    lax.tick()
    lax.tick()
    assert lax.status().checks["accuracy_delta"] == "skipped" and lax.status().weight == 50
    strict = World(tmp_path / "strict", source=h.ScriptedSource(labelled=3), mode="canary", require_feedback=True)
    strict.deploy("1")
    strict.deploy("2")
    strict.tick()
    record = strict.tick()
    assert record.weight == 10 and record.checks["accuracy_delta"] == "no_data" and "accuracy_delta" in record.reason


def test_no_traffic_never_promotes_and_the_deadline_rolls_back(tmp_path):
    w = World(tmp_path, source=h.ScriptedSource(requests=None), mode="canary", deadline_s=60)
    w.deploy("1")
    w.deploy("2")
    w.tick()
    for _ in range(5):
        record = w.tick()
        assert record.phase == Phase.progressing and record.weight == 10 and "waiting for traffic" in record.reason
    record = w.tick(20)
    assert record.phase == Phase.failed and record.failed_checks[0] == "deadline" and record.outcome == "failed"
    counted = w.controller.metrics.registry.get_sample_value(
        "ctloop_rollout_outcomes_total", {"deployment": NAME, "outcome": "failed"})  # fmt: skip
    assert counted == 1 and metric_names.undeclared(w.controller.metrics.registry) == []


def test_restart_mid_rollout_resumes_where_it_was(world):
    world.deploy("2")
    for _ in range(5):
        world.tick()
    assert (world.status().phase, world.status().weight) == (Phase.progressing, 50)
    world.controller = world.new_controller()  # a new process: only the object's annotation carries the state
    record = world.tick()
    assert (record.phase, record.weight) == (Phase.progressing, 100)
    assert world.tick().phase == Phase.succeeded


def test_registry_outage_while_promoting_is_finished_by_the_next_controller(world):
    world.deploy("2")
    for _ in range(6):
        world.tick()
    world.registry.fail = True
    record = world.tick()
    # the traffic moved (main serves 2) but the champion alias could not: the phase stays Promoting
    assert record.phase == Phase.promoting and world.versions() == {"main": "2"} and world.registry.champion() == "1"
    world.registry.fail = False
    world.controller = world.new_controller()
    assert world.tick().phase == Phase.succeeded and world.registry.champion() == "2"


def test_prometheus_outage_pauses_then_rolls_back(world):
    world.deploy("2")
    for _ in range(4):
        world.tick()
    world.source.values["requests"] = "down"
    for _ in range(5):  # 40 s from the first failed query, under prometheus_outage_s (60 s): paused, same weight
        record = world.tick()
        assert record.phase == Phase.progressing and record.weight == 10 and record.reason.startswith("paused")
    record = world.tick(25)
    assert record.phase == Phase.failed and record.failed_checks == ["prometheus_unreachable"]
    assert world.weights() == {"main": 100}


def test_prometheus_back_before_the_deadline_resumes(world):
    world.deploy("2")
    for _ in range(4):
        world.tick()
    world.source.values["requests"] = "down"
    world.tick()
    world.source.values["requests"] = 500
    record = world.tick()
    assert record.outage_since == 0 and record.weight == 50


def test_newer_candidate_supersedes_the_older_one(world):
    world.deploy("2")
    for _ in range(5):
        world.tick()
    assert world.weights() == {"main": 50, "canary": 50}
    world.deploy("3")  # the pipeline registered a newer version meanwhile
    assert world.weights() == {"main": 100, "shadow": "shadow"} and world.versions()["shadow"] == "3"
    record = world.tick()
    assert record.phase == Phase.shadowing and record.candidate == "3" and record.superseded == ["2"]
    assert world.registry.version_tags["2"]["ctloop.rollout"] == "superseded"
    for _ in range(6):
        record = world.tick()
    assert record.phase == Phase.succeeded and world.registry.champion() == "3"
    outcomes = world.controller.metrics.registry.get_sample_value(
        "ctloop_rollout_outcomes_total", {"deployment": NAME, "outcome": "superseded"})  # fmt: skip
    assert outcomes == 1


@pytest.mark.parametrize("action", ["promote", "abort"])
def test_promote_and_abort_by_hand(world, action):
    world.deploy("2")
    world.tick()

    def ask(obj):
        obj["metadata"]["annotations"][status.REQUEST_ANNOTATION] = f'{{"action": "{action}", "version": "2"}}'
        return obj

    deployment_target.update(world.target, NS, NAME, ask)
    record = world.tick()
    assert status.REQUEST_ANNOTATION not in world.sdep()["metadata"]["annotations"]
    if action == "promote":
        assert record.phase == Phase.succeeded and world.registry.champion() == "2"
    else:
        assert record.phase == Phase.failed and record.outcome == "aborted" and record.failed_checks == ["aborted"]
        assert world.versions() == {"main": "1"}


def test_rejected_or_unblessed_versions_are_not_deployed(world):
    from ctloop.components.deploy.executor import NotBlessedError
    from ctloop.errors import BadInputError

    world.registry.version_tags["2"]["ctloop.validation_status"] = "not blessed"
    with pytest.raises(NotBlessedError):
        world.deploy("2")
    world.registry.version_tags["3"]["ctloop.rollout"] = "rejected"
    with pytest.raises(NotBlessedError, match="rejected"):
        world.deploy("3")
    with pytest.raises(BadInputError, match="not in the registry"):
        world.deploy("9")
    with pytest.raises(BadInputError, match="physical location"):
        executor.deploy(world.settings, world.target, world.registry, "1", "models:/m-123")


def test_local_writes_refuse_a_stale_resource_version_and_update_retries(world):
    stale = world.sdep()
    fresh = world.sdep()
    fresh["metadata"].setdefault("annotations", {})["x"] = "1"
    world.target.replace(fresh)
    stale["metadata"]["annotations"]["y"] = "2"
    with pytest.raises(deployment_target.ConflictError):
        world.target.replace(stale)
    calls = []

    def mutate(obj):
        calls.append(obj["metadata"]["resourceVersion"])
        if len(calls) == 1:  # someone else writes between our read and our write
            other = world.sdep()
            other["metadata"]["annotations"]["z"] = "3"
            world.target.replace(other)
        obj["metadata"]["annotations"]["y"] = "2"
        return obj

    written = deployment_target.update(world.target, NS, NAME, mutate)
    assert len(calls) == 2 and {"x", "y", "z"} <= set(written["metadata"]["annotations"])


def test_candidate_predictor_is_built_like_the_manifest(tmp_path):
    """The first deployment's predictor equals manifests/base/seldondeployment.yaml's main, URIs and versions
    aside, so the local mode and the chart serve the same thing."""
    settings = h.settings(tmp_path)
    manifest = yaml.safe_load((h.ROOT / "manifests" / "base" / "seldondeployment.yaml").read_text())
    main = manifest["spec"]["predictors"][0]
    built = shape.new_predictor(settings, "main", "1", "s3://mlflow/1/RUN_ID/artifacts/model", "t" * 32)
    assert built["componentSpecs"] == main["componentSpecs"]
    for key in ("name", "type", "modelUri", "envSecretRefName", "parameters", "children"):
        assert built["graph"][key] == main["graph"][key], key
    assert built["graph"]["logger"] == {"mode": "all", "url": f"http://ctloop:{'t' * 32}@127.0.0.1:9/v1/events"}
    assert built["labels"] == main["labels"]


def test_queries_use_only_exported_series_and_the_docs_show_them():
    import re

    from ctloop.metric_names import series_names
    from ctloop.services.rollout_controller import checks, sequential

    docs = (h.ROOT / "docs" / "rollout.md").read_text()
    for where in ("shadow", "canary"):
        for name, query in checks.queries(NAME, where, 120).items():
            used = set(re.findall(r"([a-z_]+)\{", query))
            assert used and used <= series_names(), (name, used - series_names())
            if where == "canary" and name != "agreement" or where == "shadow" and name == "agreement":
                assert query in docs, f"docs/rollout.md shows an outdated {name} query"
    assert {c.name for c in checks.CHECKS} <= set(checks.queries(NAME, "canary", 1))
    for name, query in sequential.count_queries(NAME, 600).items():
        used = set(re.findall(r"([a-z_]+)\{", query))
        assert used and used <= series_names(), (name, used - series_names())
        if name.endswith(".candidate"):
            assert query in docs, f"docs/rollout.md shows an outdated {name} query"


def test_a_candidate_declared_while_promoting_waits_for_the_promotion_to_finish(world):
    world.deploy("2")
    for _ in range(6):
        world.tick()
    world.registry.fail = True
    assert world.tick().phase == Phase.promoting  # main serves 2; the alias is still on 1
    world.deploy("3")
    world.registry.fail = False
    assert world.tick().phase == Phase.succeeded  # the promotion of 2 is finished first ...
    assert world.registry.champion() == "2" and world.registry.version_tags["2"]["ctloop.rollout"] == "champion"
    record = world.tick()  # ... then 3's rollout starts, against 2
    assert record.phase == Phase.shadowing and record.candidate == "3" and record.champion == "2"
    assert record.superseded == []
