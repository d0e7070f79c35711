"""The watcher's state and how each journal record changes it.

``apply`` is the only way the state changes, and it depends on nothing but the state and the record (times come
from the record): replaying the journal after a crash rebuilds exactly the state that was lost, including which
windows drifted and which triggers are due. Side effects on the way are idempotent: Parquet files are named by
window number, and a trigger's idempotency key is derived from the window that confirmed it.

Records: ``request``/``response``/``feedback`` (parsed CloudEvents, see events.py), ``close`` (a window closed by
age), ``verdict`` (a due window's test results, computed off the event loop), ``reference`` (the champion changed),
``frozen`` (a trigger's retrain data copied), ``awaiting_labels`` (a trigger's retrain data moved to later windows:
none up to it was labelled) and ``trigger_ack`` (the webhook answered a trigger). A verdict is
journaled like any record, so a replay applies the same results without testing again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import UTC, datetime

from ctloop import metric_names
from ctloop.config import Settings
from ctloop.contracts.seldon import MAIN
from ctloop.services.drift_watcher.detection import Confirmation, OnlineDetectors, WindowDetector
from ctloop.services.drift_watcher.reference import ReferenceStore
from ctloop.services.drift_watcher.sink import ServingData

log = logging.getLogger(__name__)
ANSWER_FIELDS = ("scores", "model_version", "decisions", "classes")  # what a predictor's answer keeps


# The requests and answers the watcher keeps are made of tuples of plain values (a row as its (name, value) pairs):
# the collector stops tracking such a tuple, then a dict holding only such values, so that of tens of thousands of
# them its full collections walk only each request's dict of answers (it holds dicts). As lists and dicts, each full
# collection walked six objects a request, holding up the event loop for up to 150 ms at 20,000 requests. A row
# comes as a dict, or as pairs from a snapshot.
def _request(rows: list, time: float) -> dict:
    return {"rows": tuple(tuple(r.items() if isinstance(r, dict) else map(tuple, r)) for r in rows), "time": time}


def _answer(fields: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def _bounded_put(mapping: OrderedDict, key, value, cap: int) -> None:
    mapping[key] = value
    mapping.move_to_end(key)
    while len(mapping) > cap:
        mapping.popitem(last=False)


class Watcher:
    def __init__(self, settings: Settings, references: ReferenceStore, registry, defer: bool = False):
        self.settings = settings
        # defer: a window due for its tests waits in ``due`` for a ``verdict`` record (the service tests it off the
        # event loop); otherwise it is tested at once (the backtest, the benchmarks).
        self.defer = defer
        self.policy = settings.drift
        self.references = references
        self.registry = registry
        self.metrics = metric_names.build("drift_watcher", registry)
        self.kinds = {f.name: f.type for f in settings.features}
        self.detectors: dict[str, WindowDetector] = {}
        self.online: dict[str, OnlineDetectors] = {}
        self.sinks: dict[tuple[str, str], ServingData] = {}
        self.reset()

    # -- state

    def reset(self) -> None:
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.requests: OrderedDict[str, dict] = OrderedDict()  # puid -> features, time, deployment
        self.answers: OrderedDict[str, dict] = OrderedDict()  # puid -> predictor -> answer
        self.window_rows: list[dict] = []
        self.window_scores: list[float] = []
        self.window_started: float | None = None
        self.window_index = 0
        self.window_online: list[str] = []  # online detectors that fired during the window
        # The sequential detector's window: the last window_size rows and scores, tested every evaluate_every rows.
        self.recent_rows: list[dict] = []
        self.recent_scores: list[float] = []
        self.since_evaluated = 0
        self.evaluations = 0  # windows tested so far
        self.queued = 0  # the sequential detector's windows due so far: each gets the next number, never reused
        self.due: list[dict] = []
        self.labelled: list[dict] = []
        self.labelled_puids: OrderedDict[str, None] = OrderedDict()
        # The sequential detector's evidence is in its overlapping windows: one alarm is a trigger.
        k, n = (1, 1) if self.sequential else (self.policy.confirm_windows, self.policy.of_last_windows)
        self.confirmation = Confirmation(k, n, self.policy.cooldown_s)
        self.pending_triggers: dict[str, dict] = {}
        # key -> last window of its retrain data: frozen by the sender, off the event loop, before the trigger goes.
        self.unfrozen: dict[str, int] = {}
        self.reference_version: str | None = None
        self.where = ("", "")  # namespace, deployment of the traffic seen
        self.last_result: dict | None = None

    def state(self) -> dict:
        """The state as plain data, in containers of its own: the service writes it in a worker thread while the
        watcher goes on (the rows and answers inside are never changed once made, so they are shared)."""
        return {
            "seen": list(self.seen),
            "requests": list(self.requests.items()),
            "answers": [(puid, dict(answers)) for puid, answers in self.answers.items()],
            "window_rows": list(self.window_rows),
            "window_scores": list(self.window_scores),
            "window_started": self.window_started,
            "window_index": self.window_index,
            "window_online": list(self.window_online),
            "recent_rows": list(self.recent_rows),
            "recent_scores": list(self.recent_scores),
            "since_evaluated": self.since_evaluated,
            "evaluations": self.evaluations,
            "queued": self.queued,
            "due": list(self.due),
            "online_state": self.online[self.reference_version].state() if self._online() else None,
            "labelled": list(self.labelled),
            "labelled_puids": list(self.labelled_puids),
            "history": list(self.confirmation.history),
            "last_trigger": self.confirmation.last_trigger,
            "pending_triggers": dict(self.pending_triggers),
            "unfrozen": dict(self.unfrozen),
            "reference_version": self.reference_version,
            "where": list(self.where),
            "last_result": self.last_result,
        }

    def restore(self, state: dict) -> None:
        self.seen = OrderedDict.fromkeys(state["seen"])
        self.requests = OrderedDict((k, _request(v["rows"], v["time"])) for k, v in state["requests"])
        self.answers = OrderedDict((k, {p: _answer(a) for p, a in v.items()}) for k, v in state["answers"])
        self.window_rows, self.window_scores = state["window_rows"], state["window_scores"]
        self.window_started, self.window_index = state["window_started"], state["window_index"]
        self.window_online = state["window_online"]
        # Absent from snapshots of versions without the sequential detector: it starts with an empty window.
        self.recent_rows, self.recent_scores = state.get("recent_rows", []), state.get("recent_scores", [])
        self.since_evaluated, self.evaluations = state.get("since_evaluated", 0), state.get("evaluations", 0)
        self.queued, self.due = state.get("queued", 0), state.get("due", [])
        self.labelled, self.labelled_puids = state["labelled"], OrderedDict.fromkeys(state["labelled_puids"])
        self.confirmation.history, self.confirmation.last_trigger = state["history"], state["last_trigger"]
        self.pending_triggers = state["pending_triggers"]
        self.unfrozen = state.get("unfrozen", {})  # absent from snapshots of earlier versions
        self.where, self.last_result = tuple(state["where"]), state["last_result"]
        if state["reference_version"] is not None:
            self._use_reference(state["reference_version"])
            if self._online() and state["online_state"] is not None:
                self.online[self.reference_version].restore(state["online_state"])

    # -- records

    def duplicate(self, record: dict) -> bool:
        return record.get("id") in self.seen

    def apply(self, record: dict) -> None:
        kind = record["kind"]
        if "id" in record:
            _bounded_put(self.seen, record["id"], None, self.policy.max_event_ids)
        if kind in ("request", "response", "feedback"):
            self.where = (record["namespace"], record["deployment"])
            self.metrics["ctloop_watcher_events_total"].labels(type=kind).inc()
        getattr(self, f"_on_{kind}")(record)

    def _on_request(self, record: dict) -> None:
        puid = record["puid"]
        if puid in self.requests:  # a shadow's mirrored copy of a request already counted
            return
        _bounded_put(self.requests, puid, _request(record["rows"], record["time"]), self.policy.max_tracked_requests)
        if self.window_started is None:
            self.window_started = record["time"]
        for row in record["rows"]:
            kept = {"puid": puid, "time": record["time"], **row}
            self.window_rows.append(kept)
            if self.sequential:
                self.recent_rows.append(kept)
            if self._online() and self.online[self.reference_version].update_row(row):
                self._online_fired("online_fet")
        if len(self.window_rows) >= self.policy.window_size:
            self._close_window(record["time"])
        if self.sequential:
            del self.recent_rows[: -self.policy.window_size]
            self.since_evaluated += len(record["rows"])
            if (
                self.since_evaluated >= self.policy.evaluate_every
                and len(self.recent_rows) >= self.policy.min_window_size
            ):
                self._evaluate_recent(record["time"])

    def _on_response(self, record: dict) -> None:
        puid, predictor, version = record["puid"], record["predictor"], record["model_version"]
        labels = {"deployment": record["deployment"], "predictor": predictor, "model_version": version}
        for score in record["scores"]:
            self.metrics["ctloop_watcher_scores"].labels(**labels).observe(score)
        for decision in record.get("decisions", []):
            self.metrics["ctloop_watcher_decisions_total"].labels(**labels, decision=decision).inc()
        answers = self.answers.get(puid, {})
        first = not answers
        answers[predictor] = _answer({k: record[k] for k in ANSWER_FIELDS if k in record})
        _bounded_put(self.answers, puid, answers, self.policy.max_tracked_requests)
        if first and version == self.reference_version:
            self.window_scores.extend(record["scores"])
            if self.sequential:
                self.recent_scores.extend(record["scores"])
                del self.recent_scores[: -self.policy.window_size]
            for score in record["scores"] if self._online() else ():
                if self.online[self.reference_version].update_score(score):
                    self._online_fired("online_cvm")
        main = answers.get(MAIN)
        if main is not None and "decisions" in main:
            for other, theirs in answers.items():
                # Each pair is counted once: when the second of the two answers arrives.
                if other == MAIN or "decisions" not in theirs or (other != predictor and predictor != MAIN):
                    continue
                for a, b in zip(main["decisions"], theirs["decisions"]):
                    self.metrics["ctloop_watcher_agreement_total"].labels(
                        deployment=record["deployment"],
                        predictor=other,
                        model_version=theirs["model_version"],
                        agree=str(a == b).lower(),
                    ).inc()

    def _on_feedback(self, record: dict) -> None:
        puid = record["puid"]
        request, answers = self.requests.get(puid), self.answers.get(puid)
        if request is None or not answers:
            self.metrics["ctloop_watcher_rejected_events_total"].labels(reason="feedback_unmatched").inc()
            return
        if puid in self.labelled_puids:  # one judgement per request: a resent or forged one would weigh it twice
            self.metrics["ctloop_watcher_rejected_events_total"].labels(reason="feedback_repeated").inc()
            return
        truths, rows = record["truths"], [dict(row) for row in request["rows"]]
        main = self._outcomes(answers[MAIN], truths) if MAIN in answers else None
        for predictor, answer in answers.items():
            outcomes = self._outcomes(answer, truths)
            labels = {
                "deployment": record["deployment"],
                "predictor": predictor,
                "model_version": answer["model_version"],
            }
            if main is not None and predictor != MAIN:
                # The same rows judged for both: the rollout compares accuracy on these pairs, whose difference
                # varies far less than that of two independent samples.
                for theirs, mine in zip(main, outcomes):
                    vs_main = "same" if theirs == mine else "better" if mine == "correct" else "worse"
                    self.metrics["ctloop_watcher_paired_feedback_total"].labels(**labels, vs_main=vs_main).inc()
            for row, outcome in zip(rows, outcomes):
                self.metrics["ctloop_watcher_feedback_total"].labels(**labels, outcome=outcome).inc()
                for segment, value in self._segments(row):
                    self.metrics["ctloop_watcher_segment_feedback_total"].labels(
                        **labels, segment=segment, value=value, outcome=outcome
                    ).inc()
        _bounded_put(self.labelled_puids, puid, None, self.policy.max_tracked_requests)
        data = self.settings.data
        day = datetime.fromtimestamp(request["time"], UTC).strftime("%Y-%m-%d")
        for i, (row, truth) in enumerate(zip(rows, truths)):
            # Class labels go back to integers, as in the training spans; regression targets stay floats.
            labelled = {**row, data.label: int(truth) if self.settings.data.task.value != "regression" else truth}
            if data.timestamp:
                labelled[data.timestamp] = day
            if data.id_column:
                labelled[data.id_column] = f"{puid}-{i}"
            self.labelled.append(labelled)

    def _outcomes(self, answer: dict, truths: list[float]) -> list[str]:
        if "classes" in answer:
            right = [int(c) == int(t) for c, t in zip(answer["classes"], truths)]
        else:
            threshold = self.settings.model.policy.threshold
            right = [(s >= threshold) == (t >= 0.5) for s, t in zip(answer["scores"], truths)]
        return ["correct" if r else "incorrect" for r in right]

    def _segments(self, row: dict):
        for segment in self.settings.segments:
            if segment.column is None or segment.column not in row or row[segment.column] is None:
                continue
            value = row[segment.column]
            if segment.bins:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                edges = segment.bins
                inside = [f"[{lo:g}, {hi:g})" for lo, hi in zip(edges, edges[1:]) if lo <= number < hi]
                value = inside[0] if inside else "outside"
            yield segment.name, str(value)

    def _on_close(self, record: dict) -> None:
        if len(self.window_rows) >= self.policy.min_window_size:
            self._close_window(record["time"])

    def _on_reference(self, record: dict) -> None:
        self._use_reference(record["version"])
        # Drift is judged against the new champion's training data from here on; old evidence no longer counts.
        self.confirmation.history, self.recent_scores = [], []

    def _on_frozen(self, record: dict) -> None:
        self.unfrozen.pop(record["key"], None)

    def _on_awaiting_labels(self, record: dict) -> None:
        # No labelled rows up to the trigger yet (feedback comes later, or not through Seldon): its retrain data
        # becomes the windows written by now, and the trigger waits until they hold some.
        if record["key"] in self.unfrozen:
            self.unfrozen[record["key"]] = record["window"]

    def _on_trigger_ack(self, record: dict) -> None:
        self.pending_triggers.pop(record["key"], None)
        self.unfrozen.pop(record["key"], None)
        self.metrics["ctloop_watcher_triggers_total"].labels(outcome=record["outcome"]).inc()

    # -- windows

    def prepare(self, version: str) -> None:
        """Build the detectors for a reference (slow with online detectors: call it off the event loop first)."""
        if version not in self.detectors:
            self.detectors[version] = WindowDetector(self.references.load(version), self.kinds, self.policy)
        if self.policy.online and version not in self.online:
            self.online[version] = self.references.cached_online(
                version,
                lambda: OnlineDetectors(self.references.load(version), self.detectors[version].encoder, self.policy),
            )

    @property
    def sequential(self) -> bool:
        return self.policy.detector == "sequential"

    def _online(self) -> bool:
        return self.policy.online and self.reference_version in self.online

    def _online_fired(self, name: str) -> None:
        if name not in self.window_online:
            self.window_online.append(name)
        self.metrics["ctloop_watcher_drift"].labels(detector=name).set(1)

    def _use_reference(self, version: str) -> None:
        self.prepare(version)
        self.reference_version = version
        self.metrics["ctloop_watcher_reference_version"].set(float(version) if version.isdigit() else 0)

    def sink(self) -> ServingData:
        if self.where not in self.sinks:
            self.sinks[self.where] = ServingData(self.settings.endpoints.artifact_store.root, *self.where)
        return self.sinks[self.where]

    def _close_window(self, now: float) -> None:
        """Writes the window's serving data (one part per window); with the windows detector, judges it."""
        index, rows, scores = self.window_index, self.window_rows, self.window_scores
        started = self.window_started if self.window_started is not None else now
        self.window_rows, self.window_scores, self.window_started = [], [], None
        self.window_index += 1
        try:
            sink = self.sink()
            sink.write_requests(index, rows, started)
            if self.labelled:
                sink.write_labelled(index, self.labelled)
        except Exception:  # the store being away must not stop detection (nor a replay); the window is logged
            log.exception("window %d: writing the serving data failed", index)
        self.labelled = []
        if not self.sequential and self.reference_version is not None:  # no champion yet: nothing to compare with
            self._due({"rows": rows, "scores": scores, "started": started, "index": index, "time": now})

    def _evaluate_recent(self, now: float) -> None:
        """The sequential detector: the last window_size rows (and the champion's scores of them) are due."""
        self.since_evaluated = 0
        if self.reference_version is not None:
            window = {"rows": list(self.recent_rows), "scores": list(self.recent_scores), "time": now}
            self._due({**window, "started": self.recent_rows[0]["time"], "index": self.queued})
            self.queued += 1

    def _due(self, window: dict) -> None:
        # The online alarms so far belong to this window, and the reference is the one it is judged against.
        window.update(online=self.window_online, version=self.reference_version)
        self.window_online = []
        if self.defer:
            self.due.append(window)
        else:
            self._conclude(window, self.judge(window))

    def judge(self, window: dict) -> dict:
        """A due window's test results (pure: the service calls it off the event loop, in a worker thread)."""
        detector = self.detectors[window["version"]]
        min_scores = self.policy.min_window_size // 2
        if self.sequential:
            level = detector.sequential_level(self.policy)
            result = detector.evaluate_sequential(window["rows"], window["scores"], min_scores, level)
        else:
            level, result = None, detector.evaluate(window["rows"], window["scores"], min_scores)
        return {"drift": result.drift, "tests": result.tests, "rows": result.rows, "level": level}

    def _on_verdict(self, record: dict) -> None:
        window = next((w for w in self.due if w["index"] == record["index"]), None)
        if window is None:  # dropped by a trigger meanwhile (sequential: the next alarm needs new evidence)
            return
        self.due.remove(window)
        if record["result"] is not None:  # None: the window could not be tested (logged by the service)
            self._conclude(window, record["result"])

    def _conclude(self, window: dict, result: dict) -> None:
        name = "sequential" if self.sequential else "window"
        self.evaluations += 1
        tests = dict(result["tests"])
        for fired in window["online"]:
            tests[fired] = {"test": fired, "p_value": None, "distance": None, "drift": True}
        drift = result["drift"] or bool(window["online"])
        for online in self.online[self.reference_version].detectors if self._online() else ():
            self.metrics["ctloop_watcher_drift"].labels(detector=online).set(0)
        self.metrics["ctloop_watcher_windows_evaluated_total"].labels(detector=name, drift=str(drift).lower()).inc()
        self.metrics["ctloop_watcher_drift"].labels(detector=name).set(int(drift))
        for feature, test in tests.items():
            if test["p_value"] is None:
                continue
            labels = {"feature": feature, "test": test["test"]}
            self.metrics["ctloop_watcher_feature_p_value"].labels(**labels).set(test["p_value"])
            self.metrics["ctloop_watcher_feature_distance"].labels(**labels).set(test["distance"])
        self.last_result = {"window": window["index"], "drift": drift, "rows": result["rows"], "tests": tests}
        if result["level"] is not None:
            self.last_result["level"] = result["level"]
        if self.confirmation.observe(drift, window["time"]):
            self._trigger(window, self.last_result)
        self.metrics["ctloop_watcher_drift_confirmed"].set(int(self.confirmation.confirmed))

    def _trigger(self, window: dict, result: dict) -> None:
        index, started, now, level = window["index"], window["started"], window["time"], result.get("level")
        namespace, deployment = self.where
        # The window's start in the key: a replay makes the same key (the webhook answers it as a duplicate), but a
        # watcher that lost its state, and numbers its windows from 0 again, never reuses one for another trigger.
        start = datetime.fromtimestamp(started, UTC)
        mark = "e" if self.sequential else "w"
        key = f"drift-{namespace}-{deployment}-ref{self.reference_version}-{mark}{index}-{start:%Y%m%dT%H%M%SZ}"
        parts = [
            f"{name} ({t['test']} p={t['p_value']:.2g}, distance={t['distance']:.3g})"
            if t["p_value"] is not None
            else f"{name} (fired during the window)"
            for name, t in sorted(result["tests"].items())
            if t["drift"]
        ]
        span = f"{start:%Y-%m-%dT%H:%M:%SZ}..{datetime.fromtimestamp(now, UTC):%H:%M:%SZ}"
        where = f"{namespace}/{deployment} against champion v{self.reference_version}"
        if self.sequential:
            reason = (
                f"drift detected on {where}: the last {result['rows']} events ({span}) differ at p < {level:.2g} "
                f"(at most one false alarm per {self.policy.expected_run_time:,} stable events); "
                f"drifting: {', '.join(parts) or 'none'}"
            )
            # The retrain data: the labelled rows of the windows written so far (the one filling goes to the next
            # run), unless none is written yet. And the next alarm needs new evidence.
            if self.window_index == 0:
                self._close_window(now)
            part = self.window_index - 1
            self.recent_rows, self.recent_scores, self.due = [], [], []
        else:
            first = index - self.policy.of_last_windows + 1
            reason = (
                f"drift confirmed on {where}: {self.policy.confirm_windows} of the last {self.policy.of_last_windows} "
                f"windows drifted (windows {max(first, 0)}-{index}, last {span}); "
                f"drifting: {', '.join(parts) or 'none'}"
            )
            part = index
        # No I/O here (this also runs when the journal is replayed): the store being away must not lose the trigger.
        if not self.policy.retrain_data_uri:
            self.unfrozen[key] = part
        self.pending_triggers[key] = {
            "reason": reason,
            "data_uri": self.policy.retrain_data_uri or self.sink().frozen_uri(key),
            "idempotency_key": key,
            "source": "drift-watcher",
        }
        log.warning("%s", reason)
