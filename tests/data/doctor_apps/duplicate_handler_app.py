"""The seed's bug: a get_logger() helper that adds a handler on every call."""

import logging

import falcon

import otel_showmax

logging.basicConfig(level=logging.INFO)
otel_showmax.setup(service_name="doctor-duplicate")


def get_logger():
    logger = logging.getLogger("catalogue")
    logger.addHandler(logging.StreamHandler())  # on every call: one more copy of every record
    return logger


get_logger()
get_logger()
app = falcon.App()
