"""Configure OpenTelemetry exactly once per process, whatever mix of entry points runs.

The first ``setup()`` wins: later calls (the app's own after ``opentelemetry-instrument``, a second
import, a worker re-running module code) return the active configuration, and a call with
different options says so once. A forked child keeps the providers but gets its own export
threads, queues and exporters (created lazily on first use) and a resource naming its own pid.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from . import _diag, _selfcheck
from ._config import Config, Libraries, Provenance, resolve
from ._export.exporters import preload_when_safe as preload_exporters
from ._export.exporters import quiet_upstream_loggers
from ._export.worker import BatchWorker
from ._pipeline import (
    log_bridge as _bridge,
)
from ._pipeline import (
    logs as _logging,
)
from ._pipeline import (
    metrics as _metrics,
)
from ._pipeline import (
    resource as _resource,
)
from ._pipeline import (
    traces as _tracing,
)
from ._upstream import set_resource

_lock = threading.RLock()
_state: State | None = None
_process_hooks_installed = False


@dataclass
class State:
    """What setup() built in this process."""

    config: Config
    pid: int
    tracer_provider: Any = None
    logger_provider: Any = None
    meter_provider: Any = None
    workers: dict[str, BatchWorker] = field(default_factory=dict)
    reader: Any = None
    handler: _bridge.BridgeHandler | None = None
    converter: Any = None
    shutdown_pid: int | None = None
    warned: set[Config] = field(default_factory=set)
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=set)


def _caller() -> tuple[str, int]:
    """File and line of the first frame outside otel_showmax and OpenTelemetry's loaders."""
    frame = sys._getframe(1)
    skip = (os.path.dirname(__file__), f"{os.sep}opentelemetry{os.sep}", "importlib", "<frozen", "sitecustomize")
    while frame is not None:
        filename = frame.f_code.co_filename
        if not any(part in filename for part in skip):
            return filename, frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return (sys.argv[0] if sys.argv and sys.argv[0] else "<unknown>"), 0


def setup(*, entry_point: str = "setup()", **options: Any) -> Config:
    """See ``otel_showmax.setup``."""
    global _state
    with _lock:
        if _state is not None:
            ensure_process()
            return _again(_state, entry_point, options)
        filename, line = _caller()
        config = resolve(options).with_provenance(
            Provenance(entry_point=entry_point, file=filename, line=line, pid=os.getpid())
        )
        state = State(config=config, pid=os.getpid())
        if not config.disabled:
            _build(state)
        _state = state
        _install_process_hooks()
        return state.config


def _again(state: State, entry_point: str, options: dict[str, Any]) -> Config:
    active = state.config
    key = (repr(sorted(options.items())), tuple(sorted(kv for kv in os.environ.items() if kv[0].startswith("OTEL_"))))
    if key in state.seen:
        return active  # the same call as before: already checked (and reported if different)
    candidate = resolve(options)  # invalid options still fail loudly
    state.seen.add(key)
    if candidate != active and candidate not in state.warned:
        state.warned.add(candidate)
        filename, line = _caller()
        p = active.provenance
        assert p is not None
        _diag.once(
            f"setup_again:{hash(candidate)}",
            "%s at %s:%d asked for a different configuration; keeping the one made by %s at %s:%d (pid %d)",
            entry_point, filename, line, p.entry_point, p.file, p.line, p.pid,
        )
    return active


def _build(state: State) -> None:
    config = state.config
    _diag.set_interval(config.diagnostics_interval)
    quiet_upstream_loggers()
    resource = _resource.build(config)
    injected = _correlation_fields(config)

    tracer_provider, span_worker = _tracing.init(config, resource)
    logger_provider, log_worker, handler, converter = _logging.init(config, resource, injected)
    state.tracer_provider, state.logger_provider = tracer_provider, logger_provider
    state.handler, state.converter = handler, converter
    for worker in (span_worker, log_worker):
        if worker is not None:
            worker._on_fork = ensure_process
            state.workers[worker.signal] = worker
    state.meter_provider, state.reader = _metrics.init(config, resource, dropped)
    # Imported now, not by a fresh worker's export thread under load (see _exporters.preload).
    preload_exporters([config.exporter(signal) for signal in ("traces", "logs", "metrics")])
    upstream = _selfcheck.run()  # before any instrument is bound or batch encoded

    _set_globals(state)
    if handler is not None:
        _adopt_logging(handler)
    _bridge.on_reconfigure(_reenable_our_loggers)
    _keep_request_log(config)
    if state.reader is not None and not _uwsgi_master():
        state.reader.ensure_started()  # in a uWSGI master: in each worker, after fork
    state.config = replace(config, libraries=_instrument(config, tracer_provider), upstream=upstream)
    _install_hub_monitor(state)


