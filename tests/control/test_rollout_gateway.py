"""No request fails through a whole rollout, promotion and rollback, under steady load through the REAL local
gateway (its stand-in predictors, tests/control/echo_predictor.py, answer with their model version): the
controller writes the SeldonDeployment file, the gateway swaps processes. The checks are scripted here; against
a real Prometheus they are in test_rollout_prometheus.py."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from ctloop import deployment_target
from ctloop.components.deploy import executor
from ctloop.contracts.rollout import Phase
from ctloop.services.rollout_controller.controller import Controller

from . import rollout_helpers as h
from . import test_gateway as gw

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_no_request_fails_through_promotion_and_rollback_under_steady_load(tmp_path):
    settings = h.settings(tmp_path / "state", steps=[10, 50, 100])
    target = deployment_target.LocalTarget(tmp_path / "deployments")
    registry = h.MemoryRegistry()
    executor.deploy(settings, target, registry, "1", "file:///m1")
    source = h.ScriptedSource()
    clock = h.Clock()
    controller = Controller(settings, target, source, lambda: registry, clock=clock)

    with gw.Running(tmp_path, target.get("ctloop", "credit-risk")) as g:
        results: list[tuple[int, str]] = []
        stop = threading.Event()

        def load():
            with httpx.Client() as client:
                while not stop.is_set():
                    response = gw.ask(client, g.url)
                    version = response.json()["data"]["ndarray"][0][1] if response.status_code == 200 else ""
                    results.append((response.status_code, version))

        def settle():
            """Until the gateway routes by the file as written (its new processes are ready)."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                wanted = target.get("ctloop", "credit-risk")["spec"]
                if g.gateway.deployments.get(("ctloop", "credit-risk"), {}).get("spec") == wanted:
                    return
                time.sleep(0.1)
            raise AssertionError("the gateway did not pick up the change")

        def roll_out(version: str, bad_from_weight: int = 101) -> Phase:
            executor.deploy(settings, target, registry, version, f"file:///m{version}")
            for _ in range(20):
                settle()
                time.sleep(0.5)  # some traffic at this weight
                clock.advance(10)
                record = controller.tick()
                if record.weight >= bad_from_weight:
                    source.values["error_rate"] = 0.3
                if record.phase.terminal:
                    return record.phase
            raise AssertionError("no outcome")

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        try:
            time.sleep(1.0)
            assert roll_out("2") == Phase.succeeded
            settle()
            time.sleep(1.0)
            promoted_at = len(results)
            assert roll_out("3", bad_from_weight=50) == Phase.failed  # its canary fails at 50%
            settle()
            time.sleep(1.0)
        finally:
            stop.set()
            for w in workers:
                w.join()
    codes = [code for code, _ in results]
    assert len(results) > 200 and set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
    served = [v for _, v in results]
    assert {"1", "2", "3"} <= set(served)  # the canary of 3 took traffic before it was rolled back
    assert served[-20:] == ["2"] * 20 and served[promoted_at - 20 : promoted_at] == ["2"] * 20
