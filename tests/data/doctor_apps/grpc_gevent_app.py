"""gRPC under gevent without gevent support: the app builds its own upstream gRPC exporter."""

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402

import falcon  # noqa: E402
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: E402

import otel_showmax  # noqa: E402

legacy_exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:4317", insecure=True)  # no init_gevent()
logging.basicConfig(level=logging.INFO)
otel_showmax.setup(service_name="doctor-grpc-gevent")
app = falcon.App()
