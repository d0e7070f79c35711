"""The retrain request: what the drift watcher, ``ctloop retrain`` and any other caller send to the retrain
webhook's ``POST /v1/retrain``, signed with the shared secret (``contracts.signing``).

One schema, strict (unknown keys and wrong types are refused, naming the field), written against ``pydantic.v1``
so that it loads in every image (the watch image is held at pydantic 1.10). One sender, ``send``, whose answer
says what the webhook decided: accepted (202, or 200 for a duplicate), cooldown (429), refused (any other 4xx: it
will not change by resending), or retry (5xx or no answer: send it again later).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic.v1 import BaseModel, Extra, Field, StrictBool, ValidationError, constr, validator

from ctloop.contracts import signing, span
from ctloop.errors import AccessError, BadInputError, CtloopError, NotReadyError, key_path

__all__ = ["Answer", "PipelineParameters", "RetrainRequest", "parse", "send"]

PATH = "/v1/retrain"
ACCEPTED, COOLDOWN, REFUSED, RETRY = "accepted", "cooldown", "refused", "retry"
OUTCOMES = (ACCEPTED, COOLDOWN, REFUSED)  # the ones a sender records; retry is not an outcome yet

Reason = constr(strict=True, min_length=1, max_length=20_000)
Uri = constr(strict=True, min_length=1, max_length=2_000)
OptionalUri = constr(strict=True, max_length=2_000)
Key = constr(strict=True, min_length=1, max_length=200)
Source = constr(strict=True, min_length=1, max_length=100)


class _Strict(BaseModel):
    class Config:
        extra = Extra.forbid


class PipelineParameters(_Strict):
    """The continuous-training pipeline's parameters a caller may set (data_uri and config are set by ctloop)."""

    previous_statistics_uri: OptionalUri = Field("", description="The previous span's statistics, for drift checks.")
    schema_uri: OptionalUri = Field("", description="A pinned schema to validate against.")


class RetrainRequest(_Strict):
    reason: Reason = Field(..., description="Why: recorded with the run and in the webhook's audit log.")
    data_uri: Uri = Field(..., description="The span to train on: an absolute path, file:// or s3:// URI.")
    parameters: PipelineParameters = Field(default_factory=PipelineParameters)
    idempotency_key: Key = Field(..., description="Sending the same key again starts nothing new.")
    force: StrictBool = Field(False, description="Start a run even while the pipeline is cooling down.")
    source: Source = Field("api", description="Who asks: cli, drift-watcher, api, ...")

    _data_uri = validator("data_uri", allow_reuse=True)(span.check_uri)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse(model: type[BaseModel], body: bytes) -> BaseModel:
    """``body`` (JSON) as ``model``, or a BadInputError whose message names every bad field."""
    try:
        payload = json.loads(body, parse_constant=_no_constant)  # NaN and Infinity are Python's, not JSON
    except (UnicodeDecodeError, ValueError) as e:
        raise BadInputError(f"body: not valid JSON ({e})") from None
    except RecursionError:
        raise BadInputError("body: not valid JSON (nested too deeply)") from None
    if not isinstance(payload, dict):
        raise BadInputError(f"body: expected a JSON object, got {type(payload).__name__}")
    try:
        return model.parse_obj(payload)
    except ValidationError as e:
        problems = []
        for error in e.errors():
            message = {"value_error.extra": "unknown field", "value_error.missing": "Field required"}.get(
                error["type"], error["msg"]
            )
            problems.append(f"{key_path(error['loc']) or 'body'}: {message}")
        raise BadInputError("; ".join(problems)) from None


@dataclass
class Answer:
    status: int
    body: dict = field(default_factory=dict)
    retry_after: str | None = None

    @property
    def outcome(self) -> str:
        if self.status in (200, 201, 202):
            return ACCEPTED
        if self.status == 429:
            return COOLDOWN
        return RETRY if self.status >= 500 else REFUSED

    def raise_for_refusal(self) -> Answer:
        """Self when the webhook took the request; otherwise the refusal as ctloop's error."""
        if self.status < 400:
            return self
        message = f"{self.status}: {self.body.get('error', self.body)}"
        if self.retry_after:
            message += f" (retry after {self.retry_after} s)"
        if self.status in (401, 403):
            raise AccessError(message)
        if self.status == 429 or self.status >= 500:
            raise CtloopError(message)
        raise BadInputError(message)


def send(url: str, secret: bytes, request: RetrainRequest, timeout_s: float = 10.0, transport=None) -> Answer:
    """POST ``request`` to ``<url>/v1/retrain``, signed; NotReadyError when the webhook does not answer."""
    import httpx  # not in every image; every sender has it

    data = request.json(separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", **signing.sign(secret, data)}
    try:
        with httpx.Client(timeout=timeout_s, transport=transport) as client:
            response = client.post(f"{url.rstrip('/')}{PATH}", content=data, headers=headers)
    except httpx.HTTPError as e:
        raise NotReadyError(f"the retrain webhook at {url} did not answer: {e}") from None
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:500]}
    if not isinstance(body, dict):
        body = {"answer": body}
    return Answer(response.status_code, body, response.headers.get("retry-after"))
