"""``otel-showmax doctor``: load the app as a server would and report what would lose telemetry.

Checks, in order: the app imports; who configured telemetry (``setup()`` is called if the app
does not); the effective configuration with each value's source (secrets masked); one test
span, log record and metric point sent to each configured endpoint; the logging tree; gevent
and gRPC; the server's settings. Exit status 1 when telemetry would be lost or duplicated.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .doctor_report import Finding, Report

__all__ = ["load_app", "run_doctor"]

_EXPORTER_FIELDS = ("kind", "protocol", "endpoint", "headers", "timeout", "compression", "certificate",
                    "client_key", "client_certificate")
_SHOWN_IN_TEXT = {"service_name", "shutdown_timeout", "log_fields", "disabled"}


def load_app(spec: str) -> Any:
    """Import ``module:attr`` the way gunicorn does (cwd on sys.path; ``attr`` may be ``factory()``)."""
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    attr = attr or "application"
    call = attr.endswith("()")
    obj = getattr(module, attr[:-2] if call else attr)
    return obj() if call else obj


def _config_facts(config: Any) -> dict[str, tuple[Any, str]]:
    data, sources = config.as_dict(), dict(config.sources)
    out: dict[str, tuple[Any, str]] = {}
    for name, value in data.items():
        if name in ("sources", "provenance", "libraries", "upstream"):
            continue
        if name in ("traces", "logs", "metrics"):
            for key in _EXPORTER_FIELDS:
                setting = f"{name}_{'exporter' if key == 'kind' else key}"
                source = sources.get(setting, "default")
                if source == "default" and sources.get(f"otlp_{key}", "default") != "default":
                    source = sources[f"otlp_{key}"]
                out[f"{name}.{key}"] = (value[key], source)
        elif name in ("span_batch", "log_batch"):
            prefix = "bsp" if name == "span_batch" else "blrp"
            for key, item in value.items():
                out[f"{name}.{key}"] = (item, sources.get(f"{prefix}_{key}", "default"))
        else:
            out[name] = (value, sources.get(name, "derived"))
    return out


def _connectivity(config: Any, timeout: float, report: Report) -> None:
    from .probe import probe_in_subprocess

    targets = []
    for signal in ("traces", "logs", "metrics"):
        ec = config.exporter(signal)
        if ec.kind != "otlp":
            report.add(Finding("connectivity", "info", f"{signal}: exporter {ec.kind!r}, nothing sent to a collector"))
            continue
        targets.append({"signal": signal, "protocol": ec.protocol, "endpoint": ec.endpoint,
                        "headers": dict(ec.headers), "compression": ec.compression, "certificate": ec.certificate,
                        "client_key": ec.client_key, "client_certificate": ec.client_certificate,
                        "service_name": config.service_name})
    results = probe_in_subprocess(targets, timeout) if targets else []
    report.facts["connectivity"] = results
    for r in results:
        if r["ok"]:
            report.add(Finding("connectivity", "ok", f"{r['signal']} → {r['endpoint']} ({r['protocol']}): "
                               f"{r['answer']} in {r['ms']} ms"))
        else:
            report.add(Finding(
                "connectivity", "error",
                f"{r['signal']} → {r['endpoint']} ({r['protocol']}): {r['answer']} — this process's {r['signal']} "
                "would be dropped", "start the collector (agent) there, or point OTEL_EXPORTER_OTLP_ENDPOINT "
                "(or the per-signal variable) at one; try `otel-showmax receive` locally"))


def _inspect(args: Any, report: Report) -> Any:
    import otel_showmax
    from otel_showmax import ConfigError

    if args.app:
        report.facts["app"] = args.app
        try:
            report.facts["_app_object"] = load_app(args.app)
        except ConfigError as error:
            report.add(Finding("config", "error", f"{args.app} fails at start-up: {error}",
                               "fix the setting named above (the server would refuse to start the app)"))
            return None
        except Exception as error:
            report.add(Finding("app", "error", f"cannot load {args.app}: {type(error).__name__}: {error}",
                               "check the module path and that it imports without a server"))
            return None
        report.add(Finding("app", "ok", f"{args.app} imported"))
    configured_by_app = otel_showmax.is_configured()
    try:
        config = otel_showmax.get_config() if configured_by_app else otel_showmax.setup(_entry_point="otel-showmax doctor")
    except ConfigError as error:
        report.add(Finding("config", "error", str(error), "fix the setting named above"))
        return None
    if not configured_by_app:
        report.add(Finding(
            "config", "warning" if args.app else "info",
            "the app does not configure telemetry itself (doctor called otel_showmax.setup())",
            "call otel_showmax.setup() in the app module, or run the server under opentelemetry-instrument"))
    if config is None:
        report.add(Finding("config", "error", "otel_showmax is not configured", "call otel_showmax.setup()"))
        return None
    provenance = config.provenance
    report.facts["provenance"] = vars(provenance).copy() if provenance else None
    report.facts["config"] = _config_facts(config)
    report.add(*_libraries(config))
    report.add(*_upstream_findings(config))
    app = report.facts.pop("_app_object", None)
    if app is not None:
        report.add(*_app_traced(args.app, app))
    return config


def _app_traced(spec: str, app: Any) -> list[Finding]:
    """Whether the loaded app's requests get spans (an app built before setup() needs instrument_app)."""
    import falcon.app

    from .. import falcon as traced

    if not traced.is_instrumented():
        return []
    if isinstance(app, traced.TracedApp):
        return [Finding("app", "ok", f"{spec} is traced (built after otel_showmax.setup())")]
    if not isinstance(app, falcon.app.App):
        return [Finding("app", "info", f"{spec} is a {type(app).__name__}, not a falcon.App: doctor cannot tell "
                        "whether its requests are traced")]
    try:
        traced.instrument_app(app)
    except (TypeError, RuntimeError) as error:
        return [Finding("app", "error", f"{spec} was built before otel_showmax.setup() and cannot be traced: {error}",
                        "create the app after otel_showmax.setup(), or serve otel_showmax.falcon.instrument_app(app)")]
    return [Finding("app", "info", f"{spec} was built before otel_showmax.setup(): it is traced through "
                    "otel_showmax.falcon.instrument_app() from its first request in each worker")]


