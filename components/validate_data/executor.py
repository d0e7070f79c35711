"""validate_data's work as a plain function: statistics, schema, anomalies, drift and skew with TFDV.

No kfp here: the entry program (``__main__``) and the tests call ``run`` and ``write_outputs`` directly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import tensorflow_data_validation as tfdv
from google.protobuf import json_format, text_format
from google.protobuf.message import DecodeError
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from ctloop import artifacts, datasets
from ctloop.components.validate_data import report, spec
from ctloop.config import Settings
from ctloop.contracts.span import Fingerprint
from ctloop.contracts.verdicts import DataVerdict
from ctloop.errors import BadInputError

TRAINING, SERVING = "TRAINING", "SERVING"


@dataclass
class Request:
    data_uri: str
    settings: Settings
    pinned_schema: str | None = None  # URI of a text Schema
    previous_statistics: str | None = None  # URI of binary statistics of the previous span
    serving_statistics: str | None = None  # URI of binary statistics of logged serving data
    reference_uri: str | None = None  # the previous span's data: its statistics serve as previous_statistics
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


def statistics_of(ds: datasets.Dataset, settings: Settings, beam_args: list[str] | None):
    if ds.frame.columns.duplicated().any():
        raise BadInputError(f"{ds.uri}: duplicate column names")
    columns = columns_to_describe(list(ds.frame.columns), settings)
    if settings.data.label not in ds.frame.columns:
        raise BadInputError(f"{ds.uri}: the label column {settings.data.label!r} (data.label) is missing")
    options = tfdv.StatsOptions(feature_allowlist=columns, label_feature=settings.data.label)
    if beam_args is None:
        return tfdv.generate_statistics_from_dataframe(ds.frame[columns], stats_options=options)
    from ctloop.components.validate_data import beam_stats

    return beam_stats.generate(ds, options, beam_args)


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


# ---------------------------------------------------------------------------------------------------------------
# Anomalies


def problems_of(anomalies: anomalies_pb2.Anomalies) -> list[Problem]:
    severity = anomalies_pb2.AnomalyInfo.Severity.Name
    out = []
    for name, info in sorted(anomalies.anomaly_info.items()):
        reasons = info.reason or [None]
        for reason in reasons:
            kind = anomalies_pb2.AnomalyInfo.Type.Name(reason.type) if reason else "UNKNOWN"
            text = (reason.description if reason else "") or info.description
            out.append(Problem(name, kind, severity(info.severity), text.strip()))
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        for reason in info.reason:
            kind = anomalies_pb2.AnomalyInfo.Type.Name(reason.type)
            out.append(Problem("(dataset)", kind, severity(info.severity), reason.description.strip()))
    return out


def run(request: Request) -> Result:
    """Validate one span. Raises BadInputError when the input cannot be validated at all."""
    settings = request.settings
    ds = datasets.read(request.data_uri, settings.data.format)
    stats = statistics_of(ds, settings, request.beam_args)
    notes: list[str] = []

    previous = load_statistics(request.previous_statistics) if request.previous_statistics else None
    if request.reference_uri:
        if previous is not None:
            raise BadInputError("give previous statistics or a reference span, not both")
        reference = datasets.read(request.reference_uri, settings.data.format)
        previous = statistics_of(reference, settings, request.beam_args)
    serving = load_statistics(request.serving_statistics) if request.serving_statistics else None

    if request.pinned_schema:
        schema, source = load_schema(request.pinned_schema), f"pinned ({request.pinned_schema})"
    elif request.reference_uri:
        schema, source = curate(tfdv.infer_schema(previous), settings), "inferred from the reference span, curated"
    else:
        schema, source = curate(tfdv.infer_schema(stats), settings), "inferred from this span, curated"
        notes.append("No pinned schema: the schema was inferred from this span; review it and pin it.")

    anomalies = tfdv.validate_statistics(
        stats, schema, environment=TRAINING, previous_statistics=previous, serving_statistics=serving
    )
    comparisons = {
        "drift": "measured against the previous span" if previous is not None else "not measured: no previous span",
        "skew": "measured against serving data" if serving is not None else "not measured: no serving statistics",
    }
    return Result(
        stats, schema, source, anomalies, problems_of(anomalies), ds.fingerprint, comparisons, previous, notes
    )


def write_outputs(result: Result, paths: dict[str, str]) -> None:
    """Write the outputs named in ``paths`` (output name -> URI); each write replaces its target whole."""
    unknown = set(paths) - set(spec.OUTPUT_FILES)
    if unknown:
        raise BadInputError(f"unknown outputs: {sorted(unknown)}")
    serialised = result.outputs()
    for name, uri in paths.items():
        artifacts.write_bytes(uri, serialised[name])
