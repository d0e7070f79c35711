"""Entry program of ``ctloop drift backtest`` (watch image): a stream of rows replayed, in order, against a reference
sample with the watcher's own code (``Watcher``: windows, tests, k-of-n confirmation, cooldown, online detectors)
and the settings' ``drift.*`` policy; it prints where a retrain would have been triggered.

    python -m ctloop.services.drift_watcher.backtest --config ctloop.yaml --reference REF --stream STREAM
        [--events-per-second R] [--json]

REF and STREAM are CSV or Parquet files (or folders of them) with the settings' feature columns; REF may hold
``score`` (the champion's scores of those rows) and STREAM too (the served scores), for the score test. Times come
from the stream's ``data.timestamp`` column where it has one (the cooldown is in seconds), else one event every
1/R seconds. Nothing is written outside a temporary folder and nothing is sent.

Exit status: 0 replayed (with or without triggers); 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
from prometheus_client import CollectorRegistry

from ctloop import datasets
from ctloop.contracts.seldon import MAIN
from ctloop.entrypoint import settings_from_file
from ctloop.errors import BadInputError, CtloopError
from ctloop.services.drift_watcher.reference import ReferenceStore
from ctloop.services.drift_watcher.watcher import Watcher

VERSION = "backtest"
POLICY = ("detector", "window_size", "evaluate_every", "expected_run_time", "p_value", "correction", "confirm_windows",
          "of_last_windows", "cooldown_s", "online")  # fmt: skip
NAMESPACE = "backtest"


def _times(stream: pd.DataFrame, column: str | None, events_per_second: float, where: str) -> list[float]:
    if column and column in stream.columns:
        parsed = pd.to_datetime(stream[column], errors="coerce", utc=True)
        if parsed.isna().any():
            row = int(parsed.isna().to_numpy().argmax())
            raise BadInputError(f"{where}: column {column} (data.timestamp), row {row}: not a time")
        return list((parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds())
    return [i / events_per_second for i in range(len(stream))]


def _value(value):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def replay(settings, reference: pd.DataFrame, stream: pd.DataFrame, events_per_second: float = 10.0,
           stream_name: str = "stream") -> dict:  # fmt: skip
    """Replays ``stream`` against ``reference``; returns what a person or a script checks (``--json``)."""
    names = [f.name for f in settings.features]
    for what, frame in (("reference", reference), (stream_name, stream)):
        if not set(names) & set(frame.columns):
            raise BadInputError(f"{what}: none of the settings' features ({', '.join(names)}) is a column of it")
    times = _times(stream, settings.data.timestamp, events_per_second, stream_name)
    features = [n for n in names if n in stream.columns]
    rows = [{n: _value(v) for n, v in row.items()} for row in stream[features].to_dict("records")]
    scores = pd.to_numeric(stream["score"], errors="coerce").tolist() if "score" in stream.columns else None
    with tempfile.TemporaryDirectory(prefix="ctloop-backtest-") as tmp:
        # The serving data the watcher writes per window goes to the temporary folder, never to the real store.
        settings = settings.copy(deep=True)
        settings.endpoints.artifact_store.root = str(Path(tmp) / "store")
        references = ReferenceStore(Path(tmp) / "reference", settings)
        reference.to_parquet(references.path(VERSION), index=False)
        watcher = Watcher(settings, references, CollectorRegistry())
        watcher.apply({"kind": "reference", "version": VERSION, "time": times[0] if times else 0.0})
        where = {"namespace": NAMESPACE, "deployment": settings.name}
        windows, triggers = [], []
        for i, (row, now) in enumerate(zip(rows, times)):
            puid, judged = f"e{i}", watcher.evaluations
            # In the order the request logger sends them: the request (which may close a window), then the answer.
            watcher.apply({"kind": "request", "id": f"{puid}-q", "puid": puid, "rows": [row], "time": now, **where})
            if scores is not None and math.isfinite(scores[i]):
                watcher.apply({"kind": "response", "id": f"{puid}-r", "puid": puid, "predictor": MAIN,
                               "model_version": VERSION, "scores": [scores[i]], "time": now, **where})  # fmt: skip
            if watcher.evaluations == judged:
                continue
            result = watcher.last_result
            windows.append({"events": i + 1, "window": result["window"], "drift": result["drift"]})
            for key, body in list(watcher.pending_triggers.items()):
                drifting = {name: {k: t[k] for k in ("test", "p_value", "distance")}
                            for name, t in sorted(result["tests"].items()) if t["drift"]}  # fmt: skip
                triggers.append({"events": i + 1, "window": result["window"], "time": now, "features": drifting,
                                 "reason": body["reason"]})  # fmt: skip
                watcher.apply({"kind": "trigger_ack", "key": key, "outcome": "accepted", "time": now})
    policy = settings.drift
    return {
        "events": len(rows),
        "reference_rows": len(reference),
        "features": features,
        "policy": {k: getattr(policy, k) for k in POLICY},
        "windows": len(windows),
        "drifting_windows": [w["events"] for w in windows if w["drift"]],
        "triggers": [t["events"] for t in triggers],
        "details": triggers,
    }


def text(report: dict) -> str:
    p = report["policy"]
    if p["detector"] == "sequential":
        rule = (f"the last {p['window_size']} events tested every {p['evaluate_every']}, one false alarm per "
                f"{p['expected_run_time']:,} stable events at most")  # fmt: skip
    else:
        rule = f"{p['confirm_windows']} of the last {p['of_last_windows']} windows of {p['window_size']}"
    lines = [
        f"replayed {report['events']:,} events against a reference of {report['reference_rows']:,} rows: "
        f"{report['windows']} windows tested, {len(report['drifting_windows'])} drifting; "
        f"{len(report['triggers'])} trigger(s) ({rule}; cooldown {p['cooldown_s']} s)"
    ]
    for t in report["details"]:
        drifting = ", ".join(
            f"{name} ({f['test']} p={f['p_value']:.2g})" if f["p_value"] is not None else f"{name} (online)"
            for name, f in t["features"].items()
        )
        lines.append(f"  retrain after event {t['events']:,} (window {t['window']}): {drifting or 'no feature named'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ctloop drift backtest", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="ctloop.yaml: its features and drift.* policy")
    p.add_argument("--reference", required=True, help="The reference sample (CSV or Parquet)")
    p.add_argument("--stream", required=True, help="The rows to replay, in order (CSV or Parquet)")
    p.add_argument("--events-per-second", type=float, default=10.0,
                   help="Pace of a stream without the data.timestamp column (default 10)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="One JSON object on stdout")
    args = p.parse_args(argv)
    # The report says what the watcher would have logged; transformers (through alibi-detect) need not say that it
    # found no deep-learning framework.
    logging.getLogger("ctloop.services.drift_watcher").setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        if not args.events_per_second > 0:
            raise BadInputError(f"--events-per-second must be positive, got {args.events_per_second}")
        settings = settings_from_file(args.config)
        reference = datasets.read(args.reference).frame
        stream = datasets.read(args.stream).frame
        report = replay(settings, reference, stream, args.events_per_second, args.stream)
    except CtloopError as e:
        print(f"backtest: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps(report) if args.json else text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
