"""ctloop's errors. Each carries the HTTP status a service answers with and the exit status the CLI uses.

    CtloopError                  500, exit 1   a bug or an unexpected failure
    ├── BadInputError            400, exit 2   the caller sent something wrong; the message names the field
    │   └── ConfigError          422, exit 2   ctloop.yaml (or another settings source) is invalid, per key path
    ├── NotFoundError            404, exit 1   a URI, file, model or object does not exist
    ├── AccessError              403, exit 1   credentials are missing or refused
    └── NotReadyError            503, exit 1   a dependency (MLflow, Prometheus, a server) is not up yet

Third-party exceptions are translated into these at the boundary where they happen, so that only real bugs
become a 500.
"""

from __future__ import annotations

__all__ = ["AccessError", "BadInputError", "ConfigError", "CtloopError", "NotFoundError", "NotReadyError", "key_path"]


def key_path(loc: tuple) -> str:
    """A validation error's location as the key path people write: ``rollout.steps[2]``, ``alerts[0].fingerprint``
    (empty for the document itself)."""
    out = ""
    for part in loc:
        if part == "__root__":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class CtloopError(Exception):
    status_code = 500
    exit_code = 1


class BadInputError(CtloopError):
    status_code = 400
    exit_code = 2


class ConfigError(BadInputError):
    """Invalid settings: ``problems`` lists ``(key path, reason)`` pairs, all of them, not only the first."""

    status_code = 422

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s)"]
        lines += [f"  {path}: {reason}" for path, reason in problems]
        super().__init__("\n".join(lines))


class TooLargeError(BadInputError):
    status_code = 413


class NotFoundError(CtloopError):
    status_code = 404


class AccessError(CtloopError):
    status_code = 403


class NotReadyError(CtloopError):
    status_code = 503
