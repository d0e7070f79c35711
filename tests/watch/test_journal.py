"""The journal's group commit: an event is acknowledged after an fsync that began after its line was written, and
the events that arrive during one fsync share the next one."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from ctloop.services.drift_watcher.journal import GroupCommit, Journal


class SlowDisk:
    """os.fsync standing in for a disk that takes 50 ms; keeps, for each finished call, the file size it synced."""

    def __init__(self):
        self.finished: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        time.sleep(0.05)
        with self.lock:
            self.finished.append(size)


def test_concurrent_events_share_fsyncs_and_none_is_acknowledged_before_its_line_is_synced(tmp_path, monkeypatch):
    journal = Journal(tmp_path / "journal")
    journal.recover()
    commit = GroupCommit(journal)
    disk = SlowDisk()
    monkeypatch.setattr(os, "fsync", disk)
    acknowledged: list[tuple[int, list[int]]] = []  # (the line's end in the file, fsyncs finished by its answer)

    async def event(i: int) -> None:
        await asyncio.sleep(i * 0.002)  # 200 events over 0.4 s: about 25 arrive during each fsync
        journal.append({"kind": "request", "id": str(i)})
        end = os.fstat(journal.fileno()).st_size
        await commit.durable(journal.appended)
        acknowledged.append((end, list(disk.finished)))

    async def main() -> None:
        await asyncio.gather(*(event(i) for i in range(200)))

    asyncio.run(main())
    assert len(acknowledged) == 200
    assert len(disk.finished) <= 20  # shared: far fewer fsyncs than events
    for end, finished in acknowledged:
        assert any(size >= end for size in finished), (end, finished)  # an fsync of its line had finished
    journal.close()


def test_after_durable_the_line_is_on_disk_even_across_a_snapshot(tmp_path):
    journal = Journal(tmp_path / "journal")
    journal.recover()
    commit = GroupCommit(journal)

    async def main() -> None:
        journal.append({"kind": "request", "id": "a"})
        journal.snapshot({"state": 1})  # a new segment: the old one was fsynced by the snapshot
        journal.append({"kind": "request", "id": "b"})
        await commit.durable(journal.appended)

    asyncio.run(main())
    assert commit.synced == journal.appended == 2
    journal.close()


def test_a_snapshot_begun_but_not_written_loses_no_record(tmp_path):
    """The service starts a new segment at once and writes the snapshot later, off the event loop: a process that
    dies in between recovers from the older snapshot and every segment after it."""
    journal = Journal(tmp_path / "journal")
    journal.recover()
    journal.append({"kind": "request", "id": "a"})
    journal.snapshot({"state": 1})
    journal.append({"kind": "request", "id": "b"})
    journal.rotate()  # the next snapshot begun; the process dies before its state is written
    journal.append({"kind": "request", "id": "c"})
    journal.close()

    again = Journal(tmp_path / "journal")
    state, records = again.recover()
    assert state == {"state": 1} and [r["id"] for r in records] == ["b", "c"]
    again.append({"kind": "request", "id": "d"})
    again.write_snapshot(again.rotate(), {"state": 4})
    again.close()
    assert len(list((tmp_path / "journal").glob("journal-*.jsonl"))) == 1  # the segments before it went
    state, records = Journal(tmp_path / "journal").recover()
    assert state == {"state": 4} and records == []


def test_a_snapshot_written_late_never_replaces_a_newer_one(tmp_path):
    """A snapshot begun in a worker thread may land after one the event loop took meanwhile (a record set aside
    takes one at once): the older must not replace the newer, nor the segments the newer one needs go."""
    journal = Journal(tmp_path / "journal")
    journal.recover()
    journal.append({"kind": "request", "id": "a"})
    older = journal.rotate()
    journal.append({"kind": "request", "id": "b"})
    journal.snapshot({"state": "newer"})
    journal.write_snapshot(older, {"state": "older"})
    journal.append({"kind": "request", "id": "c"})
    journal.close()
    state, records = Journal(tmp_path / "journal").recover()
    assert state == {"state": "newer"} and [r["id"] for r in records] == ["c"]
