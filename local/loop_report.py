"""The loop report: one HTML page, drawn from what the services exported to Prometheus and recorded in MLflow
during a demo run, with the demo's own timeline and client tallies.

Plots (PNG, inline): drift p-values per feature over time, canary weight, p99 latency per predictor, live accuracy
per model version, and accuracy per version and product at the end; tables: the timeline, the loop's clock, the
pipeline runs and the client requests per phase.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

import httpx

from ctloop.local import runner

__all__ = ["write", "QUERIES"]

QUERIES = {
    "drift": ("Drift: p-value of the last window, per feature", "ctloop_watcher_feature_p_value", "feature", True),
    "weight": ("Canary weight (%)", "ctloop_rollout_canary_weight", "deployment", False),
    "latency": (
        "p99 latency through the gateway (s), per predictor",
        "histogram_quantile(0.99, sum by (le, predictor_name) "
        "(rate(seldon_api_executor_server_requests_seconds_bucket[30s])))",
        "predictor_name",
        False,
    ),
    "accuracy": (
        "Live accuracy per model version (feedback joined by the watcher, last minute)",
        'sum by (model_version) (increase(ctloop_watcher_feedback_total{outcome="correct"}[1m])) '
        "/ sum by (model_version) (increase(ctloop_watcher_feedback_total[1m]))",
        "model_version",
        False,
    ),
}
SEGMENT_ACCURACY = (
    'sum by (model_version, value) (ctloop_watcher_segment_feedback_total{segment="product", outcome="correct"}) '
    '/ sum by (model_version, value) (ctloop_watcher_segment_feedback_total{segment="product"})'
)


def _range(prometheus: str, query: str, start: float, end: float) -> list[dict]:
    step = max(int((end - start) / 400), 2)
    answer = httpx.get(
        f"{prometheus}/api/v1/query_range",
        params={"query": query, "start": start, "end": end, "step": step},
        timeout=30,
    ).json()
    if answer.get("status") != "success":
        raise ValueError(f"{query}: {answer.get('error')}")
    return answer["data"]["result"]


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _series_plot(title: str, series: list[dict], label: str, log: bool, start: float, marks: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 3.2))
    for s in series:
        xs = [float(t) - start for t, _ in s["values"]]
        ys = [float(v) for _, v in s["values"]]
        axis.plot(xs, ys, label=s["metric"].get(label, "?"), linewidth=1.2)
    for name, at in marks.items():
        axis.axvline(at - start, color="grey", linestyle=":", linewidth=1)
        axis.text(at - start, axis.get_ylim()[1], name, rotation=90, va="top", ha="right", fontsize=7)
    if log:
        axis.set_yscale("log")
    axis.set_title(title, fontsize=10)
    axis.set_xlabel("seconds since the demo started")
    if series:
        axis.legend(fontsize=7, ncol=4, loc="best")
    data = _png(figure)
    plt.close(figure)
    return data


def _segment_plot(prometheus: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = httpx.get(f"{prometheus}/api/v1/query", params={"query": SEGMENT_ACCURACY}, timeout=30).json()
    rows = result.get("data", {}).get("result", [])
    versions = sorted({r["metric"]["model_version"] for r in rows})
    values = sorted({r["metric"]["value"] for r in rows})
    figure, axis = plt.subplots(figsize=(9, 3.2))
    width = 0.8 / max(len(versions), 1)
    for i, version in enumerate(versions):
        heights = [
            next((float(r["value"][1]) for r in rows if r["metric"] == {"model_version": version, "value": v}), 0.0)
            for v in values
        ]
        axis.bar([j + i * width for j in range(len(values))], heights, width, label=f"v{version}")
    axis.set_xticks([j + 0.4 - width / 2 for j in range(len(values))], values)
    axis.set_ylim(0, 1)
    axis.set_title("Live accuracy per model version and product (whole run)", fontsize=10)
    axis.legend(fontsize=7)
    data = _png(figure)
    plt.close(figure)
    return data


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _runs(story) -> list[list]:
    """A row per registered version, with the pipeline run that made it (the local runner's record of it)."""
    runs = runner.pipeline_root(story.settings) / "runs"
    rows = []
    for version, info in sorted(story.versions().items(), key=lambda kv: int(kv[0])):
        run_id = info["tags"].get("ctloop.pipeline_run_id", "")
        try:
            record = json.loads((runs / run_id / runner.RUN_RECORD).read_text())
            started = time.strftime("%H:%M:%S", time.localtime(record["started"]))
            took = f"{record['finished'] - record['started']:.0f} s"
        except (OSError, ValueError, KeyError):  # a run made elsewhere, or one that is still going
            started = took = "-"
        rows.append([
            f"v{version}", run_id or "-", started, took, info["tags"].get("ctloop.dataset_uri", "").rsplit("/", 1)[-1],
            ", ".join(info["aliases"]) or "-", info["tags"].get("ctloop.rollout", "-"),
        ])  # fmt: skip
    return rows


def _counts(counts: dict) -> str:
    """{"200": 1015, "503": 2} as "200: 1,015, 503: 2"."""
    return ", ".join(f"{key}: {value:,}" for key, value in sorted(counts.items())) or "-"


def write(settings, story, summary: dict, out: Path) -> Path:
    prometheus = f"http://127.0.0.1:{settings.local.prometheus_port}"
    start, end = story.started, time.time()
    marks = {k.replace("_", " "): v for k, v in story.clock.items()}
    parts = [
        "<!doctype html><meta charset=utf-8><title>ctloop loop report</title>",
        "<style>body{font-family:sans-serif;max-width:980px;margin:auto}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}</style>",
        f"<h1>ctloop: the loop on one machine</h1><p>{'completed' if summary['ok'] else 'FAILED: '}"
        f"{html.escape(summary['error'] or '')}</p>",
    ]
    clock = story.clock
    onset = clock.get("drift_onset")
    if onset:
        parts.append("<h2>The loop's clock</h2>")
        since = [[k.replace("_", " "), f"{v - onset:.0f}"] for k, v in clock.items() if k != "drift_onset"]
        parts.append(_table(["from drift onset to", "seconds"], since))
    for title, query, label, log in QUERIES.values():
        try:
            series = _range(prometheus, query, start, end)
            parts.append(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,"
                         f"{_series_plot(title, series, label, log, start, marks)}'>")  # fmt: skip
        except (httpx.HTTPError, ValueError) as e:
            parts.append(f"<h2>{html.escape(title)}</h2><p>not available: {html.escape(str(e))}</p>")
    try:
        parts.append(
            f"<h2>Accuracy by version and segment</h2><img src='data:image/png;base64,{_segment_plot(prometheus)}'>"
        )
    except (httpx.HTTPError, ValueError) as e:
        parts.append(f"<p>segment accuracy not available: {html.escape(str(e))}</p>")
    try:
        parts.append("<h2>Pipeline runs and versions</h2>")
        parts.append(_table(["version", "pipeline run", "started", "took", "span", "aliases", "rollout"], _runs(story)))
    except Exception as e:  # the registry may be gone if the story failed early
        parts.append(f"<p>registry not available: {html.escape(str(e))}</p>")
    parts.append("<h2>Client requests per phase</h2>")
    tallies = [
        [
            p,
            f"{t['ok']:,}",
            f"{t['failed']:,}",
            _counts(t["statuses"]),
            _counts({f"v{v}": n for v, n in t["versions"].items()}),
        ]
        for p, t in summary["traffic"].items()
    ]
    parts.append(_table(["phase", "answered", "failed", "statuses", "served by version"], tallies))
    parts.append("<h2>Timeline</h2>")
    parts.append(_table(["elapsed (s)", "what"], [[e["elapsed_s"], e["what"]] for e in story.timeline]))
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path
