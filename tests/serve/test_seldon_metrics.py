"""BufferedSeldonMetrics against the wrapper's own SeldonMetrics: the same updates expose the same metrics, but
nothing reaches the shared store until the worker writes its entry."""

from __future__ import annotations

import multiprocessing
import threading

from prometheus_client.parser import text_string_to_metric_families
from seldon_core.metrics import SeldonMetrics

from ctloop.services.model_server import seldon_metrics
from ctloop.services.model_server.seldon_metrics import BufferedSeldonMetrics


def updates(i: int) -> list[dict]:
    return [
        {"type": "COUNTER", "key": "ctloop_decisions_total", "value": 1, "tags": {"decision": "ab"[i % 2]}},
        {"type": "COUNTER", "key": "ctloop_scores_total", "value": 2, "tags": {"le": "0.5"}},
        {"type": "TIMER", "key": "ctloop_time", "value": (i % 7) * 3.0},
    ]


def test_updates_from_many_threads_expose_what_the_wrappers_store_exposes_once_written(monkeypatch):
    # The background writer must not write while the test looks at the store before its own flush, however slow
    # the machine: it waits longer than the test runs.
    monkeypatch.setattr(seldon_metrics, "FLUSH_SECONDS", 3600.0)
    stock, buffered = SeldonMetrics(), BufferedSeldonMetrics()
    for i in range(400):
        stock.update(updates(i), "predict")
    stock.update([{"type": "GAUGE", "key": "ctloop_gauge", "value": 3.5}], "predict")

    def apply(part: int) -> None:
        for i in range(part, 400, 4):
            buffered.update(updates(i), "predict")

    threads = [threading.Thread(target=apply, args=(part,)) for part in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    buffered.update([{"type": "GAUGE", "key": "ctloop_gauge", "value": 3.5}], "predict")
    assert dict(buffered.data) == {}, "an update reached the shared store before the worker wrote its entry"

    buffered.flush()
    assert samples(buffered) == samples(stock)
    assert ("ctloop_decisions_total", (("decision", "a"),), 200.0) in {
        (n, labels[:1], v) for n, labels, v in samples(stock)
    }


def samples(store: SeldonMetrics) -> set[tuple]:
    """What a scrape reads, whatever the order in which the threads touched each series (a sum of floats to 9
    places)."""
    text, _ = store.generate_metrics()
    return {(sample.name, tuple(sorted(sample.labels.items())), round(sample.value, 9))
            for family in text_string_to_metric_families(text) for sample in family.samples}  # fmt: skip


def test_an_update_without_metrics_writes_nothing():
    buffered = BufferedSeldonMetrics()
    buffered.update([], "predict")
    buffered.flush()
    assert dict(buffered.data) == {}


def _worker(store: BufferedSeldonMetrics, done) -> None:
    store.update([{"type": "COUNTER", "key": "ctloop_decisions_total", "value": 5}], "predict")
    store.flush()
    done.put(multiprocessing.current_process().pid)


def test_each_forked_worker_writes_its_own_entry_and_a_stopped_one_is_cleared():
    store = BufferedSeldonMetrics()  # made before the fork, as the wrapper makes it before gunicorn forks
    store.update([{"type": "COUNTER", "key": "ctloop_decisions_total", "value": 1}], "predict")
    store.flush()
    context = multiprocessing.get_context("fork")
    done = context.Queue()
    workers = [context.Process(target=_worker, args=(store, done)) for _ in range(2)]
    for worker in workers:
        worker.start()
    pids = {done.get(timeout=60) for _ in workers}
    for worker in workers:
        worker.join(timeout=60)
    entries = {pid: sum(item["value"] for item in data.values()) for pid, data in dict(store.data).items()}
    assert entries == {**{pid: 5 for pid in pids}, multiprocessing.current_process().pid: 1}

    store.clear()
    store.flush()
    assert set(dict(store.data)) == pids
