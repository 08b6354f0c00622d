"""A correct set-up: setup() once, loggers without handlers of their own, OTLP/HTTP."""

import falcon

import otel_showmax

otel_showmax.setup(service_name="doctor-good")
log = otel_showmax.get_logger("catalogue")


class Titles:
    def on_get(self, req, resp):
        log.info("listing titles")
        resp.media = []


app = falcon.App()
app.add_route("/titles", Titles())
