"""Per-route plans: what a traced Falcon response needs from its route and status, computed once.

A ``Route`` holds, for one (method, uri_template, status), the server span's new name, the response
attributes (``http.route``, status code, ``error.type``), the span status to set, and the attribute
items the duration histograms take from the response. ``Routes`` caches them, bounded like the
other per-app caches; past the bound a plan is built per request (the same values).
"""

from __future__ import annotations

from typing import Any

import falcon
from opentelemetry.trace.status import Status, StatusCode

__all__ = ["CACHE_MAX", "Route", "Routes"]

CACHE_MAX = 256
_ERROR = Status(StatusCode.ERROR)


class Route:
    """One (method, uri_template, status) of one app: everything but the request's own values."""

    __slots__ = ("attributes", "error", "metric_new", "metric_old", "name")

    def __init__(self, method: str, route: str | None, status: Any, server: bool, owner: Routes) -> None:
        old, new = owner.old, owner.new
        if isinstance(status, str) and " " in status:
            code_str = status.split(" ", 1)[0]
        else:  # deliberate difference: upstream's status.split raises here (falcon_app's docstring)
            try:
                code_str = str(falcon.http_status_to_code(status))
            except Exception:
                code_str = str(status)
        try:
            code = int(code_str)
        except ValueError:
            code = -1
        span: dict[str, Any] = {}
        metric: dict[str, Any] = {}
        self.error: Status | None = None
        if code < 0:
            if new:
                metric["error.type"] = span["error.type"] = code_str
            self.error = Status(StatusCode.ERROR, "Non-integer HTTP status: " + code_str)
        else:
            if old:
                metric["http.status_code"] = span["http.status_code"] = code
            if new:
                metric["http.response.status_code"] = span["http.response.status_code"] = code
            if code < 100 or code > 499:
                if new:
                    metric["error.type"] = span["error.type"] = code_str
                self.error = _ERROR
        if new and route:
            metric["http.route"] = route
        self.name: str | None = None  # None: the span keeps its name (not a server span)
        if server:
            self.name = f"{method} {route}" if route else method
            if route:
                span["http.route"] = route
        self.attributes = tuple(span.items())  # in upstream's order
        # What the duration histograms add to the request's attributes, in the order upstream adds them.
        self.metric_old = tuple(item for item in metric.items() if item[0] in owner.old_keys)
        self.metric_new = tuple(item for item in metric.items() if item[0] in owner.new_keys)


class Routes:
    """``Route`` plans of one app, by (method, uri_template, status, server span or not)."""

    def __init__(self, old: bool, new: bool, old_keys: frozenset[str], new_keys: frozenset[str]) -> None:
        self.old = old  # the semantic-convention modes
        self.new = new
        self.old_keys = old_keys  # the duration histograms' attribute keys
        self.new_keys = new_keys
        self._plans: dict[tuple[Any, ...], Route] = {}

    def get(self, method: str, route: str | None, status: Any, server: bool) -> Route:
        # The status's type is part of the key: 200, 200.0 and HTTPStatus.OK are equal but not read alike.
        key = (method, route, status, type(status), server)
        try:
            plan = self._plans.get(key)
        except TypeError:  # an unhashable status: built per request
            return Route(method, route, status, server, self)
        if plan is None:
            plan = Route(method, route, status, server, self)
            if len(self._plans) < CACHE_MAX:
                self._plans[key] = plan
        return plan
