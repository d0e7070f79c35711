"""Smoke test of the dev environment: the tools the CLI and the local stack lean on actually work."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent


def test_kfp_compiles_a_lightweight_pipeline(tmp_path):
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11-slim")
    def add(a: int, b: int) -> int:
        return a + b

    @dsl.pipeline(name="ctloop-dev-smoke")
    def pipeline(x: int = 1):
        first = add(a=x, b=2)
        add(a=first.output, b=3)

    package = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(pipeline, package_path=str(package))
    spec = yaml.safe_load(package.read_text())
    assert set(spec["root"]["dag"]["tasks"]) == {"add", "add-2"}
    assert spec["root"]["inputDefinitions"]["parameters"]["x"]["defaultValue"] == 1


def test_mlflow_full_imports_and_its_server_cli_runs():
    import importlib.metadata
    import importlib.util

    import mlflow

    # The full distribution, not just mlflow-skinny: it brings the tracking server's dependencies.
    assert importlib.metadata.version("mlflow") == mlflow.__version__
    for module in ("flask", "sqlalchemy", "alembic"):
        assert importlib.util.find_spec(module) is not None, module
    result = subprocess.run([str(BIN / "mlflow"), "server", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--backend-store-uri" in result.stdout


@pytest.mark.timeout(120)
def test_moto_threaded_server_serves_s3():
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="ctloop-smoke")
        s3.put_object(Bucket="ctloop-smoke", Key="spans/a.txt", Body=b"hello")
        assert s3.get_object(Bucket="ctloop-smoke", Key="spans/a.txt")["Body"].read() == b"hello"
    finally:
        server.stop()


def _deployment(replicas) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "ctloop-serve"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "ctloop-serve"}},
            "template": {
                "metadata": {"labels": {"app": "ctloop-serve"}},
                "spec": {"containers": [{"name": "serve", "image": "ghcr.io/ctloop/ctloop-serve:0.1.0"}]},
            },
        },
    }


def test_kubernetes_validate_accepts_and_rejects():
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(_deployment(2), version, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError, match="replicas|integer"):
        kubernetes_validate.validate(_deployment("two"), version, strict=True)


def test_helm_python_sdk_renders_a_chart_offline(tmp_path):
    # helm-python-sdk imports as helm_python and carries Helm's Go SDK as a bundled shared
    # library (libhelm_c), so no helm binary and no cluster are needed to create and render.
    import helm_python as helm
    import kubernetes_validate

    assert helm.helm_sdk_version().startswith("v")
    assert helm.parse_set_string("image.tag=v2,replicaCount=3") == {"image": {"tag": "v2"}, "replicaCount": 3}
    helm.validate_release_name("ctloop-serve")

    with helm.Chart.create("smoke", tmp_path) as chart:
        assert chart.name == "smoke"
        manifests = chart.render({"replicaCount": 3}, name="ctloop-smoke", namespace="ctloop")
    deployment_path = next(path for path in manifests if path.endswith("deployment.yaml"))
    deployment = yaml.safe_load(manifests[deployment_path])
    assert deployment["kind"] == "Deployment"
    assert deployment["spec"]["replicas"] == 3
    kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)
