"""The champion sanity check: a champion whose metric collapses on a new span stops the run (labels broken or the
concept reversed), instead of the non-inferiority gate reading the collapse as a far better candidate.

Expected AUCs come from a rank computation written here (Mann-Whitney on numpy ranks), not from the module.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from ctloop import config, model_format
from ctloop.components.validate_segments import __main__ as entry_program
from ctloop.components.validate_segments import executor, gates
from ctloop.components.validate_segments.metrics import _segment_seed, bootstrap_intervals, evaluate

ROOT = Path(__file__).resolve().parents[2]
REGIONS = ["north", "south", "east", "west"]
SEGMENTS = [{"name": "region", "column": "region"}]
GATE = {"min_rows": 200, "floors": {"roc_auc": 0.6}, "max_degradation": {"roc_auc": 0.05}, "sanity_metric": "roc_auc"}
RESAMPLES = 100
DROP = 0.3  # gates.segments.max_champion_drop's default
# AUC = Phi(sqrt(2) * signal): about 0.87 for the champion, 0.95 for a better candidate.
CHAMPION_SIGNAL, CANDIDATE_SIGNAL = 0.8, 1.2


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC from ranks (continuous scores: no ties)."""
    ranks = np.empty(score.size)
    ranks[np.argsort(score)] = np.arange(1, score.size + 1)
    positives = int(y.sum())
    negatives = y.size - positives
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _span(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows with a region (west is small, a tenth of the rows) and true labels."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"region": rng.choice(REGIONS, size=n, p=[0.3, 0.3, 0.3, 0.1])})
    return frame, rng.integers(0, 2, size=n)


def _scores(y: np.ndarray, seed: int, signal: float) -> np.ndarray:
    """A model's probabilities for labels y: a larger signal is a better model."""
    rng = np.random.default_rng(seed)
    return 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=y.size))))


@functools.cache
def _judged_then() -> dict:
    frame, y = _span(6000, 0)
    rows = evaluate(frame, y, _scores(y, 1, CHAMPION_SIGNAL), 0.5, SEGMENTS, resamples=RESAMPLES, seed=0)
    return gates.judge(rows, GATE)


def _validation_record() -> dict:
    """The champion's own blessing, from when it was the candidate on its span (no champion then)."""
    return copy.deepcopy(_judged_then())


def _new_span(*, invert: str | None, candidate_signal: float = CANDIDATE_SIGNAL, seed: int = 10):
    """A new span scored by the champion (which learnt the true labels) and by a candidate trained on the labels as
    delivered: with ``invert`` ("all" or a region), an upstream bug inverted the delivered labels there."""
    frame, truth = _span(6000, seed)
    delivered = truth.copy()
    if invert:
        where = np.ones(truth.size, bool) if invert == "all" else frame["region"].to_numpy() == invert
        delivered[where] = 1 - truth[where]
    champion = _scores(truth, seed + 1, CHAMPION_SIGNAL)
    candidate = _scores(delivered, seed + 2, candidate_signal)
    rows = evaluate(frame, delivered, candidate, 0.5, SEGMENTS, champion_score=champion, resamples=RESAMPLES, seed=0)
    return frame, delivered, champion, rows


def _known(record: dict) -> dict:
    return {"version": "3", "validation": record["validation"], "note": ""}


def _sanity(blessing: dict) -> dict[tuple[str, str], dict]:
    return {(c["segment"], c["value"]): c for c in blessing["checks"] if c["check"] == "champion_sanity"}


def _failed(blessing: dict) -> set[tuple[str, str]]:
    return {(c["segment"], c["value"]) for c in blessing["failed"] if c["check"] == "champion_sanity"}


# ---------------------------------------------------------------------------------------------------------------------
# The record a blessing keeps of its own validation


def test_the_blessing_records_every_judged_segment_value_with_its_interval():
    frame, y = _span(6000, 0)
    score = _scores(y, 1, CHAMPION_SIGNAL)
    blessing = _validation_record()
    record = blessing["validation"]
    assert record["metric"] == "roc_auc"
    by_value = {(s["segment"], s["value"]): s for s in record["segments"]}
    assert set(by_value) == {("overall", "all")} | {("region", r) for r in REGIONS}
    for (segment, value), entry in by_value.items():
        mask = np.ones(len(frame), bool) if segment == "overall" else frame["region"].to_numpy() == value
        assert entry["n"] == mask.sum()
        assert entry["point"] == pytest.approx(_auc(y[mask], score[mask]), abs=1e-12)
        low, high = entry["interval"]
        assert low < entry["point"] < high
    # No champion then: nothing to check, and nothing to note.
    assert "sanity_note" not in blessing and blessing["overrides"] == []


