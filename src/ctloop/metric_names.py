"""Every Prometheus metric ctloop exports, in one list: the services build their metrics from it, and the alert
rules, dashboards and rollout checks are tested against it, so a renamed metric breaks a test, not a dashboard.

Labels with a closed set of values declare them (``values``), taken from the code that emits them where that code
is a contract (the rollout's phases and outcomes, the CloudEvent kinds, the predictor names, the retrain request's
outcomes): the alert rules may only select declared values, and the services' tests check with ``undeclared``
that they emit nothing else.

Plain data (no prometheus-client import): the core installs into every image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ctloop.contracts import cloudevents, retrain, rollout, seldon

__all__ = ["METRICS", "Metric", "build", "metric", "series_names", "undeclared"]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # counter, gauge or histogram
    help: str
    labels: tuple[str, ...] = ()
    exporter: str = ""  # which service exports it
    buckets: tuple[float, ...] = ()
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)  # label -> every value it takes

    def series(self) -> list[str]:
        """The names that appear in Prometheus: counters get _total, histograms _bucket, _sum and _count."""
        if self.kind == "counter":
            return [self.name if self.name.endswith("_total") else f"{self.name}_total"]
        if self.kind == "histogram":
            return [f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"]
        return [self.name]


SELDON_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # Seldon's executor buckets
SCORE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
_SELDON = ("deployment_name", "predictor_name", "predictor_version", "service", "method", "code")
# Per predictor, as the watcher sees the request logger's events (Ce-Inferenceservicename, Ce-Endpoint) and the
# model version the response carries in meta.tags.
_PREDICTOR = ("deployment", "predictor", "model_version")

_BOOL = ("true", "false")
_SERVICES = ("predictions", "feedback")  # the Seldon endpoint (the last segment of its path)
_SELDON_VALUES = {"predictor_name": seldon.PREDICTORS, "service": _SERVICES, "method": _SERVICES}
_PREDICTOR_VALUES = {"predictor": seldon.PREDICTORS}
_OUTCOME = ("correct", "incorrect")

METRICS: tuple[Metric, ...] = (
    # Seldon's executor (the local gateway exports the same names and labels as Seldon does in the cluster).
    Metric(
        "seldon_api_executor_server_requests_seconds",
        "histogram",
        "Request time through the executor",
        _SELDON,
        "gateway",
        SELDON_BUCKETS,
        values=_SELDON_VALUES,
    ),
    Metric(
        "seldon_api_executor_client_requests_seconds",
        "histogram",
        "Request time from the executor to the model server",
        (*_SELDON, "model_name", "model_image", "model_version"),
        "gateway",
        SELDON_BUCKETS,
        values=_SELDON_VALUES,
    ),
    # Drift watcher: ingestion.
    Metric(
        "ctloop_watcher_events_total",
        "counter",
        "CloudEvents ingested, by type",
        ("type",),
        "drift_watcher",
        values={"type": tuple(cloudevents.KINDS.values())},
    ),
    Metric(
        "ctloop_watcher_duplicate_events_total",
        "counter",
        "CloudEvents dropped as already seen (same Ce-Id)",
        (),
        "drift_watcher",
    ),
    Metric(
        "ctloop_watcher_rejected_events_total",
        "counter",
        "CloudEvents refused, by reason",
        ("reason",),
        "drift_watcher",
        values={"reason": ("unauthorized", "too_large", "invalid", "feedback_unmatched", "feedback_repeated")},
    ),
    Metric(
        "ctloop_watcher_unreplayable_records_total",
        "counter",
        "Journal records that could not be read or applied, set aside (unreplayable.jsonl) so the watcher goes on",
        ("kind",),
        "drift_watcher",
        values={
            "kind": (
                "request",
                "response",
                "feedback",
                "close",
                "verdict",
                "reference",
                "frozen",
                "awaiting_labels",
                "trigger_ack",
                "unknown",
            )
        },
    ),
    Metric(
        "ctloop_watcher_ingestion_lag_seconds",
        "gauge",
        "Age of the newest ingested event when it arrived (Ce-Time to receipt)",
        (),
        "drift_watcher",
    ),
    Metric("ctloop_watcher_buffered_rows", "gauge", "Rows held in memory, not yet persisted", (), "drift_watcher"),
    # Drift watcher: detection.
    Metric(
        "ctloop_watcher_windows_evaluated_total",
        "counter",
        "Windows evaluated, by detector and result",
        ("detector", "drift"),
        "drift_watcher",
        values={"detector": ("window", "sequential"), "drift": _BOOL},
    ),
    Metric(
        "ctloop_watcher_feature_p_value",
        "gauge",
        "p-value of the last window's test, per feature (score: the model's score)",
        ("feature", "test"),
        "drift_watcher",
    ),
    Metric(
        "ctloop_watcher_feature_distance",
        "gauge",
        "Distance of the last window from the reference, per feature",
        ("feature", "test"),
        "drift_watcher",
    ),
    Metric(
        "ctloop_watcher_drift",
        "gauge",
        "1 when the last window drifted, per detector",
        ("detector",),
        "drift_watcher",
        values={"detector": ("window", "sequential", "online_cvm", "online_fet")},
    ),
    Metric(
        "ctloop_watcher_drift_confirmed",
        "gauge",
        "1 while drift is confirmed (k of the last n windows)",
        (),
        "drift_watcher",
    ),
    Metric(
        "ctloop_watcher_triggers_total",
        "counter",
        "Retrain requests sent to the webhook, by outcome",
        ("outcome",),
        "drift_watcher",
        values={"outcome": retrain.OUTCOMES},
    ),
    Metric(
        "ctloop_watcher_freeze_failures_total",
        "counter",
        "Tries to freeze a trigger's retrain data that failed (the trigger stays pending and is tried again)",
        (),
        "drift_watcher",
    ),
    Metric(
        "ctloop_watcher_triggers_awaiting_labels",
        "gauge",
        "Triggers held because no labelled row has come in to retrain on (they go with the first feedback)",
        (),
        "drift_watcher",
    ),
    Metric(
        "ctloop_watcher_reference_version",
        "gauge",
        "Registry version of the champion whose reference sample is in use",
        (),
        "drift_watcher",
    ),
    # Drift watcher: live model quality per predictor, from the logged responses and feedback (see
    # ARCHITECTURE.md: Seldon's own feedback metrics cannot give this).
    Metric(
        "ctloop_watcher_scores",
        "histogram",
        "Scores answered, per predictor",
        _PREDICTOR,
        "drift_watcher",
        SCORE_BUCKETS,
        values=_PREDICTOR_VALUES,
    ),
    Metric(
        "ctloop_watcher_decisions_total",
        "counter",
        "Decisions answered, per predictor and decision",
        (*_PREDICTOR, "decision"),
        "drift_watcher",
        values=_PREDICTOR_VALUES,
    ),
    Metric(
        "ctloop_watcher_feedback_total",
        "counter",
        "Labelled requests (feedback joined to the answer by puid), per predictor and outcome (correct, incorrect)",
        (*_PREDICTOR, "outcome"),
        "drift_watcher",
        values={**_PREDICTOR_VALUES, "outcome": _OUTCOME},
    ),
    Metric(
        "ctloop_watcher_segment_feedback_total",
        "counter",
        "Labelled requests per single-column segment value and outcome",
        (*_PREDICTOR, "segment", "value", "outcome"),
        "drift_watcher",
        values={**_PREDICTOR_VALUES, "outcome": _OUTCOME},
    ),
    Metric(
        "ctloop_watcher_paired_feedback_total",
        "counter",
        "Labelled requests that main and another predictor both answered, by how the other did against main: "
        "better (it right, main wrong), worse (it wrong, main right) or same",
        (*_PREDICTOR, "vs_main"),
        "drift_watcher",
        values={**_PREDICTOR_VALUES, "vs_main": ("better", "same", "worse")},
    ),
    Metric(
        "ctloop_watcher_agreement_total",
        "counter",
        "Shadow answers compared with main's for the same request, by whether the decisions agree",
        (*_PREDICTOR, "agree"),
        "drift_watcher",
        values={**_PREDICTOR_VALUES, "agree": _BOOL},
    ),
    # Retrain webhook.
    Metric(
        "ctloop_webhook_requests_total",
        "counter",
        "Requests answered, by endpoint and status code",
        ("endpoint", "code"),
        "retrain_webhook",
        values={"endpoint": ("retrain", "alertmanager")},
    ),
    Metric(
        "ctloop_webhook_auth_failures_total",
        "counter",
        "Requests refused for authentication, by endpoint and reason",
        ("endpoint", "reason"),
        "retrain_webhook",
        values={
            "endpoint": ("retrain", "alertmanager"),
            "reason": ("missing", "malformed", "stale", "mismatch", "disabled"),
        },
    ),
    Metric(
        "ctloop_webhook_decisions_total",
        "counter",
        "Trigger decisions: accepted, duplicate, cooldown, ignored",
        ("decision",),
        "retrain_webhook",
        values={"decision": ("accepted", "duplicate", "cooldown", "ignored")},
    ),
    Metric("ctloop_webhook_queue_depth", "gauge", "Accepted triggers not yet launched", (), "retrain_webhook"),
    Metric(
        "ctloop_webhook_launches_total",
        "counter",
        "Pipeline launches, by outcome (started, retried, failed)",
        ("outcome",),
        "retrain_webhook",
        values={"outcome": ("started", "retried", "failed")},
    ),
    Metric(
        "ctloop_pipeline_runs_total",
        "counter",
        "Pipeline runs the webhook started that finished, by final state (succeeded, failed)",
        ("pipeline", "state"),
        "retrain_webhook",
        values={"state": ("succeeded", "failed")},
    ),
    # Rollout controller.
    Metric(
        "ctloop_rollout_phase",
        "gauge",
        "1 for the rollout's current phase",
        ("deployment", "phase"),
        "rollout_controller",
        values={"phase": tuple(p.value for p in rollout.Phase)},
    ),
    Metric(
        "ctloop_rollout_canary_weight",
        "gauge",
        "Traffic percentage of the canary predictor",
        ("deployment",),
        "rollout_controller",
    ),
    Metric(
        "ctloop_rollout_check_result",
        "gauge",
        "Last result per check: 1 passed, 0 failed, 0.5 undecided (method sequential), -1 no data",
        ("deployment", "check"),
        "rollout_controller",
    ),
    Metric(
        "ctloop_rollout_check_estimate",
        "gauge",
        "Method sequential, per check: how much worse the candidate is (estimate), its confidence sequence (lower, "
        "upper), the margin it is judged at and the candidate's sample size (samples)",
        ("deployment", "check", "stat"),
        "rollout_controller",
        values={"stat": ("estimate", "lower", "upper", "margin", "samples")},
    ),
    Metric(
        "ctloop_rollout_checks_total",
        "counter",
        "Check evaluations, by check and result (passed, failed, undecided, no_data)",
        ("deployment", "check", "result"),
        "rollout_controller",
        values={"result": ("passed", "failed", "undecided", "no_data")},
    ),
    Metric(
        "ctloop_rollout_outcomes_total",
        "counter",
        "Finished rollouts, by outcome (contracts.rollout.Outcome: promoted, rolled_back, failed, aborted, superseded)",
        ("deployment", "outcome"),
        "rollout_controller",
        values={"outcome": tuple(o.value for o in rollout.Outcome)},
    ),
)

_BY_NAME = {m.name: m for m in METRICS}


def metric(name: str) -> Metric:
    return _BY_NAME[name]


def series_names() -> set[str]:
    """Every series name a PromQL expression may use."""
    return {s for m in METRICS for s in m.series()}


def undeclared(registry) -> list[str]:
    """Samples in a prometheus-client registry whose labels take values their metric does not declare."""
    by_series = {s: m for m in METRICS for s in m.series()}
    found = []
    for family in registry.collect():
        for sample in family.samples:
            m = by_series.get(sample.name)
            if m is None:
                continue  # a _created timestamp, or a metric not ctloop's
            for label, allowed in m.values.items():
                if sample.labels.get(label) not in allowed:
                    found.append(f"{sample.name}{{{label}={sample.labels.get(label)!r}}}: declared {allowed}")
    return sorted(set(found))


def build(exporter: str, registry) -> dict[str, object]:
    """prometheus-client objects for every metric ``exporter`` exports, keyed by name (imported lazily: the
    serve image pins an old prometheus-client and never calls this)."""
    from prometheus_client import Counter, Gauge, Histogram

    out = {}
    for m in METRICS:
        if m.exporter != exporter:
            continue
        if m.kind == "histogram":
            out[m.name] = Histogram(m.name, m.help, m.labels, buckets=m.buckets, registry=registry)
        elif m.kind == "counter":
            out[m.name] = Counter(m.name, m.help, m.labels, registry=registry)
        else:
            out[m.name] = Gauge(m.name, m.help, m.labels, registry=registry)
    return out
