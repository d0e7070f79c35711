"""The local stack's shared secrets, where a cluster has Kubernetes Secrets: the webhook's HMAC secret and
Alertmanager token, and the drift watcher's ingestion token, in ``<local.state_dir>/stack/secrets.json`` (mode
0600). Made on first use by whoever needs them first (``ctloop up``, a local deploy step), under a lock, so that
all get the same values; the local stack hands them to its services in the environment."""

from __future__ import annotations

import fcntl
import json
import secrets
from pathlib import Path

__all__ = ["made", "shared"]


def _path(settings, state_dir: str | Path | None = None) -> Path:
    return Path(state_dir or settings.local.state_dir) / "stack" / "secrets.json"


def shared(settings, state_dir: str | Path | None = None) -> dict[str, str]:
    """Environment variable -> value, made where missing."""
    path = _path(settings, state_dir)
    wanted = (
        settings.webhook.secret_env,
        settings.webhook.alertmanager_token_env,
        settings.endpoints.watcher.token_env,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Locked: the stack and a deploy step may come first at the same time, and both must get the same values.
    with open(path.parent / ".secrets.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        values = json.loads(path.read_text()) if path.exists() else {}
        missing = [env for env in wanted if env not in values]  # a state folder from an older ctloop lacks some
        if missing:
            values |= {env: secrets.token_urlsafe(32) for env in missing}
            staging = path.with_suffix(".tmp")
            staging.touch(mode=0o600)
            staging.write_text(json.dumps(values))
            staging.replace(path)
    return values


def made(settings) -> dict[str, str] | None:
    """The secrets ``shared`` made for this state folder, or None when nothing made them here."""
    path = _path(settings)
    return json.loads(path.read_text()) if path.exists() else None
