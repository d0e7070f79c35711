"""The verdicts the pipeline hands on: the data verdict of validate_data and the blessing of validate_segments.

Both are JSON artifacts a person can read and a later step checks; neither passes by omission.

- The data verdict (validate_data's ``anomalies_summary``): passed or not, the anomalies found, which schema the
  span was held to, and what it was compared with (drift, skew), with the span's fingerprint.
- The blessing (validate_segments' ``blessing``): every check with its numbers, the failed ones, the segment
  values too small to judge, and whether a champion was compared. ``blessed`` is true only when no check failed,
  and a judgement in which no gate applied (no floor, ceiling or fairness gate configured, no champion to compare
  with) is a failed ``no_gates`` check unless ``gates.segments.allow_ungated`` says otherwise. register refuses
  anything but a blessing (``read_blessing``), and marks the version it creates blessed for deploy to check.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from ctloop.errors import BadInputError

__all__ = ["NO_GATES", "DataVerdict", "blessing", "no_gates_check", "read_blessing"]

NO_GATES = "no_gates"


@dataclass
class DataVerdict:
    passed: bool
    errors: int
    warnings: int
    anomalies: list[dict]  # feature, kind, severity (ERROR or WARNING), description
    schema_source: str  # pinned (<uri>), or inferred from which span
    comparisons: dict[str, str]  # drift, skew: what it was measured against, or why not
    fingerprint: dict  # the span's (contracts.span.Fingerprint)
    notes: list[str] = field(default_factory=list)
    # The span's own figures (duplicate and label shares, categories, label associations): registered with the
    # version, they are what the next span is compared with.
    figures: dict = field(default_factory=dict)
    champion_version: str | None = None  # whose schema, statistics and figures the span was held to

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def no_gates_check(detail: str, allowed: bool) -> dict:
    """The check that stands for "nothing was judged": it fails unless ungated blessings are allowed."""
    if allowed:
        detail += "; allowed by gates.segments.allow_ungated"
    else:
        detail += "; a blessing needs a gate (or gates.segments.allow_ungated: true)"
    return {"check": NO_GATES, "segment": "", "value": "", "metric": "", "passed": bool(allowed),
            "observed": math.nan, "limit": math.nan, "detail": detail}  # fmt: skip


def blessing(checks: list[dict], insufficient: list[dict], champion: bool) -> dict:
    """The blessing: blessed when no check failed. ``checks`` lists every check, passed or not."""
    failed = [c for c in checks if not c["passed"]]
    return {"blessed": not failed, "checks": checks, "failed": failed, "insufficient": insufficient,
            "champion": champion}  # fmt: skip


def read_blessing(data: bytes, where: str) -> dict:
    """A blessing as written by validate_segments; BadInputError when ``data`` is not one."""
    try:
        found = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"{where}: the blessing is not JSON: {e}") from None
    if not isinstance(found, dict) or not isinstance(found.get("blessed"), bool):
        raise BadInputError(f"{where}: not a blessing (no true or false 'blessed')")
    checks = found.get("checks")
    if not isinstance(checks, list) or not checks:
        raise BadInputError(f"{where}: a blessing lists the checks it was given by; this one lists none")
    if found["blessed"] and any(not c.get("passed") for c in checks):
        raise BadInputError(f"{where}: says blessed although a check failed")
    return found
