"""One step of a rollout as a pure function: ``decide(status, observation, policy) -> Decision``.

The controller gathers the observation (the declared candidate, a person's request, the checks' results or a
Prometheus outage), calls ``decide``, carries out the decision's actions and persists the new status with the
spec change in one write. Promoting and RollingBack are phases of their own so that a controller restarted
half-way through repeats only idempotent registry calls, never a traffic move.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ctloop.contracts import seldon as shape
from ctloop.contracts.rollout import Outcome, Phase, RolloutStatus
from ctloop.services.rollout_controller.checks import Analysis


@dataclass
class Observation:
    now: float
    declared: tuple[str, str] | None  # (predictor, version) of the candidate on the object
    main_version: str
    request: dict | None = None  # {"action": "promote" | "abort", "version": ...}
    analysis: Analysis | None = None  # None when no analysis was due
    source_down: bool = False


@dataclass
class Decision:
    status: RolloutStatus
    spec: tuple = ()  # ("weight", w) | ("promote",) | ("remove_candidate",)
    registry: list[tuple] = field(default_factory=list)  # ("promote", v) | ("reject", v, checks) | ("supersede", v)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    outcomes: list[Outcome] = field(default_factory=list)
    clear_request: bool = False


def analysis_due(status: RolloutStatus, policy, now: float) -> bool:
    return status.phase in (Phase.shadowing, Phase.progressing) and now - status.last_analysis >= policy.interval_s


def decide(status: RolloutStatus, obs: Observation, policy) -> Decision:
    s = dataclasses.replace(status, checks=dict(status.checks), failed_checks=list(status.failed_checks),
                            superseded=list(status.superseded), figures=dict(status.figures))  # fmt: skip
    d = Decision(s, clear_request=obs.request is not None)

    # Promoting and RollingBack finish first: their traffic move is done, only registry calls are left.
    if s.phase == Phase.promoting:
        return _promoted(d)
    if s.phase == Phase.rolling_back:
        return _rolled_back(d)
    if obs.declared and obs.declared[1] != obs.main_version and (obs.declared[1] != s.candidate or s.phase.terminal):
        return _start(s, obs, policy, d)
    if s.phase in (Phase.shadowing, Phase.progressing):
        if obs.declared is None or obs.declared[1] != s.candidate:
            return _roll_back(d, obs.now, ["candidate_removed"], "the candidate left the SeldonDeployment",
                              Outcome.aborted)  # fmt: skip
        action = (obs.request or {}).get("action")
        if action and (obs.request.get("version") in (None, "", s.candidate)):
            if action == "promote":
                return _promote(d, obs.now, "promoted by hand")
            if action == "abort":
                return _roll_back(d, obs.now, ["aborted"], "aborted by hand", Outcome.aborted)
        return _analyse(d, obs, policy)
    return d


def _promoted(d: Decision) -> Decision:
    s = d.status
    d.registry.append(("promote", s.candidate))
    s.phase, s.outcome = Phase.succeeded, Outcome.promoted
    d.outcomes.append(Outcome.promoted)
    d.events.append(("Normal", "Promoted", f"version {s.candidate} is the champion"))
    return d


def _rolled_back(d: Decision) -> Decision:
    s = d.status
    d.registry.append(("reject", s.candidate, list(s.failed_checks)))
    s.phase = Phase.failed
    s.outcome = s.outcome or Outcome.rolled_back
    d.outcomes.append(s.outcome)
    d.events.append(("Warning", "RolledBack", f"version {s.candidate} rejected: {', '.join(s.failed_checks)}"))
    return d


def _start(s: RolloutStatus, obs: Observation, policy, d: Decision) -> Decision:
    where, version = obs.declared
    new = RolloutStatus(candidate=version, champion=obs.main_version, phase_started=obs.now, started=obs.now,
                        superseded=s.superseded)  # fmt: skip
    if s.candidate and s.candidate != version and not s.phase.terminal:
        new.superseded = [*s.superseded, s.candidate][-10:]
        d.registry.append(("supersede", s.candidate))
        d.outcomes.append(Outcome.superseded)
        d.events.append(("Normal", "Superseded", f"version {s.candidate} superseded by {version}"))
    d.status = new
    if policy.mode == "direct":
        return _promote(d, obs.now, "mode direct: no analysis")
    if where == shape.SHADOW:
        new.phase, new.reason = Phase.shadowing, "shadowing main"
    else:
        new.phase, new.step, new.weight = Phase.progressing, 0, policy.steps[0]
        new.reason = f"canary at {policy.steps[0]}%"
        d.spec = ("weight", policy.steps[0])
    d.events.append(("Normal", "RolloutStarted", f"version {version}: {new.reason}"))
    return d


def _promote(d: Decision, now: float, reason: str) -> Decision:
    s = d.status
    s.phase, s.reason, s.phase_started, s.weight = Phase.promoting, reason, now, 100
    d.spec = ("promote",)
    d.events.append(("Normal", "Promoting", f"version {s.candidate}: {reason}"))
    return d


def _roll_back(d: Decision, now: float, checks: list[str], reason: str,
               outcome: Outcome = Outcome.rolled_back) -> Decision:  # fmt: skip
    s = d.status
    s.phase, s.failed_checks, s.reason, s.outcome = Phase.rolling_back, checks, reason, outcome
    s.phase_started, s.weight = now, 0
    d.spec = ("remove_candidate",)
    d.events.append(("Warning", "RollingBack", f"version {s.candidate}: {reason}"))
    return d


def _analyse(d: Decision, obs: Observation, policy) -> Decision:
    s, now = d.status, obs.now
    if obs.source_down:
        s.outage_since = s.outage_since or now
        if now - s.outage_since >= policy.prometheus_outage_s:
            return _roll_back(d, now, ["prometheus_unreachable"],
                              f"Prometheus unreachable for {int(now - s.outage_since)}s", Outcome.failed)  # fmt: skip
        s.reason = "paused: Prometheus unreachable"
        return d
    s.outage_since = 0.0
    a = obs.analysis
    if a is not None and policy.method == "sequential":
        # A check that has shown it is within its margin stays passed: the confidence sequence's guarantee holds
        # at the first look that showed it, whatever later looks say. It can still fail (roll back) later.
        latched = {name: "passed" if r == "undecided" and s.checks.get(name) == "passed" else r
                   for name, r in a.results.items()}  # fmt: skip
        a = dataclasses.replace(a, results=latched)
    if a is not None:
        s.last_analysis, s.checks, s.figures = now, dict(a.results), dict(a.figures)
        if a.failed:
            s.failed_analyses += 1
            s.failed_checks = a.failed
            # A sequential check fails only once its interval is beyond the margin: that is already the verdict.
            tolerated = policy.max_failed_checks if policy.method == "threshold" else 0
            if s.failed_analyses > tolerated:
                return _roll_back(d, now, a.failed, f"checks failed: {', '.join(a.failed)}")
            s.reason = f"checks failed ({s.failed_analyses} of {policy.max_failed_checks} tolerated): {a.failed}"
            return _deadline(d, now, policy)
        shadowing = s.phase == Phase.shadowing
        needed = policy.min_shadow_requests if shadowing else policy.min_requests
        if a.requests < needed:
            s.reason = f"waiting for traffic: {int(a.requests)} of {needed} requests"
        elif a.missing:
            s.reason = f"waiting for data: {', '.join(_waiting(a, name) for name in a.missing)}"
        elif shadowing and now - s.phase_started < policy.shadow_duration_s:
            s.reason = f"shadowing for {policy.shadow_duration_s}s"
        else:
            return _advance(d, now, policy)
    return _deadline(d, now, policy)


def _waiting(a: Analysis, name: str) -> str:
    f = a.figures.get(name)
    if not f:
        return name
    return f"{name} {f['estimate']:.3f} in [{f['lower']:.3f}, {f['upper']:.3f}] vs {f['margin']} (n={f['samples']})"


def _deadline(d: Decision, now: float, policy) -> Decision:
    s = d.status
    if now - s.phase_started > policy.deadline_s:
        missing = [name for name, result in s.checks.items() if result in ("no_data", "undecided")]
        return _roll_back(d, now, ["deadline", *missing], f"no verdict within {policy.deadline_s}s: {s.reason}",
                          Outcome.failed)  # fmt: skip
    return d


def _advance(d: Decision, now: float, policy) -> Decision:
    s = d.status
    if s.phase == Phase.shadowing:
        s.phase, s.step = Phase.progressing, 0
    elif s.step + 1 < len(policy.steps):
        s.step += 1
    else:
        return _promote(d, now, "every step passed its checks")
    s.weight, s.phase_started, s.failed_checks = policy.steps[s.step], now, []
    s.reason = f"canary at {s.weight}%"
    d.spec = ("weight", s.weight)
    d.events.append(("Normal", "Progressing", f"version {s.candidate}: {s.reason}"))
    return d
