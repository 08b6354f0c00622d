"""Faulty collectors for tests: a TCP listener that never answers, and a port nobody listens on."""

from __future__ import annotations

import socket
import threading

__all__ = ["Blackhole", "dead_port"]


class Blackhole:
    """A TCP listener that accepts connections and never reads or answers: a blackholed collector."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return self._sock.getsockname()[1]

    @property
    def endpoint(self) -> str:
        """``http://HOST:PORT``, usable for OTLP/HTTP and gRPC exporters alike."""
        return f"http://{self.host}:{self.port}"

    @property
    def accepted(self) -> int:
        """Connections accepted (and held open) so far."""
        return len(self._held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def start(self) -> Blackhole:
        """Listen and accept on a daemon thread; returns self."""
        if self._thread is None:
            self._sock.listen(128)
            self._thread = threading.Thread(target=self._accept, name=f"blackhole-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every held connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        for conn in self._held:
            conn.close()
        self._sock.close()

    def __enter__(self) -> Blackhole:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dead_port(host: str = "127.0.0.1") -> int:
    """Return a port on ``host`` that nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
