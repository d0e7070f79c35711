"""train's work as plain functions: encode, split, fit XGBoost with early stopping, measure, sample."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn import metrics as skm

from ctloop import artifacts, datasets, model_format, provenance
from ctloop.components.train import splits
from ctloop.contracts.span import Fingerprint
from ctloop.errors import BadInputError

# The early-stopping metric per task (XGBoost stops on the last one listed), and whether higher is better.
EVAL_METRICS = {
    "binary_classification": (["logloss", "auc"], True),
    "regression": (["rmse"], False),
    "multiclass": (["mlogloss"], False),
}


@dataclass
class Request:
    data_uri: str
    settings: object
    schema_json: str | None = None  # URI of validate_data's schema.json
    params: dict = field(default_factory=dict)  # one trial's overrides


@dataclass
class Result:
    model: model_format.Model
    metrics: dict[str, float]
    validation_metric: float  # higher is better whatever the task
    frame: pd.DataFrame
    parts: dict[str, np.ndarray]
    test_scores: np.ndarray
    reference: pd.DataFrame
    fingerprint: Fingerprint
    params: dict
    roc: dict | None = None
    confusion: dict | None = None


def available_cpus() -> int:
    """CPUs this process may really use: its affinity, capped by a cgroup quota (containers). XGBoost threads
    spin-wait, so asking for more threads than that slows training down many times over."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def schema_domains(uri: str | None) -> dict[str, list[str]]:
    """Categorical domains from validate_data's schema.json (TFDV's Schema as JSON)."""
    if not uri:
        return {}
    try:
        schema = json.loads(artifacts.read_bytes(uri))
    except json.JSONDecodeError as e:
        raise BadInputError(f"{uri}: not a JSON schema: {e}") from None
    return {f["name"]: list(f["stringDomain"]["value"]) for f in schema.get("feature", []) if "stringDomain" in f}


def categories(settings, train: pd.DataFrame, domains: dict[str, list[str]]) -> dict[str, list[str]]:
    """Fixed category lists: the config's domain, else the schema's, else what the training split holds."""
    out = {}
    for f in settings.features:
        if f.type != "categorical":
            continue
        listed = f.domain or domains.get(f.name)
        out[f.name] = list(listed) if listed else sorted(train[f.name].dropna().astype(str).unique().tolist())
    return out


def booster_params(settings, overrides: dict, num_class: int) -> dict:
    task = settings.data.task.value
    params = {
        "objective": settings.model.objective,
        "tree_method": "hist",
        "device": settings.model.device,
        "seed": settings.model.seed,
        "nthread": available_cpus(),
        "eval_metric": EVAL_METRICS[task][0],
        **settings.model.params,
        **overrides,
    }
    if task == "multiclass":
        params["num_class"] = num_class
    params["tree_method"] = "hist"  # categorical support and the device switch need it
    return params


def _binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (p >= threshold).astype(int)
    return {
        "roc_auc": skm.roc_auc_score(y, p),
        "pr_auc": skm.average_precision_score(y, p),
        "log_loss": skm.log_loss(y, p, labels=[0, 1]),
        "brier": skm.brier_score_loss(y, p),
        "accuracy": skm.accuracy_score(y, predicted),
        "precision": skm.precision_score(y, predicted, zero_division=0),
        "recall": skm.recall_score(y, predicted, zero_division=0),
        "f1": skm.f1_score(y, predicted, zero_division=0),
        "positive_rate": float(predicted.mean()),
    }


def test_metrics(task: str, y: np.ndarray, scores: np.ndarray, threshold: float, n_classes: int) -> dict[str, float]:
    if task == "binary_classification":
        return _binary_metrics(y, scores, threshold)
    if task == "regression":
        return {
            "rmse": float(np.sqrt(skm.mean_squared_error(y, scores))),
            "mae": skm.mean_absolute_error(y, scores),
            "r2": skm.r2_score(y, scores),
        }
    predicted = scores.argmax(axis=1)
    return {
        "log_loss": skm.log_loss(y, scores, labels=list(range(n_classes))),
        "accuracy": skm.accuracy_score(y, predicted),
        "macro_f1": skm.f1_score(y, predicted, average="macro"),
    }


def _roc_and_confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[dict, dict]:
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))  # the UI needs no more points
    thresholds = np.clip(thresholds[keep], 0.0, 1.0)  # the first threshold is +inf
    matrix = skm.confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1])
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "thresholds": thresholds.tolist()}, {
        "categories": ["0", "1"],
        "matrix": matrix.tolist(),
    }


