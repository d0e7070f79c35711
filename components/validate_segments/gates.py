"""From per-segment results (metrics.evaluate) to verdicts: one per check, a blessing, and reports for people.

Every check is listed whether it passed or not, so a blessing says what was judged, not only what failed. Nothing
passes by omission: a config with no gates, a protected segment that was not evaluated, or an "overall" segment
too small to judge all show up as explicit checks.
"""

from __future__ import annotations

import html as html_lib
import math

from ctloop.components.validate_segments.metrics import METRICS, OVERALL
from ctloop.contracts import verdicts

GATE_KEYS = {"min_rows", "floors", "ceilings", "max_degradation", "fairness", "allow_ungated"}
# Settings of the evaluation that share the gate's block in ctloop.yaml; judge() does not need them.
EVALUATION_KEYS = {"bootstrap", "resamples", "seed", "alpha", "threshold"}
FAIRNESS_KEYS = {"protected", "max_tpr_gap", "max_positive_rate_gap"}


# ---------------------------------------------------------------------------------------------------------------------
# Settings


def _limits(gate: dict, key: str) -> dict[str, float]:
    """A {metric: limit} block; a misspelt metric is an error, since a silently ignored gate would let anything pass."""
    block = gate.get(key) or {}
    unknown = sorted(set(block) - set(METRICS))
    if unknown:
        raise ValueError(f"gates.{key}: unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    return {metric: float(limit) for metric, limit in block.items() if limit is not None}


def _check_settings(gate: dict) -> None:
    unknown = sorted(set(gate) - GATE_KEYS - EVALUATION_KEYS)
    if unknown:
        raise ValueError(f"gates: unknown setting(s) {unknown}; known: {sorted(GATE_KEYS | EVALUATION_KEYS)}")
    fairness = gate.get("fairness") or {}
    unknown = sorted(set(fairness) - FAIRNESS_KEYS)
    if unknown:
        raise ValueError(f"gates.fairness: unknown setting(s) {unknown}; known: {sorted(FAIRNESS_KEYS)}")
    directionless = sorted(m for m in gate.get("max_degradation") or {} if METRICS.get(m) == "none")
    if directionless:
        raise ValueError(f"gates.max_degradation: {directionless} has no better direction to degrade in")


def _is_judged(row: dict, min_rows: int) -> bool:
    return row["status"] == "ok" and row["n"] >= min_rows


# ---------------------------------------------------------------------------------------------------------------------
# Checks


def _check(kind: str, row: dict | None, metric: str, passed: bool, observed: float, limit: float, detail: str) -> dict:
    segment, value = (row["segment"], row["value"]) if row else ("", "")
    return {
        "check": kind,
        "segment": segment,
        "value": value,
        "metric": metric,
        "passed": bool(passed),
        "observed": float(observed),
        "limit": float(limit),
        "detail": detail,
    }


def _bound_checks(rows: list[dict], limits: dict[str, float], kind: str) -> list[dict]:
    """Floors (point >= limit) or ceilings (point <= limit) on every judged segment value."""
    checks = []
    for row in rows:
        for metric, limit in limits.items():
            observed = row["metrics"][metric]
            if math.isnan(observed):
                checks.append(_check(kind, row, metric, False, observed, limit, "undefined"))
                continue
            passed = observed >= limit if kind == "floor" else observed <= limit
            sign = ">=" if kind == "floor" else "<="
            detail = (
                f"{metric} {observed:.4g} {sign} {limit:.4g}"
                if passed
                else f"{metric} {observed:.4g} not {sign} {limit:.4g}"
            )
            checks.append(_check(kind, row, metric, passed, observed, limit, detail))
    return checks


def _non_inferiority(row: dict, metric: str, margin: float) -> dict:
    """Judged on the paired bootstrap interval of candidate - champion, so noise cannot pass for a regression."""
    higher = METRICS[metric] == "higher"
    limit = -margin if higher else margin
    low, high = (row.get("diff_intervals") or {}).get(metric, (math.nan, math.nan))
    bound = low if higher else high
    if not math.isnan(bound):
        which = "lower" if higher else "upper"
        detail = f"{which} bound of the {metric} difference (candidate - champion) [{low:.4g}, {high:.4g}]"
    else:
        # resamples=0, or too few resamples defined the metric: the point difference is all there is.
        bound = row["metrics"][metric] - row["champion"][metric]
        detail = f"no interval; judged on the point difference of {metric} (candidate - champion)"
    if math.isnan(bound):
        return _check("non_inferiority", row, metric, False, bound, limit, "undefined")
    passed = bound >= limit if higher else bound <= limit
    return _check("non_inferiority", row, metric, passed, bound, limit, f"{detail}: {bound:.4g} vs {limit:.4g}")


def _non_inferiority_checks(rows: list[dict], margins: dict[str, float]) -> list[dict]:
    return [
        _non_inferiority(row, metric, margin)
        for row in rows
        if row.get("champion")
        for metric, margin in margins.items()
    ]


def _gap_check(kind: str, segment: str, values: list[dict], metric: str, limit: float) -> dict:
    """Largest minus smallest metric among the judged values of one protected segment."""
    defined = [(row["metrics"][metric], row["value"]) for row in values if not math.isnan(row["metrics"][metric])]
    anchor = {"segment": segment, "value": ""}
    if len(defined) < 2:
        detail = f"not judged: {len(defined)} value(s) of {segment} with enough data, a gap needs 2"
        return _check(kind, anchor, metric, True, math.nan, limit, detail)
    (low, low_value), (high, high_value) = min(defined), max(defined)
    gap = high - low
    anchor["value"] = f"{high_value} vs {low_value}"
    detail = f"{metric} {high:.4g} ({high_value}) - {low:.4g} ({low_value}) = {gap:.4g}, limit {limit:.4g}"
    return _check(kind, anchor, metric, gap <= limit, gap, limit, detail)


def _fairness_checks(rows: list[dict], all_rows: list[dict], fairness: dict) -> list[dict]:
    gaps = [
        ("fairness_tpr_gap", "recall", fairness.get("max_tpr_gap")),
        ("fairness_positive_rate_gap", "positive_rate", fairness.get("max_positive_rate_gap")),
    ]
    gaps = [(kind, metric, float(limit)) for kind, metric, limit in gaps if limit is not None]
    evaluated = {row["segment"] for row in all_rows}
    checks = []
    for segment in fairness.get("protected") or []:
        for kind, metric, limit in gaps:
            if segment not in evaluated:
                # A protected attribute nobody evaluated is a config error, not a fair model.
                anchor = {"segment": segment, "value": ""}
                checks.append(_check(kind, anchor, metric, False, math.nan, limit, "segment was not evaluated"))
                continue
            values = [row for row in rows if row["segment"] == segment]
            checks.append(_gap_check(kind, segment, values, metric, limit))
    return checks


def _coverage_check(all_rows: list[dict], min_rows: int) -> dict:
    overall = next((row for row in all_rows if (row["segment"], row["value"]) == OVERALL), None)
    if overall is None:
        anchor = {"segment": OVERALL[0], "value": OVERALL[1]}
        return _check("coverage", anchor, "n", False, math.nan, min_rows, "no overall segment in the results")
    passed = _is_judged(overall, min_rows)
    detail = (
        f"{overall['n']} rows, {overall['positives']} positive"
        if passed
        else f"overall is {overall['status']} ({overall['n']} rows, {overall['positives']} positive): nothing to judge"
    )
    return _check("coverage", overall, "n", passed, overall["n"], min_rows, detail)


def judge(rows: list[dict], gate: dict) -> dict:
    """The blessing: every check with its verdict, the failed ones, the segment values too small to judge.

    A segment value is judged when evaluate() gave it status "ok" and it has at least ``gate["min_rows"]`` rows
    (which defaults to 0, i.e. evaluate()'s own min_rows decides).
    """
    gate = gate or {}
    _check_settings(gate)
    min_rows = int(gate.get("min_rows") or 0)
    floors, ceilings = _limits(gate, "floors"), _limits(gate, "ceilings")
    margins = _limits(gate, "max_degradation")
    fairness = gate.get("fairness") or {}
    judged = [row for row in rows if _is_judged(row, min_rows)]
    champion = any(row.get("champion") for row in rows)

    checks = [_coverage_check(rows, min_rows)]
    gated = [
        *_bound_checks(judged, floors, "floor"),
        *_bound_checks(judged, ceilings, "ceiling"),
        *(_non_inferiority_checks(judged, margins) if champion else []),
        *_fairness_checks(judged, rows, fairness),
    ]
    checks += gated
    if not gated and checks[0]["passed"]:  # (a failed coverage check already says that nothing could be judged)
        configured = floors or ceilings or margins or fairness.get("protected")
        detail = "no gates configured" if not configured else "gates configured but none applied (no champion?)"
        checks.append(verdicts.no_gates_check(detail, allowed=bool(gate.get("allow_ungated"))))
    insufficient = [
        {"segment": r["segment"], "value": r["value"], "n": r["n"]} for r in rows if not _is_judged(r, min_rows)
    ]
    return verdicts.blessing(checks, insufficient, champion)


# ---------------------------------------------------------------------------------------------------------------------
# Reports


def _num(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _interval(pair) -> str:
    if not pair or any(math.isnan(v) for v in pair):
        return ""
    return f"[{pair[0]:.4g}, {pair[1]:.4g}]"


def _segment_cells(row: dict) -> list[str]:
    """n, positives, status, AUC with interval, champion AUC, AUC difference interval: text for either report."""
    auc = _num(row["metrics"]["roc_auc"])
    auc_interval = _interval((row.get("intervals") or {}).get("roc_auc"))
    champion = row.get("champion")
    diff_interval = _interval((row.get("diff_intervals") or {}).get("roc_auc"))
    return [
        str(row["n"]),
        str(row["positives"]),
        row["status"],
        f"{auc} {auc_interval}".strip(),
        _num(champion["roc_auc"]) if champion else "",
        diff_interval,
    ]


SEGMENT_HEADER = ["segment", "value", "n", "positives", "status", "AUC (95% CI)", "champion AUC", "AUC diff (95% CI)"]
CHECK_HEADER = ["check", "segment", "value", "metric", "observed", "limit", "detail"]


def _check_cells(check: dict) -> list[str]:
    return [
        check["check"],
        check["segment"],
        check["value"],
        check["metric"],
        _num(check["observed"]),
        _num(check["limit"]),
        check["detail"],
    ]


def _verdict(blessing: dict) -> str:
    if blessing["blessed"]:
        return f"BLESSED ({len(blessing['checks'])} checks passed)"
    return f"NOT BLESSED: {len(blessing['failed'])} of {len(blessing['checks'])} checks failed"


def markdown(blessing: dict, rows: list[dict]) -> str:
    def table(header: list[str], body: list[list[str]]) -> list[str]:
        cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        return lines + ["| " + " | ".join(cell(c) for c in cells) + " |" for cells in body]

    champion = "compared with the champion" if blessing["champion"] else "no champion to compare with"
    lines = [f"# Model validation: {_verdict(blessing)}", "", f"- {champion}"]
    lines += [f"- insufficient data: {len(blessing['insufficient'])} segment value(s)", "", "## Failed checks", ""]
    lines += table(CHECK_HEADER, [_check_cells(c) for c in blessing["failed"]]) if blessing["failed"] else ["None."]
    lines += ["", "## Segments", ""]
    lines += table(SEGMENT_HEADER, [[r["segment"], r["value"], *_segment_cells(r)] for r in rows])
    return "\n".join(lines) + "\n"


def _html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html_lib.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html_lib.escape(str(c))}</td>" for c in cells) + "</tr>" for cells in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
    ".blessed{color:#060}.rejected{color:#a00}"
)


def html(blessing: dict, rows: list[dict]) -> str:
    verdict_class = "blessed" if blessing["blessed"] else "rejected"
    failed = (
        _html_table(CHECK_HEADER, [_check_cells(c) for c in blessing["failed"]])
        if blessing["failed"]
        else "<p>None.</p>"
    )
    segments = _html_table(SEGMENT_HEADER, [[r["segment"], r["value"], *_segment_cells(r)] for r in rows])
    champion = "compared with the champion" if blessing["champion"] else "no champion to compare with"
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Model validation</title>'
        f"<style>{_STYLE}</style></head><body>"
        f'<h1 class="{verdict_class}">{html_lib.escape(_verdict(blessing))}</h1>'
        f"<p>{html_lib.escape(champion)}; insufficient data: {len(blessing['insufficient'])} segment value(s)</p>"
        f"<h2>Failed checks</h2>{failed}<h2>Segments</h2>{segments}</body></html>\n"
    )
