"""The two request bodies the webhook accepts. /v1/retrain's schema is strict (unknown keys and wrong types are
refused with a 400 naming the field); Alertmanager's payload keeps unknown keys, because Alertmanager adds fields
between releases and does not retry a 4xx."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ctloop.errors import BadInputError

__all__ = ["AlertmanagerPayload", "RetrainRequest", "parse", "span_uri"]

# Where a span may live: what the pipeline's artifact layer reads.
_SCHEMES = ("file://", "s3://", "gs://")


def span_uri(value: str) -> str:
    if not (value.startswith("/") or value.startswith(_SCHEMES)):
        raise ValueError(f"must be an absolute path or a {', '.join(_SCHEMES)} URI")
    return value


class PipelineParameters(BaseModel):
    """The continuous-training pipeline's parameters a caller may set (data_uri and config are set by ctloop)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    previous_statistics_uri: str = Field("", description="The previous span's statistics, for drift checks.")
    schema_uri: str = Field("", description="A pinned schema to validate against.")


class RetrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(..., min_length=1, max_length=20_000)
    data_uri: str = Field(..., min_length=1, max_length=2_000)
    parameters: PipelineParameters = Field(default_factory=PipelineParameters)
    idempotency_key: str = Field(..., min_length=1, max_length=200)
    force: bool = False
    source: str = Field("api", min_length=1, max_length=100)

    _data_uri = field_validator("data_uri")(span_uri)


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str  # noqa: N815 (Alertmanager's field names)
    fingerprint: str


class AlertmanagerPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str  # noqa: N815
    status: Literal["firing", "resolved"]
    alerts: list[Alert]
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse(model: type[BaseModel], body: bytes) -> BaseModel:
    """``body`` as ``model``, or a BadInputError whose message names every bad field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        problems = []
        for error in e.errors():
            if error["type"] == "json_invalid":
                raise BadInputError(f"body: not valid JSON ({error['msg']})") from None
            message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{_path(error['loc']) or 'body'}: {message}")
        raise BadInputError("; ".join(problems)) from None
