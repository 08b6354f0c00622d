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


# -- issue 15: items left out of a request are counted as invalid_item, their batch-mates exported ---


class _Leaving(_Exporter):
    """Leaves out the negative items, as contain.py leaves out what no encoder takes."""

    invalid_items = 0

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail

    def export(self, items: list[int]):  # type: ignore[override]
        for _ in range(3):  # like upstream's gRPC retries: each encoding sets the count again
            self.invalid_items = sum(1 for i in items if i < 0)
        super().export([i for i in items if i >= 0])
        return type("Result", (), {"name": "FAILURE" if self.fail else "SUCCESS"})()


def test_items_left_out_by_the_encoder_are_counted_once_and_the_rest_exported():
    exporter = _Leaving()
    worker = _worker(exporter)
    for i in [1, -1, 2, 3, -2]:
        worker.put(i)
    assert worker.shutdown(5.0) is True
    assert [i for batch in exporter.batches for i in batch] == [1, 2, 3]
    assert worker.stats.snapshot() == {"exported": 3, "queue_full": 0, "export_failed": 0, "shutdown": 0,
                                       "invalid_item": 2}


def test_items_prepare_cannot_convert_are_counted_and_a_failed_export_counts_the_rest():
    exporter = _Leaving(fail=True)
    worker = BatchWorker("test", lambda: exporter, max_queue_size=100, max_batch=10, schedule_delay=60.0,
                         prepare=lambda batch: [i for i in batch if i != 0])  # 0: cannot be converted
    for i in [0, 1, -1, 2]:
        worker.put(i)
    worker.shutdown(5.0)
    assert worker.stats.snapshot() == {"exported": 0, "queue_full": 0, "export_failed": 2, "shutdown": 0,
                                       "invalid_item": 2}


def test_a_batch_with_nothing_left_to_send_is_not_exported():
    exporter = _Leaving()
    worker = BatchWorker("test", lambda: exporter, max_queue_size=100, max_batch=10, schedule_delay=60.0,
                         prepare=lambda batch: [])
    worker.put(1)
    assert worker.shutdown(5.0) is True
    assert exporter.batches == []
    assert worker.stats.snapshot()["invalid_item"] == 1
