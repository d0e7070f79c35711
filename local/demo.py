"""The whole loop on one machine (`ctloop demo`, `make demo`): the story the README tells, played against the local
stack with real processes and real HTTP between them.

    day 0     a span is trained on by the pipeline (local runner); v1 is blessed and serves as main
    traffic   clients send requests through the gateway and report outcomes as feedback
    drift     the traffic drifts; the watcher confirms it and sends a signed retrain request to the webhook
    retrain   the webhook starts the pipeline on the new span; v2 is blessed, shadowed, canaried and promoted
    bad v3    a span with corrupted labels (an upstream bug flipped one product's outcomes) arrives through the
              webhook and is stopped offline: its label shares and the champion's metric on it collapse against
              what production knows, and nothing is registered
    override  an operator reads it as a real change and overrides (`--accept-label-change`, recorded on the
              version): v3 is registered and rolled out, and live evidence rolls it back

Each step waits on what the services report (watcher status, rollout status, the registry's aliases) and fails with
a clear message after a deadline. The timeline, the loop's clock and the client tallies are written as JSON beside
the HTML report; the stack is stopped at the end unless asked to keep it.

Every run starts from nothing: the demo keeps its local state (registry, deployments, the watcher's journal, the
webhook's queue, artifacts) in ``<out>/state``, emptied first, never in the user's own ``local.state_dir``, so the
same story plays every time and no earlier run's trigger, cooldown or champion leaks into it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from ctloop.config import Settings
from ctloop.errors import BadInputError, CtloopError, NotReadyError
from ctloop.local import demo_data, stack

__all__ = ["Story", "run"]

# Spans: (folder, seed, drift). The stable traffic and the training span are different draws of one population.
DAY0, STABLE, DRIFTED, CORRUPTED = "2026-01", "2026-02", "2026-03", "2026-04"
CORRUPTED_PRODUCT = "auto"


@dataclass
class Story:
    settings: Settings
    config_path: Path
    out: Path
    rate: float = 20.0
    echo: Callable[[str], None] = print
    started: float = field(default_factory=time.time)
    timeline: list[dict] = field(default_factory=list)
    clock: dict[str, float] = field(default_factory=dict)

    # -- plumbing

    def note(self, what: str, **facts) -> None:
        now = time.time()
        self.timeline.append({"t": now, "elapsed_s": round(now - self.started, 1), "what": what, **facts})
        self.echo(f"[{now - self.started:7.1f}s] {what}")

    def ctloop(self, *args: str, timeout: float = 1800) -> str:
        argv = [sys.executable, "-m", "ctloop.local.cli", *args, "-c", str(self.config_path)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise CtloopError(f"ctloop {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result.stdout

    def wait(self, what: str, probe: Callable[[], object], timeout: float, every: float = 2.0):
        """Poll ``probe`` until it returns something true; the last error is named on timeout."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                value = probe()
                if value:
                    return value
            except (httpx.HTTPError, CtloopError, KeyError, ValueError) as e:
                last = e
            time.sleep(every)
        raise NotReadyError(
            f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last})" if last else "")
        )

    @property
    def urls(self) -> dict[str, str]:
        local = self.settings.local
        return {
            name: f"http://{stack.HOST}:{port}"
            for name, port in (
                ("mlflow", local.mlflow_port),
                ("prometheus", local.prometheus_port),
                ("gateway", local.gateway_port),
                ("webhook", local.webhook_port),
                ("watcher", local.watcher_port),
                ("rollout", local.rollout_port),
            )
        }

    def rollout(self) -> dict:
        ns = self.settings.endpoints.seldon.namespace
        return httpx.get(f"{self.urls['rollout']}/v1/rollouts/{ns}/{self.settings.name}", timeout=5).json()

    def watcher(self) -> dict:
        return httpx.get(f"{self.urls['watcher']}/v1/status", timeout=5).json()

    def versions(self) -> dict[str, dict]:
        """Registered versions: number -> aliases and tags."""
        from ctloop import mlflow_client

        client = mlflow_client.connect(self.settings, timeout=5)
        name = self.settings.endpoints.mlflow.registered_model
        out = {}
        for v in client.search_model_versions(f"name='{name}'"):
            full = client.get_model_version(name, v.version)
            out[str(v.version)] = {"aliases": list(full.aliases), "tags": dict(full.tags), "run_id": full.run_id}
        return out

    def runs_finished(self) -> float:
        """Pipeline runs the webhook started that have ended, from its metrics."""
        text = httpx.get(f"{self.urls['webhook']}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("ctloop_pipeline_runs_total{"))  # fmt: skip

    def stop_reason(self) -> str:
        """Why the latest pipeline run registered nothing: the data verdict's first error, or the blessing's first
        failed check."""
        from ctloop.local import runner

        runs = (runner.pipeline_root(self.settings) / "runs").iterdir()
        run = max(runs, key=lambda p: p.stat().st_mtime)
        verdict = run / "validate-data" / "artifacts" / "anomalies_summary"
        if verdict.exists() and not (found := json.loads(verdict.read_text()))["passed"]:
            first = next(a for a in found["anomalies"] if a["severity"] == "ERROR")
            return f"validate_data: {first['feature']}: {first['kind']}: {first['description']}"
        blessing = run / "validate-segments" / "artifacts" / "blessing"
        if blessing.exists() and not (found := json.loads(blessing.read_text()))["blessed"]:
            first = found["failed"][0]
            return f"validate_segments: {first['check']} {first['segment']}={first['value']}: {first['detail']}"
        return f"see {run}"

    def champion(self) -> str | None:
        return next((n for n, v in self.versions().items() if "champion" in v["aliases"]), None)

    def serves(self, version: str) -> bool:
        """Main answers with ``version`` through the gateway."""
        ns, name = self.settings.endpoints.seldon.namespace, self.settings.name
        row = self.rows(STABLE)[0]
        names = [f.name for f in self.settings.features]
        body = {"data": {"names": names, "ndarray": [[row[n] for n in names]]}}
        answer = httpx.post(f"{self.urls['gateway']}/seldon/{ns}/{name}/api/v1.0/predictions", json=body, timeout=10)
        return answer.status_code == 200 and answer.json()["meta"]["tags"]["model_version"] == version

    # -- data

    def span(self, name: str) -> Path:
        return self.out / "spans" / name

    def rows(self, name: str) -> list[dict]:
        import pandas as pd

        frame = pd.concat(pd.read_parquet(p) for p in sorted(self.span(name).glob("*.parquet")))
        columns = [f.name for f in self.settings.features] + [self.settings.data.label]
        return json.loads(frame[columns].to_json(orient="records"))

    def make_spans(self) -> None:
        for name, seed, drift in ((DAY0, 7, None), (STABLE, 10, None), (DRIFTED, 8, "covariate")):
            if not self.span(name).exists():
                demo_data.write_span(str(self.span(name)), rows=20000, seed=seed, drift=drift, start=f"{name}-01")
        if not self.span(CORRUPTED).exists():
            # The drifted population (what is served now) with one product's outcomes flipped by an upstream bug.
            frame, manifest = demo_data.generate(20000, 9, drift="covariate")
            label = self.settings.data.label
            flipped = frame["product"] == CORRUPTED_PRODUCT
            frame.loc[flipped, label] = 1 - frame.loc[flipped, label]
            self.span(CORRUPTED).mkdir(parents=True)
            frame.to_parquet(self.span(CORRUPTED) / "data.parquet", index=False)
            manifest["corruption"] = (
                f"{label} flipped where product == {CORRUPTED_PRODUCT!r} ({int(flipped.sum())} rows)"
            )
            (self.span(CORRUPTED) / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        self.note("spans written", spans=[DAY0, STABLE, DRIFTED, CORRUPTED])

    # -- the story

    def play(self, traffic) -> None:
        self.make_spans()
        # The span a drift-triggered run trains on: the new month, as it lands (the watcher's own labelled serving
        # data lacks the columns that are not model inputs, such as age_band, which segment validation needs).
        self.settings.drift.retrain_data_uri = str(self.span(DRIFTED).resolve())
        self.note("starting the local stack")
        stack.up(self.settings)
        self.note("stack healthy", urls=self.urls)

        self.note(f"day 0: pipeline on span {DAY0} (local runner)")
        self.ctloop("pipeline", "run", "--local", "--data", str(self.span(DAY0)))
        v1 = self.wait("v1 to be the champion", self.champion, 120)
        self.wait(f"main to serve v{v1}", lambda: self.serves(v1), 180)
        self.note(f"v{v1} blessed, registered, champion, serving as main", version=v1)

        traffic.use(self.rows(STABLE), "stable")
        traffic.start()
        self.note(f"traffic: {self.rate:.0f} requests/s from span {STABLE}, each with its outcome as feedback")
        judged = self.watcher()["window"]["index"] + 2

        def windows_judged() -> bool:
            status = self.watcher()
            return status["reference_version"] == v1 and status["window"]["index"] >= judged

        self.wait(f"two windows judged against v{v1}'s reference", windows_judged, 300)
        self.note("stable windows judged", watcher=self.watcher()["history"])

        traffic.use(self.rows(DRIFTED), "drift")
        self.clock["drift_onset"] = time.time()
        self.note(f"drift: traffic now from span {DRIFTED} (covariate drift)")
        status = self.wait("the watcher to confirm drift", lambda: (s := self.watcher())["last_trigger"] and s, 600)
        self.clock["drift_detected"] = status["last_trigger"]
        self.note("watcher confirmed drift and sent a signed retrain request", result=status["last_result"])

        before = set(self.versions())
        v2 = self.wait("the retrain run to register v2", lambda: next(iter(set(self.versions()) - before), None),
                       1800, every=5)  # fmt: skip
        self.clock["candidate_registered"] = time.time()
        self.note(f"webhook-started pipeline registered v{v2}")
        self.wait(f"v{v2} to take traffic (shadow)", lambda: self.rollout()["candidate"] == v2, 300)
        self.clock["candidate_serving"] = time.time()
        traffic.mark("v2-rollout")
        self.note(f"v{v2} declared as the shadow; the rollout controller takes over", rollout=self.rollout())
        done = self.follow_rollout(v2, 1800)
        if done["outcome"] != "promoted":
            raise CtloopError(f"v{v2} was not promoted: {done}")
        self.clock["promoted"] = time.time()
        self.wait(f"v{v2} to be the champion", lambda: self.champion() == v2, 120)
        self.note(f"v{v2} promoted: main serves it, champion alias moved")

        traffic.mark("v3-build")
        self.note(f"bad candidate: `ctloop retrain` on span {CORRUPTED} ({CORRUPTED_PRODUCT} outcomes flipped)")
        before, finished = set(self.versions()), self.runs_finished()
        self.ctloop("retrain", "--reason", f"new span {CORRUPTED} landed", "--data", str(self.span(CORRUPTED)),
                    "--force")  # fmt: skip
        self.wait("the webhook's run to finish", lambda: self.runs_finished() > finished, 1800, 5)
        if set(self.versions()) - before:
            raise CtloopError(f"span {CORRUPTED} was registered although one product's outcomes are flipped")
        self.note(f"stopped offline, nothing registered: {self.stop_reason()}")
        self.note("an operator reads it as a real change and overrides: `ctloop pipeline run --local "
                  "--accept-label-change`")  # fmt: skip
        self.ctloop("pipeline", "run", "--local", "--accept-label-change", "--data", str(self.span(CORRUPTED)))
        v3 = self.wait("the run to register v3", lambda: next(iter(set(self.versions()) - before), None), 120, 5)
        accepted = self.versions()[v3]["tags"].get("ctloop.accepted")
        self.note(f"v{v3} registered with the override recorded on it (ctloop.accepted: {accepted})")
        self.wait(f"v{v3} to take traffic", lambda: self.rollout()["candidate"] == v3, 300)
        traffic.mark("v3-rollout")
        done = self.follow_rollout(v3, 1800)
        if done["outcome"] != "rolled_back":
            raise CtloopError(f"v{v3} was not rolled back: {done}")
        self.note(f"v{v3} rolled back", failed_checks=done["failed_checks"])
        traffic.mark("after")
        time.sleep(5)

    def follow_rollout(self, version: str, timeout: float) -> dict:
        seen = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.rollout()
            where = (status["phase"], status["weight"])
            if where != seen:
                seen = where
                self.note(f"rollout of v{version}: {status['phase']} at weight {status['weight']}",
                          checks=status["checks"])  # fmt: skip
            if status["candidate"] == version and status["phase"] in ("Succeeded", "Failed"):
                return status
            time.sleep(2)
        raise NotReadyError(f"the rollout of v{version} did not finish in {timeout:.0f}s: {self.rollout()}")


def own_state(settings: Settings, folder: Path) -> tuple[Settings, Path]:
    """A copy of ``settings`` whose local state is ``folder``, emptied first, and the file the story's commands
    read it from. BadInputError, in one line, when the demo cannot start from nothing."""
    names = {f.name for f in settings.features} | {settings.data.label}
    foreign = sorted(names - set(demo_data.COLUMNS))
    if foreign:
        raise BadInputError(f"ctloop demo plays its story on ctloop's demo data, which has no {foreign}: run it "
                            "with the ctloop.yaml ctloop ships, or try yours with `ctloop up`")  # fmt: skip
    running = [s.name for s in stack.status(settings) if s.state != "stopped"]
    if running:
        raise BadInputError(f"the local stack of {settings.local.state_dir} is running ({', '.join(running)}) on the "
                            "ports the demo's own stack needs: stop it with `ctloop down` first")  # fmt: skip
    demo = settings.copy(deep=True)
    demo.local.state_dir = str(folder)
    demo.endpoints.artifact_store.root = str(folder / "artifacts")
    demo.pipeline.pipeline_root = None
    stack.down(demo)  # what an earlier demo left running (--keep-running)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / "ctloop.yaml"
    path.write_text(yaml.safe_dump(json.loads(demo.json()), sort_keys=False))
    return demo, path


def run(settings: Settings, out: Path, keep: bool = False, rate: float = 20.0, echo=print) -> dict:
    """Play the story from a state of its own (``own_state``); returns the summary (also written to
    <out>/summary.json). Raises on a failed step."""
    from ctloop.local import loop_report
    from ctloop.local.traffic import Traffic

    out.mkdir(parents=True, exist_ok=True)
    settings, config_path = own_state(settings, out / "state")
    story = Story(settings, config_path, out, rate=rate, echo=echo)
    traffic = Traffic(story.urls["gateway"], settings.endpoints.seldon.namespace, settings.name,
                      [f.name for f in settings.features], settings.data.label, rate)  # fmt: skip
    error = None
    try:
        story.play(traffic)
    except BaseException as e:
        error = e
        story.note(f"FAILED: {e}")
    finally:
        traffic.stop()
        try:
            versions = story.versions()
        except Exception as e:  # the registry may be what failed
            versions = {"error": str(e)}
        summary = {
            "versions": versions,
            "ok": error is None,
            "error": str(error) if error else None,
            "timeline": story.timeline,
            "clock": story.clock,
            "traffic": {
                phase: {
                    "ok": t.ok,
                    "failed": t.failed,
                    "statuses": {str(k): v for k, v in t.statuses.items()},
                    "versions": dict(t.versions),
                }  # fmt: skip
                for phase, t in traffic.tallies.items()
            },
            "urls": story.urls,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        try:
            report = loop_report.write(settings, story, summary, out)
            story.note(f"report: {report}")
        except Exception as e:  # a report that cannot be drawn must not hide the story's own outcome
            story.note(f"report failed: {e}")
        if not keep:
            stack.down(settings)
            story.note("stack stopped")
        else:
            story.note(f"the stack keeps running; `ctloop down -c {config_path}` stops it")
    if error is not None:
        raise error
    return summary
