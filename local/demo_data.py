"""Seeded, deterministic demo data: credit-risk style spans with known drift, for demos and tests.

A span is ``rows`` loan applications dated over ``days`` days from ``start``, with numeric and categorical
features, the segment columns region, age_band and product, and a binary label ``default`` drawn from a
fixed logistic model over a few features, so a model trained on a span can learn it (ROC AUC around 0.8).

``drift`` injects one known change, which the span's manifest names so a test can check it is found:

    covariate      income falls, utilization rises and the region mix moves; P(default | features) is unchanged
    concept        the label model's coefficients change; the features are exactly those of the no-drift span
    new-category   channel gets a level ("marketplace") never seen without drift, in about 15% of rows

The same seed and arguments give the same frame, byte-identical files and the same manifest. Every random
draw comes from one of two streams (features, label) in a fixed order whatever the drift, and drift is applied
as a transform of those draws; so a drifted span differs from the no-drift span of the same seed only where
its manifest says.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ctloop import artifacts
from ctloop.errors import BadInputError

__all__ = ["DRIFT_KINDS", "FORMATS", "generate", "write_span"]

DRIFT_KINDS = ("covariate", "concept", "new-category")
FORMATS = ("csv", "parquet")
MIN_ROWS, MAX_ROWS = 1_000, 1_000_000
# A fixed default keeps output independent of the day it is generated on.
DEFAULT_START = datetime.date(2024, 1, 1)
LABEL = "default"

REGIONS = ("north", "south", "east", "west", "central")
PRODUCTS = ("personal", "auto", "mortgage", "card")
EMPLOYMENTS = ("salaried", "self_employed", "unemployed", "retired", "student")
HOME_OWNERSHIPS = ("own", "rent", "mortgage")
CHANNELS = ("branch", "online", "broker")
AGE_BANDS = ("18-25", "26-35", "36-50", "51-64", "65+")
AGE_BAND_EDGES = (26, 36, 51, 65)  # first age of every band after the first
LOAN_TERMS = (12, 24, 36, 60)

NUMERIC = (
    "age",
    "income",
    "loan_amount",
    "loan_term_months",
    "debt_to_income",
    "credit_history_months",
    "num_open_accounts",
    "num_delinquencies",
    "utilization",
)
CATEGORICAL = ("region", "product", "employment", "home_ownership", "channel")
SEGMENTS = ("region", "age_band", "product")
COLUMNS = ("application_id", "event_date", *NUMERIC, *CATEGORICAL, "age_band", LABEL)

REGION_MIX = (0.2, 0.2, 0.2, 0.2, 0.2)
PRODUCT_MIX = (0.35, 0.25, 0.15, 0.25)
HOME_MIX = (0.35, 0.40, 0.25)
CHANNEL_MIX = (0.30, 0.55, 0.15)
# Employment depends on age (students young, retirees old): one mix per age group below 25, 25-59, 60+.
EMPLOYMENT_MIX = (
    (0.55, 0.05, 0.10, 0.00, 0.30),
    (0.73, 0.15, 0.08, 0.00, 0.04),
    (0.40, 0.15, 0.05, 0.40, 0.00),
)
EMPLOYMENT_INCOME = (
    1.0,
    1.1,
    0.45,
    0.7,
    0.35,
)  # income multiplier per employment level
# Per product: median loan amount, log-scale spread, and the mix of LOAN_TERMS.
PRODUCT_LOANS = (
    (12_000, 0.6, (0.30, 0.35, 0.25, 0.10)),
    (25_000, 0.4, (0.05, 0.20, 0.40, 0.35)),
    (220_000, 0.5, (0.00, 0.05, 0.15, 0.80)),
    (4_000, 0.7, (0.70, 0.20, 0.10, 0.00)),
)

# The label model: logit = intercept + sum(coef * (feature - center) / scale) + employment effect.
# Centers and scales are constants, not statistics of the span, so every span shares one function.
LABEL_TERMS = {
    "debt_to_income": (0.30, 0.15),
    "utilization": (0.40, 0.22),
    "num_delinquencies": (0.0, 1.0),
    "income": (10.9, 0.55),  # on log(income)
    "credit_history_months": (150.0, 110.0),
}
BASE_MODEL = {
    "intercept": -2.35,
    "coefficients": {
        "debt_to_income": 0.75,
        "utilization": 0.70,
        "num_delinquencies": 0.55,
        "income": -0.45,
        "credit_history_months": -0.35,
    },
    "employment": {
        "salaried": 0.0,
        "self_employed": 0.25,
        "unemployed": 0.9,
        "retired": 0.1,
        "student": 0.45,
    },
}
# Concept drift: utilization and debt-to-income stop mattering much, delinquencies matter far more, and higher
# income now goes with more defaults; the intercept moves so the base rate stays in the same range.
CONCEPT_MODEL = {
    "intercept": -2.30,
    "coefficients": {
        "debt_to_income": 0.10,
        "utilization": 0.05,
        "num_delinquencies": 1.10,
        "income": 0.55,
        "credit_history_months": -0.35,
    },
    "employment": BASE_MODEL["employment"],
}

COVARIATE_INCOME_FACTOR = 0.75
COVARIATE_UTILIZATION_LOGIT_SHIFT = 0.6
COVARIATE_REGION_MIX = (0.10, 0.10, 0.15, 0.15, 0.50)
NEW_CATEGORY_FEATURE = "channel"
NEW_CATEGORY_LEVEL = "marketplace"
NEW_CATEGORY_SHARE = 0.15


def generate(
    rows: int,
    seed: int,
    start: datetime.date | str | None = None,
    days: int = 30,
    drift: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """One span as a frame, and its manifest (``format``, ``file`` and ``sha256`` are left None).

    ``start`` is a date or an ISO date string (default 2024-01-01); ``end`` in the manifest is the last day,
    inclusive. ``features`` in the manifest lists the model inputs: not the id, date, label or age_band (which
    is derived from age and kept as a segment).
    """
    rows, seed, start, days, drift = _validate(rows, seed, start, days, drift)
    # SeedSequence.spawn, not Generator.spawn: the watch image pins a numpy older than 1.25.
    feature_rng, label_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    columns = _features(feature_rng, rows, drift)
    model = CONCEPT_MODEL if drift == "concept" else BASE_MODEL
    columns[LABEL] = _labels(label_rng, columns, model)
    frame = pd.DataFrame(
        {
            "application_id": _application_ids(seed, start, rows),
            "event_date": _event_dates(feature_rng, start, days, rows),
            **{name: columns[name] for name in (*NUMERIC, *CATEGORICAL, "age_band", LABEL)},
        }
    )
    manifest = {
        "generator": "ctloop.local.demo_data",
        "version": 1,
        "seed": seed,
        "rows": rows,
        "start": start.isoformat(),
        "end": (start + datetime.timedelta(days=days - 1)).isoformat(),
        "days": days,
        "format": None,
        "file": None,
        "id": "application_id",
        "date": "event_date",
        "label": LABEL,
        "features": [{"name": n, "type": "numeric"} for n in NUMERIC]
        + [{"name": n, "type": "categorical"} for n in CATEGORICAL],
        "segments": list(SEGMENTS),
        "drift": _drift_description(drift),
        "positive_rate": round(float(columns[LABEL].mean()), 6),
        "sha256": None,
    }
    return frame, manifest


def write_span(
    out: str,
    rows: int,
    seed: int,
    start: datetime.date | str | None = None,
    days: int = 30,
    drift: str | None = None,
    fmt: str = "parquet",
) -> dict:
    """Generate a span and write ``<out>/data.<fmt>`` and ``<out>/manifest.json``; returns the manifest.

    ``out`` is a folder path, file:// or s3:// URI. The data file is written first, so a manifest present
    always describes a complete data file.
    """
    if fmt not in FORMATS:
        raise BadInputError(f"fmt: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not isinstance(out, str) or not out:
        raise BadInputError(f"out: must be a non-empty path or URI, got {out!r}")
    frame, manifest = generate(rows, seed, start=start, days=days, drift=drift)
    data = _to_bytes(frame, fmt)
    file_name = f"data.{fmt}"
    manifest.update(format=fmt, file=file_name, sha256=hashlib.sha256(data).hexdigest())
    artifacts.write_bytes(artifacts.join(out, file_name), data)
    artifacts.write_bytes(artifacts.join(out, "manifest.json"), _manifest_bytes(manifest))
    return manifest


def _to_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """Serialise a span in memory; the same frame always gives the same bytes."""
    if fmt == "csv":
        # Floats are already rounded, and pandas writes the shortest repr that reads back to the same value.
        return frame.to_csv(index=False, lineterminator="\n", date_format="%Y-%m-%d").encode()
    buffer = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, buffer, compression="snappy")
    return buffer.getvalue()


def _manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2) + "\n").encode()


def _validate(rows, seed, start, days, drift) -> tuple[int, int, datetime.date, int, str | None]:
    # bool is an int to Python, but rows=True is a mistake, not one row.
    if not isinstance(rows, int | np.integer) or isinstance(rows, bool) or not MIN_ROWS <= rows <= MAX_ROWS:
        raise BadInputError(f"rows: must be between {MIN_ROWS} and {MAX_ROWS}, got {rows!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise BadInputError(f"seed: must be a non-negative integer, got {seed!r}")
    if start is None:
        start = DEFAULT_START
    elif isinstance(start, str):
        try:
            start = datetime.date.fromisoformat(start)
        except ValueError:
            raise BadInputError(f"start: must be an ISO date (YYYY-MM-DD), got {start!r}") from None
    elif isinstance(start, datetime.datetime):
        start = start.date()
    elif not isinstance(start, datetime.date):
        raise BadInputError(f"start: must be a date, got {start!r}")
    if not isinstance(days, int | np.integer) or isinstance(days, bool) or not 1 <= days <= 3660:
        raise BadInputError(f"days: must be between 1 and 3660, got {days!r}")
    if drift is not None and drift not in DRIFT_KINDS:
        raise BadInputError(f"drift: must be one of {', '.join(DRIFT_KINDS)} or None, got {drift!r}")
    return int(rows), int(seed), start, int(days), drift


def _choose(u: np.ndarray, mix) -> np.ndarray:
    """Level index for each uniform draw in ``u``: the same draws under another mix move only the rows they must."""
    edges = np.cumsum(mix)
    return np.minimum(np.searchsorted(edges / edges[-1], u, side="right"), len(edges) - 1)


def _features(rng: np.random.Generator, rows: int, drift: str | None) -> dict[str, np.ndarray]:
    # Every draw below happens whatever the drift, in the same order and size, so spans of one seed line up
    # row by row; drift only changes how draws are turned into values.
    age = 18 + np.floor(63 * rng.beta(2.0, 3.2, rows)).astype(np.int64)
    age_group = np.searchsorted((25, 60), age, side="right")
    employment_u = rng.random(rows)
    employment = np.empty(rows, dtype=np.int64)
    for group, mix in enumerate(EMPLOYMENT_MIX):  # three groups, not a loop over rows
        mask = age_group == group
        employment[mask] = _choose(employment_u[mask], mix)

    income = np.exp(rng.normal(np.log(52_000), 0.5, rows)) * np.take(EMPLOYMENT_INCOME, employment)
    if drift == "covariate":
        income = income * COVARIATE_INCOME_FACTOR
    income = np.round(income, 2)

    product = _choose(rng.random(rows), PRODUCT_MIX)
    medians, spreads, term_mixes = zip(*PRODUCT_LOANS, strict=True)
    loan_amount = np.exp(rng.normal(np.log(np.take(medians, product)), np.take(spreads, product)))
    loan_amount = (np.round(loan_amount, -1)).astype(np.int64)
    term_u = rng.random(rows)
    term_index = np.empty(rows, dtype=np.int64)
    for index, mix in enumerate(term_mixes):
        mask = product == index
        term_index[mask] = _choose(term_u[mask], mix)
    loan_term_months = np.take(LOAN_TERMS, term_index)

    debt_to_income = np.round(np.minimum(np.exp(rng.normal(np.log(0.27), 0.45, rows)), 2.0), 4)
    credit_history_months = np.floor((age - 18) * 12 * rng.beta(2.5, 1.5, rows)).astype(np.int64)
    num_open_accounts = rng.poisson(3.0, rows) + 1
    num_delinquencies = rng.poisson(0.35, rows)
    utilization_logit = rng.normal(-0.5, 1.1, rows)
    if drift == "covariate":
        utilization_logit = utilization_logit + COVARIATE_UTILIZATION_LOGIT_SHIFT
    utilization = np.round(1.0 / (1.0 + np.exp(-utilization_logit)), 4)

    region = _choose(rng.random(rows), COVARIATE_REGION_MIX if drift == "covariate" else REGION_MIX)
    home = _choose(rng.random(rows), HOME_MIX)
    channel = _choose(rng.random(rows), CHANNEL_MIX)
    channel_levels = CHANNELS
    new_u = rng.random(rows)
    if drift == "new-category":
        channel = np.where(new_u < NEW_CATEGORY_SHARE, len(CHANNELS), channel)
        channel_levels = (*CHANNELS, NEW_CATEGORY_LEVEL)

    return {
        "age": age,
        "income": income,
        "loan_amount": loan_amount,
        "loan_term_months": loan_term_months,
        "debt_to_income": debt_to_income,
        "credit_history_months": credit_history_months,
        "num_open_accounts": num_open_accounts,
        "num_delinquencies": num_delinquencies,
        "utilization": utilization,
        "region": _strings(REGIONS, region),
        "product": _strings(PRODUCTS, product),
        "employment": _strings(EMPLOYMENTS, employment),
        "home_ownership": _strings(HOME_OWNERSHIPS, home),
        "channel": _strings(channel_levels, channel),
        "age_band": _strings(AGE_BANDS, np.searchsorted(AGE_BAND_EDGES, age, side="right")),
        "_employment_code": employment,
    }


def _strings(levels, codes: np.ndarray):
    # Building the strings from codes once per level is far faster than a million Python objects.
    return pd.Categorical.from_codes(codes, categories=list(levels)).astype("str")


def _labels(rng: np.random.Generator, columns: dict, model: dict) -> np.ndarray:
    logit = np.full(len(columns["age"]), model["intercept"], dtype=np.float64)
    for name, coef in model["coefficients"].items():
        center, scale = LABEL_TERMS[name]
        values = np.log(columns[name]) if name == "income" else columns[name]
        logit += coef * (values - center) / scale
    effects = np.array([model["employment"][level] for level in EMPLOYMENTS])
    logit += effects[columns["_employment_code"]]
    probability = 1.0 / (1.0 + np.exp(-logit))
    return (rng.random(len(logit)) < probability).astype(np.int64)


def _application_ids(seed: int, start: datetime.date, rows: int):
    # Unique across spans that differ in seed or start, and stable for the same arguments.
    prefix = f"A{seed}-{start:%Y%m%d}-"
    return prefix + pd.Series(np.arange(rows)).astype("str").str.zfill(7)


def _event_dates(rng: np.random.Generator, start: datetime.date, days: int, rows: int) -> np.ndarray:
    # Rows are independent, so sorting the day offsets just lists the applications in date order.
    offsets = np.sort(rng.integers(0, days, rows))
    return (np.datetime64(start, "D") + offsets).astype("datetime64[ms]")


def _drift_description(drift: str | None) -> dict:
    if drift is None:
        return {"kind": None, "features": [], "details": {}}
    if drift == "covariate":
        return {
            "kind": "covariate",
            "features": ["income", "utilization", "region"],
            "details": {
                "income": {"multiplier": COVARIATE_INCOME_FACTOR},
                "utilization": {"log_odds_shift": COVARIATE_UTILIZATION_LOGIT_SHIFT},
                "region": {
                    "mix_before": dict(zip(REGIONS, REGION_MIX, strict=True)),
                    "mix_after": dict(zip(REGIONS, COVARIATE_REGION_MIX, strict=True)),
                },
                "label_model": "unchanged",
            },
        }
    if drift == "concept":
        before, after = BASE_MODEL["coefficients"], CONCEPT_MODEL["coefficients"]
        changed = [name for name in before if before[name] != after[name]]
        return {
            "kind": "concept",
            "features": changed,
            "details": {
                "coefficients": {name: {"before": before[name], "after": after[name]} for name in changed},
                "intercept": {
                    "before": BASE_MODEL["intercept"],
                    "after": CONCEPT_MODEL["intercept"],
                },
                "feature_distributions": "unchanged",
            },
        }
    return {
        "kind": "new-category",
        "features": [NEW_CATEGORY_FEATURE],
        "details": {
            "feature": NEW_CATEGORY_FEATURE,
            "new_level": NEW_CATEGORY_LEVEL,
            "share": NEW_CATEGORY_SHARE,
            "known_levels": list(CHANNELS),
            "label_model": "unchanged (the new level has no effect on default)",
        },
    }
