"""Smoke test of the control image's environment: KFP compiles, the Kubernetes client builds, metrics render."""

import yaml
from kfp import compiler, dsl

PRODUCER_IMAGE = "ghcr.io/ctloop/ctloop-validate:smoke"
CONSUMER_IMAGE = "ghcr.io/ctloop/ctloop-train:smoke"


@dsl.container_component
def produce(out: dsl.Output[dsl.Dataset]):
    return dsl.ContainerSpec(
        image=PRODUCER_IMAGE,
        command=["sh", "-c"],
        args=['mkdir -p "$(dirname "$0")" && echo hello > "$0"', out.path],
    )


@dsl.container_component
def consume(data: dsl.Input[dsl.Dataset], model: dsl.Output[dsl.Model]):
    return dsl.ContainerSpec(
        image=CONSUMER_IMAGE,
        command=["sh", "-c"],
        args=['mkdir -p "$(dirname "$1")" && cp "$0" "$1"', data.path, model.path],
    )


@dsl.pipeline(name="ctloop-smoke")
def smoke_pipeline():
    produced = produce()
    consume(data=produced.outputs["out"])


def test_kfp_compiles_a_two_step_container_pipeline(tmp_path):
    package = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(smoke_pipeline, package_path=str(package))
    spec = yaml.safe_load(package.read_text())

    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"produce", "consume"}
    artifact_input = tasks["consume"]["inputs"]["artifacts"]["data"]["taskOutputArtifact"]
    assert artifact_input == {"producerTask": "produce", "outputArtifactKey": "out"}
    assert tasks["consume"]["dependentTasks"] == ["produce"]

    executors = spec["deploymentSpec"]["executors"]
    images = {executor["container"]["image"] for executor in executors.values()}
    assert images == {PRODUCER_IMAGE, CONSUMER_IMAGE}


def test_kfp_kubernetes_extension_applies_to_a_task(tmp_path):
    from kfp import kubernetes

    @dsl.pipeline(name="ctloop-smoke-k8s")
    def with_secret():
        task = produce()
        kubernetes.use_secret_as_env(task, secret_name="s3", secret_key_to_env={"key": "AWS_ACCESS_KEY_ID"})

    package = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(with_secret, package_path=str(package))
    documents = list(yaml.safe_load_all(package.read_text()))
    # kfp-kubernetes writes its settings into a second document, the platform spec.
    assert len(documents) == 2
    executor = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-produce"]
    (secret,) = executor["secretAsEnv"]
    assert secret["secretName"] == "s3"
    assert secret["keyToEnv"] == [{"envVar": "AWS_ACCESS_KEY_ID", "secretKey": "key"}]


def test_kubernetes_client_builds_without_a_cluster():
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:6443"
    api = client.CustomObjectsApi(client.ApiClient(configuration))
    assert callable(api.list_namespaced_custom_object)
    assert client.V1ObjectMeta(name="x").name == "x"


def test_prometheus_client_exposes_a_counter():
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    registry = CollectorRegistry()
    counter = Counter("ctloop_smoke_events", "Smoke events.", ["kind"], registry=registry)
    counter.labels(kind="retrain").inc(3)
    text = generate_latest(registry).decode()
    assert 'ctloop_smoke_events_total{kind="retrain"} 3.0' in text


def test_httpx_and_mlflow_import():
    import httpx
    import mlflow

    assert httpx.Client
    assert mlflow.__version__
