# gunicorn configuration for the catalogue (and the storefront) with gevent workers.
#
#   zero-code:  OTEL_SERVICE_NAME=catalogue opentelemetry-instrument gunicorn -c gunicorn.conf.py catalogue:app
#   in code:    gunicorn -c gunicorn.conf.py catalogue:app        (catalogue.py calls otel_showmax.setup())
#
# Run from examples/catalogue/ (or pass --chdir examples/catalogue). Command-line flags override
# what is set here (-b, -w, -k, --preload, ...).
import os

# Each worker re-initialises its export pipeline after fork and flushes it when it exits.
from otel_showmax.gunicorn import post_fork, worker_abort, worker_exit  # noqa: F401

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
worker_connections = 1000

# otel_showmax writes one request log per request (with trace ids, exported to the collector), so
# gunicorn's own access log is off by default; turn it on with --access-logfile - if you want both.
accesslog = None
errorlog = "-"
loglevel = "info"

# The telemetry flush at worker exit is bounded by OTEL_SHOWMAX_SHUTDOWN_TIMEOUT (4 s by default);
# keep gunicorn's graceful timeout (30 s by default) above it.
graceful_timeout = 30
