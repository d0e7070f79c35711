"""The built images, run as the cluster runs them (``make test-images``, after ``make images``).

Every container here runs as uid 10001 on a read-only root filesystem, with /tmp the only writable path and no
network but loopback (container.py says how, with no container engine). Inputs come in read-only, as a ConfigMap
and the storage initializer's model folder would. What each image must do:
- validate and train: their components' entry programs on demo data, writing every output (train's KFP
  ExecutorOutput file included);
- serve: the model server from the image, given the model the train image wrote, answers a Seldon prediction
  over HTTP with the scores the training code gives the same rows (computed here in the train environment);
- control and watch: the retrain webhook, rollout controller and drift watcher answer their health endpoints, and
  the drift watcher acknowledges a CloudEvent once its journal under /tmp holds it;
- the webhook and the watcher again, as manifests/base declares their Deployments (command, env, volumes, probes);
- every image: the lock it was built from, by sha256, where ctloop.provenance reads it.

Not a cluster: no kubelet, no OCI runtime, no seccomp profile, no Kubernetes API; the images themselves are the
ones `make images` built.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.images.container import Image, Pod

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = os.environ.get("CTLOOP_IMAGES_REGISTRY", "ghcr.io/ctloop")
TRAIN_PYTHON = ROOT / ".venvs/train/bin/python"
CONFIG_DIR = "/etc/ctloop"  # where the chart mounts the ctloop ConfigMap
CLIENT = """
import json, sys, urllib.error, urllib.request
method, url, body, headers = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
request = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(json.dumps({"status": answer.status, "body": answer.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
except OSError as e:
    print(json.dumps({"status": None, "body": str(e)}))
"""


def image_name(image: str) -> str:
    from ctloop import __version__

    return f"{REGISTRY}/ctloop-{image}:{os.environ.get('CTLOOP_IMAGES_TAG', __version__)}"


@pytest.fixture(scope="module", autouse=True)
def _engine_tools():
    missing = [tool for tool in ("buildah", "ip", "unshare", "chroot") if not shutil.which(tool)]
    assert not missing, f"missing {missing}: run `make images` first (it installs buildah and builds the images)"
    assert os.geteuid() == 0, "the images are run with mount and network namespaces: run as root"


@pytest.fixture
def images():
    """Opens an image by its short name (validate, train, ...); closed after the test."""
    opened = []

    def open_image(image: str) -> Image:
        name = image_name(image)
        found = subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True)
        assert found.returncode == 0, f"{name} is not built: run `make images`"
        opened.append(Image(name))
        return opened[-1]

    yield open_image
    for image in opened:
        image.close()


@pytest.fixture
def pod():
    opened = Pod()
    yield opened
    opened.close()


def http(pod: Pod, method: str, url: str, body: str = "", headers: dict | None = None) -> dict:
    """One HTTP exchange from inside the pod's network (a host process joining it, like a sidecar)."""
    found = pod.exec([sys.executable, "-c", CLIENT, method, url, body, json.dumps(headers or {})],
                     capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(found.stdout)


def wait_ok(pod: Pod, url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url}: the container exited ({process.returncode}): {log.read_text()[-3000:]}"
        answer = http(pod, "GET", url)
        if answer["status"] == 200:
            return answer
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 in {timeout} s: {log.read_text()[-3000:]}")


def run_to_end(process: subprocess.Popen, log: Path, timeout: float = 600) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        Pod.stop(process, grace=0)
        raise AssertionError(f"did not finish in {timeout} s: {log.read_text()[-3000:]}") from None


def config_folder(tmp_path: Path) -> Path:
    """The ConfigMap's ctloop.yaml: the project's own, with the loop's endpoints on the pod's loopback."""
    raw = yaml.safe_load((ROOT / "ctloop.yaml").read_text())
    raw["endpoints"]["artifact_store"]["root"] = "/tmp/store"
    raw["endpoints"]["mlflow"]["tracking_uri"] = "http://127.0.0.1:5000"
    raw["endpoints"]["webhook"] = {"url": "http://127.0.0.1:8081"}
    raw.setdefault("local", {})["state_dir"] = "/tmp/state"
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "ctloop.yaml").write_text(yaml.safe_dump(raw))
    return folder


def demo_spans(tmp_path: Path) -> Path:
    from ctloop.local import demo_data

    folder = tmp_path / "data"
    demo_data.write_span(str(folder / "reference"), rows=3_000, seed=1)
    demo_data.write_span(str(folder / "span"), rows=3_000, seed=2)
    return folder


# -- every image


@pytest.mark.parametrize("name", ["validate", "train", "serve", "control", "watch"])
def test_image_runs_unprivileged_read_only_offline_and_records_its_lock(name, images, pod, tmp_path):
    code = (
        "import json, os, socket\n"
        "from ctloop import provenance\n"
        "try:\n    open('/opt/venv/written', 'w'); root = 'writable'\n"
        "except OSError as e:\n    root = e.strerror\n"
        "open('/tmp/written', 'w').write('ok')\n"
        "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'root': root, 'networks': socket.if_nameindex(),"
        " 'lock': provenance.image_lock_sha256()}))\n"
    )
    log = tmp_path / "log.txt"
    process = pod.start(images(name), tmp_path / "tmp", command=["python", "-c", code], log=log)
    assert run_to_end(process, log) == 0, log.read_text()
    seen = json.loads(log.read_text().strip().splitlines()[-1])
    lock = ROOT / "images" / name / "requirements.lock"
    assert seen == {"uid": 10001, "gid": 10001, "root": "Read-only file system", "networks": [[1, "lo"]],
                    "lock": hashlib.sha256(lock.read_bytes()).hexdigest()}  # fmt: skip
    assert (tmp_path / "tmp" / "written").read_text() == "ok"


# -- the components


def test_validate_image_validates_a_demo_span(images, pod, tmp_path):
    config, data = config_folder(tmp_path), demo_spans(tmp_path)
    log = tmp_path / "log.txt"
    argv = ["python", "-m", "ctloop.components.validate_data", "--config", f"{CONFIG_DIR}/ctloop.yaml",
            "--data", "/data/span", "--reference", "/data/reference", "--out", "/tmp/out"]  # fmt: skip
    inputs = {CONFIG_DIR: config, "/data": data}
    process = pod.start(images("validate"), tmp_path / "tmp", command=argv, read_only=inputs, log=log)
    assert run_to_end(process, log) == 0, log.read_text()[-3000:]
    out = tmp_path / "tmp" / "out"
    from ctloop.components.validate_data import spec

    assert sorted(p.name for p in out.iterdir()) == sorted(spec.OUTPUT_FILES.values())
    summary = json.loads((out / "anomalies.json").read_text())
    assert summary["passed"] is True and summary["fingerprint"]["rows"] == 3_000


EXPECTED_SCORES = """
import json, sys
from ctloop import model_format
from ctloop.local import demo_data
model = model_format.load(sys.argv[1])
frame = demo_data.generate(rows=1_000, seed=7)[0].head(64)
features = [f["name"] for f in model.spec["features"]]
print(json.dumps({"names": features, "rows": json.loads(frame[features].to_json(orient="values")),
                  "scores": model.predict(frame).tolist()}))
"""


def test_train_image_trains_and_the_serve_image_serves_its_model_with_the_training_scores(images, pod, tmp_path):
    config, data = config_folder(tmp_path), demo_spans(tmp_path)
    log = tmp_path / "train.txt"
    argv = ["python", "-m", "ctloop.components.train", "--config", f"{CONFIG_DIR}/ctloop.yaml",
            "--data", "/data/span", "--no-mlflow", "--out", "/tmp/out",
            "--executor-output", "/tmp/executor_output.json", "--metrics-uri", "s3://ctloop/metrics"]  # fmt: skip
    inputs = {CONFIG_DIR: config, "/data": data}
    process = pod.start(images("train"), tmp_path / "tmp", command=argv, read_only=inputs, log=log)
    assert run_to_end(process, log) == 0, log.read_text()[-3000:]
    model = tmp_path / "tmp" / "out" / "model"
    executor_output = json.loads((tmp_path / "tmp" / "executor_output.json").read_text())
    metrics = executor_output["artifacts"]["metrics"]["artifacts"][0]
    assert metrics["uri"] == "s3://ctloop/metrics" and metrics["metadata"]["roc_auc"] > 0.7

    # The training code's scores for rows it never saw, from the model the image wrote.
    found = subprocess.run([str(TRAIN_PYTHON), "-c", EXPECTED_SCORES, str(model)], capture_output=True, text=True,
                           cwd=ROOT)  # fmt: skip
    assert found.returncode == 0, found.stderr
    expected = json.loads(found.stdout)

    log = tmp_path / "serve.txt"
    # As the SeldonDeployment's container: the image's entrypoint, the class and service type as args, the model
    # where the storage initializer puts it.
    server = pod.start(
        images("serve"),
        tmp_path / "serve-tmp",
        log=log,
        read_only={"/mnt/models": model},
        args=["ctloop.services.model_server.seldon_model.SeldonModel", "--service-type", "MODEL"],
    )
    try:
        wait_ok(pod, "http://127.0.0.1:9000/health/ping", server, log)
        body = json.dumps({"data": {"names": expected["names"], "ndarray": expected["rows"]}})
        answer = http(pod, "POST", "http://127.0.0.1:9000/api/v1.0/predictions", body,
                      {"Content-Type": "application/json"})  # fmt: skip
    finally:
        pod.stop(server)
    assert answer["status"] == 200, answer
    from ctloop.contracts import seldon_message

    scores = seldon_message.answer(json.loads(answer["body"]))["scores"]
    assert len(scores) == len(expected["scores"])
    assert max(abs(a - b) for a, b in zip(scores, expected["scores"])) <= 1e-6


# -- the services


def test_control_and_watch_images_answer_health_and_the_watcher_journals_under_tmp(images, pod, tmp_path):
    config = config_folder(tmp_path)
    env = {"CTLOOP_WEBHOOK_SECRET": secrets.token_hex(16), "CTLOOP_WATCHER_TOKEN": secrets.token_hex(16)}
    control, watch = images("control"), images("watch")
    started = []

    def service(image: Image, module: str, port: int, name: str) -> tuple[subprocess.Popen, Path, str]:
        log = tmp_path / f"{name}.txt"
        process = pod.start(image, tmp_path / f"{name}-tmp", log=log, read_only={CONFIG_DIR: config}, env=env,
                            command=["python", "-m", module, "--config", f"{CONFIG_DIR}/ctloop.yaml", "--host",
                                     "127.0.0.1", "--port", str(port), "--state", f"/tmp/{name}"])  # fmt: skip
        started.append(process)
        return process, log, f"http://127.0.0.1:{port}"

    try:
        services = [
            service(control, "ctloop.services.retrain_webhook", 8081, "webhook"),
            service(control, "ctloop.services.rollout_controller", 8082, "rollout"),
            service(watch, "ctloop.services.drift_watcher", 8080, "watcher"),
        ]
        for process, log, url in services:
            wait_ok(pod, f"{url}/healthz", process, log)
            wait_ok(pod, f"{url}/readyz", process, log)
        from tests.watch import traffic

        headers, body = traffic.request_event("p-1", traffic.rows(1, seed=3)[0]["features"])
        answer = http(pod, "POST", "http://127.0.0.1:8080/v1/events", body.decode(),
                      {**headers, "Authorization": f"Bearer {env['CTLOOP_WATCHER_TOKEN']}"})  # fmt: skip
        assert answer["status"] == 200 and json.loads(answer["body"])["status"] == "accepted", answer
        journal = tmp_path / "watcher-tmp" / "watcher" / "journal"
        records = [json.loads(line) for p in sorted(journal.glob("journal-*.jsonl")) for line in p.read_text().split()]
        assert headers["Ce-Id"] in [record.get("id") for record in records]
    finally:
        for process in started:
            pod.stop(process)


# -- the services as the generated manifests run them

MANIFESTS = ROOT / "manifests" / "base"


def from_manifest(name: str, folder: Path, secret_values: dict[str, str]) -> dict:
    """The first container of manifests/base/<name>.yaml's Deployment, as the kubelet would start it: its command
    and args; its env, each secretKeyRef taken from ``secret_values`` by key; its volumes (a configMap's data as
    files from manifests/base/config.yaml, read-only; a projected service-account token as a file, read-only; the
    emptyDir at /tmp as the container's /tmp; a PersistentVolumeClaim as a writable folder); its port and probes.
    envFrom (the S3 credentials) is left out: nothing here reaches S3."""
    deployment = next(
        d for d in yaml.safe_load_all((MANIFESTS / f"{name}.yaml").read_text()) if d["kind"] == "Deployment"
    )
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    configmaps = {d["metadata"]["name"]: d["data"] for d in yaml.safe_load_all((MANIFESTS / "config.yaml").read_text())}
    env = {}
    for item in container.get("env", []):
        env[item["name"]] = (
            item["value"] if "value" in item else secret_values[item["valueFrom"]["secretKeyRef"]["key"]]
        )
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    pod = {"command": container["command"], "args": container.get("args"), "env": env, "read_only": {},
           "writable": {}, "tmp": None, "port": container["ports"][0]["containerPort"],
           "image": re.search(r"/ctloop-([a-z]+):", container["image"]).group(1),
           "live": container["livenessProbe"]["httpGet"]["path"],
           "ready": container["readinessProbe"]["httpGet"]["path"]}  # fmt: skip
    for mount in container["volumeMounts"]:
        volume, source, target = volumes[mount["name"]], folder / mount["name"], mount["mountPath"]
        source.mkdir(parents=True)
        if "configMap" in volume:
            for key, text in configmaps[volume["configMap"]["name"]].items():
                (source / key).write_text(text)
            pod["read_only"][target] = source
        elif "projected" in volume:
            for item in volume["projected"]["sources"]:
                (source / item["serviceAccountToken"]["path"]).write_text("a-token-no-server-checks")
            pod["read_only"][target] = source
        elif target == "/tmp":
            pod["tmp"] = source
        else:
            assert "persistentVolumeClaim" in volume or "emptyDir" in volume, f"{name}: volume {mount['name']}"
            pod["writable"][target] = source
    return pod


def test_the_webhook_and_the_watcher_run_as_their_manifests_say(images, tmp_path):
    """Each in a pod of its own (both listen on 8080), with the ConfigMap's ctloop.yaml (mode kubernetes, endpoints
    that do not resolve here) and its state on the PersistentVolumeClaim's path."""
    values = {key: secrets.token_hex(16) for key in ("webhook-secret", "alertmanager-token", "ingest-token")}
    running = []
    try:
        for name in ("retrain-webhook", "drift-watcher"):
            spec, pod = from_manifest(name, tmp_path / name, values), Pod()
            log = tmp_path / f"{name}.txt"
            volumes = {"read_only": spec["read_only"], "writable": spec["writable"]}
            process = pod.start(images(spec["image"]), spec["tmp"], command=spec["command"], args=spec["args"],
                                env=spec["env"], log=log, **volumes)  # fmt: skip
            running.append((pod, process))
            url = f"http://127.0.0.1:{spec['port']}"
            wait_ok(pod, url + spec["live"], process, log)
            wait_ok(pod, url + spec["ready"], process, log)
        from tests.watch import traffic

        headers, body = traffic.request_event("p-1", traffic.rows(1, seed=4)[0]["features"])
        answer = http(pod, "POST", f"{url}/v1/events", body.decode(),
                      {**headers, "Authorization": f"Bearer {values['ingest-token']}"})  # fmt: skip
        assert answer["status"] == 200 and json.loads(answer["body"])["status"] == "accepted", answer
        (state,) = spec["writable"].values()
        records = [
            json.loads(line) for p in (state / "journal").glob("journal-*.jsonl") for line in p.read_text().split()
        ]
        assert headers["Ce-Id"] in [record.get("id") for record in records]
    finally:
        for pod, process in running:
            pod.stop(process)
            pod.close()
