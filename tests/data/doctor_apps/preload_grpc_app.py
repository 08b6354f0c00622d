"""A gRPC client channel made at import: under gunicorn --preload it is created in the master, before fork."""

import logging

import falcon
import grpc

import otel_showmax

logging.basicConfig(level=logging.INFO)
otel_showmax.setup(service_name="doctor-preload-grpc")
recommendations = grpc.insecure_channel("127.0.0.1:50051")  # an internal gRPC service the app calls
app = falcon.App()
