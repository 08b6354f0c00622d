"""No logging configuration at all: the root logger stays at WARNING, so the INFO request log is lost."""

import falcon

import otel_showmax

otel_showmax.setup(service_name="doctor-no-logging-config")
app = falcon.App()