def _upstream_findings(config: Any) -> list[Finding]:
    """The installed OpenTelemetry versions and which fast paths setup()'s check left on."""
    upstream = config.upstream
    if upstream is None:
        return []
    report_facts = upstream.as_dict()
    findings = [Finding("opentelemetry", "ok", "installed: " + ", ".join(
        f"{name} {version}" for name, version in sorted(report_facts["versions"].items())))]
    if upstream.out_of_range:
        findings.append(Finding(
            "opentelemetry", "warning",
            f"outside the supported range ({report_facts['supported']['opentelemetry']}, instrumentation "
            f"{report_facts['supported']['instrumentation']}): upstream's public API path is used",
            "install a supported OpenTelemetry release (docs/versions.md)"))
    for name, state in sorted(upstream.fast_paths.items()):
        if state != "on":
            findings.append(Finding("opentelemetry", "info", f"{name}: {state}", "upstream's public path is used for it"))
    return findings


def _libraries(config: Any) -> list[Finding]:
    """Which installed instrumentors setup() turned on, which it skipped and why."""
    from .._instrumentation import libraries as loader

    libraries = config.libraries
    if libraries is None:
        return []
    if libraries.pending:  # they wait for patch_all or the first request: see what the server would get
        loader.run_pending()
    if libraries.by_wrapper:
        return [Finding("instrumentations", "ok", "opentelemetry-instrument turns on the installed instrumentors")]
    findings = [Finding("instrumentations", "ok", "on: " + (", ".join(libraries.active) or "none"))]
    for name, why in sorted(libraries.skipped.items()):
        level = "warning" if why.startswith("failed") else "info"
        findings.append(Finding("instrumentations", level, f"{name}: skipped, {why}",
                                "see the error above" if level == "warning" else ""))
    return findings


def _hub_monitor_state(config: Any) -> tuple[dict[str, Any], Finding]:
    """Whether the hub-block monitor is on (otel_showmax/_instrumentation/hub_monitor.py)."""
    from .._instrumentation import hub_monitor

    threshold = config.hub_block_threshold
    source = config.sources.get("hub_block_threshold", "default")
    facts = {"on": bool(threshold) and not config.disabled, "threshold_ms": threshold, "source": source,
             "running_in_this_process": hub_monitor.is_running()}
    if not facts["on"]:
        return facts, Finding("gevent", "info", f"hub-block monitor off (hub_block_threshold = {threshold} ← {source})",
                              "set OTEL_SHOWMAX_HUB_BLOCK_THRESHOLD=100 (milliseconds) to name the requests "
                              "that block the gevent hub")
    return facts, Finding(
        "gevent", "ok",
        f"hub-block monitor on in gevent workers (gunicorn -k gevent, uWSGI --gevent): each block of the hub of at "
        f"least {threshold:g} ms ({source}) is reported once — a {hub_monitor.SPAN_NAME} span under the request, a "
        f"WARNING from {hub_monitor.LOGGER_NAME}, the {hub_monitor.METRIC_NAME} histogram")


def run_doctor(args: Any) -> int:
    """Run every check for the ``otel-showmax doctor`` arguments; print the report; return the exit status."""
    import otel_showmax

    from .doctor_env import app_from_server_options, check_gevent, check_server
    from .doctor_logging import check_logging, logging_tree

    report = Report()
    if not args.app:
        args.app = app_from_server_options(args)
    config = _inspect(args, report)
    if config is not None:
        if config.disabled:
            report.add(Finding("config", "warning", "OTEL_SDK_DISABLED is set: nothing is exported", ""))
        elif not args.no_connect:
            _connectivity(config, args.timeout, report)
        logs_exported = not config.disabled and config.logs.kind != "none"
        report.facts["logging_tree"] = logging_tree()
        report.add(*check_logging(logs_exported, config))
        grpc_signals = [s for s in ("traces", "logs", "metrics")
                        if config.exporter(s).kind == "otlp" and config.exporter(s).protocol == "grpc"]
        report.facts["gevent"], findings = check_gevent(grpc_signals)
        report.add(*findings)
        report.facts["server"], findings = check_server(args, config.shutdown_timeout, grpc_signals)
        report.add(*findings)
        report.facts["hub_monitor"], finding = _hub_monitor_state(config)
        report.add(finding)
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        text_report = report
        if report.facts.get("config"):
            shown = {k: v for k, v in report.facts["config"].items()
                     if v[1] != "default" or k in _SHOWN_IN_TEXT or k.endswith((".kind", ".protocol", ".endpoint"))}
            text_report = Report(report.findings, {**report.facts, "config": shown})
        sys.stdout.write(text_report.to_text())
    sys.stdout.flush()
    otel_showmax.shutdown(0.5)  # the app's start-up telemetry: do not wait on a dead collector
    return report.exit_code
