"""The data path: resource, providers, and one init function per signal (traces, logs, metrics), plus the logging bridge."""
