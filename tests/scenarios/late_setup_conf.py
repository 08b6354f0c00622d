# gunicorn configuration: otel_showmax.setup() in each worker's post_fork, after --preload built the app.
import logging
import os

import otel_showmax
from otel_showmax.gunicorn import post_fork as _otel_post_fork
from otel_showmax.gunicorn import worker_abort, worker_exit  # noqa: F401

worker_class = "gevent"
errorlog = "-"


def post_fork(server, worker):
    logging.basicConfig(level=logging.INFO)
    otel_showmax.setup(service_name=os.environ.get("OTEL_SERVICE_NAME", "storefront"))
    _otel_post_fork(server, worker)
