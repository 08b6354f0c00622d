"""An app built before setup() whose class cannot be rebuilt: its constructor needs an argument."""

import falcon

import otel_showmax


class RegionApp(falcon.App):
    def __init__(self, region, **kwargs):
        super().__init__(**kwargs)
        self.region = region


app = RegionApp("eu")
otel_showmax.setup(service_name="doctor-pinned")
