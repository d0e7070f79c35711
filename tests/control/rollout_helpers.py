"""Shared by the rollout tests: settings, a scripted metric source, an in-memory registry, a clock."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ctloop import config
from ctloop.contracts.registry import CANDIDATE, CHAMPION, STATUS_TAG
from ctloop.services.rollout_controller import checks

ROOT = Path(__file__).resolve().parents[2]
# The state machine's tests script method threshold's checks (one number per check); method sequential's checks
# are driven by counts (CountSource, test_rollout_sequential.py).
POLICY = {"method": "threshold", "mode": "shadow-then-canary", "steps": [10, 50, 100], "interval_s": 10,
          "min_requests": 50, "max_failed_checks": 0, "deadline_s": 600, "window_s": 30, "shadow_duration_s": 30,
          "min_shadow_requests": 50, "prometheus_outage_s": 60, "min_labelled_requests": 20}  # fmt: skip


def settings(state_dir: Path, **policy):
    raw = yaml.safe_load((ROOT / "ctloop.yaml").read_text())
    raw["rollout"] = {**POLICY, **policy}
    raw["local"]["state_dir"] = str(state_dir)
    # Predictors' request logger: a port where nothing listens, never the local stack's watcher.
    raw["endpoints"]["watcher"] = {"url": "http://127.0.0.1:9"}
    return config.parse(raw, environ={})


def write_config(tmp_path: Path, prometheus_url: str = "http://127.0.0.1:9", **policy) -> tuple[Path, object]:
    """A ctloop.yaml for the controller's own process; by default nothing listens at Prometheus (checks pause)."""
    settings_ = settings(tmp_path / "state", **policy)
    raw = yaml.safe_load((ROOT / "ctloop.yaml").read_text())
    raw["rollout"] = settings_.rollout.dict()
    raw["local"]["state_dir"] = settings_.local.state_dir
    raw["endpoints"]["prometheus"]["url"] = prometheus_url
    path = tmp_path / "ctloop.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, settings_


def start_controller(config: Path, settings_, port: int, log: Path):
    """The controller's own process (`python -m ctloop.services.rollout_controller`), once /readyz answers 200."""
    import subprocess
    import sys
    import time

    import httpx

    argv = [sys.executable, "-m", "ctloop.services.rollout_controller", "--config", str(config), "--host",
            "127.0.0.1", "--port", str(port), "--state", settings_.local.state_dir]  # fmt: skip
    process = subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the controller was not ready in 60 s: {log.read_text()[-2000:]}")


HEALTHY = {"requests": 500, "labelled": 100, "error_rate": 0.0, "latency_p99": 0.02, "latency_p99_ratio": 1.0,
           "score_divergence": 0.02, "agreement": 0.97, "accuracy_delta": 0.0}  # fmt: skip


def _shape(promql: str) -> str:
    return re.sub(r"\[\d+s\]", "[]", promql)


class ScriptedSource:
    """Answers each check's query from ``values`` (by check name): a number, None (no data) or "down"."""

    def __init__(self, deployment: str = "credit-risk", **values):
        self.values = {**HEALTHY, **values}
        self.asked: list[tuple[str, str]] = []
        self.names = {}
        for where in ("shadow", "canary"):
            for name, query in checks.queries(deployment, where, 1, 1).items():
                self.names[_shape(query)] = (where, name)

    def query(self, promql: str) -> float:
        where, name = self.names[_shape(promql)]
        self.asked.append((where, name))
        value = self.values.get(name)
        if value == "down":
            raise checks.SourceDown("scripted outage")
        if value is None:
            raise checks.NoData(name)
        return float(value)


class CountSource:
    """Answers method sequential's count queries: ``counts[(count, who)]`` is a number, or for ``latency_buckets``
    and ``score_buckets`` a list of per-bucket counts (turned into Prometheus's cumulative ``le`` buckets here)."""

    def __init__(self, counts: dict, deployment: str = "credit-risk"):
        from ctloop.metric_names import SCORE_BUCKETS, SELDON_BUCKETS
        from ctloop.services.rollout_controller import sequential

        self.counts, self.down = counts, False
        self.bounds = {"latency_buckets": SELDON_BUCKETS, "score_buckets": SCORE_BUCKETS}
        self.names = {_shape(q): tuple(k.split(".")) for k, q in sequential.count_queries(deployment, 1).items()}
        for where in ("shadow", "canary"):
            self.names[_shape(checks.queries(deployment, where, 1, 1)["requests"])] = ("requests", "step")

    def _get(self, promql: str):
        if self.down:
            raise checks.SourceDown("scripted outage")
        key = self.names[_shape(promql)]
        if key not in self.counts:
            raise checks.NoData(str(key))
        return self.counts[key]

    def query(self, promql: str) -> float:
        return float(self._get(promql))

    def vector(self, promql: str) -> dict[str, float]:
        key, counts = self.names[_shape(promql)], self._get(promql)
        running, out = 0.0, {}
        for bound, count in zip([*self.bounds[key[0]], "+Inf"], counts):
            running += count
            out[str(bound)] = running
        return out


class MemoryRegistry:
    """The registry's interface over dicts (the real one is tested against an MLflow server in test_deploy.py)."""

    name = "ctloop-credit-risk"

    def __init__(self, versions=("1", "2", "3")):
        self.aliases: dict[str, str] = {}
        self.version_tags = {v: {"ctloop.validation_status": "blessed"} for v in versions}
        self.calls: list[tuple] = []
        self.fail = False

    def champion(self):
        return self.aliases.get(CHAMPION)

    def tags(self, version):
        return dict(self.version_tags.get(version, {}))

    def promote(self, version):
        previous = self.champion()
        if previous and previous != version:
            self.version_tags[previous][STATUS_TAG] = "retired"
        self.aliases[CHAMPION] = version
        self.version_tags[version][STATUS_TAG] = "champion"
        if self.aliases.get(CANDIDATE) == version:
            del self.aliases[CANDIDATE]

    def reject(self, version, failed_checks):
        self.version_tags[version][STATUS_TAG] = "rejected"
        self.version_tags[version]["ctloop.rollout_failed_checks"] = ",".join(failed_checks)

    def supersede(self, version):
        self.version_tags[version][STATUS_TAG] = "superseded"

    def apply(self, action):
        from ctloop.errors import NotReadyError

        if self.fail:
            raise NotReadyError("registry down (scripted)")
        self.calls.append(action)
        kind, version, *rest = action
        getattr(self, kind)(version, *rest)


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