def _set_globals(state: State) -> None:
    from opentelemetry import metrics, propagate, trace

    from ._upstream import logs_api as _logs

    def install(name: str, current: Any, setter: Any, provider: Any) -> None:
        if type(current).__name__.startswith(("Proxy", "NoOp", "_Proxy")):
            setter(provider)
        else:
            _diag.once(
                f"global_{name}",
                "a %s (%s) was already installed before otel_showmax.setup(); otel_showmax keeps its "
                "own for what it instruments — remove the other set-up to avoid a second pipeline",
                name, type(current).__name__,
            )

    install("TracerProvider", trace.get_tracer_provider(), trace.set_tracer_provider, state.tracer_provider)
    install("LoggerProvider", _logs.get_logger_provider(), _logs.set_logger_provider, state.logger_provider)
    install("MeterProvider", metrics.get_meter_provider(), metrics.set_meter_provider, state.meter_provider)
    propagate.set_global_textmap(_propagator(state.config.propagators))


def _propagator(names: tuple[str, ...]) -> Any:
    from opentelemetry.propagators.composite import CompositePropagator

    from ._upstream import entry_points

    propagators = []
    for name in names:
        if name == "none":
            continue
        (ep,) = entry_points(group="opentelemetry_propagator", name=name)
        propagators.append(ep.load()())
    return CompositePropagator(propagators)


def _adopt_logging(handler: _bridge.BridgeHandler) -> None:
    """Install our bridge; an upstream OTel logging handler would export every record again."""
    for name, other in _bridge.other_otel_handlers():
        logging.getLogger(None if name == "root" else name).removeHandler(other)
        _diag.once(
            f"adopt:{name}:{id(other)}",
            "removed %s from logger %r: otel_showmax's bridge already exports these records "
            "(two OTel handlers would export every record twice)",
            type(other).__name__, name,
        )
    _bridge.attach(handler)


def _correlation_fields(config: Config) -> frozenset[str]:
    if not config.log_correlation:
        return frozenset()
    from . import correlation

    correlation.install(config.log_fields, service_name=config.service_name)
    return correlation.injected_fields()


def _instrument(config: Config, tracer_provider: Any) -> Libraries:
    from ._instrumentation.libraries import instrument_installed

    if config.instrument_falcon:
        from . import falcon as falcon_support

        falcon_support.instrument(
            tracer_provider=tracer_provider,
            excluded_urls=config.excluded_urls,
            capture_request_headers=config.capture_request_headers,
            capture_response_headers=config.capture_response_headers,
            sanitize_headers=config.sanitize_headers,
            redact_query_params=config.redact_query_params,
            request_log=config.request_log,
            request_log_logger=config.request_log_logger,
            request_log_level=config.request_log_level,
        )
    if "uwsgi" in sys.modules:
        install_uwsgi_hooks()
    wrapper = config.provenance is not None and config.provenance.entry_point == "opentelemetry-instrument"
    return instrument_installed(config.instrumentations, config.disabled_instrumentations, wrapper=wrapper)


def install_uwsgi_hooks() -> bool:
    """Install the uWSGI post-fork and atexit hooks once; False when not under uWSGI."""
    from ._instrumentation import uwsgi_hooks

    return uwsgi_hooks.install(after_fork=ensure_process, at_exit=shutdown, workers=_published_workers)


def _published_workers() -> list[Any] | None:
    state = get_state()
    return None if state is None else list(getattr(state, "workers", {}).values())


# -- hub-block monitor (otel_showmax/_instrumentation/hub_monitor.py) ----------------------------------


def _install_hub_monitor(state: State) -> None:
    """Configure the hub-block monitor; it starts here if gevent already patched this process (and it
    is not a uWSGI master), else after fork or at the worker's first request."""
    config = state.config
    if not config.hub_block_threshold:
        return
    from ._instrumentation import hub_monitor
    from ._version import __version__

    tracer = None
    if state.tracer_provider is not None:
        tracer = state.tracer_provider.get_tracer(hub_monitor.LOGGER_NAME, __version__)
    histogram = None
    if state.meter_provider is not None:
        histogram = state.meter_provider.get_meter(hub_monitor.LOGGER_NAME, __version__).create_histogram(
            hub_monitor.METRIC_NAME, unit=hub_monitor.METRIC_UNIT, description=hub_monitor.METRIC_DESCRIPTION,
            explicit_bucket_boundaries_advisory=list(hub_monitor.METRIC_BUCKETS),
        )
    hub_monitor.install(config.hub_block_threshold / 1000, tracer=tracer,
                        logger=logging.getLogger(hub_monitor.LOGGER_NAME), histogram=histogram,
                        may_start=lambda: not _uwsgi_master())
    hub_monitor.ensure_started()


