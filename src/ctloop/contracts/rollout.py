"""The rollout's state, kept on the SeldonDeployment itself (annotation ``ctloop.io/rollout``, JSON), so that a
restarted controller, the CLI and the deploy step all read the same record.

    Idle ─► Shadowing ─► Progressing(step 0..n) ─► Promoting ─► Succeeded
                 │               │
                 └───────────────┴──► RollingBack ─► Failed

Mode canary starts at Progressing(0), mode direct at Promoting; a newer candidate starts over from the top.

Written by the rollout controller and the deploy step, read by ``ctloop rollout``; ``Outcome`` is also the
``outcome`` label of ``ctloop_rollout_outcomes_total``, which the alert rules and dashboards select on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import Enum

__all__ = ["ANNOTATION", "CHECK_RESULTS", "OWNED_ANNOTATIONS", "REQUEST_ANNOTATION", "Outcome", "Phase",
           "RolloutStatus", "read", "read_request", "write"]  # fmt: skip

# The rollout's status and a person's request ({"action": "promote" | "abort", "version": "..."}). A merge patch
# can only remove a key by naming it with null, so the Kubernetes backend nulls these when they are absent.
ANNOTATION, REQUEST_ANNOTATION = "ctloop.io/rollout", "ctloop.io/rollout-request"
OWNED_ANNOTATIONS = (ANNOTATION, REQUEST_ANNOTATION)
# What an analysis says of each check (skipped: too few labels to judge, and rollout.require_feedback is false;
# undecided: method sequential, the check's interval still holds its margin).
CHECK_RESULTS = ("passed", "failed", "no_data", "skipped", "undecided")


class Phase(str, Enum):
    idle = "Idle"  # no candidate declared
    shadowing = "Shadowing"  # the candidate gets mirrored copies of main's requests; its answers are discarded
    progressing = "Progressing"  # the candidate is the canary, at steps[step] percent of the traffic
    promoting = "Promoting"  # main serves the candidate; the registry's champion alias is being moved
    succeeded = "Succeeded"  # the candidate is the champion
    rolling_back = "RollingBack"  # the candidate is out of the traffic; its version is being tagged rejected
    failed = "Failed"  # the candidate was rejected

    @property
    def terminal(self) -> bool:
        return self in (Phase.idle, Phase.succeeded, Phase.failed)


class Outcome(str, Enum):
    """How a rollout ended."""

    promoted = "promoted"  # every check passed (or a person promoted it): the candidate is the champion
    rolled_back = "rolled_back"  # a check failed: the candidate was judged worse, taken out and rejected
    failed = "failed"  # no verdict: the deadline passed or Prometheus stayed unreachable; taken out and rejected
    aborted = "aborted"  # a person aborted it, or the candidate left the SeldonDeployment
    superseded = "superseded"  # a newer candidate took its place before it finished
    first_deployment = "first_deployment"  # there was no champion: the deploy step served it as main directly


@dataclass
class RolloutStatus:
    phase: Phase = Phase.idle
    candidate: str = ""  # registry version of the candidate
    champion: str = ""  # registry version main served when the rollout began
    step: int = 0  # index into rollout.steps while Progressing
    weight: int = 0  # canary traffic percentage
    failed_analyses: int = 0
    failed_checks: list[str] = field(default_factory=list)  # of the last failed analysis, or the reason to roll back
    checks: dict[str, str] = field(default_factory=dict)  # last result per check: one of CHECK_RESULTS
    # method sequential, per check: estimate, lower, upper, margin, samples, source, decision
    figures: dict[str, dict] = field(default_factory=dict)
    started: float = 0.0  # epoch seconds the rollout began (its counts run from here)
    phase_started: float = 0.0  # epoch seconds; a step counts as a phase for deadlines and request counts
    last_analysis: float = 0.0
    outage_since: float = 0.0  # Prometheus unreachable since (0: reachable)
    reason: str = ""
    outcome: Outcome | str = ""  # an Outcome once terminal
    superseded: list[str] = field(default_factory=list)  # older candidates this one replaced

    def to_json(self) -> str:
        data = asdict(self)
        data["phase"] = self.phase.value
        data["outcome"] = Outcome(self.outcome).value if self.outcome else ""
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> RolloutStatus:
        if not text:
            return cls()
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["phase"] = Phase(data.get("phase", Phase.idle.value))
        data["outcome"] = Outcome(data["outcome"]) if data.get("outcome") else ""
        return cls(**data)


def read(sdep: dict | None) -> RolloutStatus:
    if sdep is None:
        return RolloutStatus()
    return RolloutStatus.from_json((sdep["metadata"].get("annotations") or {}).get(ANNOTATION))


def write(sdep: dict, status: RolloutStatus) -> dict:
    sdep["metadata"].setdefault("annotations", {})[ANNOTATION] = status.to_json()
    return sdep


def read_request(sdep: dict | None) -> dict | None:
    text = ((sdep or {}).get("metadata", {}).get("annotations") or {}).get(REQUEST_ANNOTATION)
    return json.loads(text) if text else None
