"""`ctloop schema show` and `ctloop schema pin` as a user runs them: real processes, validate_data's own entry
program in the validate environment, and a real MLflow tracking server for the champion's schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ctloop import config
from ctloop.local import demo_data

ROOT = Path(__file__).resolve().parents[2]
VALIDATE_PYTHON = ROOT / ".venvs" / "validate" / "bin" / "python"
# Wide enough that no cell of the table wraps: the tests read it row by row.
WIDE = {"COLUMNS": "200"}


def ctloop(*args, cwd=None):
    env = {**os.environ, **WIDE}
    return subprocess.run([sys.executable, "-m", "ctloop.local.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env)  # fmt: skip


def write_config(folder: Path, data_uri: str, tracking_uri: str, model: str = "schema-test", name: str = "ctloop.yaml",
                 **data) -> Path:  # fmt: skip
    raw = yaml.safe_load((ROOT / "ctloop.yaml").read_text())
    raw["data"].update(uri=data_uri, **data)
    raw["endpoints"]["mlflow"] = {"tracking_uri": tracking_uri, "registered_model": model}
    raw["local"]["state_dir"] = str(folder / "state")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(raw))
    return path


def table(stdout: str) -> dict[str, list[str]]:
    """The table's rows by feature: type, presence, domain, drift threshold."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 5:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def nobody():
    """A tracking URI where no server listens: the champion is passed over."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(scope="module")
def span(tmp_path_factory):
    folder = tmp_path_factory.mktemp("span")
    demo_data.write_span(str(folder), rows=1000, seed=11)
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory, span, nobody):
    """validate_data's own outputs on the span: the schema it infers and curates, text and JSON."""
    folder = tmp_path_factory.mktemp("reference")
    cfg = write_config(folder / "config", str(span), nobody)
    argv = [str(VALIDATE_PYTHON), "-m", "ctloop.components.validate_data", "--data", str(span), "--config", str(cfg),
            "--out", str(folder / "out")]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return folder / "out"


@pytest.fixture(scope="module")
def pinned(tmp_path_factory, span, nobody):
    """`ctloop schema pin` with nothing pinned and no registry: inferred from data.uri, beside the config."""
    folder = tmp_path_factory.mktemp("pinned")
    cfg = write_config(folder, str(span), nobody)
    result = ctloop("schema", "pin", "--config", str(cfg))
    return cfg, result


def test_pin_infers_from_the_span_when_nothing_is_pinned_and_there_is_no_champion(pinned, reference, nobody):
    cfg, result = pinned
    assert result.returncode == 0, result.stderr
    assert nobody in result.stderr  # why the champion was passed over
    written = cfg.parent / "schema.pbtxt"
    assert written.read_text() == (reference / "schema.pbtxt").read_text()
    assert result.stdout.strip().endswith(f"add to {cfg}: data: {{schema_uri: schema.pbtxt}}")
    assert yaml.safe_load(cfg.read_text())["data"].get("schema_uri") is None  # the config is not edited


