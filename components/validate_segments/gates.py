"""From per-segment results (metrics.evaluate) to verdicts: one per check, a blessing, and reports for people.

Every check is listed whether it passed or not, so a blessing says what was judged, not only what failed. Nothing
passes by omission: a config with no gates, a protected segment that was not evaluated, or an "overall" segment
too small to judge all show up as explicit checks.

A blessing also keeps the candidate's own validation (``validation``: the sanity metric per judged segment value,
with its interval). Once that candidate is the champion, the champion sanity check holds its metric on a new span
against that record: a champion that collapses on new data says the labels changed (an upstream bug inverting
them, or a reversed concept), and then the non-inferiority gate would read the collapse as a far better candidate.
"""

from __future__ import annotations

import html as html_lib
import math

from ctloop.components.validate_segments.metrics import METRICS
from ctloop.contracts import verdicts
from ctloop.segments import OVERALL

GATE_KEYS = {
    "min_rows",
    "floors",
    "ceilings",
    "max_degradation",
    "fairness",
    "allow_ungated",
    "sanity_metric",
    "max_champion_drop",
    "accept_label_change",
}
# Settings of the evaluation that share the gate's block in ctloop.yaml; judge() does not need them.
EVALUATION_KEYS = {"bootstrap", "resamples", "seed", "alpha", "threshold"}
FAIRNESS_KEYS = {"protected", "max_tpr_gap", "max_positive_rate_gap"}

SANITY = "champion_sanity"
DEFAULT_SANITY_METRIC, DEFAULT_MAX_CHAMPION_DROP = "roc_auc", 0.3
# A ranking metric's value for a model that knows nothing: a champion whose whole interval lies below it ranks this
# span's labels the wrong way round, however weak or strong it was.
CHANCE = {"roc_auc": 0.5}
ACCEPT_HINT = "to accept deliberately set gates.segments.accept_label_change: true or run with --accept-label-change"


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
    metric = gate.get("sanity_metric", DEFAULT_SANITY_METRIC)
    if METRICS.get(metric) != "higher":
        higher = sorted(m for m, d in METRICS.items() if d == "higher")
        raise ValueError(f"gates.sanity_metric: {metric!r} is not a higher-is-better metric; one of {higher}")
    drop = gate.get("max_champion_drop", DEFAULT_MAX_CHAMPION_DROP)
    if not isinstance(drop, int | float) or isinstance(drop, bool) or not 0 <= drop <= 1:
        raise ValueError(f"gates.max_champion_drop: {drop!r} is not a number in [0, 1]")


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


def validation_record(judged: list[dict], metric: str) -> dict:
    """What the blessing keeps of the candidate's own validation: the sanity check reads it back once it is champion."""
    segments = []
    for row in judged:
        low, high = (row.get("intervals") or {}).get(metric, (math.nan, math.nan))
        interval = None if math.isnan(low) or math.isnan(high) else [float(low), float(high)]
        point = float(row["metrics"][metric])
        segments.append({"segment": row["segment"], "value": row["value"], "n": row["n"], "point": point,
                         "interval": interval})  # fmt: skip
    return {"metric": metric, "segments": segments}


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and not math.isnan(x)


def _recorded_segments(record: dict) -> dict[tuple[str, str], dict]:
    """The record's segment values with a defined point (JSON writes an undefined one as null), and their intervals
    where both bounds are numbers."""
    out = {}
    for entry in record.get("segments") or []:
        if not isinstance(entry, dict) or not _number(entry.get("point")):
            continue
        interval = entry.get("interval")
        whole = isinstance(interval, list | tuple) and len(interval) == 2 and all(_number(v) for v in interval)
        out[(str(entry.get("segment")), str(entry.get("value")))] = {
            "point": float(entry["point"]),
            "interval": [float(v) for v in interval] if whole else None,
        }
    return out


def _champion_name(version) -> str:
    return f"v{version}" if str(version).isdigit() else str(version or "(version unknown)")


def _sanity_check(row: dict, recorded: dict, metric: str, max_drop: float, version, accept: bool) -> dict:
    """The champion's metric on this span against its own validation, each with its interval where there is one.

    Fails when the two intervals are apart by more than ``max_drop``, or when the champion is now worse than chance
    with confidence: a champion that merely ages (drift) moves a little; one whose labels were inverted moves from
    0.9 to 0.1, and a weak one from 0.65 to 0.35, which only the second rule sees.
    """
    point = row["champion"][metric]
    low, high = (row.get("champion_intervals") or {}).get(metric, (math.nan, math.nan))
    then, then_interval = recorded["point"], recorded["interval"]
    then_low = then_interval[0] if then_interval else then
    observed = high if not math.isnan(high) else point  # no interval: the points are all there is
    limit = then_low - max_drop
    now_text = f"{_num(point)} {_interval((low, high)) or '(no interval)'}"
    then_text = f"{_num(then)} {_interval(then_interval) or '(no interval)'}"
    detail = (
        f"{metric} of the champion {_champion_name(version)} on this span {now_text}, at its validation {then_text}"
    )
    chance = CHANCE.get(metric)
    below_chance = chance is not None and not math.isnan(high) and high < chance  # needs an interval: few rows vary
    if math.isnan(observed):
        check = _check(SANITY, row, metric, False, observed, limit, f"{detail}: undefined on this span")
    elif observed >= limit and not below_chance:
        bound = "upper bound" if not math.isnan(high) else "point"
        detail += f": {bound} {_num(observed)} >= {_num(limit)} (its validation's lower bound - {max_drop:g})"
        check = _check(SANITY, row, metric, True, observed, limit, detail)
    else:
        reasons = [f"collapsed by {_num(then - point)}"] if observed < limit else []
        reasons += [f"worse than chance (upper bound below {chance:g})"] if below_chance else []
        detail += f": {' and '.join(reasons)} (labels broken or the concept reversed?)"
        check = _check(SANITY, row, metric, False, observed, limit, detail)
    check["overridden"] = False
    if not check["passed"]:
        if accept:
            accepted = "; accepted deliberately (gates.segments.accept_label_change)"
            check.update(passed=True, overridden=True, detail=check["detail"] + accepted)
        else:
            check["detail"] += f"; {ACCEPT_HINT}"
    return check


