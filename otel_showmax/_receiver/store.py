"""Thread-safe storage shared by the OTLP/HTTP and gRPC receivers.

Items are kept raw: every record received is appended, duplicates included, because the tests
that use the receiver count records ("zero is as wrong as two").
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

__all__ = ["DEFAULT_MAX_PATHS", "OTHER_PATHS", "Mode", "Store", "StoreView", "parse_mode"]

Item = dict[str, Any]
Listener = Callable[[str, list[Item]], None]
SIGNALS = ("spans", "logs", "metrics")
#: Distinct unknown paths counted one by one; the rest are counted together under ``OTHER_PATHS``.
DEFAULT_MAX_PATHS = 64
#: The key under which requests to unknown paths beyond ``max_paths`` (or longer than 256 characters) are counted.
OTHER_PATHS = "(other paths)"
_MAX_PATH_LENGTH = 256


class Mode:
    """A parsed receiver fault mode: ``live``, ``blackhole`` or ``status:CODE[:RETRY_AFTER]``."""

    __slots__ = ("kind", "retry_after", "spec", "status")

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.status = 200
        self.retry_after: str | None = None
        parts = spec.split(":")
        self.kind = parts[0]
        if self.kind == "status" and 2 <= len(parts) <= 3 and parts[1].isdigit() and 100 <= int(parts[1]) <= 599:
            self.status = int(parts[1])
            self.retry_after = parts[2] if len(parts) == 3 else None
        elif spec not in ("live", "blackhole"):
            raise ValueError(f"unknown receiver mode {spec!r}: use live, blackhole or status:CODE[:RETRY_AFTER]")


def parse_mode(spec: str) -> Mode:
    """Parse a mode string, raising ValueError naming the accepted modes."""
    return Mode(spec)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_HEX_KEYS = frozenset(("traceId", "spanId", "parentSpanId"))


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in _HEX_KEYS and isinstance(v, str) else _hex_ids(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def otlp_json(request: Any) -> str:
    """One export request in the OTLP/JSON encoding (hex trace and span ids, integer enums), one line."""
    from google.protobuf.json_format import MessageToDict

    return json.dumps(_hex_ids(MessageToDict(request, use_integers_for_enums=True)), separators=(",", ":"))


class Store:
    """Decoded spans, logs and metric points, request counts and an optional JSON-lines copy."""

    def __init__(self, jsonl_path: str | None = None, otlp_json_path: str | None = None, *, keep: bool = True,
                 max_paths: int = DEFAULT_MAX_PATHS) -> None:
        self._keep = keep  # False: only listeners and files see items (a long-running `otel-showmax receive`)
        self._max_paths = max_paths
        self._cond = threading.Condition()
        self._items: dict[str, list[Item]] = {s: [] for s in SIGNALS}
        self._requests: Counter[str] = Counter()
        self._listeners: list[Listener] = []
        self._jsonl: IO[str] | None = open(jsonl_path, "a", encoding="utf-8") if jsonl_path else None  # noqa: SIM115
        self._otlp: IO[str] | None = open(otlp_json_path, "a", encoding="utf-8") if otlp_json_path else None  # noqa: SIM115

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(signal, items)`` after each accepted export request (outside the lock)."""
        with self._cond:
            self._listeners.append(listener)

    def count_request(self, path: str, known: bool = True) -> None:
        """Count one request received on ``path`` (whatever the answer).

        A ``known`` path (an OTLP path or gRPC method) is always counted under its name; other paths
        only while fewer than ``max_paths`` are counted and when not too long, else under
        ``OTHER_PATHS``, so a client inventing paths cannot grow this table.
        """
        with self._cond:
            if not known and path not in self._requests and (
                    len(self._requests) >= self._max_paths or len(path) > _MAX_PATH_LENGTH):
                path = OTHER_PATHS
            self._requests[path] += 1

    def add(self, signal: str, items: list[Item], request: Any = None) -> None:
        """Append decoded items of one export request; write them as JSON lines, flushed.

        With an OTLP JSON file, ``request`` (the parsed protobuf) is written there as one line.
        """
        with self._cond:
            if self._otlp is not None and request is not None:
                self._otlp.write(otlp_json(request) + "\n")
                self._otlp.flush()
            if self._keep:
                self._items[signal].extend(items)
            if self._jsonl is not None and items:
                self._jsonl.write(
                    "".join(json.dumps({"signal": signal, **i}, default=_json_default) + "\n" for i in items)
                )
                self._jsonl.flush()
            listeners = list(self._listeners)
            self._cond.notify_all()
        for listener in listeners:
            try:
                listener(signal, items)
            except Exception as exc:  # one listener's bug must not fail the request or the others
                print(f"otel_showmax receiver: listener {listener!r} failed: {type(exc).__name__}: {exc}",
                      file=sys.stderr)

    def items(self, signal: str) -> list[Item]:
        """Return a copy of the list of items received for ``signal``."""
        with self._cond:
            return list(self._items[signal])

    @property
    def requests(self) -> Counter[str]:
        """Requests received per path (a copy)."""
        with self._cond:
            return Counter(self._requests)

    def clear(self) -> None:
        """Forget everything received so far (the JSON-lines file is kept)."""
        with self._cond:
            for items in self._items.values():
                items.clear()
            self._requests.clear()

    def wait_for(self, spans: int | None = None, logs: int | None = None, metrics: int | None = None,
                 timeout: float = 10.0) -> bool:
        """Wait until at least the given counts have arrived; False on timeout."""
        wanted = {"spans": spans, "logs": logs, "metrics": metrics}
        deadline = time.monotonic() + timeout

        def done() -> bool:
            return all(n is None or len(self._items[s]) >= n for s, n in wanted.items())

        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        """Close the JSON-lines file."""
        with self._cond:
            for f in (self._jsonl, self._otlp):
                if f is not None:
                    f.close()
            self._jsonl = self._otlp = None


class StoreView:
    """The storage interface both receivers expose: ``spans``, ``logs``, ``metrics``, ``wait_for`` …"""

    store: Store

    @property
    def spans(self) -> list[Item]:
        """Spans received so far, one dict each, in arrival order (a copy)."""
        return self.store.items("spans")

    @property
    def logs(self) -> list[Item]:
        """Log records received so far, one dict each, in arrival order (a copy)."""
        return self.store.items("logs")

    @property
    def metrics(self) -> list[Item]:
        """Metric data points received so far, one dict each (a copy)."""
        return self.store.items("metrics")

    @property
    def requests(self) -> Counter[str]:
        """Requests received per path, whatever the answer (a copy)."""
        return self.store.requests

    def wait_for(self, spans: int | None = None, logs: int | None = None, metrics: int | None = None,
                 timeout: float = 10.0) -> bool:
        """Wait until at least this many spans / logs / metric points arrived; False on timeout."""
        return self.store.wait_for(spans=spans, logs=logs, metrics=metrics, timeout=timeout)

    def clear(self) -> None:
        """Forget everything received so far."""
        self.store.clear()
