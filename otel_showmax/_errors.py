"""Errors raised by otel_showmax."""

from __future__ import annotations


class ConfigError(ValueError):
    """An invalid setting, raised once at set-up.

    The message names the setting (keyword argument or environment variable), the value
    received and the accepted values.
    """

    def __init__(self, source: str, value: object, accepted: str) -> None:
        self.source = source
        self.value = value
        self.accepted = accepted
        super().__init__(f"otel_showmax: invalid {source}={value!r}; accepted: {accepted}")
