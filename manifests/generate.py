"""Write the plain manifests from the Helm chart, for people who install with kustomize instead of Helm.

    .venvs/dev/bin/python manifests/generate.py

- base/: the chart's default render (release ctloop, namespace ctloop), one file per template. The SeldonDeployment
  stays the hand-commented base/seldondeployment.yaml; tests/dev/test_chart.py checks the chart renders the same spec.
- monitoring/: the ServiceMonitor, PodMonitor and PrometheusRule the chart renders where the Prometheus Operator's
  CRDs exist (apply it only there).
- kfp/: KFP's Kubernetes-native Pipeline and PipelineVersion, copied from pipelines/compiled/kubernetes/ (kustomize
  loads no files from outside its folder), and the runs' ServiceAccount with its bindings to KFP's runner roles, in
  KFP's namespace.

tests/dev/test_chart.py fails when a generated file differs from what this script writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import helm_python as helm
import yaml
from helm_python import _native

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHART = ROOT / "helm" / "ctloop"
COMPILED = ROOT / "pipelines" / "compiled" / "kubernetes"
RELEASE = NAMESPACE = "ctloop"
KUBE_VERSION = "v1.30.0"
MONITORING_TEMPLATE = "monitoring.yaml"
KEPT_BY_HAND = {"seldondeployment.yaml"}
# Objects in KFP's namespace: in kfp/, which has no namespace transformer, so that they stay where KFP's pods run.
KFP_SIDE = {"pipeline-account.yaml"}
HEADER = "# Generated from helm/ctloop by manifests/generate.py (release ctloop, namespace ctloop); do not edit.\n"


def _render(api_versions: list[str]) -> dict[str, str]:
    """Template file name -> rendered YAML. Chart.render() passes no capabilities, so call the native renderer."""
    options = {"name": RELEASE, "namespace": NAMESPACE, "kube_version": KUBE_VERSION, "api_versions": api_versions}
    chart = helm.Chart.load(CHART)
    out = json.loads(_native.call_string("helm_render", chart._raw(), None, json.dumps(options)))
    return {path.split("/templates/", 1)[1]: text for path, text in out.items()}


def _plain(text: str) -> str:
    """Helm's bookkeeping labels say the wrong thing outside Helm."""
    text = re.sub(r"^\s*helm\.sh/chart: .*\n", "", text, flags=re.M)
    text = text.replace("app.kubernetes.io/managed-by: Helm", "app.kubernetes.io/managed-by: kustomize")
    return HEADER + text.lstrip("-\n")


def _kustomization(resources: list[str], namespace: str | None) -> str:
    body = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    if namespace:
        body["namespace"] = namespace
    body["resources"] = resources
    return HEADER + yaml.safe_dump(body, sort_keys=False)


def manifests() -> dict[str, str]:
    """Path under manifests/ -> content."""
    files: dict[str, str] = {}
    default = _render([])
    for name, text in sorted(default.items()):
        if name == "NOTES.txt" or name.startswith("tests/") or name in KEPT_BY_HAND or not text.strip():
            continue
        files[f"{'kfp' if name in KFP_SIDE else 'base'}/{name}"] = _plain(text)
    base = sorted([p.removeprefix("base/") for p in files if p.startswith("base/")] + sorted(KEPT_BY_HAND))
    files["base/kustomization.yaml"] = _kustomization(base, NAMESPACE)

    monitoring = _render(["monitoring.coreos.com/v1"])[MONITORING_TEMPLATE]
    files[f"monitoring/{MONITORING_TEMPLATE}"] = _plain(monitoring)
    files["monitoring/kustomization.yaml"] = _kustomization([MONITORING_TEMPLATE], NAMESPACE)

    for path in sorted(COMPILED.glob("*.yaml")):
        files[f"kfp/{path.name}"] = path.read_text()
    kfp = sorted([p.name for p in COMPILED.glob("*.yaml")] + [n for n in KFP_SIDE if f"kfp/{n}" in files])
    files["kfp/kustomization.yaml"] = _kustomization(kfp, None)
    return files


def main() -> None:
    for path, text in manifests().items():
        target = HERE / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote manifests/{path}")


if __name__ == "__main__":
    main()