def _hub_monitor(action: str) -> None:
    """``ensure_started`` (after fork) or ``stop`` (shutdown) the hub-block monitor, if configured."""
    module = sys.modules.get("otel_showmax._instrumentation.hub_monitor")
    if module is None or module.tracker is None:
        return
    try:
        module.ensure_started() if action == "start" else module.stop()
    except Exception as error:
        _diag.warn("hub_monitor", "gevent hub monitor %s failed: %r", action, error)


# -- end of the hub-block monitor's wiring ------------------------------------------------------------


def _uwsgi_master() -> bool:
    """Whether this is a uWSGI master that may still fork workers.

    uWSGI forks from C with the GIL released: a Python thread of the master that holds the GIL at
    that instant leaves the new worker waiting for it forever. No export thread runs there.
    """
    uwsgi = sys.modules.get("uwsgi")
    try:
        return uwsgi is not None and uwsgi.worker_id() == 0
    except Exception:
        return False


def _keep_request_log(config: Config) -> None:
    """Neither the root level (WARNING by default) nor dictConfig(disable_existing_loggers=True) may
    silence the request log: one request, one request log. A level the user set is kept."""
    if config.request_log:
        request_logger = logging.getLogger(config.request_log_logger)
        request_logger.disabled = False
        if request_logger.level == logging.NOTSET:
            request_logger.setLevel(config.request_log_level)


def _reenable_our_loggers() -> None:
    state = _state
    if state is not None and not state.config.disabled:
        _keep_request_log(state.config)


def _install_process_hooks() -> None:
    global _process_hooks_installed
    if _process_hooks_installed:
        return
    _process_hooks_installed = True
    atexit.register(_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=ensure_process)


def ensure_process() -> None:
    """Re-initialise this process's pipeline if it is a fork of the one that called setup().

    Runs from os.register_at_fork, from the uWSGI postfork hook, from the gunicorn post_fork hook
    and lazily from the first telemetry item in a new process — whichever comes first; once.
    """
    state = _state
    pid = os.getpid()
    if state is None or state.pid == pid:
        return
    with _lock:
        if state.pid == pid:
            return
        state.pid = pid
        state.shutdown_pid = None
        if state.config.disabled:
            return
        child = _resource.for_child(state.config)
        for provider in (state.tracer_provider, state.logger_provider, state.meter_provider):
            if provider is not None:
                set_resource(provider, child)
        if state.reader is not None:
            state.reader.ensure_started()
    _hub_monitor("start")


def shutdown(timeout: float | None = None) -> bool:
    """See ``otel_showmax.shutdown``."""
    state = _state
    pid = os.getpid()
    if state is None or state.config.disabled or state.shutdown_pid == pid:
        return True
    state.shutdown_pid = pid
    _hub_monitor("stop")  # first: the flush below waits on real locks, which would look like a block
    budget = state.config.shutdown_timeout if timeout is None else timeout
    deadline = time.monotonic() + budget
    workers = list(state.workers.values())
    for worker in workers:
        worker.begin_shutdown()
    if state.reader is not None:
        state.reader.begin_shutdown()
    ok = True
    for worker in workers:
        ok = worker.wait_shutdown(max(0.0, deadline - time.monotonic())) and ok
    if state.reader is not None:
        state.reader.shutdown(timeout_millis=max(0.0, deadline - time.monotonic()) * 1000)
    return ok


def _at_exit() -> None:
    try:
        shutdown()
    except Exception as error:  # pragma: no cover - never raise at interpreter exit
        _diag.warn("atexit", "shutdown at exit failed: %r", error)


def flush(timeout: float = 5.0) -> bool:
    """Export what is queued in this process now; wait at most ``timeout`` seconds in all."""
    state = _state
    if state is None:
        return True
    deadline = time.monotonic() + timeout
    ok = True
    for worker in state.workers.values():
        ok = worker.flush(max(0.0, deadline - time.monotonic())) and ok
    return ok


def dropped() -> dict[str, dict[str, int]]:
    """Items dropped in this process, by signal and reason."""
    state = _state
    out: dict[str, dict[str, int]] = {}
    if state is None:
        return out
    for signal, worker in state.workers.items():
        snapshot = worker.stats.snapshot()
        snapshot.pop("exported")
        out[signal] = snapshot
    if state.reader is not None:
        snapshot = state.reader.stats.snapshot()
        snapshot.pop("exported")
        out["metrics"] = snapshot
    return out


def exported() -> dict[str, int]:
    """Items exported in this process, by signal (metrics: export calls)."""
    state = _state
    if state is None:
        return {}
    out = {signal: worker.stats.snapshot()["exported"] for signal, worker in state.workers.items()}
    if state.reader is not None:
        out["metrics"] = state.reader.stats.snapshot()["exported"]
    return out


def get_state() -> State | None:
    return _state


def clear_state() -> None:
    """Forget the configuration (otel_showmax.testing.reset)."""
    global _state
    _state = None
