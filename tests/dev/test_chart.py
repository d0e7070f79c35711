"""The Helm chart (helm/ctloop), rendered by Helm's own engine (helm-python-sdk binds Helm 4's Go SDK as a shared
library; no helm binary and no cluster): lint, schema, every rendered object against the Kubernetes OpenAPI schemas
(kubernetes-validate) and the custom resources against their CRD schemas (vendored in tests/crds), the
restricted Pod Security Standard on every pod template, the service contract, RBAC, and no secret values.
Nothing here is installed on a cluster."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from helm_python import _native

from ctloop import config

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "ctloop"
CRDS = ROOT / "tests" / "crds"
KUBERNETES_VERSION = "1.30.0"
MONITORING_API = "monitoring.coreos.com/v1"
RELEASE, NAMESPACE = "ctloop", "ctloop"
SERVICES = {  # component: (module, image)
    "drift-watcher": ("drift_watcher", "ctloop-watch"),
    "retrain-webhook": ("retrain_webhook", "ctloop-control"),
    "rollout-controller": ("rollout_controller", "ctloop-control"),
}

# The values matrix: each entry turns one feature on or off against the defaults.
MATRIX = {
    "defaults": {},
    "monitoring": {"monitoring": {"labels": {"release": "prom"}}},
    "mlflow": {"mlflow": {"enabled": True}},
    "no-persistence": {
        "driftWatcher": {"persistence": {"enabled": False}},
        "retrainWebhook": {"persistence": {"enabled": False}},
    },
    "storage-class": {"driftWatcher": {"persistence": {"storageClassName": "fast"}}},
    "no-network-policy": {"networkPolicy": {"enabled": False}, "podDisruptionBudget": {"enabled": False}},
    "no-candidate-no-s3": {"model": {"candidate": {"enabled": False}}, "secrets": {"s3": {"existingSecret": ""}}},
    "minio-and-replicas": {
        "secrets": {"s3": {"endpointUrl": "http://minio.minio:9000"}},
        "model": {"replicas": 3},
        "mlflow": {"enabled": True, "replicas": 2},
    },
    "only-watcher": {"retrainWebhook": {"enabled": False}, "rolloutController": {"enabled": False}},
}


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render(
    chart: helm.Chart, values: dict | None = None, *, monitoring_crds: bool = False, release: str = RELEASE
) -> list[dict]:
    """Render offline and parse every object (NOTES.txt left out).

    Chart.render() does not pass capabilities; the native helm_render behind it takes `api_versions` and
    `kube_version`, which is how a cluster with the Prometheus Operator's CRDs is simulated.
    """
    options = {"name": release, "namespace": NAMESPACE, "kube_version": f"v{KUBERNETES_VERSION}"}
    if monitoring_crds:
        options["api_versions"] = [MONITORING_API]
    merged = json.dumps(values) if values else None
    out = json.loads(_native.call_string("helm_render", chart._raw(), merged, json.dumps(options)))
    return [doc for path, text in sorted(out.items()) if path.endswith(".yaml") for doc in load_all(text)]


class _StrictLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; Kubernetes' decoder and kustomize refuse them."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        duplicates = {k for k in keys if keys.count(k) > 1}
        if duplicates:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {sorted(duplicates)}", node.start_mark)
        return super().construct_mapping(node, deep)


def load_all(text: str) -> list[dict]:
    return [doc for doc in yaml.load_all(text, Loader=_StrictLoader) if doc]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_templates(doc: dict) -> list[tuple[str, dict]]:
    """(where, pod spec) for every pod the object makes, SeldonDeployment componentSpecs included."""
    kind, name = doc["kind"], doc["metadata"]["name"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return [(f"{kind}/{name}", doc["spec"]["template"]["spec"])]
    if kind == "Pod":
        return [(f"Pod/{name}", doc["spec"])]
    if kind == "SeldonDeployment":
        return [
            (f"SeldonDeployment/{name}/{p['name']}/{i}", c["spec"])
            for p in doc["spec"]["predictors"]
            for i, c in enumerate(p["componentSpecs"])
        ]
    return []


# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_helm_lint_is_clean(case):
    report = helm.lint(CHART, MATRIX[case] or None, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


def test_lint_catches_a_broken_value():
    report = helm.lint(CHART, {"mlflow": {"enabled": "yes"}}, strict=True)
    assert report["errors"] or any(m["severity"] >= 2 for m in report["messages"])


@pytest.mark.parametrize(
    "values, field",
    [
        ({"containerSecurityContext": {"allowPrivilegeEscalation": True}}, "allowPrivilegeEscalation"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
        ({"model": {"champion": {"modelUri": "models:/credit-risk/3"}}}, "modelUri"),
        ({"settings": {"name": "Credit_Risk"}}, "name"),
        ({"driftWatcher": {"persistence": {"size": "lots"}}}, "size"),
        ({"monitoring": {"interval": "often"}}, "interval"),
        ({"webhookSecret": "s3cr3t"}, "webhookSecret"),
    ],
)
def test_schema_refuses_bad_values_naming_the_key(chart, values, field):
    with pytest.raises(helm.HelmValuesError, match=field):
        chart.validate_schema(chart.merge_values(values))


def test_default_values_pass_the_schema(chart):
    chart.validate_schema(chart.values)


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_every_object_matches_the_kubernetes_schemas(chart, case):
    docs = render(chart, MATRIX[case], monitoring_crds=True)
    builtin = [d for d in docs if "." not in d["apiVersion"].split("/")[0] or d["apiVersion"].endswith(".k8s.io/v1")]
    assert {d["kind"] for d in builtin} >= {"Deployment", "Service", "ConfigMap", "ServiceAccount", "Pod"}
    for doc in builtin:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_schema_check_can_fail(chart):
    (deployment,) = [
        d for d in render(chart) if d["metadata"]["name"] == "ctloop-drift-watcher" and d["kind"] == "Deployment"
    ]
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def crd_schema(file: str) -> dict:
    return _crd_schema(CRDS / file)


@functools.lru_cache
def _crd_schema(path: Path) -> dict:
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_custom_resources_match_their_crds(chart, case):
    files = {
        "SeldonDeployment": "machinelearning.seldon.io_seldondeployments.yaml",
        "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
        "PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
        "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
    }
    custom = [d for d in render(chart, MATRIX[case], monitoring_crds=True) if d["kind"] in files]
    seen = {d["kind"] for d in custom}
    assert {"ServiceMonitor", "PrometheusRule"} <= seen
    for doc in custom:
        # No meta-schema check: the Prometheus Operator's CRDs carry Go regexes such as '^(?i)(abort|warn)?$'
        # that Python's re refuses; the fields they guard are not set here.
        jsonschema.Draft7Validator(crd_schema(files[doc["kind"]])).validate(doc)


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_every_pod_is_restricted(chart, case):
    """The restricted Pod Security Standard (v1.30), checked on every pod template the chart makes."""
    allowed_volumes = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    pods = [p for d in render(chart, MATRIX[case], monitoring_crds=True) for p in pod_templates(d)]
    assert len(pods) >= 2
    for where, spec in pods:
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["runAsUser"] == 10001, where
        assert context["seccompProfile"]["type"] == "RuntimeDefault", where
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host), where
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for volume in volumes.values():
            assert set(volume) - {"name"} <= allowed_volumes, (where, volume)
        assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}, where
        for container in spec["containers"] + spec.get("initContainers", []):
            c = container["securityContext"]
            assert c["allowPrivilegeEscalation"] is False, where
            assert c["readOnlyRootFilesystem"] is True, where
            assert c["capabilities"]["drop"] == ["ALL"] and not c["capabilities"].get("add"), where
            assert not c.get("privileged") and c.get("runAsUser", 10001) != 0, where
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], where
            assert container["resources"]["limits"]["memory"], where
            assert not any(p.get("hostPort") for p in container.get("ports", [])), where


def test_no_secret_values_in_the_default_render(chart):
    docs = render(chart, monitoring_crds=True)
    assert not [d for d in docs if d["kind"] == "Secret"]
    for doc in docs:
        for where, spec in pod_templates(doc):
            for container in spec["containers"]:
                for env in container.get("env", []):
                    words = ("SECRET", "TOKEN", "PASSWORD", "ACCESS_KEY", "STORE_URI")
                    sensitive = any(w in env["name"] for w in words) and not env["name"].endswith("_PATH")
                    assert not (sensitive and "value" in env), (where, env)
    text = yaml.safe_dump_all(docs)
    assert "postgresql://" not in text and "AKIA" not in text


def test_services_follow_the_service_contract(chart):
    docs = render(chart)
    deployments, services = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    webhook_settings = config.WebhookPolicy()
    for component, (module, image) in SERVICES.items():
        name = f"ctloop-{component}"
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        command = container["command"]
        assert command[:3] == ["python", "-m", f"ctloop.services.{module}"]
        assert command[command.index("--config") + 1] == "/etc/ctloop/ctloop.yaml"
        assert command[command.index("--port") + 1] == "8080"
        assert container["image"] == f"ghcr.io/ctloop/{image}:0.1.0"
        assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert services[name]["spec"]["ports"][0]["port"] == 8080
        assert services[name]["spec"]["selector"] == deployments[name]["spec"]["selector"]["matchLabels"]
        env = {e["name"]: e for e in container.get("env", [])}
        secret_ref = env.get(webhook_settings.secret_env, {}).get("valueFrom", {}).get("secretKeyRef")
        token_ref = env.get(webhook_settings.alertmanager_token_env, {}).get("valueFrom", {}).get("secretKeyRef")
        # The webhook checks both; the watcher signs its retrain requests; the controller needs neither.
        assert bool(secret_ref) == (component != "rollout-controller")
        assert bool(token_ref) == (component == "retrain-webhook")
        if secret_ref:
            assert secret_ref == {"name": "ctloop-webhook", "key": "webhook-secret"}
        assert ("--state" in command) == (component != "rollout-controller")


def test_config_map_holds_valid_kubernetes_settings(chart):
    for values in ({}, {"mlflow": {"enabled": True}, "secrets": {"s3": {"endpointUrl": "http://minio.minio:9000"}}}):
        docs = render(chart, values)
        raw = yaml.safe_load(by_kind(docs, "ConfigMap")["ctloop-config"]["data"]["ctloop.yaml"])
        settings = config.parse(raw, source="ctloop-config", environ={})
        assert settings.mode == config.Mode.kubernetes
        assert settings.endpoints.watcher.url == "http://ctloop-drift-watcher.ctloop.svc.cluster.local:8080"
        assert settings.endpoints.webhook.url == "http://ctloop-retrain-webhook.ctloop.svc.cluster.local:8080"
        assert settings.endpoints.seldon.namespace == NAMESPACE
        assert settings.pipeline.image_registry == "ghcr.io/ctloop" and settings.pipeline.image_tag == "0.1.0"
        sdep = by_kind(docs, "SeldonDeployment")[settings.name]
        for predictor in sdep["spec"]["predictors"]:
            assert predictor["graph"]["logger"]["url"] == settings.endpoints.watcher.url + "/v1/events"
        if values:
            assert settings.endpoints.mlflow.tracking_uri == "http://ctloop-mlflow.ctloop.svc.cluster.local:5000"
            assert settings.endpoints.artifact_store.s3_endpoint_url == "http://minio.minio:9000"
        # The checksum annotation restarts the pods when the settings change.
        checksums = {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in docs
            if d["kind"] == "Deployment" and d["metadata"]["name"] != "ctloop-mlflow"
        }
        assert len(checksums) == 1


def test_settings_change_restarts_the_services(chart):
    def checksum(values):
        return by_kind(render(chart, values), "Deployment")["ctloop-drift-watcher"]["spec"]["template"]["metadata"][
            "annotations"
        ]["checksum/config"]

    assert checksum({}) != checksum({"settings": {"drift": {"window_size": 1000}}})


def test_rbac_holds_only_what_the_rollout_controller_uses(chart):
    docs = render(chart, {"mlflow": {"enabled": True}})
    roles, bindings = by_kind(docs, "Role"), by_kind(docs, "RoleBinding")
    assert set(roles) == {"ctloop-rollout-controller", "ctloop-pipeline-deploy"}
    assert set(bindings) == set(roles) | {"ctloop-pipeline-pipeline-runner"}
    # The pipeline's runs, deploy step included, run as ctloop's own ServiceAccount in KFP's namespace, which alone
    # may touch the SeldonDeployment: get and patch it by name (create cannot be limited to a name), and read the
    # one Secret that holds the watcher's ingestion token.
    assert roles.pop("ctloop-pipeline-deploy")["rules"] == [
        {
            "apiGroups": ["machinelearning.seldon.io"],
            "resources": ["seldondeployments"],
            "resourceNames": ["credit-risk"],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": ["machinelearning.seldon.io"], "resources": ["seldondeployments"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["ctloop-watcher"], "verbs": ["get"]},
    ]
    runs_as = {"kind": "ServiceAccount", "name": "ctloop-pipeline", "namespace": "kubeflow"}
    assert bindings.pop("ctloop-pipeline-deploy")["subjects"] == [runs_as]
    # There it is bound to KFP's own runner Role, as KFP's shared pipeline-runner is, so that its pods run.
    runner = bindings.pop("ctloop-pipeline-pipeline-runner")
    assert runner["metadata"]["namespace"] == "kubeflow" and runner["subjects"] == [runs_as]
    assert runner["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pipeline-runner"}
    accounts = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "ServiceAccount"}
    assert ("kubeflow", "ctloop-pipeline") in accounts
    # ctloop submits its runs under it.
    settings = config.parse(yaml.safe_load(by_kind(docs, "ConfigMap")["ctloop-config"]["data"]["ctloop.yaml"]),
                            environ={})  # fmt: skip
    assert settings.endpoints.kfp.service_account == "ctloop-pipeline"
    assert settings.endpoints.watcher.token_secret == "ctloop-watcher"
    (role,) = roles.values()
    assert role["rules"] == [
        {
            "apiGroups": ["machinelearning.seldon.io"],
            "resources": ["seldondeployments"],
            "verbs": ["get", "list", "watch", "patch"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]
    (binding,) = bindings.values()
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ctloop-rollout-controller", "namespace": NAMESPACE}
    ]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    for name, deployment in by_kind(docs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is (name == "ctloop-rollout-controller"), name
    for name, account in by_kind(docs, "ServiceAccount").items():
        # KFP's driver, launcher and Argo's executor in the runs' pods call the Kubernetes API with the token.
        assert account["automountServiceAccountToken"] is (name == "ctloop-pipeline"), name


def test_webhook_gets_a_kfp_token_and_nothing_else_does(chart):
    deployments = by_kind(render(chart), "Deployment")
    for name, deployment in deployments.items():
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        if name == "ctloop-retrain-webhook":
            (source,) = volumes["kfp-token"]["projected"]["sources"]
            assert source["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
        else:
            assert "kfp-token" not in volumes


def test_state_is_a_claim_by_default_and_an_empty_dir_only_when_opted_out(chart):
    on, off = render(chart, MATRIX["storage-class"]), render(chart, MATRIX["no-persistence"])
    assert not by_kind(off, "PersistentVolumeClaim")
    claims = by_kind(on, "PersistentVolumeClaim")
    assert set(claims) == {"ctloop-drift-watcher", "ctloop-retrain-webhook"}
    assert claims["ctloop-drift-watcher"]["spec"]["storageClassName"] == "fast"
    assert "storageClassName" not in claims["ctloop-retrain-webhook"]["spec"]  # the cluster's default class
    for name in claims:
        off_pod = by_kind(off, "Deployment")[name]["spec"]["template"]["spec"]
        on_deployment = by_kind(on, "Deployment")[name]
        assert {"name": "state", "emptyDir": {}} in off_pod["volumes"]
        assert {"name": "state", "persistentVolumeClaim": {"claimName": name}} in on_deployment["spec"]["template"][
            "spec"
        ]["volumes"]
        assert on_deployment["spec"]["strategy"] == {"type": "Recreate"}  # a ReadWriteOnce claim


def test_disruption_budgets_only_where_a_replica_can_be_spared(chart):
    # One replica with maxUnavailable 1 protects nothing; the singletons (state on a ReadWriteOnce claim) get none.
    assert not by_kind(render(chart, MATRIX["mlflow"]), "PodDisruptionBudget")
    for predictor in by_kind(render(chart), "SeldonDeployment")["credit-risk"]["spec"]["predictors"]:
        assert "pdbSpec" not in predictor["componentSpecs"][0]

    replicated = render(chart, MATRIX["minio-and-replicas"])
    (budget,) = by_kind(replicated, "PodDisruptionBudget").values()
    mlflow = by_kind(replicated, "Deployment")["ctloop-mlflow"]
    assert budget["spec"]["selector"]["matchLabels"] == mlflow["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["maxUnavailable"] == 1 < mlflow["spec"]["replicas"]
    for predictor in by_kind(replicated, "SeldonDeployment")["credit-risk"]["spec"]["predictors"]:
        assert predictor["componentSpecs"][0]["pdbSpec"] == {"maxUnavailable": 1}
        assert predictor["replicas"] == 3
    off = render(chart, {**MATRIX["minio-and-replicas"], "podDisruptionBudget": {"enabled": False}})
    assert not by_kind(off, "PodDisruptionBudget")


def test_monitoring_objects_only_where_the_crds_are_served(chart):
    kinds = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert not [d for d in render(chart) if d["kind"] in kinds]
    assert not [
        d for d in render(chart, {"monitoring": {"enabled": False}}, monitoring_crds=True) if d["kind"] in kinds
    ]
    docs = [d for d in render(chart, MATRIX["monitoring"], monitoring_crds=True) if d["kind"] in kinds]
    assert {d["kind"] for d in docs} == kinds
    for doc in docs:
        assert doc["metadata"]["labels"]["release"] == "prom"
    rules = yaml.safe_load((ROOT / "monitoring" / "rules" / "ctloop.rules.yaml").read_text())
    assert by_kind(docs, "PrometheusRule")["ctloop"]["spec"] == rules
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"][0] == {
        "port": "http",
        "path": "/metrics",
        "interval": "30s",
        "honorLabels": True,
    }
    (pod_monitor,) = by_kind(docs, "PodMonitor").values()
    assert pod_monitor["spec"]["podMetricsEndpoints"][0] == {
        "port": "metrics",
        "path": "/prometheus",
        "interval": "30s",
        "honorLabels": True,
    }


def test_dashboards_ship_as_sidecar_config_maps(chart):
    files = sorted((ROOT / "monitoring" / "dashboards").glob("*.json"))
    assert len(files) >= 4
    maps = {n: d for n, d in by_kind(render(chart), "ConfigMap").items() if "-dashboard-" in n}
    assert set(maps) == {f"ctloop-dashboard-{f.stem}" for f in files}
    for path in files:
        cm = maps[f"ctloop-dashboard-{path.stem}"]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(cm["data"][f"ctloop-{path.stem}.json"]) == json.loads(path.read_text())
    assert not [
        n for n in by_kind(render(chart, {"dashboards": {"enabled": False}}), "ConfigMap") if "-dashboard-" in n
    ]


def test_network_policies_cover_every_service(chart):
    policies = by_kind(render(chart, {"mlflow": {"enabled": True}}), "NetworkPolicy")
    assert set(policies) == {f"ctloop-{c}" for c in [*SERVICES, "mlflow"]}
    for name, policy in policies.items():
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == name.removeprefix(
            "ctloop-"
        )
    assert not by_kind(render(chart, MATRIX["no-network-policy"]), "NetworkPolicy")


def test_only_the_models_pods_helm_test_and_prometheus_reach_the_watcher(chart):
    docs = render(chart)
    peers = by_kind(docs, "NetworkPolicy")["ctloop-drift-watcher"]["spec"]["ingress"][0]["from"]
    assert {"podSelector": {}} not in peers  # not every pod of the namespace: anyone could add rows and labels
    pods = [p for p in peers if "podSelector" in p and "namespaceSelector" not in p]
    (test_pod,) = by_kind(docs, "Pod").values()

    def admitted(labels: dict) -> bool:
        return any(labels.items() >= p["podSelector"]["matchLabels"].items() for p in pods)

    # Seldon's operator puts componentSpecs' metadata labels on each predictor's pods, whose executor logs.
    for predictor in by_kind(docs, "SeldonDeployment")["credit-risk"]["spec"]["predictors"]:
        assert admitted(predictor["componentSpecs"][0]["metadata"]["labels"]), predictor["name"]
    assert admitted(test_pod["metadata"]["labels"])
    for name, deployment in by_kind(docs, "Deployment").items():  # the release's own services are not loggers
        assert not admitted(deployment["spec"]["template"]["metadata"]["labels"]), name
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in peers


def test_helm_test_hook_checks_every_enabled_service(chart):
    def hook(values):
        (pod,) = by_kind(render(chart, values), "Pod").values()
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        return [a for a in pod["spec"]["containers"][0]["command"] if a.startswith("http://")]

    assert hook({}) == [f"http://ctloop-{c}.ctloop.svc.cluster.local:8080/readyz" for c in SERVICES]
    assert hook(MATRIX["only-watcher"]) == ["http://ctloop-drift-watcher.ctloop.svc.cluster.local:8080/readyz"]


def test_names_follow_the_release(chart):
    docs = render(chart, release="prod")
    assert "prod-ctloop-drift-watcher" in by_kind(docs, "Deployment")
    sdep = by_kind(docs, "SeldonDeployment")["credit-risk"]
    assert sdep["spec"]["predictors"][0]["graph"]["logger"]["url"].startswith(
        "http://prod-ctloop-drift-watcher.ctloop."
    )


def test_seldondeployment_is_the_kustomize_base_one(chart):
    base = yaml.safe_load((ROOT / "manifests" / "base" / "seldondeployment.yaml").read_text())
    rendered = by_kind(render(chart), "SeldonDeployment")["credit-risk"]
    assert rendered["spec"] == base["spec"]
    without_candidate = by_kind(render(chart, MATRIX["no-candidate-no-s3"]), "SeldonDeployment")["credit-risk"]
    (main,) = without_candidate["spec"]["predictors"]
    assert main["traffic"] == 100 and "envSecretRefName" not in main["graph"]


# ---------------------------------------------------------------------------------------------------------------
# The kustomize base (manifests/) for people without Helm.


def kustomize(folder: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (for its built-in kustomize) is not on PATH")
    out = subprocess.run([kubectl, "kustomize", str(folder)], check=True, capture_output=True, text=True).stdout
    return load_all(out)


def kinds_and_names(docs: list[dict]) -> set[tuple[str, str]]:
    return {
        (d["kind"], d["metadata"]["name"]) for d in docs if "helm.sh/hook" not in d["metadata"].get("annotations", {})
    }


def test_kustomize_base_carries_the_default_render(chart):
    base = kustomize(ROOT / "manifests" / "base")
    # The runs' ServiceAccount and its binding to KFP's runner Role live in KFP's namespace: in kfp/, which has no
    # namespace transformer.
    kfp_side = [d for d in kustomize(ROOT / "manifests" / "kfp") if d["kind"] in ("ServiceAccount", "RoleBinding")]
    assert kinds_and_names(base) | kinds_and_names(kfp_side) == kinds_and_names(render(chart))
    assert {d["metadata"].get("namespace") for d in base} == {NAMESPACE}
    assert {d["metadata"].get("namespace") for d in kfp_side} == {"kubeflow"}
    # kustomize's namespace transformer must leave the runs' ServiceAccount where it is.
    binding = by_kind(base, "RoleBinding")["ctloop-pipeline-deploy"]
    assert binding["subjects"][0]["namespace"] == "kubeflow"


def test_kustomize_monitoring_carries_the_monitoring_render(chart):
    kinds = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    rendered = [d for d in render(chart, monitoring_crds=True) if d["kind"] in kinds]
    monitoring = kustomize(ROOT / "manifests" / "monitoring")
    assert kinds_and_names(monitoring) == kinds_and_names(rendered)


def test_generated_manifests_are_current(chart):
    """manifests/base and manifests/monitoring are generated from the chart: `python manifests/generate.py`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", ROOT / "manifests" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    for path, text in generate.manifests().items():
        assert (ROOT / "manifests" / path).read_text() == text, f"{path} is stale: run python manifests/generate.py"


