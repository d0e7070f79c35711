"""The plain Kubernetes manifests: the SeldonDeployment against Seldon Core 1.17.1's CRD schema (vendored in
tests/crds) and Seldon's traffic rules, and its pod specs against the Kubernetes OpenAPI schemas
(kubernetes-validate)."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "tests" / "crds"
KUBERNETES_VERSION = "1.30.0"


@pytest.fixture(scope="module")
def sdep() -> dict:
    return yaml.safe_load((ROOT / "manifests" / "base" / "seldondeployment.yaml").read_text())


@pytest.fixture(scope="module")
def sdep_schema() -> dict:
    path = CRDS / "machinelearning.seldon.io_seldondeployments.yaml"
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 2 MB: the C loader
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return version["schema"]["openAPIV3Schema"]


def check_traffic(predictors: list[dict]) -> None:
    """Seldon's admission rules (checkTraffic in the operator's webhook)."""
    live = [p for p in predictors if not p.get("shadow")]
    shadows = [p for p in predictors if p.get("shadow")]
    if len(shadows) > 1:
        raise ValueError("at most one shadow predictor")
    if len(live) > 1 and sum(p.get("traffic", 0) for p in live) != 100:
        raise ValueError("the traffic of the non-shadow predictors must add up to 100")
    if len(live) == 1 and live[0].get("traffic", 100) != 100:
        raise ValueError("a lone predictor takes all traffic")


def test_seldondeployment_matches_the_crd_schema(sdep, sdep_schema):
    jsonschema.validate(sdep, sdep_schema)
    broken = copy.deepcopy(sdep)
    broken["spec"]["predictors"][0]["traffic"] = "all"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, sdep_schema)


def test_predictors_and_traffic(sdep):
    predictors = {p["name"]: p for p in sdep["spec"]["predictors"]}
    assert set(predictors) == {"main", "canary", "shadow"}
    assert predictors["main"]["traffic"] == 100 and predictors["canary"]["traffic"] == 0
    assert predictors["shadow"]["shadow"] is True
    check_traffic(sdep["spec"]["predictors"])
    with pytest.raises(ValueError, match="add up to 100"):
        check_traffic([dict(predictors["main"], traffic=90), predictors["canary"]])


def test_every_predictor_logs_to_the_watcher_and_loads_a_physical_model_uri(sdep):
    for predictor in sdep["spec"]["predictors"]:
        graph = predictor["graph"]
        assert graph["logger"]["mode"] == "all"
        assert graph["logger"]["url"].startswith("http://ctloop-drift-watcher.")
        assert graph["modelUri"].startswith("s3://") and "models:/" not in graph["modelUri"]
        assert graph["envSecretRefName"] == "ctloop-s3"
        parameters = {p["name"]: p["value"] for p in graph["parameters"]}
        assert parameters["model_uri"] == "/mnt/models" and parameters["model_version"]


def test_pods_are_valid_restricted_and_probed(sdep):
    for predictor in sdep["spec"]["predictors"]:
        for component in predictor["componentSpecs"]:
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": predictor["name"]},
                "spec": component["spec"],
            }
            kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
            spec = component["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            (container,) = spec["containers"]
            assert container["name"] == predictor["graph"]["name"]  # Seldon matches the graph node by name
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["readinessProbe"]["httpGet"] == {"path": "/health/status", "port": 9000}
            assert container["resources"]["limits"]["memory"]
            assert {"name": "OMP_NUM_THREADS", "value": "1"} in container["env"]
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_kustomization_lists_every_manifest():
    base = ROOT / "manifests" / "base"
    listed = set(yaml.safe_load((base / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in base.glob("*.yaml") if p.name != "kustomization.yaml"}
