"""otel_showmax."""
