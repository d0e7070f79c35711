"""Sending a signed retrain request: what `ctloop retrain` uses, and any Python caller may. Imports only httpx and
the shared core, so that it works in every environment that has httpx."""

from __future__ import annotations

import json

import httpx

from ctloop import signing
from ctloop.errors import AccessError, BadInputError, CtloopError, NotReadyError

__all__ = ["request_retrain"]


def _error_for(status: int, message: str) -> CtloopError:
    if status in (401, 403):
        return AccessError(message)
    if status == 429 or status >= 500:
        return CtloopError(message)
    return BadInputError(message)


def request_retrain(url: str, secret: bytes, body: dict, timeout_s: float = 10.0, transport=None) -> tuple[int, dict]:
    """POST ``body`` to ``<url>/v1/retrain``, signed; the status and the answer, or the server's refusal raised."""
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", **signing.sign(secret, data)}
    try:
        with httpx.Client(timeout=timeout_s, transport=transport) as client:
            response = client.post(f"{url.rstrip('/')}/v1/retrain", content=data, headers=headers)
    except httpx.HTTPError as e:
        raise NotReadyError(f"the retrain webhook at {url} did not answer: {e}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": response.text[:500]}
    if response.status_code >= 400:
        message = f"{response.status_code}: {answer.get('error', answer)}"
        if "retry-after" in response.headers:
            message += f" (retry after {response.headers['retry-after']} s)"
        raise _error_for(response.status_code, message)
    return response.status_code, answer
