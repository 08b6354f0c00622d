"""How much a busy neighbour vCPU slows this one: ``python benchmarks/neighbour.py``.

Times a fixed pure-Python workload (CPU time, the best of 5) pinned to the last CPU, alone and
while the first CPU runs (a) a Python busy loop, (b) a memory copy loop, alternated over rounds.
On a machine whose vCPUs share a physical core (SMT siblings) or its caches, the worker's CPU
time per request depends on what else runs — wrk, the receiver, its own export threads — which
is why BENCHMARKS.md compares configurations only within a round and reads CPU per request with
that in mind. Linux only (os.sched_setaffinity); needs 2 CPUs or more.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

BUSY = "while True: pass"
COPY = "b = bytearray(64 * 1024 * 1024)\nwhile True: bytes(b)"


def workload() -> float:
    """CPU seconds of a dict-and-int loop (the interpreter's usual diet), best of 5."""
    best = float("inf")
    for _ in range(5):
        start = time.thread_time()
        total, table = 0, {}
        for i in range(1_000_000):
            total += i
            table[i & 1023] = total
        best = min(best, time.thread_time() - start)
    return best


def with_neighbour(code: str | None, neighbour_cpu: int) -> float:
    if code is None:
        return workload()
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
    try:
        os.sched_setaffinity(proc.pid, {neighbour_cpu})
        time.sleep(0.3)  # let it get going
        return workload()
    finally:
        proc.kill()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("needs 2 CPUs or more")
        return 1
    os.sched_setaffinity(0, {cpus[-1]})
    cases = {"alone": None, "neighbour: Python busy loop": BUSY, "neighbour: memory copy loop": COPY}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, code in cases.items():
            times[name].append(with_neighbour(code, cpus[0]))
    alone = statistics.median(times["alone"])
    print(f"| workload on CPU {cpus[-1]}, neighbour on CPU {cpus[0]} | CPU ms (median of {args.rounds}) | ratio |")
    print("|---|---|---|")
    for name, values in times.items():
        value = statistics.median(values)
        print(f"| {name} | {value * 1000:.1f} | {value / alone:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
