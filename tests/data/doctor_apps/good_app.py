"""A correct set-up: logging configured once, setup() once, loggers without handlers of their own."""

import logging

import falcon

import otel_showmax

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
otel_showmax.setup(service_name="doctor-good")
log = otel_showmax.get_logger("catalogue")


class Titles:
    def on_get(self, req, resp):
        log.info("listing titles")
        resp.media = []


app = falcon.App()
app.add_route("/titles", Titles())
