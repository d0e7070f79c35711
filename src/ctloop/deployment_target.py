"""The deployment target: where SeldonDeployment objects are read and written. One narrow interface, two backends.

- ``KubernetesTarget``: ``machinelearning.seldon.io/v1`` custom objects through the Kubernetes API (the
  ``kubernetes`` package is imported only when this backend is built, so the core stays light), JSON merge
  patches that carry ``metadata.resourceVersion`` (the API server answers 409 when the object changed in the
  meantime), and Kubernetes Events on the object.
- ``LocalTarget``: the local gateway's state folder, ``<state_dir>/gateway/deployments/<namespace>/<name>.yaml``,
  written atomically (write a temporary file, rename it), with a counter in ``metadata.resourceVersion`` and a
  lock file standing in for the API server's optimistic concurrency; events are appended to a JSON-lines file.

Callers change objects with ``update(target, namespace, name, mutate)``, which re-reads and retries on conflict,
so two writers (the deploy step and the controller) never lose each other's changes.

RBAC the Kubernetes backend needs (the verbs it calls, nothing more):
``seldondeployments``: get and patch (the controller and the deploy step), create (the deploy step's first
deployment);
``events``: create;
``secrets``: get, of the one named ``endpoints.watcher.token_secret`` (the deploy step).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import yaml

from ctloop import artifacts, shared_secrets
from ctloop.contracts import ingestion
from ctloop.contracts.rollout import OWNED_ANNOTATIONS
from ctloop.contracts.seldon import GROUP, KIND, PLURAL, VERSION
from ctloop.errors import BadInputError, CtloopError, NotReadyError

__all__ = ["ConflictError", "DeploymentTarget", "KubernetesTarget", "LocalTarget", "connect", "update"]

# The verbs each backend call needs; docs/rollout.md and the chart's RBAC copy them.
RBAC = {
    (GROUP, PLURAL): ("get", "patch", "create"),
    ("", "events"): ("create",),
    ("", "secrets"): ("get",),
}


class ConflictError(CtloopError):
    """The object changed since it was read (HTTP 409): read it again and retry."""

    status_code = 409


class DeploymentTarget(Protocol):
    def get(self, namespace: str, name: str) -> dict | None:
        """The SeldonDeployment with ``metadata.resourceVersion``, or None when it does not exist."""

    def create(self, sdep: dict) -> dict:
        """Create the object; ConflictError when it already exists."""

    def replace(self, sdep: dict) -> dict:
        """Write metadata.annotations and spec, if ``metadata.resourceVersion`` is still current; else ConflictError."""

    def event(self, sdep: dict, reason: str, message: str, kind: str = "Normal") -> None:
        """Record an event on the object (best effort: a failure is not the caller's failure)."""

    def ingest_token(self, settings) -> str:
        """The drift watcher's ingestion token, which the deploy step writes into each predictor's logger URL."""


def update(target: DeploymentTarget, namespace: str, name: str, mutate: Callable[[dict], dict | None],
           attempts: int = 8) -> dict | None:  # fmt: skip
    """Read, apply ``mutate`` to a copy, write; on a conflict read again. ``mutate`` returning None writes nothing.

    Returns the object as written (or as read when nothing changed); None when the object does not exist.
    """
    for attempt in range(attempts):
        current = target.get(namespace, name)
        if current is None:
            return None
        changed = mutate(copy.deepcopy(current))
        if changed is None or _content(changed) == _content(current):
            return current
        try:
            return target.replace(changed)
        except ConflictError:
            time.sleep(min(0.05 * 2**attempt, 1.0))
    raise ConflictError(f"{namespace}/{name}: still changing after {attempts} attempts; retry later")


def _content(sdep: dict) -> tuple:
    return json.dumps(sdep.get("spec"), sort_keys=True), json.dumps(
        sdep.get("metadata", {}).get("annotations") or {}, sort_keys=True
    )


# ---------------------------------------------------------------------------------------------------------------
# Local: the gateway's state folder


class LocalTarget:
    def __init__(self, root: Path | str, state_dir: Path | str | None = None):
        self.root = Path(root)
        self.state_dir = state_dir

    def ingest_token(self, settings) -> str:
        """From the environment, as the local stack hands it to its services; else the local stack's own."""
        env = settings.endpoints.watcher.token_env
        if os.environ.get(env):
            return ingestion.read(env)
        return shared_secrets.shared(settings, self.state_dir)[env]

    def _path(self, namespace: str, name: str) -> Path:
        return self.root / namespace / f"{name}.yaml"

    @contextlib.contextmanager
    def _locked(self, namespace: str):
        # The lock file is a dot file: the gateway reads only */*.yaml.
        folder = self.root / namespace
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            sdep = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise BadInputError(f"{path}: not YAML: {e}") from None
        if not isinstance(sdep, dict) or sdep.get("kind") != KIND or not isinstance(sdep.get("metadata"), dict):
            raise BadInputError(f"{path}: not a SeldonDeployment")
        sdep["metadata"].setdefault("resourceVersion", "0")
        return sdep

    def get(self, namespace: str, name: str) -> dict | None:
        try:
            return self._read(self._path(namespace, name))
        except FileNotFoundError:
            return None

    def all(self) -> dict[tuple[str, str], dict]:
        """Every object, by (namespace, name): what the local gateway serves, as Seldon's operator would."""
        return {(path.parent.name, path.stem): self._read(path) for path in sorted(self.root.glob("*/*.yaml"))}

    def signature(self) -> tuple:
        """Changes when an object is added, removed or rewritten: what the local gateway polls."""
        return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in self.root.glob("*/*.yaml")))

    def _write(self, sdep: dict) -> dict:
        metadata = sdep["metadata"]
        artifacts.write_bytes(str(self._path(metadata["namespace"], metadata["name"])),
                              yaml.safe_dump(sdep, sort_keys=False).encode())  # fmt: skip
        return sdep

    def create(self, sdep: dict) -> dict:
        sdep = copy.deepcopy(sdep)
        metadata = sdep["metadata"]
        with self._locked(metadata["namespace"]):
            if self._path(metadata["namespace"], metadata["name"]).exists():
                raise ConflictError(f"{metadata['namespace']}/{metadata['name']} already exists")
            metadata["resourceVersion"] = "1"
            return self._write(sdep)

    def replace(self, sdep: dict) -> dict:
        sdep = copy.deepcopy(sdep)
        metadata = sdep["metadata"]
        with self._locked(metadata["namespace"]):
            current = self.get(metadata["namespace"], metadata["name"])
            if current is None:
                raise ConflictError(f"{metadata['namespace']}/{metadata['name']} no longer exists")
            if current["metadata"]["resourceVersion"] != metadata.get("resourceVersion"):
                raise ConflictError(f"{metadata['namespace']}/{metadata['name']} changed since it was read")
            metadata["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
            return self._write(sdep)

    def event(self, sdep: dict, reason: str, message: str, kind: str = "Normal") -> None:
        metadata = sdep["metadata"]
        record = {"time": _now(), "type": kind, "reason": reason, "message": message,
                  "object": f"{metadata['namespace']}/{metadata['name']}"}  # fmt: skip
        events = self.root.parent / "events" / metadata["namespace"] / f"{metadata['name']}.jsonl"
        events.parent.mkdir(parents=True, exist_ok=True)
        with events.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def events(self, namespace: str, name: str) -> list[dict]:
        path = self.root.parent / "events" / namespace / f"{name}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------------------------
# Kubernetes: custom objects and events


class KubernetesTarget:
    def __init__(self, api_client=None, component: str = "ctloop-rollout-controller"):
        import kubernetes

        if api_client is None:
            try:
                kubernetes.config.load_incluster_config()
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config()
            api_client = kubernetes.client.ApiClient()
        self._rest = kubernetes.client.exceptions.ApiException
        self.objects = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.models = kubernetes.client
        self.component = component

    def ingest_token(self, settings) -> str:
        namespace, name = settings.endpoints.seldon.namespace, settings.endpoints.watcher.token_secret
        where = f"Secret {namespace}/{name} key {ingestion.SECRET_KEY} (endpoints.watcher.token_secret)"
        secret = self._call(self.core.read_namespaced_secret, name, namespace)
        encoded = ((secret.data if secret is not None else None) or {}).get(ingestion.SECRET_KEY)
        if not encoded:
            raise NotReadyError(f"{where}: not found; it holds the drift watcher's ingestion token")
        return ingestion.check(base64.b64decode(encoded).decode("utf-8", "replace"), where)

    def _call(self, fn, *args, **kwargs):
        """Kubernetes API errors become ctloop's: 404 None, 409 ConflictError, unreachable NotReadyError."""
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except self._rest as e:
            if e.status == 404:
                return None
            if e.status == 409:
                raise ConflictError(f"the object changed or exists already: {e.reason}") from None
            raise CtloopError(f"Kubernetes API: {e.status} {e.reason}: {(e.body or '')[:300]}") from None
        except HTTPError as e:
            raise NotReadyError(f"the Kubernetes API is unreachable: {e}") from None

    def get(self, namespace: str, name: str) -> dict | None:
        return self._call(self.objects.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)

    def create(self, sdep: dict) -> dict:
        namespace = sdep["metadata"]["namespace"]
        body = copy.deepcopy(sdep)
        body["metadata"].pop("resourceVersion", None)
        return self._call(self.objects.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, body)

    def replace(self, sdep: dict) -> dict:
        metadata = sdep["metadata"]
        if not metadata.get("resourceVersion"):
            raise BadInputError("replace needs metadata.resourceVersion (read the object first)")
        # A merge patch replaces lists whole (the predictors), and the resourceVersion in it makes the API server
        # refuse the write with 409 if someone else wrote in between.
        annotations = {key: None for key in OWNED_ANNOTATIONS} | (metadata.get("annotations") or {})
        body = {"metadata": {"resourceVersion": metadata["resourceVersion"], "annotations": annotations},
                "spec": sdep["spec"]}  # fmt: skip
        written = self._call(self.objects.patch_namespaced_custom_object, GROUP, VERSION, metadata["namespace"],
                             PLURAL, metadata["name"], body)  # fmt: skip
        if written is None:
            raise ConflictError(f"{metadata['namespace']}/{metadata['name']} no longer exists")
        return written

    def event(self, sdep: dict, reason: str, message: str, kind: str = "Normal") -> None:
        metadata = sdep["metadata"]
        now = dt.datetime.now(dt.UTC)
        m = self.models
        event = m.CoreV1Event(
            metadata=m.V1ObjectMeta(name=f"{metadata['name']}.{uuid.uuid4().hex[:12]}",
                                    namespace=metadata["namespace"]),
            involved_object=m.V1ObjectReference(api_version=f"{GROUP}/{VERSION}", kind=KIND, name=metadata["name"],
                                                namespace=metadata["namespace"], uid=metadata.get("uid")),
            reason=reason,
            message=message[:1024],
            type=kind,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=m.V1EventSource(component=self.component),
        )  # fmt: skip
        with contextlib.suppress(CtloopError):  # events are for people; a refused one must not stop a rollout
            self._call(self.core.create_namespaced_event, metadata["namespace"], event)


def local_root(state_dir: str | Path) -> Path:
    """The local target's folder under a local state folder: what the local gateway serves."""
    return Path(state_dir) / "gateway" / "deployments"


def connect(settings, state_dir: str | Path | None = None) -> DeploymentTarget:
    """The backend the settings' mode calls for."""
    if settings.mode.value == "kubernetes":
        return KubernetesTarget()
    state_dir = state_dir or settings.local.state_dir
    return LocalTarget(local_root(state_dir), state_dir)