def test_the_champion_interval_is_its_own_bootstrap_with_the_candidates_resamples():
    frame, y, champion, rows = _new_span(invert=None)
    overall = rows[0]
    expected = bootstrap_intervals(y, champion, 0.5, resamples=RESAMPLES, seed=_segment_seed(0, "overall", "all"))
    assert overall["champion_intervals"] == expected


def test_a_record_without_an_interval_is_judged_on_the_points():
    record = _validation_record()
    for entry in record["validation"]["segments"]:
        entry["interval"] = None
    frame, y, champion, _ = _new_span(invert="all")
    rows = evaluate(frame, y, _scores(y, 5, CANDIDATE_SIGNAL), 0.5, SEGMENTS, champion_score=champion, resamples=0)
    blessing = gates.judge(rows, GATE, _known(record))
    overall = _sanity(blessing)[("overall", "all")]
    assert not overall["passed"] and "(no interval)" in overall["detail"]
    assert overall["observed"] == pytest.approx(_auc(y, champion), abs=1e-12)  # the point, for want of a bound
    assert overall["limit"] == pytest.approx(_validation_point(record, "overall", "all") - DROP)


def _validation_point(record: dict, segment: str, value: str) -> float:
    return next(s["point"] for s in record["validation"]["segments"] if (s["segment"], s["value"]) == (segment, value))


# ---------------------------------------------------------------------------------------------------------------------
# The check


def test_inverted_labels_fail_the_champion_sanity_overall():
    record = _validation_record()
    frame, y, champion, rows = _new_span(invert="all")
    then = _validation_point(record, "overall", "all")
    now = _auc(y, champion)
    assert then > 0.8 and now < 0.2  # the premise, computed by hand

    blessing = gates.judge(rows, GATE, _known(record))
    # The problem this check exists for: against the collapsed champion, the candidate looks far better.
    assert all(c["passed"] for c in blessing["checks"] if c["check"] == "non_inferiority")
    assert not blessing["blessed"]
    assert blessing["failed"][0]["check"] == "champion_sanity"  # listed first: it explains the rest
    assert _failed(blessing) == {("overall", "all")} | {("region", r) for r in REGIONS}
    check = _sanity(blessing)[("overall", "all")]
    low, high = rows[0]["champion_intervals"]["roc_auc"]
    assert check["observed"] == high and high < then - DROP
    recorded_low, recorded_high = record["validation"]["segments"][0]["interval"]
    assert check["limit"] == pytest.approx(recorded_low - DROP)
    assert check["detail"] == (
        f"roc_auc of the champion v3 on this span {now:.4g} [{low:.4g}, {high:.4g}], at its validation {then:.4g} "
        f"[{recorded_low:.4g}, {recorded_high:.4g}]: collapsed by {then - now:.4g} and worse than chance (upper "
        "bound below 0.5) (labels broken or the concept reversed?); to accept deliberately set "
        "gates.segments.accept_label_change: true or run with --accept-label-change"
    )
    assert check["overridden"] is False and blessing["overrides"] == []


def test_labels_inverted_in_one_segment_value_fail_that_value_and_name_it():
    record = _validation_record()
    frame, y, champion, rows = _new_span(invert="west")
    region = frame["region"].to_numpy()
    drops = {("overall", "all"): _validation_point(record, "overall", "all") - _auc(y, champion)}
    for r in REGIONS:
        drops[("region", r)] = _validation_point(record, "region", r) - _auc(y[region == r], champion[region == r])
    # By hand: west collapses (about 0.87 to 0.13); elsewhere, and overall (west is a tenth of the rows), it holds.
    assert drops[("region", "west")] > 0.5
    assert all(d < 0.1 for key, d in drops.items() if key != ("region", "west"))

    blessing = gates.judge(rows, GATE, _known(record))
    assert not blessing["blessed"]
    assert _failed(blessing) == {("region", "west")}
    assert len(_sanity(blessing)) == 5  # overall and every region were checked
    assert "roc_auc of the champion v3 on this span" in blessing["failed"][0]["detail"]
    report = gates.markdown(blessing, rows)
    assert "| champion_sanity | region | west | roc_auc |" in report and "## Champion sanity" in report


def test_a_healthy_champion_and_a_better_candidate_are_blessed():
    record = _validation_record()
    frame, y, champion, rows = _new_span(invert=None)
    assert _auc(y, _scores(y, 12, CANDIDATE_SIGNAL)) > _auc(y, champion) + 0.03  # the candidate is better, by hand
    blessing = gates.judge(rows, GATE, _known(record))
    assert blessing["blessed"], blessing["failed"]
    sanity = _sanity(blessing)
    assert set(sanity) == {("overall", "all")} | {("region", r) for r in REGIONS}
    assert all(c["passed"] and not c["overridden"] and "upper bound" in c["detail"] for c in sanity.values())
    assert any(c["check"] == "non_inferiority" for c in blessing["checks"])
    assert blessing["overrides"] == [] and "sanity_note" not in blessing


