"""The launching thread: takes accepted triggers from the durable queue in order, launches each through the
launcher with retries and exponential backoff, and follows started runs until they end.

A trigger whose launch may already have happened (state `launching`: a try failed or the process died during
it) is looked up with ``launcher.find`` before it is launched again, so a restart never starts a second run.
"""

from __future__ import annotations

import logging
import threading
import time

from ctloop.services.retrain_webhook.audit import AuditLog
from ctloop.services.retrain_webhook.launchers import Launcher, RunState
from ctloop.services.retrain_webhook.metrics import Metrics
from ctloop.services.retrain_webhook.store import Store, Trigger

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, store: Store, launcher: Launcher, audit: AuditLog, metrics: Metrics, *, attempts: int,
                 backoff_s: float, poll_s: float, clock=time.time):  # fmt: skip
        self.store = store
        self.launcher = launcher
        self.audit = audit
        self.metrics = metrics
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.clock = clock
        # Turns of the loop and checks of started runs completed: tests wait on these instead of on the clock.
        self.turns = 0
        self.run_checks = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retrain-launcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def notify(self) -> None:
        """A trigger was queued: launch it now rather than at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        next_check = 0.0
        while not self._stop.is_set():
            try:
                self.metrics.queue_depth.set(self.store.pending_count())
                trigger = self.store.next_pending()
                if trigger is not None:
                    self._launch(trigger)
                    continue
                if time.monotonic() >= next_check:
                    self._check_runs()
                    next_check = time.monotonic() + self.poll_s
            except Exception:  # the loop must outlive a bad row or a broken launcher; the next turn retries
                log.exception("launcher loop")
                self._stop.wait(self.poll_s)
            self.turns += 1
            self._wake.wait(max(0.0, min(self.poll_s, next_check - time.monotonic())))
            self._wake.clear()

    def _launch(self, trigger: Trigger) -> None:
        attempt = trigger.attempts
        while attempt < self.attempts and not self._stop.is_set():
            unsure = attempt > 0  # an earlier try (maybe before a restart) may have started the run
            attempt += 1
            self.store.mark_launching(trigger.id, attempt, self.clock())
            try:
                run_id = (self.launcher.find(trigger) if unsure else None) or self.launcher.launch(trigger)
            except Exception as e:  # launchers raise LaunchError; anything else is retried the same way
                log.warning("launch of %s failed (try %d of %d): %s", trigger.id, attempt, self.attempts, e)
                self.audit.write("launch_retry" if attempt < self.attempts else "launch_failed", trigger_id=trigger.id,
                                 attempt=attempt, error=str(e))  # fmt: skip
                if attempt >= self.attempts:
                    self.store.mark_launch_failed(trigger.id, str(e), self.clock())
                    self.metrics.launches.labels("failed").inc()
                    return
                self.metrics.launches.labels("retried").inc()
                self._stop.wait(self.backoff_s * 2 ** (attempt - 1))
                continue
            # Audit and count first: once the row says started, callers may see it and act on it.
            self.audit.write("launched", trigger_id=trigger.id, run_id=run_id, attempt=attempt,
                             launcher=self.launcher.name)  # fmt: skip
            self.metrics.launches.labels("started").inc()
            self.store.mark_started(trigger.id, run_id, self.clock())
            return
        if attempt >= self.attempts and not self._stop.is_set():  # out of tries before this process even began
            self.store.mark_launch_failed(trigger.id, "no launch tries left", self.clock())

    def _check_runs(self) -> None:
        for trigger in self.store.started():
            try:
                state = self.launcher.state(trigger.run_id)
            except Exception as e:
                log.warning("state of run %s unknown: %s", trigger.run_id, e)
                continue
            if state is RunState.running:
                continue
            if self.store.mark_finished(trigger.id, state.value, self.clock()):
                self.metrics.pipeline_runs.labels(trigger.pipeline, state.value).inc()
                self.audit.write("run_finished", trigger_id=trigger.id, run_id=trigger.run_id, state=state.value)
        self.run_checks += 1
