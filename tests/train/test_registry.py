"""train, validate_segments and register against a real MLflow tracking server (SQLite; one test on PostgreSQL)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ctloop import config, mlflow_client, model_format
from ctloop.components.register import executor as register
from ctloop.components.train import executor as train
from ctloop.components.train import tracking
from ctloop.components.validate_segments import executor as segments
from ctloop.contracts.registry import VERSION_ARTIFACTS, Registry
from ctloop.errors import NotReadyError
from ctloop.local import demo_data

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def settings_for(url: str, model_name: str):
    raw = json.loads(config.load(ROOT / "ctloop.yaml", environ={}).json())
    raw["endpoints"]["mlflow"] = {"tracking_uri": url, "registered_model": model_name}
    raw["gates"]["segments"]["bootstrap"] = 100
    return config.parse(raw, environ={})


def train_and_judge(settings, tmp_path: Path, seed: int, client) -> dict:
    """One pipeline pass up to the blessing, with what register needs."""
    span = str(tmp_path / f"span-{seed}")
    demo_data.write_span(span, rows=8_000, seed=seed)
    request = train.Request(span, settings)
    result = train.train(request)
    run_id = tracking.log_run(settings, request, result, pipeline_run_id=f"run-{seed}")
    out = tmp_path / f"out-{seed}"
    model_format.write(str(out / "model"), result.model.booster, result.model.spec, result.model.policy,
                       result.model.metadata)  # fmt: skip
    result.frame.iloc[result.parts["test"]].to_parquet(out / "test.parquet", index=False)
    result.reference.to_parquet(out / "reference.parquet", index=False)
    champion = segments.champion_from_registry(Registry(client, settings.endpoints.mlflow.registered_model))
    judged = segments.run(str(out / "test.parquet"), str(out / "model"), settings, champion)
    (out / "blessing.json").write_bytes(judged.outputs()["blessing"])
    (out / "segments.html").write_bytes(judged.outputs()["report"])
    return {"span": span, "result": result, "run_id": run_id, "out": out, "judged": judged}


def register_request(passed: dict, seed: int) -> register.Request:
    out = passed["out"]
    return register.Request(
        model_dir=str(out / "model"),
        blessing=str(out / "blessing.json"),
        mlflow_run_id=passed["run_id"],
        data_uri=passed["span"],
        fingerprint=passed["result"].fingerprint,
        pipeline_run_id=f"run-{seed}",
        reference_sample=str(out / "reference.parquet"),
        segment_report=str(out / "segments.html"),
    )


def test_train_register_and_compare_with_the_champion(mlflow_server, tmp_path):
    settings = settings_for(mlflow_server, "credit-risk-flow")
    client = mlflow_client.connect(settings)
    first = train_and_judge(settings, tmp_path, 11, client)

    # the training run carries params, metrics, the dataset with ctloop's digest, and lineage tags
    run = client.get_run(first["run_id"])
    assert run.data.metrics["test_roc_auc"] > 0.75 and run.data.params["tree_method"] == "hist"
    digest = first["result"].fingerprint.sha256[:32]
    assert [d.dataset.digest for d in run.inputs.dataset_inputs] == [digest]
    assert run.data.tags["ctloop.dataset_sha256"] == first["result"].fingerprint.sha256
    assert run.data.tags["ctloop.code_version"].startswith("0.")
    assert len(run.data.tags["ctloop.image_lock_sha256"]) == 64

    # no champion yet: an explicit outcome, and the candidate is judged on its own
    assert first["judged"].blessed, first["judged"].blessing["failed"]
    assert first["judged"].blessing["champion_version"] is None
    assert "no champion" in first["judged"].blessing["champion_note"]

    done = register.register(client, "credit-risk-flow", register_request(first, 11))
    assert done.created and done.version == "1"
    version = client.get_model_version_by_alias("credit-risk-flow", "candidate")
    assert version.version == "1"
    assert version.tags["ctloop.pipeline_run_id"] == "run-11"
    assert version.tags["ctloop.dataset_sha256"] == first["result"].fingerprint.sha256
    assert version.tags["ctloop.blessed"] == "true"
    # the source is the physical location (what Seldon's storage initializer can copy), and it loads
    assert done.source.startswith("file://") and "models:/" not in done.source
    loaded = model_format.load(done.source)
    frame = first["result"].frame.head(100)
    assert np.allclose(loaded.predict(frame), first["result"].model.predict(frame))
    artifacts_logged = {a.path for a in client.list_artifacts(first["run_id"])}
    assert {"model", "reference", "validation"} <= artifacts_logged
    # under the names a later step reads them by, whatever the file was called where register found it
    for name, (folder, file) in VERSION_ARTIFACTS.items():
        if file and name in ("reference_sample", "segment_report", "blessing"):
            assert f"{folder}/{file}" in {a.path for a in client.list_artifacts(first["run_id"], folder)}
    assert Registry(client, "credit-risk-flow").artifact_uri("1", "blessing").endswith("/validation/blessing.json")

    # the same training run registered again: found, not duplicated
    again = register.register(client, "credit-risk-flow", register_request(first, 11))
    assert not again.created and again.version == "1"
    assert len(client.search_model_versions("name='credit-risk-flow'")) == 1

    # once version 1 is champion, the next candidate is compared with it, segment by segment
    client.set_registered_model_alias("credit-risk-flow", "champion", "1")
    second = train_and_judge(settings, tmp_path, 12, client)
    blessing = second["judged"].blessing
    assert blessing["champion_version"] == "1" and blessing["champion"] is True
    assert any(c["check"] == "non_inferiority" for c in blessing["checks"])
    # the champion's own validation record was found in the registry and the sanity check was made, and passed
    sanity = [c for c in blessing["checks"] if c["check"] == "champion_sanity"]
    assert sanity and all(c["passed"] for c in sanity) and "sanity_note" not in blessing, blessing.get("sanity_note")
    overall = second["judged"].overall()
    assert overall["champion"]["roc_auc"] > 0.7 and overall["diff_intervals"]["roc_auc"][0] < 0.05


def test_unblessed_model_is_refused_and_nothing_is_registered(mlflow_server, tmp_path):
    settings = settings_for(mlflow_server, "credit-risk-refused")
    client = mlflow_client.connect(settings)
    passed = train_and_judge(settings, tmp_path, 21, client)
    blessing = json.loads((passed["out"] / "blessing.json").read_text())
    blessing.update(
        blessed=False, failed=[{"check": "floor", "segment": "region", "value": "north", "metric": "roc_auc"}]
    )
    (passed["out"] / "blessing.json").write_text(json.dumps(blessing))
    config_file = tmp_path / "ctloop.yaml"
    config_file.write_text(json.dumps(json.loads(settings.json())))
    result = subprocess.run(
        [sys.executable, "-m", "ctloop.components.register", "--config", str(config_file),
         "--model", str(passed["out"] / "model"), "--blessing", str(passed["out"] / "blessing.json"),
         "--mlflow-run-id", passed["run_id"], "--data", passed["span"],
         "--fingerprint", passed["result"].fingerprint.to_json()],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert "not blessed" in result.stderr and "floor region=north roc_auc" in result.stderr
    assert client.search_registered_models(filter_string="name='credit-risk-refused'") == []


def test_unreachable_registry_fails_fast_and_names_it(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings_for(f"http://127.0.0.1:{port}", "nowhere")
    started = time.monotonic()
    with pytest.raises(NotReadyError, match=f"127.0.0.1:{port} is unreachable"):
        mlflow_client.connect(settings)
    assert time.monotonic() - started < 15


def test_registry_on_postgresql(postgres, mlflow_on, tmp_path):
    """The cluster's setup: the tracking server on PostgreSQL (Debian's server, started by the fixture)."""
    settings = settings_for(mlflow_on(postgres), "credit-risk-pg")
    client = mlflow_client.connect(settings)
    passed = train_and_judge(settings, tmp_path, 31, client)
    first = register.register(client, "credit-risk-pg", register_request(passed, 31))
    second = register.register(client, "credit-risk-pg", register_request(passed, 31))
    assert first.created and not second.created and first.version == second.version == "1"
    assert client.get_model_version_by_alias("credit-risk-pg", "candidate").version == "1"
