"""`ctloop pipeline upload` and `ctloop pipeline run --host` with the real kfp.Client, against an emulator of
KFP's v2beta1 REST API on loopback (tests/dev/kfp_emulator.py; not a KFP server)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctloop.pipelines import continuous_training as ct
from ctloop.pipelines import submit

from .kfp_emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
CTLOOP = [sys.executable, "-m", "ctloop.local.cli"]


@pytest.fixture
def kfp():
    with Emulator() as emulator:
        yield emulator


def ctloop(*args, env=None):
    return subprocess.run([*CTLOOP, *args], capture_output=True, text=True, cwd=ROOT, env=env)


def test_upload_creates_the_pipeline_once_and_a_version_per_package(kfp, tmp_path):
    def ids(result) -> list[str]:
        return [line for line in result.stdout.splitlines() if line.startswith(("pipeline ", "version "))]

    first = ctloop("pipeline", "upload", "--host", kfp.url)
    assert first.returncode == 0, first.stderr
    again = ctloop("pipeline", "upload", "--host", kfp.url)
    assert ids(again) == ids(first) and len(ids(first)) == 2  # same package: same pipeline, same version
    (pipeline,) = kfp.state.pipelines.values()
    assert pipeline["display_name"] == ct.NAME
    package = kfp.state.packages[pipeline["pipeline_id"]]
    assert yaml.safe_load(package.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0])["pipelineInfo"]["name"] == ct.NAME
    versions = kfp.state.versions[pipeline["pipeline_id"]]
    assert [v["display_name"] for v in versions] == [ct.NAME, submit.version_name(ct.COMPILED)]
    # a different package is a new version of the same pipeline
    changed = tmp_path / "changed.yaml"
    changed.write_text(ct.COMPILED.read_text() + "\n# changed\n")
    result = ctloop("pipeline", "upload", "--host", kfp.url, "--pipeline", str(changed))
    assert result.returncode == 0 and len(kfp.state.versions[pipeline["pipeline_id"]]) == 3


def test_run_sends_the_parameters_and_prints_id_and_url(kfp):
    result = ctloop("pipeline", "run", "--host", kfp.url, "--data", "s3://spans/2026-02", "--token", "secret-token",
                    "--previous-statistics", "s3://runs/1/stats.pb")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (run,) = kfp.state.runs
    assert f"run {run['run_id']}" in result.stdout and f"{kfp.url}/#/runs/details/{run['run_id']}" in result.stdout
    parameters = run["runtime_config"]["parameters"]
    assert parameters["data_uri"] == "s3://spans/2026-02"
    assert parameters["previous_statistics_uri"] == "s3://runs/1/stats.pb"
    assert json.loads(parameters["config"])["name"] == "credit-risk"
    (experiment,) = kfp.state.experiments.values()
    assert experiment["display_name"] == "ctloop" and run["experiment_id"] == experiment["experiment_id"]
    assert run["pipeline_version_reference"]["pipeline_version_id"] == kfp.state.versions[
        run["pipeline_version_reference"]["pipeline_id"]][-1]["pipeline_version_id"]  # fmt: skip
    # the token went along as a bearer token on the API calls
    runs_post = next(h for m, p, h in kfp.state.requests if m == "POST" and p == "/apis/v2beta1/runs")
    assert runs_post.get("authorization") == "Bearer secret-token"
    # ctloop's own ServiceAccount, which alone may touch the SeldonDeployment (the chart's pipeline-deploy Role)
    assert run["service_account"] == "ctloop-pipeline"


def test_recurring_run_with_a_cron_schedule(kfp):
    result = ctloop("pipeline", "run", "--host", kfp.url, "--data", "s3://spans/latest", "--cron", "0 0 3 * * *",
                    "--experiment", "nightly")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (job,) = kfp.state.recurring_runs
    assert job["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert job["max_concurrency"] == "1" or job["max_concurrency"] == 1
    assert job["no_catchup"] is True
    assert f"recurring run {job['recurring_run_id']}" in result.stdout
    assert job["service_account"] == "ctloop-pipeline"
    assert [e["display_name"] for e in kfp.state.experiments.values()] == ["nightly"]


def test_unreachable_endpoint_is_one_line():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = ctloop("pipeline", "upload", "--host", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
