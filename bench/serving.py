"""Serving: the ctloop model server against MLServer's XGBoost runtime, through the local gateway, and in process.

    .venvs/serve/bin/python bench/serving.py --out bench/results [--repeat 3] [--duration 5] [--workers N]
        [--threads T] [--tune]

One run starts, side by side on loopback ports of their own:
  - the ctloop model server: the real `seldon-core-microservice` from .venvs/serve, gunicorn with --workers N
    (default: the CPUs this process may use) and --threads T (default 1, the wrapper's and the SeldonDeployment's:
    sync workers, which close each connection, spend less CPU per request than gthread workers, which keep it
    alive; docs/serving.md has the measurements), one OpenMP thread per worker; also timed on the wrapper's gRPC
    port (its one gRPC worker process, as seldon-core-microservice starts it), driven by bench/grpc_load.py;
  - the local gateway (.venvs/control) with one predictor, the same model server with the same setting, and no
    request logger (the routing cost alone);
  - MLServer 1.7.1 with its XGBoost runtime (.venvs/bench-mlserver, `make bench-env`), once at its defaults and
    once with `parallel_workers: 0`, serving the same booster in two request forms (see `mlserver_inputs`);
and scores the same rows on all of them, asserting equal scores, before any timing. wrk (C, Debian's package),
or for gRPC bench/grpc_load.py, drives each for --duration seconds at concurrency 1, 8 and 32 with 1-row requests
and at 8 with 64-row requests; the servers take turns in a rotating order, --repeat times, and each figure is the
median over those runs. The floor is XGBoost's inplace_predict in this process on a ready matrix.

Every process gets OMP_NUM_THREADS=1. Besides throughput and latency, each run records the CPU time the
server's process tree spent per request, which the shared machine's load does not inflate as much as latency.
Results: bench/results/serving.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
CASES = [(1, 1), (1, 8), (1, 32), (64, 8)]  # (rows a request, concurrency)
SCORE_TOLERANCE = 1e-6  # both servers run XGBoost 3.2.0; float32 scores
NAMESPACE, DEPLOYMENT = "bench", "model"


# -- wrk


def parse_wrk(output: str) -> dict:
    """The JSON line that serving.lua's done() prints; latencies in microseconds."""
    for line in output.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON ") :])
    raise ValueError(f"no WRK_JSON line in wrk's output: {output[-500:]!r}")


def summarize_wrk(run: dict) -> dict:
    """Throughput and latency in the units the report uses; any error or non-2xx answer makes the run invalid."""
    errors = sum(run["errors"].values())
    if errors:
        raise RuntimeError(f"wrk saw {errors} errors ({run['errors']}) in {run['requests']} requests")
    seconds = run["duration_us"] / 1e6
    latency = run["latency_us"]
    return {
        "requests": run["requests"],
        "rps": run["requests"] / seconds,
        "p50_ms": latency["p50"] / 1000,
        "p99_ms": latency["p99"] / 1000,
    }


def wrk(url: str, body: Path, connections: int, seconds: int) -> dict:
    # One wrk thread: it drives 32 connections easily and leaves the cores to the servers. A slow answer is a
    # latency to report, not a lost request: the timeout is far above wrk's default of 2 s.
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", str(BENCH / "serving.lua"),
            url, "--", str(body)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-500:]}")
    return summarize_wrk(parse_wrk(done.stdout))


# -- request bodies


def seldon_request(features: list[str], rows: list[dict]) -> dict:
    return {"data": {"names": features, "ndarray": [[row[f] for f in features] for row in rows]}}


