"""Per-route plans: a cached plan gives what a fresh one gives, keyed so equal-but-different statuses differ."""

from __future__ import annotations

import http

import falcon
import pytest

from otel_showmax._instrumentation import routes
from otel_showmax._instrumentation.falcon_app import _NEW_DURATION, _OLD_DURATION

STATUSES = [falcon.HTTP_200, "404 Not Found", "503 Service Unavailable", 201, http.HTTPStatus.OK, 200.0, "weird",
            "99 Low", 600, True]


def view(plan: routes.Route) -> tuple:
    error = None if plan.error is None else (plan.error.status_code, plan.error.description)
    return plan.name, plan.attributes, error, plan.metric_old, plan.metric_new


@pytest.mark.parametrize(("old", "new"), [(True, False), (False, True), (True, True)])
def test_a_cached_plan_is_a_fresh_plan(old: bool, new: bool) -> None:
    cache = routes.Routes(old, new, _OLD_DURATION, _NEW_DURATION)
    for server in (True, False):
        for route in ("/titles/{id}", None, ""):
            for status in STATUSES:
                fresh = routes.Route("GET", route, status, server, cache)
                for _ in range(2):  # built, then from the cache
                    assert view(cache.get("GET", route, status, server)) == view(fresh), (route, status)


def test_equal_statuses_of_other_types_get_their_own_plans() -> None:
    cache = routes.Routes(True, True, _OLD_DURATION, _NEW_DURATION)
    assert cache.get("GET", "/a", 200, True).attributes == (("http.status_code", 200),
                                                           ("http.response.status_code", 200), ("http.route", "/a"))
    assert len(cache._plans) == 1
    assert cache.get("GET", "/a", http.HTTPStatus.OK, True).error is None
    assert cache.get("GET", "/a", 200.0, True) is not cache.get("GET", "/a", 200, True)
    assert len(cache._plans) == 3


def test_names_and_the_route_attribute_are_for_server_spans_only() -> None:
    cache = routes.Routes(False, True, _OLD_DURATION, _NEW_DURATION)
    server = cache.get("POST", "/a/{b}", "500 Internal Server Error", True)
    assert server.name == "POST /a/{b}" and ("http.route", "/a/{b}") in server.attributes
    assert server.metric_new == (("http.response.status_code", 500), ("error.type", "500"), ("http.route", "/a/{b}"))
    internal = cache.get("POST", "/a/{b}", "500 Internal Server Error", False)
    assert internal.name is None and ("http.route", "/a/{b}") not in internal.attributes
    assert internal.metric_new == server.metric_new
    assert cache.get("GET", None, falcon.HTTP_404, True).name == "GET"


def test_the_cache_is_bounded_and_unhashable_statuses_are_served() -> None:
    cache = routes.Routes(True, False, _OLD_DURATION, _NEW_DURATION)
    for n in range(routes.CACHE_MAX + 50):
        assert cache.get("GET", f"/r{n}", 200, True).name == f"GET /r{n}"
    assert len(cache._plans) == routes.CACHE_MAX
    assert cache.get("GET", "/x", [200], True).error is not None  # built per request, not cached
