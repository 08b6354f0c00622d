"""HeaderCapture.from_environ: the captured request headers are the ones a scan of the environ finds."""

from __future__ import annotations

from typing import Any

from opentelemetry.util.http import normalise_request_header_name

from otel_showmax._instrumentation.redaction import HEADER_MASK, HeaderCapture


def scan(capture: HeaderCapture, env: dict[str, Any]) -> dict[str, Any]:
    """The reference: every HTTP_ key of the environ, in order, decided one by one."""
    out: dict[str, Any] = {}
    for key, value in env.items():
        if key.startswith("HTTP_"):
            decision = capture._decide(key, key[5:].replace("_", "-"))
            if decision is not None:
                out[decision[0]] = (HEADER_MASK if decision[1] else value,)
    return out


def environs() -> list[dict[str, Any]]:
    base = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}
    return [
        {**base, "HTTP_USER_AGENT": "ua/1", "HTTP_ACCEPT": "*/*"},
        {**base, "HTTP_X_REQUEST_ID": "r-1", "HTTP_USER_AGENT": "ua/2", "HTTP_AUTHORIZATION": "secret"},
        {**base, "HTTP_AUTHORIZATION": "secret", "HTTP_X_REQUEST_ID": "r-2", "HTTP_USER_AGENT": "ua/3"},
        {**base, "HTTP_X_Request_Id": "mixed", "HTTP_X_REQUEST_ID": "upper"},  # one name, two keys
        {**base, "HTTP_X_CUSTOM_ONE": "1", "HTTP_X_CUSTOM_TWO": "2", "CONTENT_TYPE": "text/plain"},
        dict(base),
    ]


def test_from_environ_is_the_scan_for_every_set_of_keys_also_when_repeated():
    capture = HeaderCapture(["user-agent", "x-request-id", "authorization", "x-custom-.*"], ["authorization"],
                            normalise_request_header_name)
    for _ in range(2):  # the second time from the per-key-set plans
        for env in environs():
            got = capture.from_environ(env)
            assert got == scan(capture, env) and list(got) == list(scan(capture, env)), env
    assert len(capture._plans) == len(environs())
    assert capture.from_environ(environs()[1])["http.request.header.authorization"] == (HEADER_MASK,)


def test_key_sets_beyond_the_cap_are_still_captured():
    capture = HeaderCapture(["x-n"], [], normalise_request_header_name)
    capture._KEY_SETS_MAX = 3
    for i in range(6):
        env = {"HTTP_X_N": str(i), f"HTTP_X_OTHER_{i}": "o"}
        assert capture.from_environ(env) == {"http.request.header.x_n": (str(i),)}
    assert len(capture._plans) == 3


def test_planned_capture_costs_a_fraction_of_the_scan():
    """Same-run ratio, coarse: on the environ gunicorn builds for a proxied request (29 keys, 8
    headers) the plan measured 4.3-4.5x cheaper than the scan on a 2-core machine; it must stay
    at least 1.5x cheaper. Timed alternately, best of 9 rounds each."""
    import timeit

    capture = HeaderCapture(["user-agent", "content-type", "x-request-id", "x-forwarded-for"], ["authorization"],
                            normalise_request_header_name)
    env = {"wsgi.errors": None, "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True,
           "wsgi.run_once": False, "wsgi.file_wrapper": None, "wsgi.input_terminated": True,
           "SERVER_SOFTWARE": "gunicorn/23.0.0", "wsgi.input": None, "gunicorn.socket": None,
           "REQUEST_METHOD": "GET", "QUERY_STRING": "", "RAW_URI": "/titles", "SERVER_PROTOCOL": "HTTP/1.1",
           "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "curl/8.5.0", "HTTP_ACCEPT": "*/*",
           "HTTP_ACCEPT_ENCODING": "gzip", "HTTP_CONNECTION": "keep-alive", "HTTP_X_FORWARDED_FOR": "10.0.0.1",
           "HTTP_X_REQUEST_ID": "r-1", "HTTP_TRACEPARENT": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
           "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "PATH_INFO": "/titles", "SCRIPT_NAME": ""}
    assert capture.from_environ(env) == scan(capture, env)
    planned = scanned = float("inf")
    for _ in range(9):
        planned = min(planned, timeit.timeit(lambda: capture.from_environ(env), number=2000))
        scanned = min(scanned, timeit.timeit(lambda: scan(capture, env), number=2000))
    assert planned * 1.5 < scanned, (planned, scanned)
