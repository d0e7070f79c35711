"""validate_segments' work: score the test split with the candidate and the champion, judge every segment."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ctloop import datasets, model_format
from ctloop.components.validate_segments import gates, metrics, spec
from ctloop.contracts import verdicts
from ctloop.contracts.registry import CHAMPION
from ctloop.errors import BadInputError


@dataclass
class Champion:
    model: model_format.Model | None
    version: str | None  # registry version, or the folder it came from
    note: str  # why there is no comparison, when there is none


@dataclass
class Result:
    rows: list[dict]
    blessing: dict

    @property
    def blessed(self) -> bool:
        return bool(self.blessing["blessed"])

    def overall(self) -> dict:
        return next(r for r in self.rows if r["segment"] == "overall")

    def outputs(self) -> dict[str, bytes]:
        overall = self.overall()
        kfp_metrics = {k: v for k, v in overall["metrics"].items() if v == v}  # NaN is no metric
        kfp_metrics |= {"checks_failed": len(self.blessing["failed"]), "segments": len(self.rows)}
        return {
            spec.BLESSING: json.dumps(_strict(self.blessing), indent=2).encode(),
            spec.REPORT_HTML: gates.html(self.blessing, self.rows).encode(),
            spec.REPORT_MD: gates.markdown(self.blessing, self.rows).encode(),
            spec.METRICS: json.dumps(kfp_metrics, indent=2).encode(),
            spec.BLESSED: b"true" if self.blessed else b"false",
        }


def _strict(value):
    """JSON has no NaN: an undefined number is written as null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def champion_from_registry(registry) -> Champion:
    """The model behind the registry's `champion` alias; none is an explicit outcome, not an error."""
    version = registry.champion()
    if version is None:
        return Champion(None, None, f"no champion: {registry.name} has no alias {CHAMPION!r}")
    return Champion(model_format.load(registry.download_uri(version)), version, "")


def gate_settings(settings) -> dict:
    g = settings.gates.segments
    return {
        "min_rows": g.min_rows,
        "floors": dict(g.floors),
        "ceilings": dict(g.ceilings),
        "max_degradation": dict(g.max_degradation),
        "fairness": json.loads(g.fairness.json()),
        "allow_ungated": g.allow_ungated,
    }


def segments_of(settings) -> list[dict]:
    return [json.loads(s.json(exclude_none=True)) for s in settings.segments]


def run(test_split_uri: str, candidate_dir: str, settings, champion: Champion) -> Result:
    if settings.data.task.value != "binary_classification":
        check = {
            "check": "unsupported_task",
            "passed": False,
            "detail": f"segment gates exist for binary classification only, not {settings.data.task.value}",
        }
        return Result([], verdicts.blessing([check], [], champion=False))
    frame = datasets.read(test_split_uri).frame
    label = settings.data.label
    if label not in frame.columns:
        raise BadInputError(f"{test_split_uri}: the label column {label!r} is missing")
    y = frame[label].astype(int).to_numpy()
    candidate = model_format.load(candidate_dir)
    score = np.asarray(candidate.predict(frame), dtype=float)
    champion_score = None
    if champion.model is not None:
        try:
            champion_score = np.asarray(champion.model.predict(frame), dtype=float)
        except BadInputError as e:
            champion = Champion(None, champion.version, f"the champion cannot score this data: {e}")
    threshold = candidate.policy["threshold"]
    rows = metrics.evaluate(
        frame,
        y,
        score,
        threshold,
        segments_of(settings),
        champion_score=champion_score,
        resamples=settings.gates.segments.bootstrap,
        seed=settings.model.seed,
        min_rows=settings.gates.segments.min_rows,
    )
    blessing = gates.judge(rows, gate_settings(settings))
    blessing["champion_version"] = champion.version if champion_score is not None else None
    if champion_score is None:
        blessing["champion_note"] = champion.note
    blessing["candidate"] = {"policy_version": candidate.policy.get("version"), "threshold": threshold}
    return Result(rows, blessing)