def test_kfp_pipeline_objects_are_the_compiled_ones():
    compiled = ROOT / "pipelines" / "compiled" / "kubernetes" / "continuous_training.yaml"
    docs = [d for d in kustomize(ROOT / "manifests" / "kfp") if d["kind"] not in ("ServiceAccount", "RoleBinding")]
    assert kinds_and_names(docs) == kinds_and_names([d for d in yaml.safe_load_all(compiled.read_text()) if d])
    assert {d["apiVersion"] for d in docs} == {"pipelines.kubeflow.org/v2beta1"}


def test_packaged_chart_carries_the_rules_and_dashboards(tmp_path):
    """files/rules and files/dashboards are links to monitoring/; `helm package` must copy what they point at."""
    archive = helm.package(CHART, destination=tmp_path)
    packaged = helm.Chart.load(archive)
    docs = render(packaged, monitoring_crds=True)
    rules = yaml.safe_load((ROOT / "monitoring" / "rules" / "ctloop.rules.yaml").read_text())
    assert by_kind(docs, "PrometheusRule")["ctloop"]["spec"] == rules
    dashboards = [n for n in by_kind(docs, "ConfigMap") if "-dashboard-" in n]
    assert len(dashboards) == len(list((ROOT / "monitoring" / "dashboards").glob("*.json")))
