"""The package's own diagnostics: to stderr, rate-limited, never into the OTel log pipeline."""

from __future__ import annotations

import logging
import sys
import time

LOGGER_NAME = "otel_showmax.diagnostics"

_interval = 60.0
_last: dict[str, float] = {}
_suppressed: dict[str, int] = {}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (pytest and servers swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


logger = logging.getLogger(LOGGER_NAME)
logger.propagate = False  # never reaches root handlers, so never the OTel bridge
if not logger.handlers:
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("otel_showmax: %(levelname)s: %(message)s"))
    logger.addHandler(_handler)
logger.setLevel(logging.INFO)


def set_interval(seconds: float) -> None:
    """Set how often one kind of message may be repeated."""
    global _interval
    _interval = seconds


def warn(key: str, message: str, *args: object, level: int = logging.WARNING) -> bool:
    """Log ``message`` unless ``key`` was logged less than the interval ago. Never raises."""
    try:
        now = time.monotonic()
        last = _last.get(key)
        if last is not None and now - last < _interval:
            _suppressed[key] = _suppressed.get(key, 0) + 1
            return False
        _last[key] = now
        skipped = _suppressed.pop(key, 0)
        if skipped:
            message += f" ({skipped} similar messages suppressed)"
        _log(level, message, args)
        return True
    except Exception:  # pragma: no cover - diagnostics must never break the caller
        return False


def once(key: str, message: str, *args: object, level: int = logging.WARNING) -> bool:
    """Log ``message`` once per process lifetime for ``key``."""
    if key in _last:
        return False
    _last[key] = float("inf")
    _log(level, message, args)
    return True


def _log(level: int, message: str, args: tuple[object, ...]) -> None:
    logger.disabled = False  # dictConfig(disable_existing_loggers=True) must not silence us
    logger.log(level, message, *args)


def reset() -> None:
    """Forget what was logged (tests)."""
    _last.clear()
    _suppressed.clear()
