"""The durable side of the webhook, one SQLite file in the state folder: the trigger queue, the idempotency keys
already seen, and the acceptance times the cooldown is measured from.

A trigger is answered 202 only after its row is committed (WAL, synchronous=FULL), so a `kill -9` after the answer
loses nothing; the worker picks queued rows up again after a restart. Decisions are made under one lock and in one
transaction, so two copies of the same request arriving together cannot both be accepted.

Trigger states: queued (accepted, not yet launched) -> launching (a launch was tried; its outcome may be unknown) ->
started (the launcher gave a run id) -> succeeded | failed (the run ended), or launch_failed (every try failed).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

PENDING = ("queued", "launching")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS triggers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    pipeline TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    data_uri TEXT NOT NULL,
    parameters TEXT NOT NULL,
    forced INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_id TEXT,
    error TEXT,
    accepted_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS triggers_status ON triggers (status, seq);
CREATE TABLE IF NOT EXISTS keys (
    key TEXT PRIMARY KEY,
    trigger_id TEXT NOT NULL REFERENCES triggers (id),
    body_sha256 TEXT
);
"""


@dataclass(frozen=True)
class Trigger:
    id: str
    pipeline: str
    source: str
    reason: str
    data_uri: str
    parameters: dict
    forced: bool
    status: str
    attempts: int
    run_id: str | None
    error: str | None
    accepted_at: float

    def answer(self) -> dict:
        return {"trigger_id": self.id, "run_id": self.run_id, "status": self.status}


@dataclass(frozen=True)
class Decision:
    """accepted (a new trigger), duplicate (every key was seen: ``trigger`` is the first one's), or cooldown."""

    kind: str
    trigger: Trigger | None = None
    retry_after_s: float = 0.0
    same_body: bool = True


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # Autocommit mode: transactions are opened explicitly, so each decision is one BEGIN IMMEDIATE ... COMMIT.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- decisions

    def decide(self, *, keys: list[str], body_sha256: str | None, pipeline: str, source: str, reason: str,
               data_uri: str, parameters: dict, force: bool, cooldown_s: float, now: float) -> Decision:  # fmt: skip
        """Accept a new trigger unless all ``keys`` were seen before (duplicate) or the pipeline is cooling down."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                decision = self._decide(keys, body_sha256, pipeline, source, reason, data_uri, parameters, force,
                                        cooldown_s, now)  # fmt: skip
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return decision

    def _decide(self, keys, body_sha256, pipeline, source, reason, data_uri, parameters, force, cooldown_s, now):
        seen = {
            row["key"]: row
            for row in self._db.execute(
                f"SELECT key, trigger_id, body_sha256 FROM keys WHERE key IN ({','.join('?' * len(keys))})", keys
            )
        }
        new_keys = [k for k in keys if k not in seen]
        if not new_keys:
            first = seen[keys[0]]
            same = body_sha256 is None or first["body_sha256"] == body_sha256
            return Decision("duplicate", self._get(first["trigger_id"]), same_body=same)
        if not force and cooldown_s > 0:
            last = self._db.execute(
                # A trigger that started no run, or whose run failed, retrained nothing: it holds no cooldown.
                "SELECT MAX(accepted_at) FROM triggers"
                " WHERE pipeline = ? AND status NOT IN ('launch_failed', 'failed')",
                (pipeline,),
            ).fetchone()[0]
            if last is not None and now - last < cooldown_s:
                return Decision("cooldown", retry_after_s=cooldown_s - (now - last))
        trigger_id = uuid.uuid4().hex
        self._db.execute(
            "INSERT INTO triggers (id, pipeline, source, reason, data_uri, parameters, forced, status, accepted_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
            (trigger_id, pipeline, source, reason, data_uri, json.dumps(parameters), int(force), now, now),
        )
        self._db.executemany(
            "INSERT INTO keys (key, trigger_id, body_sha256) VALUES (?, ?, ?)",
            [(k, trigger_id, body_sha256) for k in new_keys],
        )
        return Decision("accepted", self._get(trigger_id))

    # -- the worker's side

    def _get(self, trigger_id: str) -> Trigger:
        row = self._db.execute("SELECT * FROM triggers WHERE id = ?", (trigger_id,)).fetchone()
        return _trigger(row)

    def get(self, trigger_id: str) -> Trigger:
        with self._lock:
            return self._get(trigger_id)

    def next_pending(self) -> Trigger | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM triggers WHERE status IN ('queued', 'launching') ORDER BY seq LIMIT 1"
            ).fetchone()
        return _trigger(row) if row else None

    def pending_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM triggers WHERE status IN ('queued', 'launching')").fetchone()[
                0
            ]

    def started(self) -> list[Trigger]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM triggers WHERE status = 'started' ORDER BY seq").fetchall()
        return [_trigger(r) for r in rows]

    def _update(self, trigger_id: str, now: float, where_status: tuple[str, ...], **fields) -> bool:
        names = ", ".join(f"{k} = ?" for k in fields)
        marks = ",".join("?" * len(where_status))
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE triggers SET {names}, updated_at = ? WHERE id = ? AND status IN ({marks})",
                (*fields.values(), now, trigger_id, *where_status),
            )
        return cursor.rowcount == 1

    def mark_launching(self, trigger_id: str, attempts: int, now: float) -> None:
        self._update(trigger_id, now, PENDING, status="launching", attempts=attempts)

    def mark_started(self, trigger_id: str, run_id: str, now: float) -> None:
        self._update(trigger_id, now, PENDING, status="started", run_id=run_id, error=None)

    def mark_launch_failed(self, trigger_id: str, error: str, now: float) -> None:
        self._update(trigger_id, now, PENDING, status="launch_failed", error=error)

    def mark_finished(self, trigger_id: str, state: str, now: float) -> bool:
        """True only for the call that moved the run out of `started`, so a finished run is counted once."""
        return self._update(trigger_id, now, ("started",), status=state)


def _trigger(row: sqlite3.Row) -> Trigger:
    return Trigger(
        id=row["id"], pipeline=row["pipeline"], source=row["source"], reason=row["reason"], data_uri=row["data_uri"],
        parameters=json.loads(row["parameters"]), forced=bool(row["forced"]), status=row["status"],
        attempts=row["attempts"], run_id=row["run_id"], error=row["error"], accepted_at=row["accepted_at"],
    )  # fmt: skip
