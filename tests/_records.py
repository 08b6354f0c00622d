"""Shared test helper: a logging handler that keeps records and, with a formatter, their lines."""

from __future__ import annotations

import logging


class ListHandler(logging.Handler):
    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.formatter is not None:
            self.lines.append(self.format(record))
