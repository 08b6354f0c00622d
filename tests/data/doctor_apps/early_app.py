"""An app built before setup(): the module creates its app first and configures telemetry after."""

import falcon

import otel_showmax


class Titles:
    def on_get(self, req, resp):
        resp.media = []


app = falcon.App()
app.add_route("/titles", Titles())
otel_showmax.setup(service_name="doctor-early")
