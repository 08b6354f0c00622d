"""Run the receiver out of process: ``python -m otel_showmax.receiver`` and ``ReceiverProcess``.

A load-tested process must not share its GIL with the receiver counting its telemetry, so tests
and benchmarks start the receiver as a child process that writes what it decodes to a JSON-lines
file, and read that file back.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["ReceiverProcess", "main", "read_jsonl"]

SIGNALS = ("spans", "logs", "metrics")


def read_jsonl(path: str | os.PathLike[str]) -> dict[str, list[dict[str, Any]]]:
    """Read a receiver's JSON-lines file into ``{"spans": [...], "logs": [...], "metrics": [...]}``.

    A last line still being written (no newline yet) is ignored.
    """
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SIGNALS}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n") or not line.strip():
            continue
        item = json.loads(line)
        out.setdefault(item.pop("signal"), []).append(item)
    return out


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m otel_showmax.receiver``; runs until SIGTERM or SIGINT."""
    from .grpc import OTLPGrpcReceiver
    from .http import OTLPReceiver

    parser = argparse.ArgumentParser(prog="python -m otel_showmax.receiver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="OTLP/HTTP port (0: a free one)")
    parser.add_argument("--port-file", help="write the bound HTTP port here once listening")
    parser.add_argument("--grpc-port", type=int, default=None, help="also serve OTLP/gRPC on this port (0: free)")
    parser.add_argument("--grpc-port-file", help="serve OTLP/gRPC too and write its bound port here")
    parser.add_argument("--jsonl", help="append each decoded item here as a JSON line")
    parser.add_argument("--mode", default="live", help="live, blackhole or status:CODE[:RETRY_AFTER]")
    parser.add_argument("--mode-file", help="on SIGHUP, switch both receivers to the mode written in this file")
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when the parent process goes away")
    args = parser.parse_args(argv)

    stop: list[int] = []  # the handler takes no lock: Event.set there can deadlock against Event.wait
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.append(signum))
    parent = os.getppid()
    http = OTLPReceiver(args.host, args.port, args.mode, jsonl_path=args.jsonl).start()
    grpc_receiver: OTLPGrpcReceiver | None = None

    def switch_mode(*_: Any) -> None:
        if args.mode_file:
            mode = Path(args.mode_file).read_text(encoding="utf-8").strip()
            for receiver in (http, grpc_receiver):
                if receiver is not None:
                    receiver.set_mode(mode)
            os.remove(args.mode_file)  # tells ReceiverProcess.set_mode that the mode is applied

    signal.signal(signal.SIGHUP, switch_mode)
    try:
        if args.grpc_port is not None or args.grpc_port_file:
            grpc_receiver = OTLPGrpcReceiver(args.host, args.grpc_port or 0, args.mode, store=http.store).start()
            if args.grpc_port_file:
                _write_atomically(args.grpc_port_file, str(grpc_receiver.port))
        if args.port_file:
            _write_atomically(args.port_file, str(http.port))
        print(f"otel_showmax receiver: OTLP/HTTP on {http.endpoint}"
              + (f", OTLP/gRPC on {grpc_receiver.endpoint}" if grpc_receiver else ""), file=sys.stderr, flush=True)
        while not stop:
            time.sleep(0.2)
            if args.exit_with_parent and os.getppid() != parent:
                break
    finally:
        if grpc_receiver is not None:
            grpc_receiver.stop()
        http.stop()
    return 0


class ReceiverProcess:
    """The receiver in a child process, writing JSON lines that this process reads back.

    Args:
        grpc: Serve OTLP/gRPC too (``grpc_port``, ``grpc_endpoint``).
        mode: Fault mode for both protocols (fixed for the life of the process).
        startup_timeout: Seconds to wait for the child to listen.
    """

    def __init__(self, grpc: bool = False, mode: str = "live", *, startup_timeout: float = 15.0) -> None:
        self.grpc = grpc
        self.mode = mode
        self.startup_timeout = startup_timeout
        self.port = 0
        self.grpc_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._final: dict[str, list[dict[str, Any]]] | None = None

    @property
    def pid(self) -> int:
        """The child's process id."""
        if self._proc is None:
            raise RuntimeError("receiver process not started")
        return self._proc.pid

    @property
    def endpoint(self) -> str:
        """The OTLP/HTTP endpoint, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_endpoint(self) -> str:
        """The OTLP/gRPC endpoint, ``http://127.0.0.1:PORT`` (when started with ``grpc=True``)."""
        if not self.grpc_port:
            raise RuntimeError("receiver process started without gRPC")
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def jsonl_path(self) -> str:
        """The JSON-lines file the child writes."""
        if self._dir is None:
            raise RuntimeError("receiver process not started")
        return os.path.join(self._dir, "received.jsonl")

    def start(self) -> ReceiverProcess:
        """Start the child and wait until it listens; returns self."""
        if self._proc is not None:
            return self
        self._dir = tempfile.mkdtemp(prefix="otel-showmax-receiver-")
        port_file, grpc_file = os.path.join(self._dir, "port"), os.path.join(self._dir, "grpc-port")
        cmd = [sys.executable, "-m", "otel_showmax.receiver", "--port", "0", "--port-file", port_file,
               "--jsonl", self.jsonl_path, "--mode", self.mode, "--mode-file", os.path.join(self._dir, "mode"),
               "--exit-with-parent"]
        if self.grpc:
            cmd += ["--grpc-port-file", grpc_file]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        wanted = [port_file] + ([grpc_file] if self.grpc else [])
        while not all(os.path.exists(f) for f in wanted):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"receiver process did not start within {self.startup_timeout}s")
            time.sleep(0.02)
        self.port = int(Path(port_file).read_text())
        self.grpc_port = int(Path(grpc_file).read_text()) if self.grpc else 0
        return self

    def set_mode(self, mode: str, timeout: float = 5.0) -> None:
        """Switch the child's fault mode (``live``, ``blackhole``, ``status:CODE``); returns once applied."""
        from .store import Mode

        Mode(mode)  # fail here, not in the child
        if self._proc is None or self._dir is None:
            raise RuntimeError("receiver process not started")
        _write_atomically(os.path.join(self._dir, "mode"), mode)
        os.kill(self._proc.pid, signal.SIGHUP)
        self.mode = mode
        deadline = time.monotonic() + timeout
        while os.path.exists(os.path.join(self._dir, "mode")):
            if time.monotonic() > deadline:
                raise TimeoutError(f"receiver process did not switch to {mode!r} within {timeout}s")
            time.sleep(0.02)

    def read_jsonl(self) -> dict[str, list[dict[str, Any]]]:
        """Everything received so far: ``{"spans": [...], "logs": [...], "metrics": [...]}``."""
        if self._final is not None:
            return {k: list(v) for k, v in self._final.items()}
        return read_jsonl(self.jsonl_path)

    def wait_for(self, spans: int | None = None, logs: int | None = None, metrics: int | None = None,
                 timeout: float = 10.0) -> bool:
        """Poll the file until at least these counts arrived; False on timeout."""
        wanted = {"spans": spans, "logs": logs, "metrics": metrics}
        deadline = time.monotonic() + timeout
        while True:
            got = self.read_jsonl()
            if all(n is None or len(got[s]) >= n for s, n in wanted.items()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child by its PID (SIGKILL after ``timeout``), keep what it wrote, remove the files."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._dir is not None:
            self._final = read_jsonl(self.jsonl_path)
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> ReceiverProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
