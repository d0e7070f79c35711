"""The SeldonDeployment's shape as ctloop uses it (manifests/base/seldondeployment.yaml): predictors ``main``
(the champion), ``canary`` (the candidate taking a share of the traffic) and ``shadow`` (the candidate getting
mirrored copies), each logging its requests and answers to the drift watcher. Pure functions on the object's dict;
the deployment target writes the result.

Written by the deploy step and the rollout controller, read by the local gateway (as Seldon's operator reads it in
the cluster), the drift watcher (predictor names in ``Ce-Endpoint``) and the rollout checks (``predictor_name``).
"""

from __future__ import annotations

import copy

from ctloop.contracts import ingestion

# The custom resource's coordinates in the Kubernetes API.
GROUP, VERSION, PLURAL, KIND = "machinelearning.seldon.io", "v1", "seldondeployments", "SeldonDeployment"
API_VERSION = f"{GROUP}/{VERSION}"

MAIN, CANARY, SHADOW = "main", "canary", "shadow"
PREDICTORS = (MAIN, CANARY, SHADOW)
# Where each predictor's request logger posts its CloudEvents: the drift watcher's ingestion path.
EVENTS_PATH = "/v1/events"


def logger_url(watcher_url: str, token: str) -> str:
    """The watcher's ingestion path, with its token as the URL's user information (contracts/ingestion.py)."""
    return ingestion.with_token(f"{watcher_url.rstrip('/')}{EVENTS_PATH}", token)


def predictor(sdep: dict | None, name: str) -> dict | None:
    if sdep is None:
        return None
    return next((p for p in sdep["spec"].get("predictors", []) if p["name"] == name), None)


def model_version(pred: dict | None) -> str:
    if pred is None:
        return ""
    parameters = {p["name"]: p["value"] for p in pred.get("graph", {}).get("parameters", [])}
    return str(parameters.get("model_version", ""))


def candidate(sdep: dict | None) -> tuple[str, str] | None:
    """(predictor name, version) of the declared candidate, the canary first; None when there is none."""
    for name in (CANARY, SHADOW):
        version = model_version(predictor(sdep, name))
        if version:
            return name, version
    return None


# On every model pod (componentSpecs metadata, which Seldon's operator puts on the pods): the drift watcher's
# NetworkPolicy admits these pods' request loggers and nothing else of the namespace.
MODEL_POD_LABELS = {"app.kubernetes.io/part-of": "ctloop", "app.kubernetes.io/component": "model"}


def _container_spec(settings) -> dict:
    """The model container, as in manifests/base/seldondeployment.yaml (a test keeps the two the same)."""
    return {
        "metadata": {"labels": dict(MODEL_POD_LABELS)},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "model",
                "image": settings.pipeline.image("serve"),
                "args": ["ctloop.services.model_server.seldon_model.SeldonModel", "--service-type", "MODEL"],
                "env": [{"name": "OMP_NUM_THREADS", "value": "1"}, {"name": "GUNICORN_WORKERS", "value": "2"}],
                "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
                "readinessProbe": {"httpGet": {"path": "/health/status", "port": 9000}, "initialDelaySeconds": 5,
                                   "periodSeconds": 5},
                "livenessProbe": {"httpGet": {"path": "/health/ping", "port": 9000}, "initialDelaySeconds": 30,
                                  "periodSeconds": 10},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        }
    }  # fmt: skip


def new_predictor(settings, name: str, version: str, model_uri: str, token: str, like: dict | None = None) -> dict:
    """A predictor serving registry ``version`` from ``model_uri``; built like ``like`` (main) when given, so that
    what the chart or a person set on main (resources, images, secrets) carries over to the candidate."""
    if like is not None:
        out = copy.deepcopy(like)
        for key in ("traffic", "shadow"):
            out.pop(key, None)
    else:
        out = {"graph": {"name": "model", "type": "MODEL", "envSecretRefName": "ctloop-s3", "children": []},
               "componentSpecs": [_container_spec(settings)]}  # fmt: skip
    out["name"] = name
    out.setdefault("labels", {})["version"] = "champion" if name == MAIN else "candidate"
    graph = out["graph"]
    graph["modelUri"] = model_uri
    parameters = [p for p in graph.get("parameters", []) if p["name"] not in ("model_uri", "model_version")]
    graph["parameters"] = [{"name": "model_uri", "value": "/mnt/models", "type": "STRING"},
                           {"name": "model_version", "value": str(version), "type": "STRING"}, *parameters]  # fmt: skip
    graph["logger"] = {"mode": "all", "url": logger_url(settings.endpoints.watcher.url, token)}
    return out


def new_deployment(settings, main: dict) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": settings.name, "namespace": settings.endpoints.seldon.namespace,
                     "labels": {"app.kubernetes.io/name": settings.name, "app.kubernetes.io/part-of": "ctloop"}},
        "spec": {"protocol": "seldon", "predictors": [{**main, "traffic": 100}]},
    }  # fmt: skip


def _set(sdep: dict, predictors: list[dict]) -> dict:
    sdep["spec"]["predictors"] = predictors
    return sdep


def serve_as_main(sdep: dict, main: dict) -> dict:
    """``main`` takes all the traffic; canary and shadow go (first deployment, promotion)."""
    rest = [p for p in sdep["spec"]["predictors"] if p["name"] not in PREDICTORS]
    return _set(sdep, [{**main, "name": MAIN, "traffic": 100}, *rest])


def declare(sdep: dict, candidate_predictor: dict, as_shadow: bool) -> dict:
    """The candidate joins as the shadow, or as the canary at weight 0; an older candidate leaves."""
    main = predictor(sdep, MAIN)
    rest = [p for p in sdep["spec"]["predictors"] if p["name"] not in PREDICTORS]
    if as_shadow:
        added = {**candidate_predictor, "name": SHADOW, "shadow": True}
    else:
        added = {**candidate_predictor, "name": CANARY, "traffic": 0}
    return _set(sdep, [{**main, "traffic": 100}, added, *rest])


def set_canary_weight(sdep: dict, weight: int) -> dict:
    """The canary (made from the shadow when there is no canary yet) at ``weight`` percent, main the rest."""
    canary = predictor(sdep, CANARY) or predictor(sdep, SHADOW)
    canary = {k: v for k, v in canary.items() if k != "shadow"}
    canary.update(name=CANARY, traffic=weight)
    main = {**predictor(sdep, MAIN), "traffic": 100 - weight}
    rest = [p for p in sdep["spec"]["predictors"] if p["name"] not in PREDICTORS]
    return _set(sdep, [main, canary, *rest])


def promote(sdep: dict) -> dict:
    """Main serves the candidate (its graph and containers), canary and shadow go."""
    chosen = predictor(sdep, CANARY) or predictor(sdep, SHADOW)
    main = {k: v for k, v in copy.deepcopy(chosen).items() if k != "shadow"}
    main.setdefault("labels", {})["version"] = "champion"
    return serve_as_main(sdep, main)


def remove_candidate(sdep: dict) -> dict:
    return serve_as_main(sdep, predictor(sdep, MAIN))
