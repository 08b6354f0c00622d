"""Instrumentation of the app and server: Falcon spans, request log, metric instruments, uWSGI hooks, hub monitor."""
