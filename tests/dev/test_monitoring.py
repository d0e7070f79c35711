"""Alert rules and dashboards against a real Prometheus (Debian's binary, on a free port in a temporary folder):
`promtool check rules` and `promtool test rules`, the rule file loaded by the server, every PromQL expression of the
rules, the dashboards and the rollout controller's checks parsed by the server, naming only series that ctloop
exports (ctloop.metric_names) or that the rules record, and every dashboard query answering with series once the
server has scraped an exporter that serves each of ctloop's metrics with its declared labels.

Grafana itself is not run (no registry reachable here ships its server); its template variables are substituted
the way Grafana would before the query reaches Prometheus."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from ctloop import metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "rules" / "ctloop.rules.yaml"
RULE_TESTS = sorted((ROOT / "monitoring" / "tests").glob("*.yaml"))
DASHBOARDS = sorted((ROOT / "monitoring" / "dashboards").glob("*.json"))
BUILTIN_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# What Grafana puts in place of its variables before sending a query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "$deployment": ".*"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not on PATH (Debian package prometheus)")
    return path


# ---------------------------------------------------------------------------------------------------------------
# Collecting expressions


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule.get("alert") or rule["record"]: rule["expr"] for g in groups for rule in g["rules"]}


def recorded_series() -> set[str]:
    return {r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r}


def grafana(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def dashboard_expressions() -> dict[str, str]:
    """'<dashboard>: <panel> [refId]' -> PromQL; label_values(m, l) variables become the series m."""
    out = {}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                out[f"{path.stem}: {panel['title']} [{target['refId']}]"] = grafana(target["expr"])
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
                assert match, variable["query"]
                out[f"{path.stem}: variable {variable['name']}"] = match.group(1)
    return out


def controller_expressions() -> dict[str, str]:
    from ctloop.services.rollout_controller import checks, sequential

    return {
        **{f"rollout check {k}": v for k, v in checks.queries("credit-risk", "canary", 300, 600).items()},
        **{f"rollout count {k}": v for k, v in sequential.count_queries("credit-risk", 600).items()},
    }


_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}


def series_in(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, keywords, labels or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match.group(0) in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def labels_in(expr: str) -> set[str]:
    """Label names in matchers and in by/without/on/ignoring/group_* lists."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    names = set()
    for matchers in re.findall(r"\{([^}]*)\}", text):
        names |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    for _, labels in _LABEL_LISTS_CAPTURE.findall(text):
        names |= {n.strip() for n in labels.split(",") if n.strip()}
    return names


_LABEL_LISTS_CAPTURE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def known_labels(series: set[str]) -> set[str]:
    """Labels the named series carry: declared in metric_names, recorded by the rules, or added by Prometheus."""
    by_series = {
        s: set(m.labels) | ({"le"} if s.endswith("_bucket") else set())
        for m in metric_names.METRICS
        for s in m.series()
    }
    recorded = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                recorded[rule["record"]] = labels_in(rule["expr"])
    out = {"job", "instance", "namespace", "pod", "container"}  # target labels (Prometheus Operator)
    for name in series:
        out |= by_series.get(name, set()) | recorded.get(name, set())
    return out


def test_labels_in_finds_matchers_and_groupings():
    assert labels_in('sum by (a, b) (rate(foo{x="y", z!~"1"}[5m])) / on (c) group_left (d) bar') == {
        "a",
        "b",
        "x",
        "z",
        "c",
        "d",
    }


def test_series_in_finds_metric_names_only():
    expr = (
        'sum by (a, b) (rate(foo_total{x="y", z=~"by|on"}[5m])) / ignoring (c) group_left '
        "max(bar:ratio offset 30m) > 1.5e3 and on (d) histogram_quantile(0.9, baz_bucket) or vector(0)"
    )
    assert series_in(expr) == {"foo_total", "bar:ratio", "baz_bucket"}


# ---------------------------------------------------------------------------------------------------------------
# Label values: an alert that selects a value no code emits cannot fire.