def mlserver_inputs(spec: dict, rows: list[dict], form: str) -> dict:
    """A V2 inference request for MLServer's XGBoost runtime, in one of two forms.

    "pandas": one named input per feature with the pandas codec, categories as strings: the same content as the
    ctloop request. The stock runtime hands XGBoost string columns, which it refuses for a booster with native
    categoricals, so this form goes to a subclass that casts those columns to pandas' category dtype
    (bench/mlserver/ctloop_runtime.py). "codes": one unnamed FP64 tensor with categories as their index in the
    model's category list, encoded by the client: the stock runtime takes it as it is.
    """
    features = spec["features"]
    if form == "pandas":
        inputs = [
            {
                "name": f["name"],
                "shape": [len(rows), 1],
                "datatype": "BYTES" if f["type"] == "categorical" else "FP64",
                "data": [row[f["name"]] for row in rows],
            }
            for f in features
        ]
        return {"inputs": inputs, "parameters": {"content_type": "pd"}}
    index = {f["name"]: {c: i for i, c in enumerate(f["categories"])} for f in features if f["type"] == "categorical"}
    matrix = [
        [index[f["name"]][row[f["name"]]] if f["name"] in index else row[f["name"]] for f in features] for row in rows
    ]
    return {"inputs": [{"name": "input-0", "shape": [len(rows), len(features)], "datatype": "FP64", "data": matrix}]}


def seldon_scores(answer: dict) -> list[float]:
    return [float(row[0]) for row in answer["data"]["ndarray"]]


def mlserver_scores(answer: dict) -> list[float]:
    # The runtime loads a binary:logistic booster as an XGBRegressor, whose `predict` output is the probability.
    return [float(v) for v in answer["outputs"][0]["data"]]


# -- processes


def tree_cpu_seconds(root: int) -> float:
    """User and system CPU time of a process and all its descendants so far (Linux /proc): what a server spends
    per request, whatever the load from other processes does to its throughput."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ..., utime, stime
        pid = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = int(fields[11]) + int(fields[12])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += ticks.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Processes:
    """The servers this run started; each in a session of its own, so that its workers stop with it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.started: list[subprocess.Popen] = []
        self.pids: dict[str, int] = {}

    def start(self, name: str, argv: list[str], env: dict, ready_url: str, cwd: Path, timeout: float = 180.0):
        with open(self.folder / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                start_new_session=True,
            )
        self.started.append(process)
        self.pids[name] = process.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = (self.folder / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited during start:\n{tail}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{name} not ready after {timeout}s; see {self.folder / name}.log")

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.started:
            self._wait(process)
        self.started.clear()

    def stop_last(self) -> None:
        process = self.started.pop()
        os.killpg(process.pid, signal.SIGTERM)
        self._wait(process)

    @staticmethod
    def _wait(process: subprocess.Popen) -> None:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def model_server_argv_env(model: Path, port: int, workers: int, threads: int) -> tuple[list[str], dict]:
    """The model server as the gateway's launcher and Seldon's operator configure it, with the tuned gunicorn."""
    parameters = [
        {"name": "model_uri", "value": str(model), "type": "STRING"},
        {"name": "model_version", "value": "bench", "type": "STRING"},
    ]
    env = {
        "PREDICTIVE_UNIT_PARAMETERS": json.dumps(parameters),
        "PREDICTIVE_UNIT_ID": "model",
        "PREDICTOR_ID": "main",
        "PREDICTIVE_UNIT_HTTP_SERVICE_PORT": str(port),
        "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": str(free_port()),
        "PREDICTIVE_UNIT_METRICS_SERVICE_PORT": str(free_port()),
    }
    argv = [
        str(ROOT / ".venvs/serve/bin/seldon-core-microservice"),
        "ctloop.services.model_server.seldon_model.SeldonModel",
        "--service-type",
        "MODEL",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    return argv, env


def seldon_deployment(model: Path) -> dict:
    graph = {
        "name": "model",
        "type": "MODEL",
        "modelUri": str(model),
        "parameters": [{"name": "model_version", "value": "bench", "type": "STRING"}],
    }
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
        "spec": {"predictors": [{"name": "main", "traffic": 100, "graph": graph}]},
    }


def write_mlserver_folder(folder: Path, model: Path, port: int, parallel_workers: int | None) -> None:
    """One MLServer instance: the stock runtime and the dtype-casting subclass, both on the same booster file."""
    settings = {"host": "127.0.0.1", "http_port": port, "grpc_port": free_port(), "metrics_port": free_port()}
    if parallel_workers is not None:
        settings["parallel_workers"] = parallel_workers
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps(settings))
    for name, implementation in (
        ("stock", "mlserver_xgboost.XGBoostModel"),
        ("ctloop", "ctloop_runtime.CategoricalXGBoostModel"),
    ):
        (folder / name).mkdir()
        model_settings = {
            "name": name,
            "implementation": implementation,
            "parameters": {"uri": str(model / "model.json")},
        }
        (folder / name / "model-settings.json").write_text(json.dumps(model_settings))


