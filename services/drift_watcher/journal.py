"""Durability for the watcher: an append-only journal of accepted records plus snapshots of the derived state.

An event is acknowledged only after its record is written to the journal: flushed to the kernel, which is what
survives a ``kill -9``, and with ``drift.journal_fsync`` (the default) fsynced, which is what survives the machine
going down. ``GroupCommit`` lets the events that arrive during one fsync share the next. After a restart the state
is the last snapshot with the journal replayed on top. Replaying is safe because applying a record is
deterministic and its side effects are idempotent (Parquet files named by window, triggers deduplicated by their
idempotency key).

Files: ``snapshot.json`` ({"segment": n, "state": ...}) and ``journal-<n>.jsonl`` (and any later segments), the
records after it. A snapshot starts a new segment at once and is written afterwards, off the event loop: until it
is on disk the older snapshot and every segment after it still tell the whole story, so recovery replays them all;
``unreplayable.jsonl`` holds what could not be read or applied ({"why": ..., "record" or "line": ...}), set aside so
that one bad record never stops the watcher, and kept for a person to read.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

_SLICE = 256  # list items per json.dumps in a snapshot


class Journal:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.segment = 0
        self.records_since_snapshot = 0
        self.unreadable = 0  # lines the last recover() set aside
        self.appended = 0  # lines written by this process, across segments: GroupCommit's measure
        self._file = None
        self._written = -1  # the segment of the newest snapshot on disk
        self._writing = threading.Lock()

    def _path(self, segment: int) -> Path:
        return self.folder / f"journal-{segment:08d}.jsonl"

    def recover(self) -> tuple[dict | None, list[dict]]:
        """The last snapshot's state (None if there is none) and the records written after it."""
        snapshot_path = self.folder / "snapshot.json"
        state = None
        if snapshot_path.exists():
            snapshot = json.loads(snapshot_path.read_text())
            self.segment, state = snapshot["segment"], snapshot["state"]
            self._written = self.segment
        segments = sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("journal-*.jsonl"))
        for old in (n for n in segments if n < self.segment):  # the snapshot holds them: left over from a crash
            self._path(old).unlink()
        records = []
        later = [n for n in segments if n >= self.segment] or [self.segment]
        for segment in later:
            path = self._path(segment)
            if not path.exists():
                continue
            data = path.read_bytes()
            complete = data[: data.rfind(b"\n") + 1]  # a torn last line was never acknowledged
            if len(complete) != len(data):
                with path.open("r+b") as f:
                    f.truncate(len(complete))
            for line in complete.splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError(f"a JSON {type(record).__name__}, not a record")
                except ValueError as e:  # a damaged line: set aside, the records after it still count
                    self.set_aside({"line": line.decode(errors="replace")}, f"unreadable: {e}")
                    self.unreadable += 1
                    continue
                records.append(record)
        self.segment = later[-1]
        self.records_since_snapshot = len(records)
        self._file = self._path(self.segment).open("ab")
        return state, records

    def append(self, record: dict) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._file.flush()
        self.records_since_snapshot += 1
        self.appended += 1

    def fileno(self) -> int:
        return self._file.fileno()

    def set_aside(self, entry: dict, why: str) -> None:
        """Keeps ``entry`` (a record, or an unreadable line) in unreplayable.jsonl with the reason."""
        with (self.folder / "unreplayable.jsonl").open("ab") as f:
            f.write(json.dumps({"why": why, **entry}, separators=(",", ":"), default=str).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def snapshot(self, state: dict) -> None:
        """Start a new segment whose starting point is ``state``, and write ``state``; the old segments go."""
        self.write_snapshot(self.rotate(), state)

    def rotate(self) -> int:
        """Start a new segment (the records from here on go there); returns its number for ``write_snapshot``."""
        self._file.flush()
        os.fsync(self._file.fileno())  # GroupCommit fsyncs only the current segment: the old one is done here
        self._file.close()
        self.segment += 1
        self._file = self._path(self.segment).open("ab")
        self.records_since_snapshot = 0
        return self.segment

    def write_snapshot(self, segment: int, state: dict) -> None:
        """Writes ``state``, the state as of the start of ``segment``, then removes the segments before it. Safe in a
        worker thread while records go to ``segment`` or later: ``state`` must not be changed meanwhile (the
        watcher's ``state()`` hands out copies). Long lists are encoded a slice at a time: one ``json.dumps`` of the
        whole state holds the GIL for some 200 ms at 20,000 tracked requests, and the event loop would wait."""
        with self._writing:
            if segment > self._written:  # a snapshot begun earlier and written later must not replace a newer one
                self._write(segment, state)
                self._written = segment

    def _write(self, segment: int, state: dict) -> None:
        path = self.folder / "snapshot.json"
        staging = path.with_name(".snapshot.json.part")
        with staging.open("wb") as f:
            f.write(b'{"segment":%d,"state":{' % segment)
            for i, (key, value) in enumerate(state.items()):
                f.write(("," if i else "").encode() + json.dumps(key).encode() + b":")
                if isinstance(value, list):
                    slices = (value[j : j + _SLICE] for j in range(0, len(value), _SLICE))
                    f.write(b"[" + b",".join(json.dumps(part, separators=(",", ":"))[1:-1].encode()
                                             for part in slices) + b"]")  # fmt: skip
                else:
                    f.write(json.dumps(value, separators=(",", ":")).encode())
            f.write(b"}}")
            f.flush()
            os.fsync(f.fileno())
        staging.replace(path)
        directory = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        for old in self.folder.glob("journal-*.jsonl"):
            if int(old.stem.split("-")[1]) < segment:
                old.unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


class GroupCommit:
    """fsync in a worker thread, one at a time, each covering every line written before it began: an event waits
    for the first fsync that starts after its line was written, and the events that arrive meanwhile share it."""

    def __init__(self, journal: Journal):
        self.journal = journal
        self.synced = 0
        self._running: asyncio.Future | None = None

    async def durable(self, upto: int) -> None:
        """Returns once the first ``upto`` lines this process wrote are on disk."""
        while self.synced < upto:
            if self._running is None:
                self._running = asyncio.ensure_future(self._sync())
            await asyncio.shield(self._running)

    async def _sync(self) -> None:
        # The target and the file are read together, with no await between: a snapshot that changes segments in
        # the meantime has fsynced the old one itself, and the duplicate keeps this one open.
        target, fd = self.journal.appended, os.dup(self.journal.fileno())
        try:
            await asyncio.to_thread(os.fsync, fd)
            self.synced = max(self.synced, target)
        finally:
            os.close(fd)
            self._running = None
