"""The ``otel-showmax`` tools: receive, render, demo, doctor and its probe."""
