"""A span: the data one pipeline run validates and trains on, named by a URI and pinned by a content fingerprint.

validate_data computes the fingerprint when it reads the span; train refuses to train when the span's content no
longer has it (what was validated must be what is trained on); register records it as lineage. Anyone who asks for
a run (the retrain webhook, the drift watcher's frozen serving data, ``ctloop pipeline run``) names the span by a
URI the artifact layer can read from anywhere the steps run: an absolute path, ``file://`` or ``s3://``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

from ctloop.errors import BadInputError

__all__ = ["Fingerprint", "check_uri", "fingerprint"]

URI_SCHEMES = ("file://", "s3://")


def check_uri(value: str) -> str:
    """``value`` if it names a span from anywhere (ValueError otherwise: a relative path means another thing in
    every step's working folder)."""
    if not (value.startswith("/") or value.startswith(URI_SCHEMES)):
        raise ValueError(f"must be an absolute path or a {', '.join(URI_SCHEMES)} URI")
    return value


@dataclass(frozen=True)
class Fingerprint:
    sha256: str  # over the files' names (relative to the span's URI) and contents
    rows: int
    files: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "fingerprint") -> Fingerprint:
        try:
            data = json.loads(text)
            return cls(str(data["sha256"]), int(data["rows"]), int(data["files"]))
        except (json.JSONDecodeError, TypeError, KeyError, ValueError) as e:
            raise BadInputError(f"{where}: not a span fingerprint ({e})") from None


def fingerprint(contents: dict[str, bytes], base: str, rows: int) -> Fingerprint:
    """Content hash of the files (names relative to the span's URI, so a copied span keeps its hash)."""
    digest = hashlib.sha256()
    for name in sorted(contents):
        relative = name[len(base) :].lstrip("/") or PurePosixPath(name).name
        digest.update(relative.encode() + b"\0" + hashlib.sha256(contents[name]).digest())
    return Fingerprint(digest.hexdigest(), rows, len(contents))
