"""validate_segments' work: score the test split with the candidate and the champion, judge every segment."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ctloop import artifacts, datasets, model_format
from ctloop.components.validate_segments import gates, metrics, spec
from ctloop.contracts import verdicts
from ctloop.contracts.registry import CHAMPION, VERSION_ARTIFACTS
from ctloop.errors import BadInputError, NotFoundError

# Where a registered version's blessing lies, relative to its run's artifact root (register logs it there).


@dataclass
class Champion:
    model: model_format.Model | None
    version: str | None  # registry version, or the folder it came from
    note: str  # why there is no comparison, when there is none
    validation: dict | None = None  # the record of its own validation, from its blessing
    validation_note: str = ""  # why there is no such record, when there is none


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


def validation_record(model_uri: str) -> tuple[dict | None, str]:
    """The record of a model's own validation, from the blessing logged beside its folder
    (``<run artifact root>/model`` and ``<run artifact root>/validation/blessing.json``), or None and why not.

    A missing or older blessing makes the sanity check impossible, which the blessing notes; it is no failure. An
    unreadable store (access denied, S3 down) is an error like any other.
    """
    root, _, folder = model_uri.rstrip("/").rpartition("/")
    if folder != VERSION_ARTIFACTS["model"][0] or not root:
        return None, f"{model_uri} is not a run's model folder (<run artifacts>/model): no validation record beside it"
    uri = artifacts.join(root, *VERSION_ARTIFACTS["blessing"])
    try:
        found = json.loads(artifacts.read_bytes(uri))
    except NotFoundError:
        return None, f"no validation record of the champion at {uri}"
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"{uri}: the champion's blessing is not JSON ({e})"
    record = found.get("validation") if isinstance(found, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("segments"), list):
        return None, f"{uri}: the champion's blessing predates validation records (no 'validation')"
    return record, ""


def champion_at(model_uri: str, version: str) -> Champion:
    record, note = validation_record(model_uri)
    return Champion(model_format.load(model_uri), version, "", record, note)


def champion_from_registry(registry) -> Champion:
    """The model behind the registry's `champion` alias, with the record of its own validation; none is an explicit
    outcome, not an error."""
    version = registry.champion()
    if version is None:
        return Champion(None, None, f"no champion: {registry.name} has no alias {CHAMPION!r}")
    return champion_at(registry.download_uri(version), version)


def gate_settings(settings) -> dict:
    g = settings.gates.segments
    return {
        "min_rows": g.min_rows,
        "floors": dict(g.floors),
        "ceilings": dict(g.ceilings),
        "max_degradation": dict(g.max_degradation),
        "fairness": json.loads(g.fairness.json()),
        "allow_ungated": g.allow_ungated,
        "sanity_metric": g.sanity_metric,
        "max_champion_drop": g.max_champion_drop,
        "accept_label_change": g.accept_label_change,
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
        blessing = verdicts.blessing([check], [], champion=False)
        blessing |= {"validation": {"metric": settings.gates.segments.sanity_metric, "segments": []}, "overrides": []}
        return Result([], blessing)
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
    known = {"version": champion.version, "validation": champion.validation, "note": champion.validation_note}
    blessing = gates.judge(rows, gate_settings(settings), known)
    blessing["champion_version"] = champion.version if champion_score is not None else None
    if champion_score is None:
        blessing["champion_note"] = champion.note
    blessing["candidate"] = {"policy_version": candidate.policy.get("version"), "threshold": threshold}
    return Result(rows, blessing)
