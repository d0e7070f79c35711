"""Alertmanager's webhook payload, the webhook's second request body (the first, the retrain request, is the
loop's contract: ``ctloop.contracts.retrain``). It keeps unknown keys, because Alertmanager adds fields between
releases and does not retry a 4xx; it is parsed with the retrain request's ``parse``, so both name bad fields
the same way."""

from __future__ import annotations

from typing import Literal

from pydantic.v1 import BaseModel, Extra, Field

__all__ = ["Alert", "AlertmanagerPayload"]


class _Lenient(BaseModel):
    class Config:
        extra = Extra.ignore


class Alert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str  # noqa: N815 (Alertmanager's field names)
    fingerprint: str


class AlertmanagerPayload(_Lenient):
    version: Literal["4"]
    groupKey: str  # noqa: N815
    status: Literal["firing", "resolved"]
    alerts: list[Alert]
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
