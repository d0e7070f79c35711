"""The ctloop command as a user runs it: a real process, its output and its exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ctloop import __version__

CTLOOP = [sys.executable, "-m", "ctloop.local.cli"]
ROOT = Path(__file__).resolve().parents[2]


def ctloop(*args, cwd=None):
    return subprocess.run([*CTLOOP, *args], capture_output=True, text=True, cwd=cwd)


def test_version():
    result = ctloop("version")
    assert result.returncode == 0 and result.stdout.strip() == __version__


def test_config_validate_accepts_the_example(tmp_path, example_config_text):
    (tmp_path / "ctloop.yaml").write_text(example_config_text)
    result = ctloop("config", "validate", "ctloop.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "14 features" in result.stdout


def test_config_validate_says_that_a_regression_is_trained_but_never_blessed(tmp_path, example_config_text):
    regression = example_config_text.replace("task: binary_classification", "task: regression").replace(
        'objective: "binary:logistic"', 'objective: "count:poisson"'
    )
    (tmp_path / "ctloop.yaml").write_text(regression)
    result = ctloop("config", "validate", "ctloop.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "task regression" in result.stdout
    assert "note: data.task regression: train fits it, but validate-segments blesses binary classification only" in (
        result.stdout
    )
    assert "note:" not in ctloop("config", "validate", str(ROOT / "ctloop.yaml")).stdout


def test_config_validate_rejects_a_broken_file_with_every_key_path(tmp_path, example_config_text):
    broken = example_config_text.replace("task: binary_classification", "task: ranking").replace(
        "  mode: shadow-then-canary", "  mode: shadow-then-canary\n  speed: fast"
    )
    (tmp_path / "broken.yaml").write_text(broken)
    result = ctloop("config", "validate", str(tmp_path / "broken.yaml"))
    assert result.returncode == 2
    assert "data.task:" in result.stderr and "rollout.speed: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_validate_missing_file_is_one_line(tmp_path):
    result = ctloop("config", "validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and "no such file" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_data_generate_writes_span_and_manifest(tmp_path, fmt):
    out = tmp_path / "span"
    result = ctloop("data", "generate", "--rows", "2000", "--seed", "3", "--out", str(out), "--format", fmt,
                    "--drift", "new-category", "--start", "2026-03-01")  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 2000 and manifest["drift"]["kind"] == "new-category"
    assert manifest["start"] == "2026-03-01"
    frame = pd.read_csv(out / manifest["file"]) if fmt == "csv" else pd.read_parquet(out / manifest["file"])
    assert len(frame) == 2000 and "default" in frame.columns


def test_data_generate_bad_input_names_the_argument(tmp_path):
    result = ctloop("data", "generate", "--rows", "5", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "rows" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()
    result = ctloop("data", "generate", "--rows", "2000", "--out", "ftp://host/x")
    assert result.returncode == 2 and "ftp://host/x" in result.stderr


def test_drift_backtest_from_a_users_folder_triggers_only_after_the_drift_begins(tmp_path, example_config_text):
    """`ctloop drift backtest` as a user runs it: their ctloop.yaml in their folder, a reference and a stream of
    their own (2,000 stable rows, then 2,000 with a covariate drift); it runs in the watch environment."""
    import yaml

    from ctloop.local import demo_data

    raw = yaml.safe_load(example_config_text)
    raw["local"]["venvs_dir"] = str(ROOT / ".venvs")
    (tmp_path / "ctloop.yaml").write_text(yaml.safe_dump(raw))
    reference, _ = demo_data.generate(5_000, seed=1)
    reference.to_parquet(tmp_path / "reference.parquet")
    stable, _ = demo_data.generate(2_000, seed=2)
    drifted, _ = demo_data.generate(2_000, seed=3, drift="covariate")
    pd.concat([stable, drifted]).drop(columns=["event_date"]).to_csv(tmp_path / "stream.csv", index=False)
    result = ctloop("drift", "backtest", "--reference", "reference.parquet", "--stream", "stream.csv", "--json",
                    cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # The default detector tests the last 500 events every 100 from the 200th on.
    assert report["events"] == 4_000 and report["windows"] >= 35
    assert report["triggers"] and all(events > 2_000 for events in report["triggers"])
    assert report["triggers"][0] <= 2_000 + 500  # before the last 500 events are all drifted ones
    assert all(detail["features"] for detail in report["details"])  # each trigger names its features
    missing = ctloop("drift", "backtest", "--reference", "nothing.parquet", "--stream", "stream.csv", cwd=tmp_path)
    assert missing.returncode == 2 and "nothing.parquet" in missing.stderr and "Traceback" not in missing.stderr


def test_validate_says_when_it_cannot_hold_the_span_to_a_champion(tmp_path, example_config_text, free_port):
    """With the registry down, `ctloop validate` says so in one line and judges the span on its own."""
    import yaml

    from ctloop.local import demo_data

    raw = yaml.safe_load(example_config_text)
    raw["endpoints"]["mlflow"]["tracking_uri"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    raw["local"]["venvs_dir"] = str(ROOT / ".venvs")
    (tmp_path / "ctloop.yaml").write_text(yaml.safe_dump(raw))
    demo_data.write_span(str(tmp_path / "span"), rows=2_000, seed=3)
    result = ctloop("validate", "--data", str(tmp_path / "span"), "--out", str(tmp_path / "out"), "-c",
                    str(tmp_path / "ctloop.yaml"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("not held to a champion: ")]
    verdict = json.loads((tmp_path / "out" / "anomalies.json").read_text())
    assert verdict["champion_version"] is None and verdict["schema_source"] == "inferred from this span, curated"
