"""setup() plus an older-style second OTel handler from opentelemetry-instrumentation-logging."""

import logging

import falcon
from opentelemetry.instrumentation.logging.handler import LoggingHandler

import otel_showmax

logging.basicConfig(level=logging.INFO)
otel_showmax.setup(service_name="doctor-two-handlers")
logging.getLogger("catalogue").addHandler(LoggingHandler())  # exports every catalogue record a second time
app = falcon.App()