def test_show_file_prints_every_feature_of_the_config(pinned, span):
    cfg, _ = pinned
    result = ctloop("schema", "show", "--file", str(cfg.parent / "schema.pbtxt"), "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"schema: file {cfg.parent / 'schema.pbtxt'}"
    rows = table(result.stdout)
    settings = config.load(cfg)
    assert {f.name for f in settings.features} | {settings.data.label} <= set(rows)
    frame = pd.read_parquet(span / "data.parquet")
    gate = settings.gates.data
    for f in settings.features:
        kind, presence, domain, drift = rows[f.name]
        assert presence == f"{1.0 - f.max_missing:g}"
        if f.type == "categorical":
            assert kind == "BYTES"
            assert domain == ", ".join(sorted(frame[f.name].unique()))
            assert drift == f"L-inf {gate.features.get(f.name, gate.default_linf):g}"
        else:
            assert kind in ("INT", "FLOAT")
            if f.min is not None or f.max is not None:
                lo = f"{f.min:g}" if f.min is not None else "-inf"
                hi = f"{f.max:g}" if f.max is not None else "inf"
                assert domain == f"[{lo}, {hi}]"
            assert drift == f"JSD {gate.features.get(f.name, gate.default_jsd):g}"


def test_a_pinned_schema_is_shown_by_default_and_accepted_by_validate_data(pinned, span, nobody, tmp_path):
    cfg, _ = pinned
    pinned_cfg = write_config(cfg.parent, str(span), nobody, name="pinned.yaml", schema_uri="schema.pbtxt")
    result = ctloop("schema", "show", "--config", str(pinned_cfg))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("schema: pinned: ") and "(data.schema_uri)" in result.stdout
    again = ctloop("schema", "pin", "--config", str(pinned_cfg))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("unchanged") and "add to" not in again.stdout
    argv = [str(VALIDATE_PYTHON), "-m", "ctloop.components.validate_data", "--data", str(span), "--config",
            str(pinned_cfg), "--schema", str(cfg.parent / "schema.pbtxt"), "--out", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"- schema: pinned ({cfg.parent / 'schema.pbtxt'})" in (tmp_path / "out" / "summary.md").read_text()


def test_pin_refuses_to_overwrite_a_different_schema_unless_forced(pinned, tmp_path):
    cfg, _ = pinned
    source = cfg.parent / "schema.pbtxt"
    target = tmp_path / "mine.pbtxt"
    different = source.read_text().replace("threshold: 0.035", "threshold: 0.05", 1)
    assert different != source.read_text()
    target.write_text(different)
    result = ctloop("schema", "pin", "--file", str(source), "--out", str(target), "--config", str(cfg))
    assert result.returncode == 2 and "--force" in result.stderr and str(target) in result.stderr
    assert target.read_text() == different
    result = ctloop("schema", "pin", "--file", str(source), "--out", str(target), "--force", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == source.read_text()
    assert f"data: {{schema_uri: {target}}}" in result.stdout  # outside the config's folder: the absolute path


@pytest.mark.parametrize("content", ["hello, world\n", ""])
def test_a_file_that_is_not_a_schema_is_one_line_naming_it(pinned, tmp_path, content):
    cfg, _ = pinned
    bad = tmp_path / "notes.txt"
    bad.write_text(content)
    result = ctloop("schema", "show", "--file", str(bad), "--config", str(cfg))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(bad) in result.stderr and "not a" in result.stderr


def test_show_json_of_the_champions_registered_schema(mlflow_server, reference, span, tmp_path):
    from mlflow.tracking import MlflowClient

    name = "schema-champion"
    client = MlflowClient(mlflow_server)
    run = client.create_run(client.create_experiment(f"{name}-{tmp_path.name}"))
    client.log_artifact(run.info.run_id, str(reference / "schema.pbtxt"), "schema")
    client.create_registered_model(name)
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    cfg = write_config(tmp_path, str(span), mlflow_server, model=name)

    result = ctloop("schema", "show", "--json", "--config", str(cfg))  # no pin: the champion's comes first
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads((reference / "schema.json").read_text())
    assert f"{name} version {version.version}" in result.stderr and "champion" in result.stderr

    result = ctloop("schema", "show", "--champion", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    expected = [f["name"] for f in json.loads((reference / "schema.json").read_text())["feature"]]
    assert list(table(result.stdout)) == expected


def test_no_champion_and_no_data_is_one_clear_line(mlflow_server, tmp_path):
    cfg = write_config(tmp_path, str(tmp_path / "no-span"), mlflow_server, model="schema-nobody")
    result = ctloop("schema", "show", "--config", str(cfg))
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: no schema") and "no champion" in error and str(tmp_path / "no-span") in error
    assert "Traceback" not in result.stderr


def test_sources_are_exclusive(pinned):
    cfg, _ = pinned
    result = ctloop("schema", "show", "--champion", "--data", "x", "--config", str(cfg))
    assert result.returncode == 2 and "at most one of --data, --champion and --file" in result.stderr