def reference_sample(frame: pd.DataFrame, y: np.ndarray, scores: np.ndarray, rows: int, seed: int) -> pd.DataFrame:
    """Training rows for the drift watcher, stratified on the label, with the model's score for each."""
    rng = np.random.default_rng(seed)
    n = len(frame)
    take = min(rows, n)
    if take == n:
        chosen = np.arange(n)
    else:
        chosen = []
        for c in np.unique(y):
            members = np.flatnonzero(y == c)
            k = max(1, int(round(take * len(members) / n)))
            chosen.append(rng.choice(members, size=min(k, len(members)), replace=False))
        chosen = np.sort(np.concatenate(chosen))
    sample = frame.iloc[chosen].reset_index(drop=True)
    sample["score"] = scores[chosen] if scores.ndim == 1 else scores[chosen].max(axis=1)
    return sample


def score_distribution(scores: np.ndarray, task: str) -> dict:
    values = scores if scores.ndim == 1 else scores.max(axis=1)
    edges = np.linspace(0.0, 1.0, 21) if task != "regression" else np.histogram_bin_edges(values, bins=20)
    counts, edges = np.histogram(values, bins=edges)
    quantiles = {f"p{q}": float(np.quantile(values, q / 100)) for q in (1, 5, 10, 25, 50, 75, 90, 95, 99)}
    return {"n": int(len(values)), "edges": edges.tolist(), "counts": counts.tolist(), "quantiles": quantiles}


def train(request: Request) -> Result:
    settings = request.settings
    task = settings.data.task.value
    ds = datasets.read(request.data_uri, settings.data.format)
    frame = ds.frame
    missing = [f.name for f in settings.features if f.name not in frame.columns]
    if missing:
        raise BadInputError(f"{request.data_uri}: features missing from the data: {missing}")
    y, classes = splits.labels(frame, settings)
    parts = splits.split(frame, y, settings)
    spec = model_format.feature_spec(
        settings, categories(settings, frame.iloc[parts["train"]], schema_domains(request.schema_json))
    )
    if classes and task == "multiclass":
        spec["classes"] = [str(c) for c in classes]
    x = model_format.encode(frame, spec)

    def matrix(name: str) -> xgb.DMatrix:
        rows = parts[name]
        return xgb.DMatrix(x.iloc[rows], label=y[rows], enable_categorical=True)

    dtrain, dvalid, dtest = matrix("train"), matrix("validation"), matrix("test")
    params = booster_params(settings, request.params, len(classes))
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=settings.model.num_boost_round,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=settings.model.early_stopping_rounds,
        verbose_eval=False,
    )
    best = int(booster.best_iteration)
    iteration_range = (0, best + 1)
    test_scores = booster.predict(dtest, iteration_range=iteration_range)
    train_scores = booster.predict(matrix("train"), iteration_range=iteration_range)
    threshold = settings.model.policy.threshold
    metrics = test_metrics(task, y[parts["test"]], test_scores, threshold, len(classes))
    higher_is_better = EVAL_METRICS[task][1]
    validation_metric = float(booster.best_score) if higher_is_better else -float(booster.best_score)

    metadata = {
        "params": params,
        "best_iteration": best,
        "validation_metric": {"name": EVAL_METRICS[task][0][-1], "value": float(booster.best_score)},
        "rows": {k: int(len(v)) for k, v in parts.items()},
        "dataset": {"uri": request.data_uri, **dataclasses.asdict(ds.fingerprint)},
        "test_metrics": {k: float(v) for k, v in metrics.items()},
        "code_version": provenance.code_version(),
        "image_lock_sha256": provenance.image_lock_sha256(),
    }
    model = model_format.Model(booster, spec, model_format.policy_document(settings), metadata)
    roc = confusion = None
    if task == "binary_classification":
        roc, confusion = _roc_and_confusion(y[parts["test"]], test_scores, threshold)
    train_frame = frame.iloc[parts["train"]].reset_index(drop=True)
    reference = reference_sample(
        train_frame, y[parts["train"]], train_scores, settings.model.reference_rows, settings.model.seed
    )
    return Result(
        model, metrics, validation_metric, frame, parts, test_scores, reference, ds.fingerprint, params, roc, confusion
    )
