"""Redaction of sensitive query parameters and header values; the one header-capture rule.

Query parameters are matched by name, case-insensitively, after percent-decoding: a name is
sensitive when it is in the list, or when one of its parts (split on ``_``, ``-``, ``.``, ``[``,
``]``) is — so ``token`` also covers ``access_token`` and ``user[password]``. The value becomes
``REDACTED`` (upstream's word for query values); the rest of the URL is kept byte for byte.
Header names follow upstream's rule for OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS:
regular expressions searched case-insensitively; the value becomes ``[REDACTED]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_plus

from .._pipeline.tracer import TrustedAttributes

QUERY_MASK = "REDACTED"
HEADER_MASK = "[REDACTED]"
_SPLIT = re.compile(r"[_\-.\[\]]+")


class QueryRedactor:
    """Redacts the values of sensitive query parameters in query strings, targets and URLs."""

    __slots__ = ("_cache", "_names")

    def __init__(self, names: Iterable[str]) -> None:
        self._names = frozenset(n.strip().lower() for n in names if n.strip())
        self._cache: dict[str, bool] = {}

    def sensitive(self, name: str) -> bool:
        """Whether a (raw, possibly percent-encoded) parameter name is sensitive."""
        hit = self._cache.get(name)
        if hit is None:
            try:
                plain = unquote_plus(name).strip().lower()
            except Exception:
                plain = name.lower()
            hit = plain in self._names or any(part in self._names for part in _SPLIT.split(plain) if part)
            if len(self._cache) < 4096:
                self._cache[name] = hit
        return hit

    def query(self, query: str) -> str:
        """``a=1&token=s3cret`` → ``a=1&token=REDACTED``."""
        if not query or not self._names or "=" not in query:
            return query
        parts = query.split("&")
        changed = False
        for i, part in enumerate(parts):
            name, eq, value = part.partition("=")
            if eq and value and self.sensitive(name):
                parts[i] = f"{name}={QUERY_MASK}"
                changed = True
        return "&".join(parts) if changed else query

    def target(self, target: str) -> str:
        """A request target or full URL: only the part between ``?`` and ``#`` changes."""
        head, q, rest = target.partition("?")
        if not q:
            return target
        query, hash_, fragment = rest.partition("#")
        redacted = self.query(query)
        if redacted is query:
            return target
        return f"{head}?{redacted}{hash_}{fragment}"


def header_pattern(fields: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern for sensitive header names (upstream's semantics), or None."""
    items = [f for f in fields if f]
    if not items:
        return None
    return re.compile("|".join(items), re.IGNORECASE)


def check_patterns(kind: str, patterns: Iterable[str]) -> tuple[str, ...]:
    """Validate regular expressions up front; raise ValueError naming the bad one."""
    out = []
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"invalid regular expression in {kind}: {pattern!r} ({error})") from None
        out.append(pattern)
    return tuple(out)


class HeaderCapture:
    """Upstream's header capture rule (``SanitizeValue.sanitize_header_values``), compiled once.

    A header is captured when a pattern matches its whole name, case-insensitively; its value
    becomes ``[REDACTED]`` when a sanitize pattern is found in its name. Decisions are cached per
    header name (up to ``_NAMES_MAX`` names; clients choose header names).
    """

    _NAMES_MAX = 1024

    def __init__(self, capture: Iterable[str], sanitize: Iterable[str], normalise: Callable[[str], str]) -> None:
        capture, sanitize = list(capture), list(sanitize)
        self._capture = re.compile("|".join(capture), re.IGNORECASE) if capture else None
        self._sanitize = re.compile("|".join(sanitize), re.IGNORECASE) if sanitize else None
        self._normalise = normalise
        self._names: dict[str, tuple[str, bool] | None] = {}
        self._plans: dict[tuple[str, ...], tuple[tuple[str, str, bool], ...]] = {}

    def __bool__(self) -> bool:
        return self._capture is not None

    def _decide(self, cache_key: str, name: str) -> tuple[str, bool] | None:
        try:
            return self._names[cache_key]
        except KeyError:
            pass
        decision = None
        if self._capture is not None and self._capture.fullmatch(name):
            decision = (self._normalise(name.lower()), bool(self._sanitize and self._sanitize.search(name)))
        if len(self._names) < self._NAMES_MAX:
            self._names[cache_key] = decision
        return decision

    def from_environ(self, env: dict[str, Any]) -> TrustedAttributes:
        """Request headers from a WSGI environ (``HTTP_X_REQUEST_ID`` is ``X-REQUEST-ID``).

        Values are 1-tuples: what the SDK stores for upstream's 1-element lists. The environ keys
        of most requests are one of a few sets (one server, a few kinds of client): per set of keys,
        in order, the captured ones are found once (up to ``_KEY_SETS_MAX`` sets).
        """
        keys = tuple(env)
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._plan(keys)
        out = TrustedAttributes()
        for key, name, masked in plan:
            out[name] = (HEADER_MASK if masked else env[key],)
        return out

    _KEY_SETS_MAX = 256

    def _plan(self, keys: tuple[str, ...]) -> tuple[tuple[str, str, bool], ...]:
        """(environ key, attribute name, masked) of the captured headers among ``keys``, in their order."""
        plan = []
        for key in keys:
            if key.startswith("HTTP_"):
                decision = self._decide(key, key[5:].replace("_", "-"))
                if decision is not None:
                    plan.append((key, decision[0], decision[1]))
        found = tuple(plan)
        if len(self._plans) < self._KEY_SETS_MAX:
            self._plans[keys] = found
        return found

    def from_items(self, items: Iterable[tuple[str, str]]) -> TrustedAttributes:
        """Response headers; repeated names are joined with ``,``."""
        values: dict[str, str] = {}
        for key, value in items:
            key = key.lower()
            if key in values:
                values[key] += "," + value
            else:
                values[key] = value
        out = TrustedAttributes()
        for key, value in values.items():
            decision = self._decide(key, key)
            if decision is not None:
                out[decision[0]] = (HEADER_MASK if decision[1] else value,)
        return out
