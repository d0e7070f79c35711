"""The webhook's HTTP side: POST /v1/retrain (HMAC-signed), POST /v1/alertmanager (bearer token), GET /healthz,
/readyz and /metrics on one port.

Order of checks on /v1/retrain: body size (413), signature (401), schema (400 naming the field), then the decision
(202 accepted, 200 duplicate, 409 key reused for another body, 429 cooldown). Alertmanager gets 2xx for every
decision, duplicates included, because it does not retry a 4xx and resends each group every interval.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import math
import os
import time

from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ctloop.config import Settings
from ctloop.contracts import signing
from ctloop.contracts.retrain import RetrainRequest, parse
from ctloop.contracts.span import check_uri
from ctloop.errors import AccessError, BadInputError, CtloopError
from ctloop.request_body import read_limited
from ctloop.services.retrain_webhook.audit import AuditLog
from ctloop.services.retrain_webhook.metrics import Metrics
from ctloop.services.retrain_webhook.schemas import AlertmanagerPayload
from ctloop.services.retrain_webhook.store import Decision, Store
from ctloop.services.retrain_webhook.worker import Worker

log = logging.getLogger(__name__)


class ConflictError(BadInputError):
    status_code = 409


class TokenError(AccessError):
    """``reason`` (missing, mismatch, disabled) is a metric label; a missing token is a 401, a wrong one a 403."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        self.status_code = 401 if reason == "missing" else 403
        super().__init__(message)


class CooldownError(CtloopError):
    status_code = 429

    def __init__(self, message: str, retry_after_s: float):
        self.retry_after_s = retry_after_s
        super().__init__(message)


