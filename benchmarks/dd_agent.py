"""A stand-in Datadog agent for the ddtrace configuration: ``.venv-ddtrace/bin/python benchmarks/dd_agent.py``.

Answers what ddtrace (4.x) sends a trace agent and counts what the runner verifies, exactly like
benchmarks/sink.py does for OTLP: it decodes every trace payload (msgpack, v0.4 and v0.5) and
counts the benchmarked service's spans and its server spans (``span.kind`` = ``server``).

- ``PUT|POST /v0.4/traces``, ``/v0.5/traces``: decoded and counted, ``200 {"rate_by_service": {}}``;
- ``GET /info``: advertises only the two trace endpoints (no client-side stats, no remote
  configuration: a plain agent as far as the tracer's hot path is concerned);
- anything else (instrumentation telemetry, …): ``202``, counted by path in ``other``;
- ``GET /counts``: the counts as JSON (for the runner).

Prints its endpoint on the first line of stdout. Listens on 127.0.0.1 only; stops on SIGTERM/SIGINT.
Runs with the ddtrace virtualenv's python (it has msgpack; the main virtualenv need not).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgpack


class Counts:
    def __init__(self, service: str) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def _span(self, got: Counter[str], service: Any, meta: dict[Any, Any]) -> None:
        if service != self.service:
            got["spans_other_service"] += 1
            return
        got["spans_total"] += 1
        if meta.get("span.kind") == "server":
            got["spans"] += 1

    def v04(self, body: bytes) -> None:
        got: Counter[str] = Counter()
        for trace in msgpack.unpackb(body, raw=False, strict_map_key=False):
            for span in trace:
                self._span(got, span.get("service"), span.get("meta") or {})
        got["payloads"] += 1
        self._add(got)

    def v05(self, body: bytes) -> None:
        # [string table, [[span, ...], ...]]; a span is a 12-array whose strings are table indexes:
        # service, name, resource, trace_id, span_id, parent_id, start, duration, error, meta, metrics, type
        got: Counter[str] = Counter()
        strings, traces = msgpack.unpackb(body, raw=False, strict_map_key=False)
        for trace in traces:
            for span in trace:
                meta = {strings[k]: strings[v] for k, v in span[9].items()}
                self._span(got, strings[span[0]], meta)
        got["payloads"] += 1
        self._add(got)

    def other(self, path: str) -> None:
        self._add(Counter({f"other {path}": 1}))

    def _add(self, got: Counter[str]) -> None:
        with self._lock:
            self._counts.update(got)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._counts)
        for key in ("spans", "spans_total"):
            out.setdefault(key, 0)
        return out


def handler_for(counts: Counts) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/counts":
                self._reply(200, counts.snapshot())
            elif self.path == "/info":
                self._reply(200, {"version": "stand-in", "endpoints": ["/v0.4/traces", "/v0.5/traces"],
                                  "client_drop_p0s": False, "span_meta_structs": False})
            else:
                counts.other(self.path)
                self._reply(404, {})

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            try:
                if path == "/v0.4/traces":
                    counts.v04(body)
                elif path == "/v0.5/traces":
                    counts.v05(body)
                else:
                    counts.other(path)
                    self._reply(202, {})
                    return
            except Exception as exc:  # a payload we cannot decode is a failed run, visibly
                counts._add(Counter({"undecodable": 1}))
                sys.stderr.write(f"dd_agent: {path}: {exc!r}\n")
                self._reply(400, {})
                return
            self._reply(200, {"rate_by_service": {}})

        do_POST = do_PUT

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service", required=True)
    args = parser.parse_args()
    counts = Counts(args.service)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(counts))
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)

    def shut(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut)
    signal.signal(signal.SIGINT, shut)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