def _sanity_checks(judged: list[dict], champion: dict | None, gate: dict) -> tuple[list[dict], str]:
    """Sanity checks on every segment value judged now and at the champion's validation; or why there are none."""
    champion = champion or {}
    record = champion.get("validation")
    if not isinstance(record, dict):
        return [], champion.get("note") or "no record of the champion's own validation was given"
    metric = record.get("metric")
    if METRICS.get(metric) != "higher":
        return [], f"the champion's validation record holds {metric!r}, not a higher-is-better metric"
    recorded = _recorded_segments(record)
    max_drop = float(gate.get("max_champion_drop", DEFAULT_MAX_CHAMPION_DROP))
    accept = bool(gate.get("accept_label_change"))
    checks = [
        _sanity_check(row, recorded[(row["segment"], row["value"])], metric, max_drop, champion.get("version"), accept)
        for row in judged
        if row.get("champion") and (row["segment"], row["value"]) in recorded
    ]
    if not checks:
        return [], "no segment value was judged both on this span and at the champion's validation"
    return checks, ""


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


def judge(rows: list[dict], gate: dict, champion: dict | None = None) -> dict:
    """The blessing: every check with its verdict, the failed ones, the segment values too small to judge, and the
    record of this validation (``validation``).

    A segment value is judged when evaluate() gave it status "ok" and it has at least ``gate["min_rows"]`` rows
    (which defaults to 0, i.e. evaluate()'s own min_rows decides). ``champion`` is what is known of the champion
    the rows were scored with: ``{"version", "validation"}`` (its own blessing's record) or ``{"note"}`` saying
    why there is no record; the sanity checks need the record, and without one the blessing says so in
    ``sanity_note``.
    """
    gate = gate or {}
    _check_settings(gate)
    min_rows = int(gate.get("min_rows") or 0)
    floors, ceilings = _limits(gate, "floors"), _limits(gate, "ceilings")
    margins = _limits(gate, "max_degradation")
    fairness = gate.get("fairness") or {}
    judged = [row for row in rows if _is_judged(row, min_rows)]
    champion_compared = any(row.get("champion") for row in rows)

    checks = [_coverage_check(rows, min_rows)]
    # Not gates on the candidate (they do not count against no_gates), and listed first: a collapsed champion
    # explains every comparison after it.
    sanity, sanity_note = _sanity_checks(judged, champion, gate) if champion_compared else ([], "")
    checks += sanity
    gated = [
        *_bound_checks(judged, floors, "floor"),
        *_bound_checks(judged, ceilings, "ceiling"),
        *(_non_inferiority_checks(judged, margins) if champion_compared else []),
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
    blessing = verdicts.blessing(checks, insufficient, champion_compared)
    blessing["validation"] = validation_record(judged, gate.get("sanity_metric", DEFAULT_SANITY_METRIC))
    blessing["overrides"] = sorted({c["check"] for c in checks if c.get("overridden")})
    if sanity_note:
        blessing["sanity_note"] = sanity_note
    return blessing


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


def _sanity_lines(blessing: dict) -> list[str]:
    """What the reports say about the champion sanity check beyond its rows: why it was not possible, overrides."""
    lines = []
    if blessing.get("sanity_note"):
        lines.append(f"champion sanity not checked: {blessing['sanity_note']}")
    if blessing.get("overrides"):
        lines.append(f"overridden deliberately: {', '.join(blessing['overrides'])}")
    return lines


def _sanity_rows(blessing: dict) -> list[list[str]]:
    return [_check_cells(c) for c in blessing["checks"] if c["check"] == SANITY]


def markdown(blessing: dict, rows: list[dict]) -> str:
    def table(header: list[str], body: list[list[str]]) -> list[str]:
        cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        return lines + ["| " + " | ".join(cell(c) for c in cells) + " |" for cells in body]

    champion = "compared with the champion" if blessing["champion"] else "no champion to compare with"
    lines = [f"# Model validation: {_verdict(blessing)}", "", f"- {champion}"]
    lines += [f"- {line}" for line in _sanity_lines(blessing)]
    lines += [f"- insufficient data: {len(blessing['insufficient'])} segment value(s)", "", "## Failed checks", ""]
    lines += table(CHECK_HEADER, [_check_cells(c) for c in blessing["failed"]]) if blessing["failed"] else ["None."]
    if _sanity_rows(blessing):
        lines += ["", "## Champion sanity", ""] + table(CHECK_HEADER, _sanity_rows(blessing))
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
    notes = "".join(f"<p>{html_lib.escape(line)}</p>" for line in _sanity_lines(blessing))
    sanity = _sanity_rows(blessing)
    sanity = f"<h2>Champion sanity</h2>{_html_table(CHECK_HEADER, sanity)}" if sanity else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Model validation</title>'
        f"<style>{_STYLE}</style></head><body>"
        f'<h1 class="{verdict_class}">{html_lib.escape(_verdict(blessing))}</h1>'
        f"<p>{html_lib.escape(champion)}; insufficient data: {len(blessing['insufficient'])} segment value(s)</p>"
        f"{notes}<h2>Failed checks</h2>{failed}{sanity}<h2>Segments</h2>{segments}</body></html>\n"
    )
