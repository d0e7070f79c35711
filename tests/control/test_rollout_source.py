"""Prometheus answering something other than a clean result (a refused query, rate limiting, a redirect, a body
that is not its JSON): a stand-in over real HTTP, the real PrometheusSource, the controller on the local target
with a scripted clock. Each answer pauses the rollout and then rolls it back; none raises out of the tick."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ctloop import deployment_target
from ctloop.components.deploy import executor
from ctloop.contracts import rollout as status
from ctloop.contracts.rollout import Phase
from ctloop.services.rollout_controller import checks
from ctloop.services.rollout_controller.controller import Controller

from . import rollout_helpers as h

ANSWERS = {
    "422": (422, "application/json", json.dumps({"status": "error", "errorType": "execution", "error": "x"})),
    "429": (429, "text/plain", "too many requests"),
    "redirect": (302, "text/plain", ""),
    "not json": (200, "text/html", "<html>a login page</html>"),
    "json, not success": (200, "application/json", json.dumps({"status": "error", "error": "bad_data"})),
    "json, no data": (200, "application/json", json.dumps({"status": "success"})),
    "json, malformed data": (200, "application/json",
                             json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{}]}})),
    "json list": (200, "application/json", "[1, 2]"),
}  # fmt: skip


class StandIn:
    def __init__(self, answer: tuple[int, str, str]):
        code, kind, body = answer
        self.asked = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                stand_in.asked += 1
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                if code == 302:
                    self.send_header("Location", "/login")
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize("answer", list(ANSWERS))
def test_an_unclean_answer_is_an_outage_for_both_sources_methods(answer):
    stand_in = StandIn(ANSWERS[answer])
    source = checks.PrometheusSource(stand_in.url)
    with pytest.raises(checks.SourceDown):
        source.query("up")
    with pytest.raises(checks.SourceDown):
        source.vector("sum by (le) (x_bucket)")
    stand_in.server.shutdown()


@pytest.mark.parametrize("method", ["threshold", "sequential"])
@pytest.mark.parametrize("answer", ["422", "429", "redirect", "not json"])
def test_a_rollout_pauses_then_rolls_back_whatever_prometheus_answers(tmp_path, answer, method):
    stand_in = StandIn(ANSWERS[answer])
    settings = h.settings(tmp_path / "state", method=method)
    target = deployment_target.connect(settings)
    registry, clock = h.MemoryRegistry(), h.Clock()
    controller = Controller(settings, target, checks.PrometheusSource(stand_in.url), lambda: registry, clock=clock)
    executor.deploy(settings, target, registry, "1", "file:///models/1")
    executor.deploy(settings, target, registry, "2", "file:///models/2")
    assert controller.tick().phase == Phase.shadowing  # the rollout starts; its first analysis is an interval later
    seen = []
    for _ in range(5):  # 40 s from the first unclean answer, under prometheus_outage_s (60 s): paused
        clock.advance(10)
        record = controller.tick()
        seen.append((record.phase, record.reason))
        assert record.phase == Phase.shadowing and record.reason.startswith("paused"), seen
    clock.advance(25)
    record = controller.tick()
    assert record.phase == Phase.failed and record.failed_checks == ["prometheus_unreachable"], seen
    assert status.read(target.get("ctloop", "credit-risk")).outcome == "failed"
    assert stand_in.asked >= 6  # every tick asked, and every answer was taken as the outage it is
    stand_in.server.shutdown()
