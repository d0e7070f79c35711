"""The whole loop end to end on the local stack (`ctloop demo`), run as a user would: from a folder outside the
repository holding a ctloop.yaml of its own. Every service is a real process on loopback, the pipeline is run by the
local runner, the model servers by the gateway. It asserts each step of the story with the right versions and aliases,
no failed client request through promotion and rollback, every dashboard panel with data on the loop's Prometheus,
that a second demo in the same folder starts from nothing, and that nothing is left running, on success or failure.
The story takes 15-20 minutes on two cores: marked slow (`make test` runs it, `make test-fast` skips it)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from ctloop.config import load
from ctloop.errors import CtloopError
from ctloop.local import demo

from .test_monitoring import dashboard_expressions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
ROOT = Path(__file__).resolve().parents[2]


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if text in args and "pytest" not in args:
            found.append(f"{cmdline.parent.name}: {args[:200]}")
    return found


@pytest.fixture
def loop_config(tmp_path, free_port):
    raw = yaml.safe_load((ROOT / "ctloop.yaml").read_text())
    raw["local"].update(
        state_dir=str(tmp_path / "state"),  # local.venvs_dir unset: the environments beside the one running ctloop
        **{
            f"{name}_port": free_port() for name in ("mlflow", "prometheus", "gateway", "webhook", "watcher", "rollout")
        },
    )
    raw["endpoints"]["mlflow"]["tracking_uri"] = f"http://127.0.0.1:{raw['local']['mlflow_port']}"
    raw["endpoints"]["prometheus"]["url"] = f"http://127.0.0.1:{raw['local']['prometheus_port']}"
    raw["endpoints"]["seldon"] = {"namespace": "ctloop", "url": f"http://127.0.0.1:{raw['local']['gateway_port']}"}
    raw["endpoints"]["webhook"] = {"url": f"http://127.0.0.1:{raw['local']['webhook_port']}"}
    raw["endpoints"]["watcher"] = {"url": f"http://127.0.0.1:{raw['local']['watcher_port']}"}
    raw["endpoints"]["artifact_store"]["root"] = str(tmp_path / "artifacts")
    raw["data"]["uri"] = str(tmp_path / "demo" / "spans" / "2026-01")
    path = tmp_path / "ctloop.yaml"
    path.write_text(yaml.safe_dump(raw))
    yield path
    for config in (path, tmp_path / "demo" / "state" / "ctloop.yaml"):
        if config.exists():
            subprocess.run([sys.executable, "-m", "ctloop.local.cli", "down", "-c", str(config)], capture_output=True)


def run_demo(config: Path, out: Path, *extra: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "ctloop.local.cli", "demo", "-c", str(config), "--out", str(out), *extra],
        capture_output=True, text=True, timeout=3300, cwd=config.parent,
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert result.returncode == 0 and summary["ok"], f"{summary.get('error')}\n{result.stderr[-5000:]}"
    return summary


def check_story(summary: dict, out: Path) -> None:
    steps = [e["what"] for e in summary["timeline"]]

    def step(prefix: str) -> dict:
        return next(e for e in summary["timeline"] if e["what"].startswith(prefix))

    # v1 from day 0, v2 from the drift-triggered run; the corrupted span stopped offline, then v3 from it by a
    # deliberate override: a state of its own every run
    assert step("v1 blessed, registered, champion")
    assert step("watcher confirmed drift")["result"]["drift"] is True
    assert any(s.startswith("webhook-started pipeline registered v2") for s in steps)
    assert any(s.startswith("v2 promoted") for s in steps)
    stopped = step("stopped offline, nothing registered")["what"]
    assert "LABEL_SHIFT" in stopped or "champion_sanity" in stopped, stopped
    rolled_back = step("v3 rolled back")
    assert rolled_back["failed_checks"], "a rollback names the checks that failed"

    versions = summary["versions"]
    assert sorted(versions) == ["1", "2", "3"]
    assert "champion" in versions["2"]["aliases"]
    assert versions["1"]["tags"]["ctloop.rollout"] == "retired"
    assert versions["3"]["tags"]["ctloop.rollout"] == "rejected" and "champion" not in versions["3"]["aliases"]
    assert "label_change" in versions["3"]["tags"]["ctloop.accepted"]  # the override is on the version
    clock = summary["clock"]
    assert clock["drift_onset"] < clock["drift_detected"] < clock["candidate_registered"] < clock["promoted"]

    # zero failed client requests in every phase, including through promotion and rollback
    failed = {phase: t["failed"] for phase, t in summary["traffic"].items()}
    assert sum(t["ok"] for t in summary["traffic"].values()) > 1000
    assert not any(failed.values()), failed
    assert summary["traffic"]["after"]["versions"].keys() == {"2"}  # v2 serves everything after v3's rollback

    report = (out / "report.html").read_text()
    runs = report[report.index("Pipeline runs") :]
    took = [int(s) for s in re.findall(r"<td>(\d+) s</td>", runs)]
    assert len(took) == 3 and min(took) > 10, took  # each version's run validated, trained and judged 20k rows
    assert "stopped offline, nothing registered: " in report  # and the offline stop shows in its timeline
    assert "{'" not in report and "Counter(" not in report  # counts are written for people, not as Python


def test_the_loop_plays_its_story_and_a_second_demo_starts_from_nothing(loop_config, tmp_path):
    out = tmp_path / "demo"
    summary = run_demo(loop_config, out, "--keep-running")
    check_story(summary, out)
    # This run's drift set it off: after its onset, and soon, as the sequential detector tests the last 500 requests
    # every 100 (five seconds at the demo's 20 requests/s); disjoint windows with 2 of 3 took 50 s at least.
    assert 0 < summary["clock"]["drift_detected"] - summary["clock"]["drift_onset"] < 120

    # Every dashboard panel's query returns series on the loop's own Prometheus. The two events the story need
    # not have, refused requests, are made here: an unsigned retrain request must be a 401, a CloudEvent without
    # its type a 400, and both must be counted.
    urls = summary["urls"]
    refused = httpx.post(f"{urls['webhook']}/v1/retrain", json={"reason": "x"}, timeout=10)
    assert refused.status_code == 401
    anonymous = httpx.post(f"{urls['watcher']}/v1/events", content=b"{}", headers={"Ce-Id": "x"}, timeout=10)
    assert anonymous.status_code == 401  # the stack's watcher wants its ingestion token, as the gateway sends it
    # The demo's stack keeps its state, and the secrets it made, under the demo's own folder.
    token = json.loads((out / "state" / "stack" / "secrets.json").read_text())["CTLOOP_WATCHER_TOKEN"]
    invalid = httpx.post(f"{urls['watcher']}/v1/events", content=b"{}", headers={"Ce-Id": "x"}, timeout=10,
                         auth=("ctloop", token))  # fmt: skip
    assert invalid.status_code == 400
    expressions = dashboard_expressions()
    deadline, empty = time.monotonic() + 90, list(expressions)
    while empty and time.monotonic() < deadline:
        time.sleep(5)
        empty = [
            where
            for where, expr in expressions.items()
            if not httpx.get(f"{urls['prometheus']}/api/v1/query", params={"query": expr}, timeout=10).json()["data"][
                "result"
            ]
        ]
    assert empty == [], f"dashboard panels without data after the demo: {empty}"

    # A second demo in the same folder, where this one left its stack up, starts from nothing: it stops that stack
    # and empties the state, so no registry, journal, queue or cooldown of this run leaks into the next. (The
    # story itself is the same code on the same seeds; playing it twice would double this test's 15 minutes.)
    settings, config = demo.own_state(load(loop_config), out / "state")
    assert processes_mentioning(str(tmp_path)) == []
    assert sorted(p.name for p in (out / "state").iterdir()) == ["ctloop.yaml"]
    assert load(config).local.state_dir == str(out / "state") and settings.local.state_dir == str(out / "state")


def test_a_failed_demo_stops_the_stack_it_started_and_says_why(loop_config, tmp_path, monkeypatch):
    """Without --keep-running the demo stops everything it started, also when a step fails: here the first
    pipeline run, after the real stack is up (the failure is injected; the stack, its processes and their stop
    are real)."""

    def broken(self, *args, timeout=1800):
        raise CtloopError(f"injected: ctloop {' '.join(args[:2])} failed")

    monkeypatch.setattr(demo.Story, "ctloop", broken)
    out, printed = tmp_path / "demo", []
    with pytest.raises(CtloopError, match="injected"):
        demo.run(load(loop_config), out, echo=printed.append)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is False and summary["error"] == "injected: ctloop pipeline run failed"
    assert [e["what"] for e in summary["timeline"]][-1] == "FAILED: injected: ctloop pipeline run failed"
    assert any(line.endswith("] stack healthy") for line in printed), printed
    assert printed[-1].endswith("] stack stopped"), printed
    assert processes_mentioning(str(tmp_path)) == []