class RetrainWebhook:
    def __init__(self, settings: Settings, store: Store, worker: Worker, audit: AuditLog, metrics: Metrics,
                 secret: bytes, alertmanager_token: bytes | None, clock=time.time):  # fmt: skip
        self.settings = settings
        self.policy = settings.webhook
        self.pipeline = settings.name
        self.store = store
        self.worker = worker
        self.audit = audit
        self.metrics = metrics
        self.secret = secret
        self.token = alertmanager_token
        self.clock = clock

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app):
            self.worker.start()
            try:
                yield
            finally:
                self.worker.stop()

        routes = [
            Route("/v1/retrain", self.retrain, methods=["POST"]),
            Route("/v1/alertmanager", self.alertmanager, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics_page, methods=["GET"]),
        ]
        return Starlette(routes=routes, lifespan=lifespan)

    # -- answers

    def _answer(self, endpoint: str, status: int, body: dict, headers: dict | None = None) -> JSONResponse:
        self.metrics.requests.labels(endpoint, str(status)).inc()
        return JSONResponse(body, status_code=status, headers=headers)

    def _refuse(self, endpoint: str, request: Request, error: CtloopError) -> JSONResponse:
        reason = getattr(error, "reason", None)
        if error.status_code in (401, 403):
            self.metrics.auth_failures.labels(endpoint, reason or "unknown").inc()
        if not isinstance(error, CooldownError):  # a cooldown is a decision, audited as one
            self.audit.write("refused", endpoint=endpoint, code=error.status_code, error=str(error),
                             client=request.client.host if request.client else None)  # fmt: skip
        headers = {}
        if isinstance(error, CooldownError):
            headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
        if isinstance(error, TokenError) and error.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        body = {"error": str(error)}
        if isinstance(error, CooldownError):
            body["retry_after_s"] = int(headers["Retry-After"])
        return self._answer(endpoint, error.status_code, body, headers)

    def _decided(self, endpoint: str, decision: Decision, **audit) -> None:
        self.metrics.decisions.labels(decision.kind).inc()
        trigger = decision.trigger
        self.audit.write(decision.kind, endpoint=endpoint, trigger_id=trigger.id if trigger else None, **audit)
        if decision.kind == "accepted":
            self.worker.notify()

    # -- POST /v1/retrain

    async def retrain(self, request: Request) -> Response:
        endpoint = "retrain"
        try:
            body = await read_limited(request, self.policy.max_body_bytes, "webhook.max_body_bytes")
            signing.verify(self.secret, body, request.headers, self.policy.max_clock_skew_s, now=self.clock())
            wanted: RetrainRequest = parse(RetrainRequest, body)
            decision = self.store.decide(
                keys=[f"retrain:{wanted.idempotency_key}"], body_sha256=hashlib.sha256(body).hexdigest(),
                pipeline=self.pipeline, source=wanted.source, reason=wanted.reason, data_uri=wanted.data_uri,
                parameters=wanted.parameters.dict(), force=wanted.force, cooldown_s=self.policy.cooldown_s,
                now=self.clock(),
            )  # fmt: skip
            if decision.kind == "duplicate" and not decision.same_body:
                raise ConflictError("idempotency_key: already used for a different request")
            if decision.kind == "cooldown":
                self._decided(endpoint, decision, key=wanted.idempotency_key, source=wanted.source)
                raise CooldownError(
                    f"pipeline {self.pipeline} is cooling down (webhook.cooldown_s={self.policy.cooldown_s}); "
                    "retry later or send force: true",
                    decision.retry_after_s,
                )
        except CtloopError as e:
            return self._refuse(endpoint, request, e)
        self._decided(endpoint, decision, key=wanted.idempotency_key, source=wanted.source, reason=wanted.reason,
                      data_uri=wanted.data_uri, forced=wanted.force)  # fmt: skip
        answer = {**decision.trigger.answer(), "decision": decision.kind}
        return self._answer(endpoint, 202 if decision.kind == "accepted" else 200, answer)

    # -- POST /v1/alertmanager

    def _check_token(self, request: Request) -> None:
        if self.token is None:
            raise TokenError(
                "disabled", f"the Alertmanager receiver is off: {self.policy.alertmanager_token_env} is unset"
            )
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise TokenError("missing", "Authorization: Bearer <token> is required")
        if not hmac.compare_digest(given.strip().encode(), self.token):
            raise TokenError("mismatch", "the bearer token is not the configured one")

    async def alertmanager(self, request: Request) -> Response:
        endpoint = "alertmanager"
        try:
            self._check_token(request)
            body = await read_limited(request, self.policy.max_body_bytes, "webhook.max_body_bytes")
            payload: AlertmanagerPayload = parse(AlertmanagerPayload, body)
            label = self.policy.alert_label
            chosen = [(i, a) for i, a in enumerate(payload.alerts)
                      if a.status == "firing" and a.labels.get(label) == "true"]  # fmt: skip
            if not chosen:
                decision = Decision("ignored")
                self._decided(endpoint, decision, group_key=payload.groupKey, status=payload.status,
                              alerts=len(payload.alerts))  # fmt: skip
                return self._answer(endpoint, 200, {"decision": "ignored",
                                                    "detail": f"no firing alert with {label}=\"true\""})  # fmt: skip
            data_uri = self._data_uri(payload, chosen)
            keys = [_alert_key(payload.groupKey, a.fingerprint, a.startsAt) for _, a in chosen]
            names = sorted({a.labels.get("alertname", "?") for _, a in chosen})
            reason = "; ".join(
                f"alert {a.labels.get('alertname', '?')}: {a.annotations.get('summary', '')}".rstrip(": ")
                for _, a in chosen
            )
            decision = self.store.decide(
                keys=keys, body_sha256=None, pipeline=self.pipeline, source="alertmanager", reason=reason,
                data_uri=data_uri, parameters={}, force=False, cooldown_s=self.policy.cooldown_s, now=self.clock(),
            )  # fmt: skip
        except CtloopError as e:
            return self._refuse(endpoint, request, e)
        self._decided(endpoint, decision, group_key=payload.groupKey, alerts=names, data_uri=data_uri)
        answer = {"decision": decision.kind, **(decision.trigger.answer() if decision.trigger else {})}
        if decision.kind == "cooldown":
            answer["retry_after_s"] = math.ceil(decision.retry_after_s)
        return self._answer(endpoint, 202 if decision.kind == "accepted" else 200, answer)

    def _data_uri(self, payload: AlertmanagerPayload, chosen) -> str:
        for i, alert in chosen:
            if alert.annotations.get("data_uri"):
                where, uri = f"alerts[{i}].annotations.data_uri", alert.annotations["data_uri"]
                break
        else:
            where, uri = "commonAnnotations.data_uri", payload.commonAnnotations.get("data_uri")
            if not uri:
                where, uri = "webhook.default_data_uri", self.policy.default_data_uri
        if not uri:
            raise BadInputError("alerts[].annotations.data_uri: missing, and webhook.default_data_uri is not set")
        try:
            return check_uri(uri)
        except ValueError as e:
            raise BadInputError(f"{where}: {e}") from None

    # -- health and metrics

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        ready = self.worker.alive()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def metrics_page(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type="text/plain; version=0.0.4")


def _alert_key(group_key: str, fingerprint: str, starts_at: str) -> str:
    digest = hashlib.sha256(f"{group_key}\x00{fingerprint}\x00{starts_at}".encode()).hexdigest()
    return f"alert:{digest}"


def build(settings: Settings, config_path, state_dir, launcher=None, environ=None, clock=time.time) -> RetrainWebhook:
    """The webhook with its store, audit log, metrics and worker in ``state_dir``; the launcher from the settings
    unless one is given. The HMAC secret must be set (refusing to start beats accepting unsigned requests); the
    Alertmanager token is optional, and without it /v1/alertmanager answers 403."""
    from pathlib import Path

    from ctloop.services.retrain_webhook import launchers

    policy = settings.webhook
    secret = signing.read_secret(policy.secret_env, environ)
    token_text = (os.environ if environ is None else environ).get(policy.alertmanager_token_env)
    token = token_text.strip().encode() if token_text and token_text.strip() else None
    state_dir = Path(state_dir)
    store = Store(state_dir / "queue.sqlite")
    audit = AuditLog(state_dir / "audit.jsonl")
    metrics = Metrics()
    launcher = launcher or launchers.for_settings(settings, Path(config_path).resolve(), state_dir)
    worker = Worker(store, launcher, audit, metrics, attempts=policy.launch_attempts, backoff_s=policy.launch_backoff_s,
                    poll_s=policy.run_poll_s, clock=clock)  # fmt: skip
    return RetrainWebhook(settings, store, worker, audit, metrics, secret, token, clock)
