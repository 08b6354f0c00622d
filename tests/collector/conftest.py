"""Fixtures for the collector tests: the built binary (built here if needed), PKI, receivers, topology.

A missing Go toolchain or a failed build FAILS these tests (never skips): ``otelcol_binary`` runs
collector/build.sh, which exits non-zero in both cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import _otelcol


@pytest.fixture(scope="session")
def otelcol_binary() -> Path:
    """collector/_build/otelcol-showmax, built by collector/build.sh (a no-op when up to date)."""
    try:
        return _otelcol.ensure_built()
    except _otelcol.CollectorError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> _otelcol.PKI:
    """A test CA, a gateway certificate for 127.0.0.1/localhost and bearer tokens, made at test time."""
    return _otelcol.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def backend() -> Iterator:
    """The Python OTLP/HTTP receiver standing in for the trace/log backend (counts raw records)."""
    from otel_showmax.receiver import OTLPReceiver

    with OTLPReceiver() as r:
        yield r


@pytest.fixture
def topology(otelcol_binary: Path, tmp_path: Path, pki: _otelcol.PKI, backend) -> Iterator[_otelcol.Topology]:
    """A running gateway and agent (free loopback ports) exporting to ``backend``."""
    with _otelcol.Topology(tmp_path, backend.endpoint, pki=pki) as topo:
        yield topo
