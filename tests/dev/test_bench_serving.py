"""The serving benchmark's helpers: wrk's JSON summary (from bench/serving.lua), MLServer's request forms, and the
per-process-tree CPU accounting."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bench_serving", ROOT / "bench" / "serving.py")
serving = importlib.util.module_from_spec(spec)
spec.loader.exec_module(serving)

WRK_TEXT = """Running 1s test @ http://127.0.0.1:8000/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.20ms    1.10ms  20.00ms   90.00%
  2000 requests in 1.00s, 1.00MB read
Requests/sec:   2000.00
WRK_JSON {"requests": 2000, "duration_us": 1000000, "bytes": 1000000, "errors": {"connect": 0, "read": 0, \
"write": 0, "status": 0, "timeout": 0}, "latency_us": {"min": 900, "mean": 4200.0, "max": 20000, "p50": 4000, \
"p90": 5500, "p99": 9000, "p99_9": 15000}}
"""


def test_the_wrk_summary_is_read_from_its_json_line():
    run = serving.parse_wrk(WRK_TEXT)
    summary = serving.summarize_wrk(run)
    assert summary == {"requests": 2000, "rps": 2000.0, "p50_ms": 4.0, "p99_ms": 9.0}


def test_a_wrk_run_without_the_json_line_or_with_errors_is_refused():
    with pytest.raises(ValueError, match="no WRK_JSON"):
        serving.parse_wrk("Requests/sec: 10\n")
    run = serving.parse_wrk(WRK_TEXT)
    run["errors"]["status"] = 3  # non-2xx answers
    with pytest.raises(RuntimeError, match="3 errors"):
        serving.summarize_wrk(run)


SPEC = {
    "features": [
        {"name": "age", "type": "numeric"},
        {"name": "region", "type": "categorical", "categories": ["east", "north", "west"]},
    ]
}
ROWS = [{"age": 30, "region": "west"}, {"region": "east", "age": 41.5}]


def test_mlserver_forms_carry_the_same_rows():
    pandas = serving.mlserver_inputs(SPEC, ROWS, "pandas")
    assert pandas["parameters"] == {"content_type": "pd"}
    assert pandas["inputs"] == [
        {"name": "age", "shape": [2, 1], "datatype": "FP64", "data": [30, 41.5]},
        {"name": "region", "shape": [2, 1], "datatype": "BYTES", "data": ["west", "east"]},
    ]
    codes = serving.mlserver_inputs(SPEC, ROWS, "codes")
    # Categories become their index in the model's category list, columns in the spec's order.
    assert codes["inputs"] == [{"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [[30, 2], [41.5, 0]]}]
    seldon = serving.seldon_request(["age", "region"], ROWS)
    assert seldon == {"data": {"names": ["age", "region"], "ndarray": [[30, "west"], [41.5, "east"]]}}


def test_cpu_of_a_process_tree_counts_its_children():
    burn = "import time\nwhile time.process_time() < 0.4: pass\nprint('done', flush=True)\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "done"
        own = time.process_time()
        assert serving.tree_cpu_seconds(os.getpid()) >= own + 0.35
        assert serving.tree_cpu_seconds(child.pid) >= 0.35
    finally:
        child.kill()
        child.wait()


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: list[bytes] = []

    def do_POST(self):
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk (Debian's package) is not installed")
def test_serving_lua_posts_the_body_and_prints_parsable_percentiles(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"data": {"names": ["a"], "ndarray": [[1]]}}))
    try:
        summary = serving.wrk(f"http://127.0.0.1:{server.server_address[1]}/", body, 2, 1)
    finally:
        server.shutdown()
    assert summary["requests"] > 0 and summary["p99_ms"] >= summary["p50_ms"] > 0
    assert set(_Ok.bodies) == {body.read_bytes()}