# Labels whose values come from the deployment, the data or the registry (names, versions, features, segments),
# and the ones Prometheus adds to every target: no closed set to check against.
OPEN_LABELS = {"deployment", "deployment_name", "predictor_version", "model_version", "model_name", "model_image",
               "feature", "test", "segment", "value", "check", "decision", "pipeline", "job", "instance"}  # fmt: skip
_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def selections(expr: str) -> list[tuple[str, str, str, str]]:
    """(series, label, operator, value) of every label matcher in an expression or a promtool series."""
    return [(s, *m) for s, body in _SELECTOR.findall(expr) for m in _MATCHER.findall(body)]


def undeclared_selections(expr: str) -> list[str]:
    """Matchers on ctloop's series that can match no value the code emits (metric_names declares them)."""
    by_series = {s: m for m in metric_names.METRICS for s in m.series()}
    problems = []
    for series, label, op, value in selections(expr):
        m = by_series.get(series)
        if m is None or label in OPEN_LABELS:
            continue  # a recorded series, or a label with no closed set of values
        if label == "le":
            emitted = [f"{b}" for b in m.buckets] + ["+Inf"]
            ok = any(float(value) == float(b) for b in emitted)
        elif label == "code":
            ok = any(re.fullmatch(value, str(code)) for code in range(100, 600))
        elif not m.values.get(label):
            problems.append(f"{series}: {label} declares no values in ctloop.metric_names")
            continue
        elif op in ("=", "!="):
            ok = value in m.values[label]
        else:
            ok = any(re.fullmatch(value, v) for v in m.values[label])
        if not ok:
            problems.append(f'{series}{{{label}{op}"{value}"}}: emitted values are {m.values.get(label)}')
    return problems


def test_undeclared_selections_finds_values_no_code_emits():
    assert undeclared_selections('increase(ctloop_rollout_outcomes_total{outcome="rolled_back"}[5m])') == []
    assert undeclared_selections('ctloop_rollout_outcomes_total{outcome=~"rolled_back|failed"}') == []
    assert undeclared_selections('ctloop_rollout_outcomes_total{outcome="exploded"}')
    assert undeclared_selections('ctloop_rollout_outcomes_total{outcome=~"explo.*"}')
    assert undeclared_selections('ctloop_watcher_feedback_total{predictor="blue"}')
    assert undeclared_selections('rate(seldon_api_executor_server_requests_seconds_bucket{le="0.3"}[5m])')
    assert undeclared_selections('seldon_api_executor_server_requests_seconds_count{code=~"6.."}')
    assert undeclared_selections('ctloop_webhook_queue_depth{flavour="x"}')  # a label with no declared values


def rule_test_series() -> dict[str, str]:
    return {f"{path.name}: {s['series']}": s["series"] for path in RULE_TESTS
            for case in yaml.safe_load(path.read_text())["tests"] for s in case.get("input_series", [])}  # fmt: skip


@pytest.mark.parametrize("source", ["rules", "rule tests", "dashboards", "rollout checks"])
def test_selectors_name_only_label_values_the_code_emits(source):
    expressions = {"rules": rule_expressions, "rule tests": rule_test_series, "dashboards": dashboard_expressions,
                   "rollout checks": controller_expressions}[source]()  # fmt: skip
    problems = {where: found for where, expr in expressions.items() if (found := undeclared_selections(expr))}
    assert problems == {}


# ---------------------------------------------------------------------------------------------------------------
# promtool


