"""A small OTLP receiver on 127.0.0.1 for tests, benchmarks, ``otel-showmax receive`` and the demo.

``OTLPReceiver`` accepts OTLP/HTTP protobuf (optionally gzip-compressed) on ``/v1/traces``,
``/v1/logs`` and ``/v1/metrics`` and keeps every decoded record, raw (never deduplicated)::

    with OTLPReceiver() as receiver:
        otel_showmax.setup(endpoint=receiver.endpoint)
        ...
        assert receiver.wait_for(spans=1, logs=1)
        receiver.spans[0]["name"], receiver.logs[0]["body"]

Fault modes switch at run time with ``set_mode``: ``"live"``, ``"status:503"`` (optionally
``"status:503:2"`` to add ``Retry-After: 2``) and ``"blackhole"`` (reads the request, never
answers). ``Blackhole`` is a bare TCP listener that never answers (for gRPC), ``dead_port()`` a
closed port. ``OTLPGrpcReceiver`` is the gRPC twin; ``ReceiverProcess`` runs both in a separate
process (``python -m otel_showmax.receiver``) so the receiver never shares a load-tested GIL.
"""

from __future__ import annotations

from ._receiver.faults import Blackhole, dead_port
from ._receiver.grpc import OTLPGrpcReceiver
from ._receiver.http import DEFAULT_MAX_BODY, OTLPReceiver
from ._receiver.process import ReceiverProcess

__all__ = ["DEFAULT_MAX_BODY", "Blackhole", "OTLPGrpcReceiver", "OTLPReceiver", "ReceiverProcess", "dead_port"]

if __name__ == "__main__":
    from ._receiver.process import main

    raise SystemExit(main())
