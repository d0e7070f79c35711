"""The Kubernetes deployment target against an EMULATED API server: a small HTTP server in this test that speaks
the custom-objects and events REST paths (JSON merge patch, resourceVersion conflicts answered 409), not a
cluster. The real kubernetes client sends the requests; the emulator records which verbs it needed, and the test
holds them to the RBAC rules documented in docs/rollout.md (ctloop.deployment_target.RBAC)."""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ctloop import deployment_target
from ctloop.components.deploy import executor
from ctloop.contracts import rollout as status
from ctloop.contracts import seldon as shape
from ctloop.contracts.rollout import Phase
from ctloop.services.rollout_controller.controller import Controller

from . import rollout_helpers as h

OBJECTS = re.compile(r"^/apis/machinelearning\.seldon\.io/v1/namespaces/([^/]+)/seldondeployments(?:/([^/?]+))?")
EVENTS = re.compile(r"^/api/v1/namespaces/([^/]+)/events")
SECRETS = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets/([^/?]+)")
TOKEN = "ingest-token-0123456789abcdef"


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class EmulatedApiServer:
    def __init__(self):
        self.objects: dict[tuple[str, str], dict] = {}
        self.events: list[dict] = []
        # The chart's Secret endpoints.watcher.token_secret: the watcher's ingestion token, which the deploy step reads.
        self.secrets = {("ctloop", "ctloop-watcher"): {"ingest-token": base64.b64encode(TOKEN.encode()).decode()}}
        self.verbs: set[tuple[str, str]] = set()
        self.conflicts = 0
        self.lock = threading.Lock()
        self.version = 100
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")

            def _status(self, code, reason):
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                                  "code": code, "message": reason})  # fmt: skip

            def do_GET(self):
                if (m := SECRETS.match(self.path)) is not None:
                    emulator.verbs.add(("secrets", "get"))
                    data = emulator.secrets.get((m.group(1), m.group(2)))
                    if data is None:
                        return self._status(404, "NotFound")
                    return self._send(200, {"apiVersion": "v1", "kind": "Secret", "data": data,
                                            "metadata": {"name": m.group(2), "namespace": m.group(1)}})  # fmt: skip
                m = OBJECTS.match(self.path)
                if not m or not m.group(2):
                    return self._status(404, "NotFound")
                emulator.verbs.add(("seldondeployments", "get"))
                with emulator.lock:
                    found = emulator.objects.get((m.group(1), m.group(2)))
                if found is None:
                    return self._status(404, "NotFound")
                self._send(200, found)

            def do_POST(self):
                body = self._body()
                if (m := EVENTS.match(self.path)) is not None:
                    emulator.verbs.add(("events", "create"))
                    emulator.events.append(body)
                    return self._send(201, body)
                m = OBJECTS.match(self.path)
                emulator.verbs.add(("seldondeployments", "create"))
                with emulator.lock:
                    key = (m.group(1), body["metadata"]["name"])
                    if key in emulator.objects:
                        return self._status(409, "AlreadyExists")
                    emulator.version += 1
                    body["metadata"].update(namespace=m.group(1), resourceVersion=str(emulator.version),
                                            uid="uid-" + key[1])  # fmt: skip
                    emulator.objects[key] = body
                self._send(201, body)

            def do_PATCH(self):
                m = OBJECTS.match(self.path)
                emulator.verbs.add(("seldondeployments", "patch"))
                if self.headers.get("Content-Type") != "application/merge-patch+json":
                    return self._status(415, "UnsupportedMediaType")
                patch = self._body()
                with emulator.lock:
                    current = emulator.objects.get((m.group(1), m.group(2)))
                    if current is None:
                        return self._status(404, "NotFound")
                    wanted = (patch.get("metadata") or {}).get("resourceVersion")
                    if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
                        emulator.conflicts += 1
                        return self._status(409, "Conflict")
                    merged = merge_patch(current, patch)
                    emulator.version += 1
                    merged["metadata"]["resourceVersion"] = str(emulator.version)
                    emulator.objects[(m.group(1), m.group(2))] = merged
                self._send(200, merged)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def api():
    server = EmulatedApiServer()
    yield server
    server.close()


@pytest.fixture
def target(api):
    import kubernetes

    configuration = kubernetes.client.Configuration(host=api.url)
    return deployment_target.KubernetesTarget(kubernetes.client.ApiClient(configuration))