def test_accept_label_change_blesses_and_records_the_override():
    record = _validation_record()
    _, _, _, rows = _new_span(invert="all")
    blessing = gates.judge(rows, {**GATE, "accept_label_change": True}, _known(record))
    assert blessing["blessed"] and blessing["overrides"] == ["champion_sanity"]
    overall = _sanity(blessing)[("overall", "all")]
    assert overall["passed"] and overall["overridden"]
    assert "collapsed by" in overall["detail"] and "accepted deliberately" in overall["detail"]
    assert "overridden deliberately: champion_sanity" in gates.markdown(blessing, rows)
    assert "overridden deliberately: champion_sanity" in gates.html(blessing, rows)


def test_no_record_of_the_champion_is_a_note_not_a_failure():
    _, _, _, rows = _new_span(invert="all")
    blessing = gates.judge(rows, GATE, {"version": "3", "validation": None, "note": "no validation record at x"})
    assert blessing["blessed"]  # nothing stopped it: the check could not be made, and the note says so
    assert not _sanity(blessing) and blessing["sanity_note"] == "no validation record at x"
    assert "champion sanity not checked: no validation record at x" in gates.markdown(blessing, rows)


def test_sanity_settings_are_checked():
    _, _, _, rows = _new_span(invert=None)
    with pytest.raises(ValueError, match="sanity_metric"):
        gates.judge(rows, {**GATE, "sanity_metric": "log_loss"})
    with pytest.raises(ValueError, match="max_champion_drop"):
        gates.judge(rows, {**GATE, "max_champion_drop": 2})


# ---------------------------------------------------------------------------------------------------------------------
# Through the executor and the entry program, with the registry's folder layout


def _settings(**segment_gates):
    raw = json.loads(config.load(ROOT / "ctloop.yaml", environ={}).json())
    raw["data"].update(label="y", timestamp=None, id_column=None)
    raw["features"] = [{"name": "x", "type": "numeric"}, {"name": "region", "type": "categorical"}]
    raw["segments"] = SEGMENTS
    raw["model"]["policy"].update(threshold=0.5, rules=[])
    raw["gates"]["segments"].update(
        min_rows=200, floors={"roc_auc": 0.6}, ceilings={}, max_degradation={"roc_auc": 0.05}, bootstrap=RESAMPLES,
        fairness={"protected": []}, **segment_gates,
    )  # fmt: skip
    return config.parse(raw, environ={})


def _labelled(n: int, seed: int, invert: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = (x + rng.normal(scale=0.7, size=n) > 0).astype(int)
    return pd.DataFrame({"x": x, "region": rng.choice(REGIONS, size=n), "y": 1 - y if invert else y})


def _write_model(folder: Path, settings, frame: pd.DataFrame) -> None:
    spec = model_format.feature_spec(settings, {"region": REGIONS})
    data = xgb.DMatrix(model_format.encode(frame, spec), label=frame["y"], enable_categorical=True)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 2, "seed": 0}, data, 20)
    model_format.write(str(folder), booster, spec, model_format.policy_document(settings), {})


