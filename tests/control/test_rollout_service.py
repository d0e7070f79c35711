"""The rollout controller as it is deployed: `python -m ctloop.services.rollout_controller --config --port --state`
over real HTTP (health, readiness, metrics, status), and `ctloop rollout status|promote|abort`, both on the local
deployment target."""

from __future__ import annotations

import json
import time
from collections import Counter
from urllib.parse import quote

import httpx
import pytest
from click.testing import CliRunner

from ctloop import deployment_target
from ctloop.components.deploy import executor
from ctloop.contracts import rollout as status
from ctloop.contracts.rollout import Phase
from ctloop.local.cli import main as cli

from . import rollout_helpers as h

pytestmark = pytest.mark.timeout(120)


def test_service_contract_health_readiness_metrics_and_status(tmp_path, free_port):
    config, settings = h.write_config(tmp_path, interval_s=1)
    port = free_port()
    process = h.start_controller(config, settings, port, tmp_path / "log.txt")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/v1/rollouts/ctloop/credit-risk").status_code == 404  # no SeldonDeployment yet
        assert httpx.get(f"{url}/v1/rollouts/other/credit-risk").status_code == 404
        target = deployment_target.connect(settings)
        registry = h.MemoryRegistry()
        executor.deploy(settings, target, registry, "1", "file:///m1")
        executor.deploy(settings, target, registry, "2", "file:///m2")
        body = {}
        while time.monotonic() < deadline and body.get("phase") != "Shadowing":
            body = httpx.get(f"{url}/v1/rollouts/ctloop/credit-risk").json()
            time.sleep(0.2)
        assert body["candidate"] == "2" and body["champion"] == "1"
        while time.monotonic() < deadline and not body.get("reason", "").startswith("paused"):
            body = httpx.get(f"{url}/v1/rollouts/ctloop/credit-risk").json()
            time.sleep(0.2)
        assert body["reason"] == "paused: Prometheus unreachable" and body["outage_since"] > 0
        metrics = httpx.get(f"{url}/metrics").text
        assert 'ctloop_rollout_phase{deployment="credit-risk",phase="Shadowing"} 1.0' in metrics
        assert 'ctloop_rollout_canary_weight{deployment="credit-risk"} 0.0' in metrics
    finally:
        process.terminate()
        process.wait(20)


@pytest.mark.timeout(3600)
def test_fuzz_the_api_never_answers_5xx_and_the_controller_stays_healthy(tmp_path, free_port, fuzz):
    """Generated requests to the controller's own process: any method, path segments of any bytes
    (percent-encoded, not UTF-8 too), hostile headers and bodies, mid-rollout. None may answer 5xx."""
    from hypothesis import given

    st = fuzz.st
    # Nothing answers at Prometheus, so the rollout pauses; it must still be paused, not rolled back for the outage
    # or the deadline, however long the fuzzing takes on a loaded machine (it once took over a minute).
    config, settings = h.write_config(tmp_path, interval_s=1, prometheus_outage_s=3600, deadline_s=3600)
    port = free_port()
    process = h.start_controller(config, settings, port, tmp_path / "log.txt")
    target = deployment_target.connect(settings)
    registry = h.MemoryRegistry()
    executor.deploy(settings, target, registry, "1", "file:///m1")
    executor.deploy(settings, target, registry, "2", "file:///m2")
    rollout = f"http://127.0.0.1:{port}/v1/rollouts/ctloop/credit-risk"
    deadline, body = time.monotonic() + 60, {}
    while time.monotonic() < deadline and body.get("phase") != "Shadowing":  # mid-rollout before the first request
        body = httpx.get(rollout).json()
        time.sleep(0.2)
    assert body["candidate"] == "2", body
    segment = st.sampled_from(["ctloop", "credit-risk", "", ".."]) | st.binary(max_size=12).map(
        lambda b: quote(b, safe="")
    )
    statuses: Counter[int | None] = Counter()
    started = time.monotonic()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            @fuzz.settings()
            @given(data=st.data())
            def one(data):
                method = data.draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]))
                path = "/v1/rollouts/" + "/".join(data.draw(st.lists(segment, min_size=1, max_size=3)))
                path = data.draw(st.sampled_from([path, "/healthz", "/readyz", "/metrics", "/" + path[14:]]))
                body = data.draw(fuzz.body())
                headers = {"X-Fuzz": data.draw(fuzz.header), "Content-Type": data.draw(fuzz.header)}
                try:
                    status = client.request(method, path, content=body, headers=headers).status_code
                except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
                    status = None  # a body the server did not read, the connection closed after the answer
                    assert len(body) > 4 << 20
                statuses[status] += 1
                assert status is None or status < 500, (method, path)

            one()
            assert client.get("/readyz").status_code == 200
            after = client.get("/v1/rollouts/ctloop/credit-risk").json()
            assert after["candidate"] == "2" and after["phase"] == "Shadowing", after
    finally:
        process.terminate()
        process.wait(20)
    fuzz.record("rollout-controller", statuses, time.monotonic() - started)


