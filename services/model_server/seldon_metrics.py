"""Seldon's custom metrics, gathered in each worker and written to the wrapper's shared store once a second.

The wrapper (1.17.1) keeps every worker's metrics in a multiprocessing Manager's dict, and its ``update`` locks,
reads and writes the worker's whole entry on every request: six round trips to the manager process, about
0.4 ms of CPU per prediction on the benchmark's machine, more than the model's own work. ``BufferedSeldonMetrics``
applies each update in the worker with the wrapper's own code (same keys, labels and histogram bins) and a
thread writes the worker's entry when it changed, at most once every ``FLUSH_SECONDS``. The metrics port serves
the store unchanged, so a scrape sees a prediction at most that long after it was answered; a worker that stops
loses what it had not written, as the wrapper's ``worker_exit`` drops a stopped worker's entry anyway.
"""

from __future__ import annotations

import os
import threading
import time

from seldon_core.metrics import SeldonMetrics

FLUSH_SECONDS = 1.0


class _Entry:
    """What ``SeldonMetrics.update`` reads and writes, held in this process."""

    _update_hist = staticmethod(SeldonMetrics._update_hist)

    def __init__(self, worker_id_func):
        self._lock = threading.Lock()
        self.data: dict = {}
        self.worker_id_func = worker_id_func


class BufferedSeldonMetrics(SeldonMetrics):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._start()
        # The wrapper makes its store before gunicorn forks the workers: each worker holds an entry of its own.
        os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        self._changes = threading.Lock()
        self._local = _Entry(self.worker_id_func)
        self._dirty = False
        self._writer: threading.Thread | None = None

    def update(self, custom_metrics: list[dict], method: str) -> None:
        if not custom_metrics:  # the wrapper calls this for every request, with or without metrics
            return
        # SeldonMetrics.update reads an entry and writes it back; one update at a time keeps no count from being lost.
        with self._changes:
            SeldonMetrics.update(self._local, custom_metrics, method)
            self._dirty = True
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_forever, name="seldon-metrics", daemon=True)
                self._writer.start()

    def flush(self) -> None:
        """Write this worker's entry to the shared store, if it changed since the last write."""
        worker_id = self.worker_id_func()
        with self._changes:
            if not self._dirty:
                return
            # update replaces an item rather than changing it, so a shallow copy is a consistent snapshot.
            snapshot = dict(self._local.data.get(worker_id, {}))
            self._dirty = False
        with self._lock:
            self.data[worker_id] = snapshot

    def clear(self) -> None:
        with self._changes:
            self._local.data.clear()
            self._dirty = False
        super().clear()

    def _write_forever(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)  # the writer's pace; Prometheus scrapes every few seconds, not more often
            try:
                self.flush()
            except (OSError, EOFError):  # the manager process is gone: the server is stopping
                return
