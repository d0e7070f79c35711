"""Benchmarks of the drift watcher (watch environment).

python bench/drift_watcher.py --out bench/results [--repeat 3] [--seconds 8] [--only ingestion|detection]

1. Ingestion: request and response CloudEvents posted by wrk to the watcher pinned to one core (wrk on the other),
   as configured by default (each answer after a shared fsync of its journal line) and with
   drift.journal_fsync false, against a comparator pinned the same way: a Starlette endpoint that only reads the
   body and answers (the HTTP floor of the same stack). Medians of alternating runs; the watcher's peak memory.
2. Detection: the delay (events after drift onset) until the windowed test flags a window, until drift is
   confirmed (k of n windows), and until the online detector fires; and false alarms on a stable stream, per
   1,000 events, for each detector. One fixed scenario (demo data, covariate drift), several seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from common import free_port, write
from prometheus_client import CollectorRegistry
from serving import parse_wrk

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-ingest-token-0123456789"  # the watcher's ingestion token, sent by wrk as a bearer token
sys.path.insert(0, str(ROOT))

from ctloop import config  # noqa: E402
from ctloop.contracts import cloudevents  # noqa: E402
from ctloop.services.drift_watcher.reference import ReferenceStore  # noqa: E402
from ctloop.services.drift_watcher.watcher import Watcher  # noqa: E402
from tests.watch import traffic  # noqa: E402

FLOOR = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def ingest(request):
    await request.body()
    return JSONResponse({"status": "accepted"})

async def ready(request):
    return JSONResponse({"status": "ready"})

app = Starlette(routes=[Route("/v1/events", ingest, methods=["POST"]), Route("/readyz", ready)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def settings(tmp: Path, **drift) -> config.Settings:
    raw = yaml.safe_load((ROOT / "ctloop.yaml").read_text())
    raw["drift"].update(drift)
    raw["endpoints"]["artifact_store"]["root"] = str(tmp / "store")
    raw["endpoints"]["webhook"] = {"url": "http://127.0.0.1:9"}
    raw["endpoints"]["mlflow"]["tracking_uri"] = "http://127.0.0.1:9"
    raw["data"]["uri"] = str(tmp)
    return config.parse(raw, base=ROOT, environ={})


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready in {timeout}s")


def wrk(url: str, lua: Path, bodies: tuple[Path, Path], seconds: int, connections: int = 8) -> dict:
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(lua), url,
            "--", str(bodies[0]), str(bodies[1]), TOKEN]  # fmt: skip
    run = parse_wrk(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    run["rate"] = run["requests"] / (run["duration_us"] / 1e6)
    return run


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start_watcher(tmp: Path, journal_fsync: bool) -> tuple[subprocess.Popen, int]:
    """A watcher pinned to core 0 whose champion's reference is in its cache and announced by its journal's first
    record (no registry here), so that windows are judged while the load runs."""
    s = settings(tmp, window_size=500, min_window_size=200, reference_poll_s=3600, journal_fsync=journal_fsync)
    references = ReferenceStore(tmp / "state" / "reference", s)
    traffic.reference(4000, seed=1).to_parquet(references.path("1"))
    journal = tmp / "state" / "journal"
    journal.mkdir(parents=True)
    (journal / "journal-00000000.jsonl").write_text(json.dumps({"kind": "reference", "version": "1", "time": 0}) + "\n")
    config_path = tmp / "ctloop.yaml"
    config_path.write_text(yaml.safe_dump(json.loads(s.json())))
    port = free_port()
    env = {**os.environ, "CTLOOP_WEBHOOK_SECRET": "bench-secret-0123456789", "CTLOOP_WATCHER_TOKEN": TOKEN}
    process = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "ctloop.services.drift_watcher", "--config", str(config_path),
         "--host", "127.0.0.1", "--port", str(port), "--state", str(tmp / "state")],
        env=env, stdout=(tmp / "watcher.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    return process, port


def ingestion(tmp: Path, repeat: int, seconds: int) -> tuple[list[str], dict]:
    rows = traffic.rows(2000, seed=2)
    requests = tmp / "requests.jsonl"
    responses = tmp / "responses.jsonl"
    requests.write_text(
        "\n".join(traffic.request_event(f"p{i}", r["features"])[1].decode() for i, r in enumerate(rows))
    )
    responses.write_text(
        "\n".join(traffic.response_event(f"p{i}", r["features"], "1")[1].decode() for i, r in enumerate(rows))
    )
    # The watcher as configured by default (each answer after an fsync shared by the events that arrive during
    # it), and with drift.journal_fsync false (after the kernel has the line), against the HTTP floor.
    watcher, watcher_port = _start_watcher(tmp / "fsync", journal_fsync=True)
    flushed, flushed_port = _start_watcher(tmp / "flush", journal_fsync=False)
    floor_port = free_port()
    floor = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", FLOOR, str(floor_port)])
    lua = Path(__file__).with_name("drift_watcher.lua")
    urls = {name: f"http://127.0.0.1:{port}" for name, port in
            (("fsync", watcher_port), ("flush", flushed_port), ("floor", floor_port))}  # fmt: skip
    try:
        for name, process in (("fsync", watcher), ("flush", flushed), ("floor", floor)):
            wait_ready(urls[name], process)
        runs: dict[str, list[dict]] = {name: [] for name in urls}
        for url in urls.values():
            wrk(url, lua, (requests, responses), 2)  # warm-up
        for _ in range(repeat):
            for name, url in urls.items():
                runs[name].append(wrk(url, lua, (requests, responses), seconds))
        status = httpx.get(f"{urls['fsync']}/v1/status").json()
        rss = peak_rss_mib(watcher.pid)
    finally:
        for p in (watcher, flushed, floor):
            p.terminate()
            p.wait(timeout=60)
    rate = {name: statistics.median(r["rate"] for r in found) for name, found in runs.items()}
    p99 = {name: statistics.median(r["latency_us"]["p99"] for r in found) / 1000 for name, found in runs.items()}
    w, f = rate["fsync"], rate["floor"]
    errors = sum(r["errors"]["status"] + r["errors"]["timeout"] for r in runs["fsync"] + runs["flush"])
    result = {
        "watcher_events_per_s": w,
        "watcher_without_fsync_events_per_s": rate["flush"],
        "floor_events_per_s": f,
        "ratio": w / f,
        "fsync_cost_ratio": w / rate["flush"],
        "watcher_p99_ms": p99["fsync"],
        "watcher_without_fsync_p99_ms": p99["flush"],
        "floor_p99_ms": p99["floor"],
        "watcher_peak_rss_mib": rss,
        "watcher_errors": errors,
        "windows_written": status["window"]["index"],
        "runs": {"watcher": runs["fsync"], "watcher_without_fsync": runs["flush"], "floor": runs["floor"]},
    }
    lines = [
        "## Ingestion, one core (wrk -t1 -c8 on the other)",
        "",
        "| target | events/s (median) | p99 | ratio to the floor |",
        "| --- | --- | --- | --- |",
        f"| drift watcher, default: answered after a shared fsync (parse, journal, windows, Parquet) | {w:,.0f} "
        f"| {p99['fsync']:.1f} ms | {w / f:.2f} |",
        f"| drift watcher, `drift.journal_fsync: false`: answered once the kernel has the line | {rate['flush']:,.0f} "
        f"| {p99['flush']:.1f} ms | {rate['flush'] / f:.2f} |",
        f"| comparator: Starlette endpoint reading the body | {f:,.0f} | {p99['floor']:.1f} ms | 1.00 |",
        "",
        f"Peak memory of the default watcher (VmHWM) after {repeat + 1} runs: {rss:.0f} MiB; "
        f"{status['window']['index']} windows of 500 written; {errors} failed requests.",
        "",
    ]
    return lines, result


def stream(watcher: Watcher, rows: list[dict], prefix: str, until=None) -> int | None:
    """Feed rows; returns the number of rows fed when ``until(watcher)`` first holds."""
    for i, row in enumerate(rows):
        for headers, body in traffic.events_for(row, f"{prefix}-{i}", "1", feedback=False):
            watcher.apply(cloudevents.parse(headers, body))
        if until is not None and until(watcher):
            return i + 1
    return None


def window_alarms(watcher: Watcher) -> int:
    return int(
        sum(
            s.value
            for metric in watcher.registry.collect()
            for s in metric.samples
            if s.name == "ctloop_watcher_windows_evaluated_total" and s.labels.get("drift") == "true"
        )
    )


def detection(tmp: Path, seeds: list[int], stable_rows: int, drift_rows: int) -> tuple[list[str], dict]:
    windowed = settings(tmp, window_size=500, min_window_size=200)
    online = settings(tmp, window_size=500, min_window_size=200, online=True, expected_run_time=2000,
                      online_bootstraps=5000)  # fmt: skip
    references = ReferenceStore(tmp / "detect-reference", windowed)
    traffic.reference(4000, seed=1).to_parquet(references.path("1"))
    outcomes = []
    for seed in seeds:
        stable = traffic.rows(stable_rows, seed=100 + seed)
        drifted = traffic.rows(drift_rows, seed=200 + seed, drift="covariate")
        w = Watcher(windowed, references, CollectorRegistry())
        w.apply({"kind": "reference", "version": "1", "time": 0.0})
        stream(w, stable, "stable")
        outcome = {"seed": seed, "stable_window_alarms": window_alarms(w), "stable_triggers": len(w.pending_triggers)}
        w.pending_triggers.clear()
        before, marks = window_alarms(w), {}
        for i, row in enumerate(drifted, start=1):
            stream(w, [row], f"drift-{i}")
            if window_alarms(w) > before:
                marks.setdefault("window", i)
            if w.pending_triggers:
                marks["confirmed"] = i
                break
        outcome["window_delay_events"], outcome["confirmed_delay_events"] = marks.get("window"), marks.get("confirmed")

        o = Watcher(online, references, CollectorRegistry())
        o.apply({"kind": "reference", "version": "1", "time": 0.0})
        fired = 0

        def count(w):
            nonlocal fired
            fired += len(w.window_online)
            w.window_online = []
            return False

        stream(o, stable, "stable", count)
        outcome["stable_online_alarms"] = fired
        outcome["online_delay_events"] = stream(o, drifted, "drift", lambda w: bool(w.window_online))
        outcomes.append(outcome)
        print(outcome, flush=True)

    def med(key):
        values = [o[key] for o in outcomes if o[key] is not None]
        return statistics.median(values) if values else None

    per_k = 1000 / stable_rows
    lines = [
        "## Detection: delay against false alarms (covariate drift on demo data)",
        "",
        f"Reference: 4,000 training rows. Per seed, a stable stream of {stable_rows:,} events, then a drifted one. "
        "Windows of 500 events, confirmation 2 of the last 3; online: CVMDriftOnline on the score, ERT 2,000, "
        f"window 100. Medians over seeds {seeds}; delays count events from the onset.",
        "",
        "| detector | delay after onset (events) | false alarms per 1,000 stable events | stable-stream triggers |",
        "| --- | --- | --- | --- |",
        f"| windowed (TabularDrift + score KS): first drifting window | {med('window_delay_events')} "
        f"| {med('stable_window_alarms') * per_k:.2f} | - |",
        f"| windowed, confirmed (2 of 3): the retrain trigger | {med('confirmed_delay_events')} | - "
        f"| {sum(o['stable_triggers'] for o in outcomes)} in {len(seeds)} streams |",
        f"| online (CVMDriftOnline on the score) | {med('online_delay_events')} "
        f"| {med('stable_online_alarms') * per_k:.2f} | - |",
        "",
    ]
    return lines, {"outcomes": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", choices=["ingestion", "detection"], help="run one part (written to <out>/...-<part>)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-watcher-"))
    ingest_lines, ingest = ingestion(tmp, args.repeat, args.seconds) if args.only != "detection" else ([], {})
    detect_lines, detect = (
        detection(tmp, list(range(args.seeds)), stable_rows=10_000, drift_rows=3000)
        if args.only != "ingestion" else ([], {})
    )  # fmt: skip
    write(
        Path(args.out),
        "drift_watcher" + (f"-{args.only}" if args.only else ""),
        "Drift watcher",
        [],
        table=[*ingest_lines, *detect_lines],
        extra={"ingestion": ingest, "detection": detect},
    )


if __name__ == "__main__":
    main()