def test_cli_status_promote_and_abort(tmp_path):
    config, settings = h.write_config(tmp_path)
    target = deployment_target.connect(settings)
    registry = h.MemoryRegistry()
    runner = CliRunner()
    missing = runner.invoke(cli, ["rollout", "status", "credit-risk", "-c", str(config)])
    assert missing.exit_code == 1 and "no SeldonDeployment ctloop/credit-risk" in missing.output
    executor.deploy(settings, target, registry, "1", "file:///m1")
    idle = runner.invoke(cli, ["rollout", "promote", "credit-risk", "-c", str(config)])
    assert idle.exit_code == 2 and "no rollout to promote (phase Succeeded)" in idle.output
    executor.deploy(settings, target, registry, "2", "file:///m2")
    from ctloop.services.rollout_controller.controller import Controller

    controller = Controller(settings, target, h.ScriptedSource(), lambda: registry, clock=h.Clock())
    controller.tick()
    shown = runner.invoke(cli, ["rollout", "status", "credit-risk", "-c", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "ctloop/credit-risk: Shadowing  main serves version 1" in shown.output and "candidate 2" in shown.output
    as_json = json.loads(runner.invoke(cli, ["rollout", "status", "credit-risk", "--json", "-c", str(config)]).output)
    assert as_json["phase"] == "Shadowing"
    asked = runner.invoke(cli, ["rollout", "abort", "credit-risk", "-c", str(config)])
    assert asked.exit_code == 0 and "abort of version 2 requested" in asked.output
    assert json.loads(target.get("ctloop", "credit-risk")["metadata"]["annotations"][status.REQUEST_ANNOTATION]) == {
        "action": "abort", "version": "2"}  # fmt: skip
    controller.clock.advance(1)
    assert controller.tick().phase == Phase.failed
    assert (
        "failed checks: aborted" in runner.invoke(cli, ["rollout", "status", "credit-risk", "-c", str(config)]).output
    )


def test_cli_status_shows_each_sequential_checks_estimate_interval_and_sample_size(tmp_path):
    from ctloop.services.rollout_controller.controller import Controller

    from .test_rollout_sequential import counts

    config, settings = h.write_config(tmp_path, method="sequential", min_requests=10**9)
    target = deployment_target.connect(settings)
    registry = h.MemoryRegistry()
    executor.deploy(settings, target, registry, "1", "file:///m1")
    executor.deploy(settings, target, registry, "2", "file:///m2")
    clock = h.Clock()
    controller = Controller(settings, target, h.CountSource(counts(300)), lambda: registry, clock=clock)
    controller.tick()
    clock.advance(10)
    controller.tick()
    shown = CliRunner().invoke(cli, ["rollout", "status", "credit-risk", "-c", str(config)]).output
    line = next(x for x in shown.splitlines() if x.strip().startswith("accuracy:"))
    assert "undecided" in line and "interval [" in line and "margin 0.02" in line and "n=300" in line, shown
