"""An emulator of the few KFP v2beta1 REST paths kfp.Client uses to upload pipelines and start runs.

Not KFP: an in-memory stand-in on loopback, speaking the same paths and JSON shapes, so that the real
kfp.Client (and its generated kfp_server_api code) is exercised over real HTTP. It records every request.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NOW = "2026-11-23T00:00:00Z"


class State:
    def __init__(self):
        self.pipelines: dict[str, dict] = {}
        self.packages: dict[str, bytes] = {}  # pipeline id -> the multipart body of its upload
        self.versions: dict[str, list[dict]] = {}
        self.experiments: dict[str, dict] = {}
        self.runs: list[dict] = []
        self.recurring_runs: list[dict] = []
        self.requests: list[tuple[str, str, dict]] = []  # method, path, headers (names in lower case)


def _name_filter(query: dict) -> str | None:
    raw = query.get("filter", [None])[0]
    if not raw:
        return None
    predicates = json.loads(raw).get("predicates", [])
    return next((p.get("stringValue") or p.get("string_value") for p in predicates), None)


def handler_for(state: State):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def _send(self, body: dict, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _record(self) -> tuple[str, dict]:
            parts = urlsplit(self.path)
            state.requests.append((self.command, parts.path, {k.lower(): v for k, v in self.headers.items()}))
            return parts.path, parse_qs(parts.query)

        def do_GET(self):
            path, query = self._record()
            if path == "/apis/v2beta1/healthz":
                return self._send({"multi_user": False, "commit_sha": "emulator", "tag_name": "2.x"})
            if path == "/apis/v2beta1/pipelines":
                name = _name_filter(query)
                found = [p for p in state.pipelines.values() if name is None or p["display_name"] == name]
                return self._send({"pipelines": found, "total_size": len(found)} if found else {})
            match = re.fullmatch(r"/apis/v2beta1/pipelines/([^/]+)/versions", path)
            if match:
                versions = state.versions.get(match.group(1), [])
                return self._send({"pipeline_versions": versions, "total_size": len(versions)})
            if path == "/apis/v2beta1/experiments":
                name = _name_filter(query)
                found = [e for e in state.experiments.values() if name is None or e["display_name"] == name]
                return self._send({"experiments": found, "total_size": len(found)} if found else {})
            return self._send({"error": f"not emulated: GET {path}"}, 404)

        def do_POST(self):
            path, query = self._record()
            body = self._body()
            if path == "/apis/v2beta1/pipelines/upload":
                name = query.get("name", query.get("display_name", ["?"]))[0]
                pipeline = {"pipeline_id": uuid.uuid4().hex, "display_name": name, "created_at": NOW}
                state.pipelines[pipeline["pipeline_id"]] = pipeline
                version = {"pipeline_id": pipeline["pipeline_id"], "pipeline_version_id": uuid.uuid4().hex,
                           "display_name": name, "created_at": NOW}  # fmt: skip
                state.versions[pipeline["pipeline_id"]] = [version]
                state.packages[pipeline["pipeline_id"]] = body
                return self._send(pipeline)
            if path == "/apis/v2beta1/pipelines/upload_version":
                pipeline_id = query["pipelineid"][0]
                if pipeline_id not in state.pipelines:
                    return self._send({"error": "no such pipeline"}, 404)
                version = {"pipeline_id": pipeline_id, "pipeline_version_id": uuid.uuid4().hex,
                           "display_name": query["name"][0], "created_at": NOW}  # fmt: skip
                state.versions[pipeline_id].append(version)
                return self._send(version)
            document = json.loads(body or b"{}")
            if path == "/apis/v2beta1/experiments":
                experiment = {"experiment_id": uuid.uuid4().hex, "display_name": document["display_name"],
                              "created_at": NOW}  # fmt: skip
                state.experiments[experiment["experiment_id"]] = experiment
                return self._send(experiment)
            if path == "/apis/v2beta1/runs":
                run = {**document, "run_id": uuid.uuid4().hex, "state": "PENDING", "created_at": NOW}
                state.runs.append(run)
                return self._send(run)
            if path == "/apis/v2beta1/recurringruns":
                job = {**document, "recurring_run_id": uuid.uuid4().hex, "status": "ENABLED", "created_at": NOW}
                state.recurring_runs.append(job)
                return self._send(job)
            return self._send({"error": f"not emulated: POST {path}"}, 404)

    return Handler


class Emulator:
    def __init__(self):
        self.state = State()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self.state))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