# -- the gateway, run as a child in the control environment


def run_gateway(folder: Path, venvs: Path, port: int, workers: int, threads: int) -> None:
    """The local gateway's own app and launcher; only the predictor's gunicorn setting is the tuned one."""
    import uvicorn

    from ctloop.local.gateway.app import Gateway
    from ctloop.local.gateway.predictors import Pool, seldon_launcher

    base = seldon_launcher(venvs)

    def launch(predictor: dict, predictor_port: int, predictor_folder: Path) -> tuple[list[str], dict]:
        argv, env = base(predictor, predictor_port, predictor_folder)
        argv[argv.index("--workers") + 1] = str(workers)
        return [*argv, "--threads", str(threads)], env

    gateway = Gateway(folder / "deployments", Pool(launch, folder / "predictors"))
    uvicorn.run(gateway.app(), host="127.0.0.1", port=port, log_level="warning")


# -- the run


def in_process_floor(model: Path, rows: list[dict], features: list[str], seconds: float) -> list[dict]:
    """inplace_predict on a ready matrix, and the model server's own logic (validation, encoding, policy) without
    HTTP: what any server adds is measured against these."""
    from ctloop.services.model_server.scoring import ScoringModel

    scoring = ScoringModel(str(model))
    out = []
    for n in (1, 64):
        batch = [[row[f] for f in features] for row in rows[:n]]
        x, _ = scoring.matrix(features, batch)
        for label, fn in (
            (
                "inplace_predict",
                lambda x=x: scoring.booster.inplace_predict(x, iteration_range=scoring.iteration_range),
            ),
            ("ScoringModel.score", lambda batch=batch: scoring.score(features, batch)),
        ):
            for _ in range(200):
                fn()
            times = []
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            times.sort()
            out.append({
                "subject": f"in process, {label}",
                "rows": n,
                "calls": len(times),
                "rps": len(times) / sum(times),
                "p50_ms": times[len(times) // 2] * 1000,
                "p99_ms": times[int(len(times) * 0.99)] * 1000,
            })  # fmt: skip
            print(f"floor {label}, {n} rows: {out[-1]['p50_ms']:.3f} ms p50", flush=True)
    return out


def ask(target: dict, body: Path) -> dict:
    """One request to a target; its answer."""
    if target.get("grpc"):
        import grpc_load  # in the serve environment only, beside this file

        return grpc_load.answer(target["grpc"], body.read_text())
    status, raw = post(target["url"], body.read_bytes())
    if status != 200:
        raise AssertionError(f"{target['url']}: HTTP {status}: {raw[:300]!r}")
    return json.loads(raw)


def drive(target: dict, body: Path, connections: int, seconds: int) -> dict:
    """A timed closed-loop run against a target: wrk over HTTP, bench/grpc_load.py (a process of its own) over
    gRPC."""
    if not target.get("grpc"):
        return wrk(target["url"], body, connections, seconds)
    argv = [sys.executable, str(BENCH / "grpc_load.py"), target["grpc"], str(body), str(connections), str(seconds)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"grpc_load failed ({done.returncode}): {done.stderr[-500:]}")
    return json.loads(done.stdout.splitlines()[-1])


def check_same_scores(targets: dict, bodies: dict, expected: list[float]) -> dict:
    """Every server scores the 64 rows (and the first row alone) as training did, before anything is timed."""
    checked = {}
    for name, target in targets.items():
        worst = 0.0
        for n in (1, 64):
            scores = target["scores"](ask(target, bodies[(target["form"], n)]))
            assert len(scores) == n, f"{name}: {len(scores)} scores for {n} rows"
            worst = max(worst, max(abs(a - b) for a, b in zip(scores, expected[:n])))
        assert worst <= SCORE_TOLERANCE, f"{name}: scores differ from training's by up to {worst}"
        checked[name] = worst
        print(f"same scores: {name} (max difference {worst:.1e})", flush=True)
    return checked


def tune(url: str, body: Path, seconds: float, start) -> list[dict]:
    """A short sweep of gunicorn settings at concurrency 8 with 1-row requests (not part of the default run)."""
    out = []
    for workers, threads in ((1, 1), (1, 4), (2, 1), (2, 2), (2, 4), (3, 1), (4, 1), (4, 2)):
        stop = start(workers, threads)
        try:
            wrk(url, body, 8, 1)
            runs = [wrk(url, body, 8, seconds) for _ in range(2)]
        finally:
            stop()
        out.append({"workers": workers, "threads": threads, "rps": statistics.median(r["rps"] for r in runs)})
        print(f"tune: workers {workers}, threads {threads}: {out[-1]['rps']:,.0f} req/s", flush=True)
    return out


def protobuf_version() -> str:
    from google.protobuf import __version__
    from google.protobuf.internal import api_implementation

    return f"{__version__}, its {api_implementation.Type()} implementation"


def median_of(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms", "cpu_ms")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="Seconds of each wrk run.")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tune", action="store_true", help="Also sweep gunicorn workers and threads first.")
    parser.add_argument("--gateway", type=Path, help=argparse.SUPPRESS)  # the child mode: serve a gateway folder
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Before XGBoost is imported here (the floor) and inherited by every server: one OpenMP thread a process.
    os.environ["OMP_NUM_THREADS"] = "1"
    if args.gateway:
        run_gateway(args.gateway, ROOT / ".venvs", args.port, args.workers, args.threads)
        return

    for tool, hint in (
        ("wrk", "install Debian's package (make bench does it as root: apt-get install wrk)"),
        (str(ROOT / ".venvs/bench-mlserver/bin/mlserver"), "run make bench-env"),
        (str(ROOT / ".venvs/control/bin/python"), "run make setup"),
    ):
        if not shutil.which(tool):
            sys.exit(f"missing {tool}: {hint}")

    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-serving-"))
    subprocess.run(
        [str(ROOT / ".venvs/train/bin/python"), str(ROOT / "tests/serve/make_model.py"), str(tmp)], check=True
    )
    model = tmp / "model"
    data = json.loads((tmp / "rows.json").read_text())
    spec = json.loads((model / "feature_spec.json").read_text())
    features, rows, expected = data["features"], data["rows"], data["scores"]
    bodies = write_bodies(tmp, spec, features, rows)

    processes = Processes(tmp)
    try:
        tuning = []
        if args.tune:
            port = free_port()

            def start_at(workers, threads):
                argv, env = model_server_argv_env(model, port, workers, threads)
                processes.start("tune", argv, env, f"http://127.0.0.1:{port}/health/status", tmp)
                return processes.stop_last

            tuning = tune(f"http://127.0.0.1:{port}/api/v1.0/predictions", bodies[("seldon", 1)], 3, start_at)
        targets = start_servers(processes, tmp, model, args.workers, args.threads)
        checked = check_same_scores(targets, bodies, expected)
        # The stock runtime on the same content as the ctloop request: recorded, since it decides the subclass.
        status, raw = post(targets["MLServer defaults, stock, codes"]["url"], bodies[("pandas", 1)].read_bytes())
        stock_pandas = {"status": status, "answer": raw.decode(errors="replace")[:400]}
        print(f"stock runtime, pandas codec with string categories: HTTP {status}", flush=True)
        floor = in_process_floor(model, rows, features, args.duration)
        runs = time_targets(targets, bodies, args.repeat, args.duration)
    except BaseException:
        print(f"server logs: {tmp}", file=sys.stderr)
        raise
    finally:
        processes.stop_all()

    report(Path(args.out), args, runs, list(targets), floor, checked, stock_pandas, tuning)
    shutil.rmtree(tmp, ignore_errors=True)


def write_bodies(tmp: Path, spec: dict, features: list[str], rows: list[dict]) -> dict[tuple[str, int], Path]:
    bodies = {}
    for n in (1, 64):
        for form, body in (
            ("seldon", seldon_request(features, rows[:n])),
            ("pandas", mlserver_inputs(spec, rows[:n], "pandas")),
            ("codes", mlserver_inputs(spec, rows[:n], "codes")),
        ):
            bodies[(form, n)] = tmp / f"{form}-{n}.json"
            bodies[(form, n)].write_text(json.dumps(body))
    return bodies


def start_servers(processes: Processes, tmp: Path, model: Path, workers: int, threads: int) -> dict[str, dict]:
    """Every server, ready; returns what to send where: url, request form, score reader, root process."""
    ports = {"model-server": free_port(), "gateway": free_port()}
    argv, env = model_server_argv_env(model, ports["model-server"], workers, threads)
    processes.start("model-server", argv, env, f"http://127.0.0.1:{ports['model-server']}/health/status", tmp)
    gateway_dir = tmp / "gateway"
    (gateway_dir / "deployments" / NAMESPACE).mkdir(parents=True)
    (gateway_dir / "deployments" / NAMESPACE / f"{DEPLOYMENT}.yaml").write_text(json.dumps(seldon_deployment(model)))
    processes.start(
        "gateway",
        [str(ROOT / ".venvs/control/bin/python"), str(Path(__file__).resolve()), "--gateway", str(gateway_dir),
         "--port", str(ports["gateway"]), "--workers", str(workers), "--threads", str(threads)],
        {},
        f"http://127.0.0.1:{ports['gateway']}/health",
        tmp,
    )  # fmt: skip
    targets = {
        "ctloop model server": {"url": f"http://127.0.0.1:{ports['model-server']}/api/v1.0/predictions",
                                "form": "seldon", "scores": seldon_scores, "pid": processes.pids["model-server"]},
        "ctloop model server, gRPC": {"grpc": f"127.0.0.1:{env['PREDICTIVE_UNIT_GRPC_SERVICE_PORT']}",
                                      "form": "seldon", "scores": seldon_scores,
                                      "pid": processes.pids["model-server"]},
        "ctloop via the gateway": {"url": f"http://127.0.0.1:{ports['gateway']}/seldon/{NAMESPACE}/{DEPLOYMENT}"
                                   "/api/v1.0/predictions", "form": "seldon", "scores": seldon_scores,
                                   "pid": processes.pids["gateway"]},
    }  # fmt: skip
    for label, parallel_workers in (("defaults", None), ("parallel_workers 0", 0)):
        name = f"mlserver-{label.split()[0]}"
        ports[name] = free_port()
        write_mlserver_folder(tmp / name, model, ports[name], parallel_workers)
        processes.start(
            name,
            [str(ROOT / ".venvs/bench-mlserver/bin/mlserver"), "start", str(tmp / name)],
            {"PYTHONPATH": str(BENCH / "mlserver")},
            f"http://127.0.0.1:{ports[name]}/v2/models/ctloop/ready",
            tmp,
        )
        for model_name, form, title in (("ctloop", "pandas", "pandas + cast"), ("stock", "codes", "stock, codes")):
            targets[f"MLServer {label}, {title}"] = {
                "url": f"http://127.0.0.1:{ports[name]}/v2/models/{model_name}/infer",
                "form": form,
                "scores": mlserver_scores,
                "pid": processes.pids[name],
            }
    return targets


def time_targets(targets: dict, bodies: dict, repeat: int, duration: int) -> dict[tuple[str, int, int], list[dict]]:
    """wrk (or grpc_load) against every server and case; the servers take turns in an order that rotates between
    repetitions."""
    for target in targets.values():  # warm-up: first requests, connection pools, lazy imports
        for n, connections in CASES:
            drive(target, bodies[(target["form"], n)], connections, 1)
    runs: dict[tuple[str, int, int], list[dict]] = {}
    names = list(targets)
    for r in range(repeat):
        for n, connections in CASES:
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                target = targets[name]
                cpu = tree_cpu_seconds(target["pid"])
                result = drive(target, bodies[(target["form"], n)], connections, duration)
                result["cpu_ms"] = (tree_cpu_seconds(target["pid"]) - cpu) * 1000 / result["requests"]
                runs.setdefault((name, n, connections), []).append(result)
                print(f"[{r + 1}/{repeat}] {n} row(s), c={connections}: {name} {result['rps']:,.0f} req/s, "
                      f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms", flush=True)  # fmt: skip
    return runs


# -- the report


def report(out: Path, args, runs, names, floor, checked, stock_pandas, tuning) -> None:
    from common import write

    cases = []
    for n, connections in CASES:
        medians = {name: median_of(runs[(name, n, connections)]) for name in names}
        mlservers = [name for name in names if name.startswith("MLServer")]
        same_content = [name for name in mlservers if "pandas" in name]
        best_any = max(mlservers, key=lambda name: medians[name]["rps"])
        best_same = max(same_content, key=lambda name: medians[name]["rps"])
        direct = medians["ctloop model server"]["rps"]
        cases.append({
            "rows": n,
            "concurrency": connections,
            "subjects": {name: {**medians[name], "rows_per_s": medians[name]["rps"] * n,
                                "runs": runs[(name, n, connections)]} for name in names},
            "best_mlserver": best_any,
            "best_mlserver_same_content": best_same,
            "model_server_vs_best_mlserver": direct / medians[best_any]["rps"],
            "model_server_vs_best_mlserver_same_content": direct / medians[best_same]["rps"],
            "gateway_cost": 1 - medians["ctloop via the gateway"]["rps"] / direct,
        })  # fmt: skip
    target_case = next(c for c in cases if (c["rows"], c["concurrency"]) == (1, 8))
    single = next(c for c in cases if (c["rows"], c["concurrency"]) == (1, 1))
    served = target_case["subjects"]["ctloop model server"]
    targets = {
        "model server >= 1.5x the fastest MLServer form, c=8, 1 row":
            target_case["model_server_vs_best_mlserver"] >= 1.5,
        "model server p99 <= 15 ms, c=8, 1 row": served["p99_ms"] <= 15,
        "model server CPU <= 0.6 ms a request, c=8, 1 row": served["cpu_ms"] <= 0.6,
        "model server ahead of the fastest MLServer form, c=1, 1 row": single["model_server_vs_best_mlserver"] > 1,
        "gateway costs <= 15% of direct throughput, c=8, 1 row": target_case["gateway_cost"] <= 0.15,
    }  # fmt: skip
    direct_cpu = served["cpu_ms"]
    gateway_cpu = target_case["subjects"]["ctloop via the gateway"]["cpu_ms"]
    setting = {
        "gunicorn_workers": args.workers,
        "gunicorn_threads": args.threads,
        "worker_class": "sync" if args.threads == 1 else "gthread",
        "OMP_NUM_THREADS": 1,
    }

    lines = [
        f"Model server: `seldon-core-microservice` with gunicorn `--workers {args.workers} --threads {args.threads}` "
        f"({setting['worker_class']} workers), OMP_NUM_THREADS=1 in every process. wrk, 1 thread, "
        f"{args.duration:g} s a run, {args.repeat} rotating runs per server and case; medians. "
        "ratio = ctloop model server / the server in that row (> 1: the model server is faster). CPU ms/req: user + "
        "system CPU of the server's whole process tree per request (the gateway's row includes its model server).",
        "",
    ]
    for case in cases:
        direct = case["subjects"]["ctloop model server"]["rps"]
        lines += [
            f"### {case['rows']} row(s) a request, concurrency {case['concurrency']}",
            "",
            "| server | req/s | rows/s | p50 ms | p99 ms | CPU ms/req | model server / this |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, s in case["subjects"].items():
            lines.append(f"| {name} | {s['rps']:,.0f} | {s['rows_per_s']:,.0f} | {s['p50_ms']:.2f} | "
                         f"{s['p99_ms']:.2f} | {s['cpu_ms']:.2f} | {direct / s['rps']:.2f} |")  # fmt: skip
        lines += ["", f"Gateway cost: {case['gateway_cost']:.0%} of direct throughput.", ""]
    lines += [
        "### Floor, in process, one thread",
        "",
        "| what | rows | calls/s | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[f"| {f['subject']} | {f['rows']} | {f['rps']:,.0f} | {f['p50_ms']:.3f} | {f['p99_ms']:.3f} |" for f in floor],
        "",
        "### Targets (1-row requests)",
        "",
        *[f"- {'met' if met else 'MISSED'}: {label}" for label, met in targets.items()],
        "",
        f"At concurrency 8 with 1-row requests the model server spends {direct_cpu:.2f} ms of CPU per request and "
        f"the gateway adds {gateway_cpu - direct_cpu:.2f} ms on the same cores: on a machine whose cores are all "
        "busy, that is what limits the gateway's throughput.",
        "",
        "Request forms for MLServer: *pandas + cast* sends what the ctloop request sends (named features, categories "
        "as strings) with the pandas codec, to a subclass of the stock XGBoost runtime that only casts the booster's "
        "categorical columns to pandas' category dtype (bench/mlserver/ctloop_runtime.py); the stock runtime answers "
        f"that request with HTTP {stock_pandas['status']}. *stock, codes* sends one unnamed FP64 tensor with the "
        "categories already encoded by the client as indexes into the model's category lists, which the stock "
        "runtime serves unchanged. The ctloop server also validates every feature and applies the decision policy; "
        "MLServer does neither. All servers returned the training scores for the same rows (checked before timing).",
        "",
        "*ctloop model server, gRPC*: the same model server's gRPC port (Seldon's `seldon.protos.Model/Predict`, the "
        "wrapper's one gRPC worker process), driven by bench/grpc_load.py, a Python client in a process of its own, "
        "which may limit the row's req/s: compare its CPU ms/req. The wrapper converts every message with protobuf "
        f"{protobuf_version()} (seldon-core 1.17.1 pins it below 4; 3.20 has no compiled module for Python 3.11).",
    ]
    if tuning:
        lines += ["", "Gunicorn sweep (c=8, 1 row): " + ", ".join(
            f"{t['workers']}w/{t['threads']}t {t['rps']:,.0f}" for t in tuning)]  # fmt: skip
    extra = {
        "setting": setting,
        "duration_s": args.duration,
        "repeat": args.repeat,
        "score_check_max_difference": checked,
        "stock_runtime_pandas_strings": stock_pandas,
        "floor": floor,
        "targets": targets,
        "tuning": tuning,
    }
    write(out, "serving", "Serving: ctloop model server, gateway, MLServer", cases, table=lines, extra=extra)


if __name__ == "__main__":
    main()
