"""A logging configuration that 'quiets the access log' and so silences otel_showmax's request log."""

import logging.config

import falcon

import otel_showmax

otel_showmax.setup(service_name="doctor-quiet-request-log")
logging.config.dictConfig({
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {"otel_showmax.request": {"level": "WARNING"}},  # meant for gunicorn's access log
})
app = falcon.App()
