"""Redaction of sensitive query parameters and header values.

Query parameters are matched by name, case-insensitively, after percent-decoding: a name is
sensitive when it is in the list, or when one of its parts (split on ``_``, ``-``, ``.``, ``[``,
``]``) is — so ``token`` also covers ``access_token`` and ``user[password]``. The value becomes
``REDACTED`` (upstream's word for query values); the rest of the URL is kept byte for byte.
Header names follow upstream's rule for OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS:
regular expressions searched case-insensitively; the value becomes ``[REDACTED]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

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
