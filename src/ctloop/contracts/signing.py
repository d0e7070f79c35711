"""Signed webhook requests: HMAC-SHA256 over ``<timestamp>.<body>`` with a shared secret.

The sender puts the Unix timestamp in ``X-Ctloop-Timestamp`` and ``sha256=<hex digest>`` in
``X-Ctloop-Signature``. The receiver recomputes the digest, compares in constant time and refuses timestamps
outside its tolerance, so that a captured request cannot be replayed later (within the tolerance the webhook's
idempotency key makes a replay harmless).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time

from ctloop.errors import AccessError, BadInputError

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "SignatureError", "read_secret", "sign", "verify"]

TIMESTAMP_HEADER = "X-Ctloop-Timestamp"
SIGNATURE_HEADER = "X-Ctloop-Signature"
_DIGITS = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")


class SignatureError(AccessError):
    """``reason`` is one of missing, malformed, stale, mismatch (a metric label)."""

    status_code = 401

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


def _digest(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers that authenticate ``body``."""
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: f"sha256={_digest(secret, timestamp, body)}"}


def verify(secret: bytes, body: bytes, headers, tolerance_s: int, now: float | None = None) -> None:
    """Raise SignatureError unless ``headers`` carry a fresh, valid signature of ``body``."""
    timestamp, signature = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise SignatureError("missing", f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required")
    # ASCII digits and hex only: str.isdigit() admits "²" (which int() refuses), and compare_digest refuses
    # non-ASCII text with a TypeError; either would answer 500 instead of 401.
    if not _DIGITS.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
        raise SignatureError("malformed", f"{SIGNATURE_HEADER} must be sha256=<hex>, {TIMESTAMP_HEADER} Unix seconds")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance_s:
        raise SignatureError("stale", f"{TIMESTAMP_HEADER} is {age:.0f} s off; at most {tolerance_s} s allowed")
    if not hmac.compare_digest(signature[len("sha256=") :], _digest(secret, timestamp, body)):
        raise SignatureError("mismatch", f"{SIGNATURE_HEADER} does not match the body")


def read_secret(env_var: str, environ=None) -> bytes:
    """A shared secret from the environment (a Kubernetes Secret in the cluster); never from ctloop.yaml."""
    value = (os.environ if environ is None else environ).get(env_var, "")
    if len(value) < 16:
        raise BadInputError(f"{env_var}: set it to a shared secret of at least 16 characters")
    return value.encode()