class FolderRegistry:
    """A stand-in for contracts.registry.Registry: version 3 is champion, and its source is a folder laid out as a
    run's artifacts (<root>/model, <root>/validation/blessing.json)."""

    name = "credit-risk"

    def __init__(self, source: str):
        self.source = source

    def champion(self) -> str:
        return "3"

    def download_uri(self, version: str) -> str:
        assert version == "3"
        return self.source


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Champion v3 registered with its blessing; a new span whose labels came inverted, with a candidate trained
    on it."""
    tmp = tmp_path_factory.mktemp("sanity")
    settings = _settings()
    run_root = tmp / "mlruns" / "1" / "run-3" / "artifacts"
    _write_model(run_root / "model", settings, _labelled(4000, 1, invert=False))
    _labelled(3000, 2, invert=False).to_parquet(tmp / "old_test.parquet", index=False)
    judged = executor.run(
        str(tmp / "old_test.parquet"), str(run_root / "model"), settings, executor.Champion(None, None, "first")
    )
    assert judged.blessed, judged.blessing["failed"]
    (run_root / "validation").mkdir()
    (run_root / "validation" / "blessing.json").write_bytes(judged.outputs()["blessing"])
    _write_model(tmp / "candidate", settings, _labelled(4000, 3, invert=True))
    _labelled(3000, 4, invert=True).to_parquet(tmp / "new_test.parquet", index=False)
    return {"tmp": tmp, "run_root": run_root, "settings": settings, "blessing": judged.blessing}


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_validation_record_round_trips_through_champion_from_registry_with_a_fake_registry(world, as_uri):
    model = world["run_root"] / "model"
    champion = executor.champion_from_registry(FolderRegistry(model.as_uri() if as_uri else str(model)))
    assert champion.version == "3" and champion.validation_note == ""
    written = json.loads((world["run_root"] / "validation" / "blessing.json").read_text())
    assert champion.validation == written["validation"]
    assert {(s["segment"], s["value"]) for s in champion.validation["segments"]} == {("overall", "all")} | {
        ("region", r) for r in REGIONS
    }

    result = executor.run(
        str(world["tmp"] / "new_test.parquet"), str(world["tmp"] / "candidate"), world["settings"], champion
    )
    assert not result.blessed and result.blessing["champion_version"] == "3"
    assert ("overall", "all") in _failed(result.blessing)
    # the blessing written for register carries its own record, for when this candidate is the champion
    written_now = json.loads(result.outputs()["blessing"])
    assert written_now["validation"]["metric"] == "roc_auc" and len(written_now["validation"]["segments"]) == 5


def test_a_champion_without_a_blessing_beside_it_is_a_note(world, tmp_path):
    bare = tmp_path / "run" / "artifacts" / "model"
    shutil.copytree(world["run_root"] / "model", bare)
    champion = executor.champion_from_registry(FolderRegistry(str(bare)))
    assert champion.validation is None and "no validation record of the champion at" in champion.validation_note
    result = executor.run(
        str(world["tmp"] / "new_test.parquet"), str(world["tmp"] / "candidate"), world["settings"], champion
    )
    assert not _sanity(result.blessing) and result.blessing["sanity_note"] == champion.validation_note

    old = {key: value for key, value in world["blessing"].items() if key != "validation"}
    (bare.parent / "validation").mkdir()
    (bare.parent / "validation" / "blessing.json").write_text(json.dumps(executor._strict(old)))
    champion = executor.champion_from_registry(FolderRegistry(str(bare)))
    assert champion.validation is None and "predates validation records" in champion.validation_note


def _main(world, tmp_path, *extra) -> tuple[int, dict]:
    config_file = tmp_path / "ctloop.json"
    config_file.write_text(world["settings"].json())
    code = entry_program.main([
        "--test-split", str(world["tmp"] / "new_test.parquet"), "--model", str(world["tmp"] / "candidate"),
        "--config", str(config_file), "--champion-model", str(world["run_root"] / "model"),
        "--blessing-out", str(tmp_path / "blessing.json"), *extra,
    ])  # fmt: skip
    return code, json.loads((tmp_path / "blessing.json").read_text())


def test_the_entry_program_names_the_failed_check_and_segment(world, tmp_path, capsys):
    code, blessing = _main(world, tmp_path)
    assert code == 0 and not blessing["blessed"]  # judged: the pipeline branches on `blessed`
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("validate_segments: not blessed (")
    assert "first: champion_sanity overall=all roc_auc: roc_auc of the champion" in last
    assert "--accept-label-change" in last


def test_the_entry_program_accepts_a_label_change_on_request(world, tmp_path, capsys):
    code, blessing = _main(world, tmp_path, "--accept-label-change")
    assert code == 0 and blessing["blessed"] and blessing["overrides"] == ["champion_sanity"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "validate_segments: blessed (overridden deliberately: champion_sanity)"


def test_a_weak_champion_worse_than_chance_fails_though_its_drop_is_within_the_margin():
    """AUC about 0.64 then: all labels inverted bring it to about 0.36, a gap the margin alone would let through."""
    weak = 0.25
    frame, y = _span(6000, 0)
    then = gates.judge(evaluate(frame, y, _scores(y, 1, weak), 0.5, SEGMENTS, resamples=RESAMPLES, seed=0), GATE)
    frame, truth = _span(6000, 10)
    delivered = 1 - truth
    champion = _scores(truth, 11, weak)
    rows = evaluate(frame, delivered, _scores(delivered, 12, CANDIDATE_SIGNAL), 0.5, SEGMENTS,
                    champion_score=champion, resamples=RESAMPLES, seed=0)  # fmt: skip
    check = _sanity(gates.judge(rows, GATE, _known(then)))[("overall", "all")]
    assert _auc(delivered, champion) < 0.4 < 0.6 < _validation_point(then, "overall", "all")  # the premise
    assert check["observed"] >= check["limit"]  # within the margin...
    assert not check["passed"] and "worse than chance (upper bound below 0.5)" in check["detail"]  # ...yet stopped
