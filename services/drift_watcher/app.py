"""The watcher's HTTP side and its background loops.

Everything that changes the state runs on the event loop's thread, one record at a time: a record is written to
the journal, then applied, then the event is acknowledged. Four loops run beside the handlers: the judge (tests the
windows that are due in a worker thread and records each verdict, so that no event waits for a test), the reference
poller (has the champion changed?), the window clock (close windows that are old enough) and the trigger sender
(signed retrain requests to the webhook until it answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from pydantic.v1 import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ctloop import metric_names
from ctloop.config import Settings
from ctloop.contracts import cloudevents, ingestion, retrain
from ctloop.errors import BadInputError, CtloopError, TooLargeError
from ctloop.request_body import read_limited
from ctloop.services.drift_watcher.journal import GroupCommit, Journal
from ctloop.services.drift_watcher.reference import ReferenceStore
from ctloop.services.drift_watcher.watcher import Watcher

log = logging.getLogger(__name__)
MAX_EVENT_BYTES = 4 * 1024 * 1024
_KINDS = metric_names.metric("ctloop_watcher_unreplayable_records_total").values["kind"]


class Service:
    def __init__(self, settings: Settings, state_dir: Path, secret: bytes, token: str, snapshot_every: int = 2000):
        self.settings = settings
        self.state_dir = Path(state_dir)
        self.secret = secret
        self.token = token  # required on /v1/events (contracts/ingestion.py)
        self.snapshot_every = snapshot_every
        self.registry = CollectorRegistry()
        references = ReferenceStore(self.state_dir / "reference", settings)
        self.watcher = Watcher(settings, references, self.registry, defer=True)
        self.due = asyncio.Event()  # set when a window is due for its tests
        self.snapshotting: asyncio.Future | None = None  # the snapshot being written off the event loop
        self.journal = Journal(self.state_dir / "journal")
        self.commit = GroupCommit(self.journal)
        self.ready = False
        self.awaiting_labels: set[str] = set()  # triggers held: no labelled row to retrain on yet

    # -- state

    def recover(self) -> int:
        state, records = self.journal.recover()
        if state is not None:
            self.watcher.restore(state)
        applied = sum(self._apply(record) for record in records)
        if self.journal.unreadable:
            self.watcher.metrics["ctloop_watcher_unreplayable_records_total"].labels(kind="unknown").inc(
                self.journal.unreadable
            )
        if applied < len(records) or self.journal.unreadable:
            # A snapshot now, so that the next restart does not meet the records set aside again.
            self.journal.snapshot(self.watcher.state())
        log.info("recovered: snapshot %s, %d journal records replayed, %d set aside", state is not None, applied,
                 len(records) - applied)  # fmt: skip
        return applied

    def record(self, record: dict) -> bool:
        """Journals and applies ``record``; False if it could not be applied (it is then set aside)."""
        self.journal.append(record)
        if not self._apply(record):
            self.journal.snapshot(self.watcher.state())  # as in recover: a restart must not replay it
            return False
        # A snapshot costs in proportion to the requests tracked (some 200 ms of CPU at 20,000): taken at least that
        # many records apart, its cost per event stays flat however full the state is, and a restart replays at
        # most max(snapshot_every, max_tracked_requests) records (seconds).
        due = max(self.snapshot_every, len(self.watcher.requests))
        if self.journal.records_since_snapshot >= due and self.snapshotting is None:
            # The new segment starts here, with a copy of the state as of here; the copy is written in a worker
            # thread.
            segment, state = self.journal.rotate(), self.watcher.state()
            self.snapshotting = asyncio.ensure_future(asyncio.to_thread(self.journal.write_snapshot, segment, state))
            self.snapshotting.add_done_callback(self._snapshot_written)
        if self.watcher.due:
            self.due.set()
        return True

    def _snapshot_written(self, future: asyncio.Future) -> None:
        self.snapshotting = None
        if not future.cancelled() and future.exception() is not None:  # the next one is tried after as many records
            log.error("snapshot: %s", future.exception())

    def _apply(self, record: dict) -> bool:
        """Applies one record; one that raises is set aside (unreplayable.jsonl), counted and logged, and the
        watcher goes on: no record, however it got into the journal, may stop drift detection or its recovery."""
        try:
            self.watcher.apply(record)
            return True
        except Exception as e:
            kind = record.get("kind") if record.get("kind") in _KINDS else "unknown"
            log.exception("record %s (%s) could not be applied: set aside", record.get("id", "-"), kind)
            self.watcher.metrics["ctloop_watcher_unreplayable_records_total"].labels(kind=kind).inc()
            self.journal.set_aside({"record": record}, repr(e))
            return False

    # -- loops

    async def judge(self) -> None:
        """Tests the due windows in order, each in a worker thread, and records its verdict. Meanwhile events are
        acknowledged as they come; a window that waits is in the state, so a restart tests it after the replay."""
        while True:
            await self.due.wait()
            self.due.clear()
            while self.watcher.due:
                window = self.watcher.due[0]
                try:
                    result = await asyncio.to_thread(self.watcher.judge, window)
                except Exception:  # a window that cannot be tested must not stop the ones after it
                    log.exception("window %s could not be tested: skipped", window["index"])
                    result = None
                self.record({"kind": "verdict", "index": window["index"], "result": result, "time": window["time"]})

    async def poll_reference(self) -> None:
        while True:
            try:
                version = await asyncio.to_thread(self.watcher.references.champion_version)
                if version is not None and version != self.watcher.reference_version:
                    await asyncio.to_thread(self.watcher.prepare, version)  # detectors built off the event loop
                    self.record({"kind": "reference", "version": version, "time": time.time()})
                    log.info("reference: champion version %s", version)
            except Exception as e:  # the registry being away must not stop ingestion
                log.warning("reference poll: %s", e)
            await asyncio.sleep(self.settings.drift.reference_poll_s)

    async def close_old_windows(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            started, drift = self.watcher.window_started, self.settings.drift
            old_enough = started is not None and time.time() - started >= drift.window_max_age_s
            if old_enough and len(self.watcher.window_rows) >= drift.min_window_size:
                self.record({"kind": "close", "time": time.time()})

    async def send_triggers(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            for key, body in list(self.watcher.pending_triggers.items()):
                window = self.watcher.unfrozen.get(key)
                if window is not None:
                    copied = await asyncio.to_thread(self._freeze, key, window)
                    if copied is None:
                        delay = min(delay * 2, 60.0)
                        break
                    if copied == 0:  # a run on an empty span would fail at its first step
                        self._await_labels(key, window)
                        delay = 5.0  # a listing of the labelled parts: cheap, and labels go soon after they come
                        continue
                    self.record({"kind": "frozen", "key": key, "time": time.time()})
                self.awaiting_labels.discard(key)
                outcome = await asyncio.to_thread(self._send, body)
                if outcome == retrain.RETRY:
                    delay = min(delay * 2, 60.0)
                    break
                delay = 1.0
                self.record({"kind": "trigger_ack", "key": key, "outcome": outcome, "time": time.time()})
            self.awaiting_labels.intersection_update(self.watcher.pending_triggers)
            self.watcher.metrics["ctloop_watcher_triggers_awaiting_labels"].set(len(self.awaiting_labels))

    def _freeze(self, key: str, window: int) -> int | None:
        """Copies the trigger's retrain data before its first send; returns how many parts, None when the store
        failed. A store that fails keeps the trigger pending, to be tried again with the sender's backoff; copying
        again copies the same parts."""
        try:
            return self.watcher.sink().freeze_labelled(key, window)
        except Exception as e:
            log.warning("trigger %s: freezing its retrain data failed, to be retried: %s", key, e)
            self.watcher.metrics["ctloop_watcher_freeze_failures_total"].inc()
            return None

    def _await_labels(self, key: str, window: int) -> None:
        """Holds a trigger whose retrain data has no labelled row yet, and moves its data to the windows written
        since (journaled, so a restart freezes the same parts): it goes once feedback has come in."""
        if key not in self.awaiting_labels:
            log.warning(
                "trigger %s waits for labelled rows to retrain on: no feedback has come in up to window %d (send it "
                "to the model's feedback endpoint, or set drift.retrain_data_uri)",
                key,
                window,
            )
            self.awaiting_labels.add(key)
        latest = self.watcher.window_index - 1
        if latest > window:
            self.record({"kind": "awaiting_labels", "key": key, "window": latest, "time": time.time()})

    def _send(self, body: dict) -> str:
        """The trigger's outcome once the webhook has decided, or RETRY to try again later."""
        url = self.settings.endpoints.webhook.url
        try:
            answer = retrain.send(url, self.secret, retrain.RetrainRequest.parse_obj(body))
        except ValidationError as e:
            log.error("trigger %s is not a valid retrain request: %s", body.get("idempotency_key"), e)
            return retrain.REFUSED
        except CtloopError as e:
            log.warning("%s", e)
            return retrain.RETRY
        if answer.outcome == retrain.RETRY:
            log.warning("webhook %s answered %s: %s", url, answer.status, answer.body)
        elif answer.outcome == retrain.REFUSED:
            # A refusal (bad signature, bad body) will not change by resending: record it and move on.
            log.error("webhook refused the trigger (%s): %s", answer.status, answer.body)
        return answer.outcome

    # -- HTTP

    async def ingest(self, request: Request) -> Response:
        # Before a byte of the body is read: the events change the retrain data and can make the watcher sign a
        # retrain request, so only the request loggers the deploy step gave the token may send them.
        if not ingestion.authorized(request.headers.get("Authorization"), self.token):
            self.watcher.metrics["ctloop_watcher_rejected_events_total"].labels(reason="unauthorized").inc()
            return JSONResponse({"error": "Authorization: the watcher's ingestion token is required (Basic or Bearer)"},
                                401, headers={"WWW-Authenticate": 'Basic realm="ctloop-watcher"'})  # fmt: skip
        try:
            body = await read_limited(request, MAX_EVENT_BYTES, "the watcher's limit per event")
        except TooLargeError as e:
            self.watcher.metrics["ctloop_watcher_rejected_events_total"].labels(reason="too_large").inc()
            return JSONResponse({"error": str(e)}, 413)
        try:
            record = cloudevents.parse(request.headers, body)
        except BadInputError as e:
            self.watcher.metrics["ctloop_watcher_rejected_events_total"].labels(reason="invalid").inc()
            return JSONResponse({"error": str(e)}, 400)
        if self.watcher.duplicate(record):
            self.watcher.metrics["ctloop_watcher_duplicate_events_total"].inc()
            return JSONResponse({"status": "duplicate", "id": record["id"]})
        if not self.record(record):
            return JSONResponse({"error": f"event {record['id']}: could not be applied; set aside for a person"}, 422)
        if self.settings.drift.journal_fsync:
            await self.commit.durable(self.journal.appended)
        self.watcher.metrics["ctloop_watcher_ingestion_lag_seconds"].set(max(record["received"] - record["time"], 0))
        self.watcher.metrics["ctloop_watcher_buffered_rows"].set(len(self.watcher.window_rows))
        return JSONResponse({"status": "accepted", "id": record["id"]})

    def status(self) -> dict:
        w = self.watcher
        return {
            "reference_version": w.reference_version,
            "window": {"index": w.window_index, "rows": len(w.window_rows), "started": w.window_started},
            "due": len(w.due),
            "history": w.confirmation.history,
            "confirmed": w.confirmation.confirmed,
            "last_trigger": w.confirmation.last_trigger,
            "pending_triggers": list(w.pending_triggers),
            "awaiting_labels": sorted(self.awaiting_labels),
            "last_result": w.last_result,
        }

    def app(self) -> Starlette:
        async def ingest(request):
            return await self.ingest(request)

        async def healthz(request):
            return JSONResponse({"status": "alive"})

        async def readyz(request):
            if not self.ready:
                return JSONResponse({"status": "recovering"}, 503)
            return JSONResponse({"status": "ready", "reference_version": self.watcher.reference_version})

        async def metrics(request):
            return Response(generate_latest(self.registry), media_type="text/plain; version=0.0.4")

        async def status(request):
            return JSONResponse(self.status())

        @contextlib.asynccontextmanager
        async def lifespan(app):
            await asyncio.to_thread(self.recover)
            # What exists now lives as long as the process (the libraries' modules, the reference, the detectors):
            # out of the collector's sight, a full collection no longer walks it, and each took some 100 ms.
            gc.collect()
            gc.freeze()
            self.ready = True
            self.due.set()  # windows left due by the replay
            loops = [
                asyncio.create_task(loop())
                for loop in (self.judge, self.poll_reference, self.close_old_windows, self.send_triggers)
            ]
            try:
                yield
            finally:
                for task in loops:
                    task.cancel()
                if self.snapshotting is not None:
                    await asyncio.wait([self.snapshotting])
                self.journal.snapshot(self.watcher.state())
                self.journal.close()

        return Starlette(
            routes=[
                Route("/v1/events", ingest, methods=["POST"]),
                Route("/v1/status", status),
                Route("/healthz", healthz),
                Route("/readyz", readyz),
                Route("/metrics", metrics),
            ],
            lifespan=lifespan,
        )
