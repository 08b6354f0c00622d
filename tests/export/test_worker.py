"""BatchWorker on its own: hold()/release() for processes that must not start threads yet."""

from __future__ import annotations

import threading

from otel_showmax._export.worker import BatchWorker
from tests._fork import in_child


class _Exporter:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[int] = set()

    def export(self, items: list[int]) -> None:
        self.threads.add(threading.get_ident())
        self.batches.append(list(items))

    def shutdown(self) -> None:
        pass


def _worker(exporter: _Exporter) -> BatchWorker:
    return BatchWorker("test", lambda: exporter, max_queue_size=100, max_batch=10, schedule_delay=60.0)


def test_a_held_worker_queues_without_a_thread_and_exports_after_release():
    exporter = _Exporter()
    worker = _worker(exporter)
    before = threading.active_count()
    assert worker.hold() is True
    for i in range(25):  # more than a batch: a running thread would have exported
        worker.put(i)
    assert threading.active_count() == before
    assert worker.pending() == 25
    assert worker.flush(0.1) is False  # no thread may start while held
    assert threading.active_count() == before
    worker.release()
    assert worker.flush(5.0) is True
    assert sorted(i for batch in exporter.batches for i in batch) == list(range(25))
    assert threading.get_ident() not in exporter.threads
    assert worker.shutdown(5.0) is True


def test_shutdown_releases_a_held_worker_and_exports_what_it_queued():
    exporter = _Exporter()
    worker = _worker(exporter)
    assert worker.hold() is True
    worker.put(1)
    worker.put(2)
    assert worker.shutdown(5.0) is True
    assert [i for batch in exporter.batches for i in batch] == [1, 2]
    assert worker.stats.snapshot()["exported"] == 2


def test_hold_refuses_once_the_thread_runs():
    exporter = _Exporter()
    worker = _worker(exporter)
    worker.put(1)  # starts the thread in this process
    assert worker.hold() is False
    worker.release()  # not held: nothing happens
    assert worker.shutdown(5.0) is True
    assert exporter.batches == [[1]]


def test_a_worker_held_in_a_parent_starts_its_own_thread_in_a_child():
    exporter = _Exporter()
    worker = _worker(exporter)
    assert worker.hold() is True
    worker.put("parent")
    def child() -> bool:  # a fresh queue and a thread of its own
        worker.put("child")
        ok = worker.flush(5.0)
        return ok and [i for batch in exporter.batches for i in batch] == ["child"]

    assert in_child(child) == 0
    assert worker.pending() == 1 and exporter.batches == []  # the parent's item stays held
    assert worker.shutdown(5.0) is True
    assert exporter.batches == [["parent"]]
