"""The controller's loop for one SeldonDeployment (``name`` in ``endpoints.seldon.namespace``): observe, decide
(machine.decide), act. Actions are carried out in an order that a crash at any point can resume from:
registry calls first (idempotent), then one write of the spec change together with the new status, which is
refused if the object changed since it was read (then the tick starts over from a fresh read)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ctloop.config import TaskType
from ctloop.contracts import rollout as status
from ctloop.contracts import seldon as shape
from ctloop.contracts.rollout import Phase, RolloutStatus
from ctloop.deployment_target import ConflictError, DeploymentTarget
from ctloop.errors import CtloopError
from ctloop.services.rollout_controller import checks, machine, sequential
from ctloop.services.rollout_controller.metrics import RolloutMetrics

log = logging.getLogger(__name__)

_SPEC = {
    "weight": shape.set_canary_weight,
    "promote": shape.promote,
    "remove_candidate": shape.remove_candidate,
}


class Controller:
    def __init__(self, settings, target: DeploymentTarget, source: checks.MetricSource,
                 registry: Callable[[], object], clock: Callable[[], float] = time.time,
                 metrics: RolloutMetrics | None = None):  # fmt: skip
        """``registry`` is a factory (connecting to MLflow may fail at start; it is retried on later ticks)."""
        self.settings = settings
        self.policy = settings.rollout
        self.namespace = settings.endpoints.seldon.namespace
        self.name = settings.name
        self.target = target
        self.source = source
        self._registry_factory = registry
        self._registry = None
        self.clock = clock
        self.metrics = metrics or RolloutMetrics()
        self.status: RolloutStatus | None = None  # as last written or read
        self.last_error = ""
        self.ticks = 0  # passes that reached the deployment target

    @property
    def registry(self):
        if self._registry is None:
            self._registry = self._registry_factory()
        return self._registry

    def _observe(self, sdep: dict, current: RolloutStatus, analyse: bool) -> machine.Observation:
        now = self.clock()
        obs = machine.Observation(now=now, declared=shape.candidate(sdep),
                                  main_version=shape.model_version(shape.predictor(sdep, shape.MAIN)),
                                  request=status.read_request(sdep))  # fmt: skip
        if analyse and machine.analysis_due(current, self.policy, now) and obs.declared:
            where = obs.declared[0]
            try:
                obs.analysis = self._evaluate(where, now, current)
            except checks.SourceDown as e:
                log.warning("%s/%s: %s", self.namespace, self.name, e)
                obs.source_down = True
        return obs

    def _evaluate(self, where: str, now: float, current: RolloutStatus) -> checks.Analysis:
        since_phase = now - current.phase_started
        if self.policy.method == "threshold":
            return checks.evaluate(self.source, self.policy, self.name, where, since_phase)
        since_rollout = now - (current.started or current.phase_started)  # records written before `started` existed
        binary = self.settings.data.task == TaskType.binary_classification
        threshold = self.settings.model.policy.threshold if binary else None
        return sequential.evaluate(self.source, self.policy, self.name, where, since_phase, since_rollout, threshold)

    def tick(self) -> RolloutStatus | None:
        """One pass; Promoting and RollingBack are finished in the same pass. Returns the status on the object."""
        analyse = True
        for _ in range(6):
            sdep = self.target.get(self.namespace, self.name)
            if sdep is None:
                self.status = None
                return None
            current = status.read(sdep)
            obs = self._observe(sdep, current, analyse)
            analyse = False  # one analysis per tick, even when a write has to be redone
            decision = machine.decide(current, obs, self.policy)
            if decision.status == current and not (decision.spec or decision.registry or decision.clear_request):
                self.status = current
                self.metrics.observe(self.name, current, False, [])
                return current
            try:
                for action in decision.registry:
                    self.registry.apply(action)
            except CtloopError as e:
                self.last_error = str(e)
                log.warning("%s/%s: registry: %s (retried next tick)", self.namespace, self.name, e)
                self.status = current
                return current
            changed = _SPEC[decision.spec[0]](sdep, *decision.spec[1:]) if decision.spec else sdep
            status.write(changed, decision.status)
            if decision.clear_request:
                changed["metadata"]["annotations"].pop(status.REQUEST_ANNOTATION, None)
            try:
                written = self.target.replace(changed)
            except ConflictError:
                continue
            self.last_error = ""
            self.status = decision.status
            for kind, reason, message in decision.events:
                log.info("%s/%s: %s: %s", self.namespace, self.name, reason, message)
                self.target.event(written, reason, message, kind)
            self.metrics.observe(self.name, decision.status, obs.analysis is not None, decision.outcomes)
            if decision.status.phase not in (Phase.promoting, Phase.rolling_back):
                return decision.status
        return self.status

    def run(self, stop: Callable[[], bool], tick_s: float | None = None) -> None:
        """Tick until ``stop()``; errors are logged and retried (the state is on the object, nothing is lost)."""
        tick_s = tick_s or min(float(self.policy.interval_s), 5.0)
        while not stop():
            try:
                self.tick()
                self.ticks += 1
            except CtloopError as e:
                self.last_error = str(e)
                log.warning("%s/%s: %s", self.namespace, self.name, e)
            except Exception:
                self.last_error = "unexpected error; see the log"
                log.exception("%s/%s: tick failed", self.namespace, self.name)
            deadline = time.monotonic() + tick_s
            while time.monotonic() < deadline and not stop():
                time.sleep(min(0.2, tick_s))