def test_emulated_api_get_create_patch_with_conflicts(api, target):
    settings = h.settings(Path("/nonexistent"))
    assert target.get("ctloop", "credit-risk") is None
    main = shape.new_predictor(settings, "main", "1", "s3://b/m1", TOKEN)
    created = target.create(shape.new_deployment(settings, main))
    assert created["metadata"]["resourceVersion"]
    with pytest.raises(deployment_target.ConflictError):
        target.create(shape.new_deployment(settings, main))
    stale = target.get("ctloop", "credit-risk")
    fresh = target.get("ctloop", "credit-risk")
    fresh["metadata"]["annotations"] = {"a": "1"}
    target.replace(fresh)
    stale["metadata"]["annotations"] = {"b": "2"}
    with pytest.raises(deployment_target.ConflictError):
        target.replace(stale)
    assert api.conflicts == 1

    def annotate(obj):
        obj["metadata"]["annotations"] = {"b": "2"}
        return obj

    written = deployment_target.update(target, "ctloop", "credit-risk", annotate)
    assert written["metadata"]["annotations"] == {"a": "1", "b": "2"}  # a merge patch keeps others' keys


def test_emulated_api_rollout_end_to_end_with_events_and_minimal_verbs(api, target):
    settings = h.settings(Path("/nonexistent"), mode="canary", steps=[50, 100])
    registry = h.MemoryRegistry()
    clock = h.Clock()
    assert executor.deploy(settings, target, registry, "1", "s3://b/m1").action == "first_deployment"
    assert executor.deploy(settings, target, registry, "2", "s3://b/m2").predictor == "canary"
    controller = Controller(settings, target, h.ScriptedSource(), lambda: registry, clock=clock)
    phases = []
    for _ in range(6):
        clock.advance(10)
        phases.append(controller.tick().phase)
        if phases[-1].terminal:
            break
    assert phases == [Phase.progressing, Phase.progressing, Phase.succeeded]
    sdep = api.objects[("ctloop", "credit-risk")]
    assert [(p["name"], p["traffic"], shape.model_version(p)) for p in sdep["spec"]["predictors"]] == [
        ("main", 100, "2")
    ]
    assert status.read(sdep).phase == Phase.succeeded and registry.champion() == "2"
    reasons = [e["reason"] for e in api.events]
    assert reasons[:3] == ["FirstDeployment", "CandidateDeclared", "RolloutStarted"] and reasons[-1] == "Promoted"
    assert all(e["involvedObject"]["kind"] == "SeldonDeployment" and e["involvedObject"]["uid"] == "uid-credit-risk"
               for e in api.events)  # fmt: skip
    documented = {(resource, verb) for (_, resource), verbs in deployment_target.RBAC.items() for verb in verbs}
    assert api.verbs == documented
    # The request logger posts with the token from the Secret as its Basic credentials.
    assert sdep["spec"]["predictors"][0]["graph"]["logger"]["url"] == f"http://ctloop:{TOKEN}@127.0.0.1:9/v1/events"


def test_emulated_api_deploy_without_the_token_secret_says_which_secret(api, target):
    settings = h.settings(Path("/nonexistent"))
    api.secrets.clear()
    with pytest.raises(deployment_target.NotReadyError, match="Secret ctloop/ctloop-watcher key ingest-token"):
        executor.deploy(settings, target, h.MemoryRegistry(), "1", "s3://b/m1")
    assert api.objects == {}  # nothing half-deployed
    api.secrets[("ctloop", "ctloop-watcher")] = {"ingest-token": base64.b64encode(b"short").decode()}
    with pytest.raises(deployment_target.BadInputError, match="16 to 256 characters"):
        executor.deploy(settings, target, h.MemoryRegistry(), "1", "s3://b/m1")


def test_emulated_api_conflict_during_a_tick_is_retried_from_a_fresh_read(api, target):
    settings = h.settings(Path("/nonexistent"), mode="canary")
    registry = h.MemoryRegistry()
    executor.deploy(settings, target, registry, "1", "s3://b/m1")
    executor.deploy(settings, target, registry, "2", "s3://b/m2")
    clock = h.Clock()
    controller = Controller(settings, target, h.ScriptedSource(), lambda: registry, clock=clock)
    real_get = target.get
    interfered = []

    def get_then_someone_writes(namespace, name):
        found = real_get(namespace, name)
        if not interfered:
            interfered.append(True)
            other = real_get(namespace, name)
            other["metadata"].setdefault("annotations", {})["someone"] = "else"
            target.replace(other)
        return found

    target.get = get_then_someone_writes
    record = controller.tick()
    assert api.conflicts == 1 and record.phase == Phase.progressing and record.weight == 10
    assert api.objects[("ctloop", "credit-risk")]["metadata"]["annotations"]["someone"] == "else"
    # a person's abort request is acted on and then removed from the object (merge patch: named with null)
    target.get = real_get

    def ask(obj):
        obj["metadata"]["annotations"][status.REQUEST_ANNOTATION] = '{"action": "abort"}'
        return obj

    deployment_target.update(target, "ctloop", "credit-risk", ask)
    clock.advance(10)
    assert controller.tick().outcome == "aborted"
    assert status.REQUEST_ANNOTATION not in api.objects[("ctloop", "credit-risk")]["metadata"]["annotations"]
