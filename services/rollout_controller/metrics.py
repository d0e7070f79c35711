"""The controller's Prometheus metrics, built from ctloop.metric_names (phase, canary weight, check results)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from ctloop import metric_names
from ctloop.contracts.rollout import Outcome, Phase, RolloutStatus

_RESULT_VALUE = {"passed": 1, "failed": 0, "undecided": 0.5, "no_data": -1}
_STATS = metric_names.metric("ctloop_rollout_check_estimate").values["stat"]


class RolloutMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        built = metric_names.build("rollout_controller", self.registry)
        self.phase = built["ctloop_rollout_phase"]
        self.weight = built["ctloop_rollout_canary_weight"]
        self.check_result = built["ctloop_rollout_check_result"]
        self.checks = built["ctloop_rollout_checks_total"]
        self.estimate = built["ctloop_rollout_check_estimate"]
        self.outcomes = built["ctloop_rollout_outcomes_total"]

    def observe(self, deployment: str, status: RolloutStatus, analysed: bool, outcomes: list[Outcome]) -> None:
        for phase in Phase:
            self.phase.labels(deployment=deployment, phase=phase.value).set(1 if phase == status.phase else 0)
        self.weight.labels(deployment=deployment).set(status.weight)
        if analysed:
            for check, result in status.checks.items():
                if result in _RESULT_VALUE:
                    self.check_result.labels(deployment=deployment, check=check).set(_RESULT_VALUE[result])
                    self.checks.labels(deployment=deployment, check=check, result=result).inc()
            for check, figures in status.figures.items():
                for stat in _STATS:
                    self.estimate.labels(deployment=deployment, check=check, stat=stat).set(figures[stat])
        for outcome in outcomes:
            self.outcomes.labels(deployment=deployment, outcome=Outcome(outcome).value).inc()