def test_promtool_checks_the_rules():
    result = subprocess.run([tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_promtool_unit_tests_pass(path):
    result = subprocess.run([tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test():
    tested = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == tested


def test_alerts_are_labelled_for_routing():
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    retrain = {name for name, rule in rules.items() if rule["labels"].get("ctloop_retrain") == "true"}
    assert retrain == {"CtloopDriftConfirmed"}


# ---------------------------------------------------------------------------------------------------------------
# A real Prometheus scraping every ctloop metric


LABEL_VALUES = {
    "code": ("200", "500"),
    "outcome": ("correct", "incorrect"),
    "agree": ("true", "false"),
    "vs_main": ("better", "same", "worse"),
    "predictor": ("main", "canary"),
    "predictor_name": ("main", "canary"),
    "deployment": ("credit-risk",),
    "deployment_name": ("credit-risk",),
    "service": ("predictions",),
}


def exposition(scrape: int) -> str:
    """Every metric of ctloop.metric_names with every declared label; counters grow with each scrape."""
    lines = []
    for m in metric_names.METRICS:
        names = m.labels
        for i, values in enumerate(itertools.product(*(LABEL_VALUES.get(n, (f"{n}-1",)) for n in names))):
            labels = ",".join(f'{n}="{v}"' for n, v in zip(names, values))
            count = scrape * (10 + i)
            if m.kind == "counter":
                lines.append(f"{m.series()[0]}{{{labels}}} {count}")
            elif m.kind == "gauge":
                lines.append(f"{m.name}{{{labels}}} 1")
            else:
                sep = "," if labels else ""
                for j, le in enumerate(m.buckets):
                    lines.append(f'{m.name}_bucket{{{labels}{sep}le="{le}"}} {count * (j + 1) // len(m.buckets)}')
                lines.append(f'{m.name}_bucket{{{labels}{sep}le="+Inf"}} {count}')
                lines.append(f"{m.name}_sum{{{labels}}} {count * 0.1}")
                lines.append(f"{m.name}_count{{{labels}}} {count}")
    return "\n".join(lines) + "\n"


class _Exporter(BaseHTTPRequestHandler):
    scrapes = 0

    def do_GET(self):
        type(self).scrapes += 1
        body = exposition(self.scrapes).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    binary = tool("prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    exporter = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "ctloop", "static_configs": [{"targets": [f"127.0.0.1:{exporter.server_address[1]}"]}]}
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "prometheus.log", "w"),  # noqa: SIM115 - closed with the process
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.get("/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (folder / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "Prometheus did not become ready"
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
        exporter.shutdown()


def query(prometheus: httpx.Client, expr: str) -> dict:
    return prometheus.get("/api/v1/query", params={"query": expr}).json()


def wait_for_data(prometheus: httpx.Client) -> None:
    """Until two scrapes are in (rate needs two samples) and the recording rules have run on them."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = query(prometheus, "ctloop:slo_latency_slow_ratio:rate5m")
        if answer["status"] == "success" and answer["data"]["result"]:
            return
        time.sleep(0.5)
    raise AssertionError("no recorded series after 30 s")


def test_prometheus_loads_the_rule_file(prometheus):
    groups = prometheus.get("/api/v1/rules").json()["data"]["groups"]
    assert {g["name"] for g in groups} == {g["name"] for g in yaml.safe_load(RULES.read_text())["groups"]}
    assert all(r["health"] != "err" for g in groups for r in g["rules"])


def test_a_broken_expression_is_refused(prometheus):
    answer = query(prometheus, "sum by (le (rate(x[5m]))")
    assert answer["status"] == "error" and answer["errorType"] == "bad_data"


@pytest.mark.parametrize("source", ["rules", "dashboards", "rollout checks"])
def test_every_expression_parses_and_names_exported_series(prometheus, source):
    expressions = {
        "rules": rule_expressions,
        "dashboards": dashboard_expressions,
        "rollout checks": controller_expressions,
    }[source]()
    assert expressions
    known = metric_names.series_names() | recorded_series() | BUILTIN_SERIES
    for where, expr in expressions.items():
        answer = query(prometheus, expr)
        assert answer["status"] == "success", (where, expr, answer.get("error"))
        unknown = series_in(expr) - known
        assert not unknown, f"{where} names series ctloop does not export: {sorted(unknown)}"
        stray = labels_in(expr) - known_labels(series_in(expr))
        assert not stray, f"{where} uses labels its series do not carry: {sorted(stray)}"


def test_every_dashboard_query_returns_series(prometheus):
    wait_for_data(prometheus)
    empty = [where for where, expr in dashboard_expressions().items() if not query(prometheus, expr)["data"]["result"]]
    assert empty == []


def test_rollout_checks_return_values(prometheus):
    wait_for_data(prometheus)
    expressions = controller_expressions()
    empty = [name for name, expr in expressions.items() if not query(prometheus, expr)["data"]["result"]]
    assert empty == []
