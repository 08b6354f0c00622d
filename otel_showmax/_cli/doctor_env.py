"""``otel-showmax doctor``: gevent and gRPC state, the server and its risky settings."""

from __future__ import annotations

import configparser
import gc
import os
import shlex
import sys
from typing import Any

from .doctor_report import Finding

__all__ = ["check_gevent", "check_server", "grpc_channels", "parse_uwsgi_options"]

_GEVENT_MODULES = ("socket", "ssl", "threading", "select", "time", "os", "queue", "subprocess", "signal")


def _instances(module: str, name: str) -> list[Any]:
    """Live objects of class ``module.name`` (only if that module is already imported)."""
    cls = getattr(sys.modules.get(module), name, None)
    if not isinstance(cls, type):
        return []
    return [o for o in gc.get_objects() if isinstance(o, cls)]


def grpc_channels() -> int:
    """How many gRPC channels and OTLP gRPC exporters the app has created so far."""
    return len(_instances("grpc._channel", "Channel")) + len(
        _instances("opentelemetry.exporter.otlp.proto.grpc.exporter", "OTLPExporterMixin"))


def _grpc_gevent_ready() -> bool:
    cygrpc = sys.modules.get("grpc._cython.cygrpc")
    return bool(getattr(cygrpc, "g_gevent_activated", False))


def check_gevent(grpc_signals: list[str]) -> tuple[dict[str, Any], list[Finding]]:
    """Monkey-patch state, and gRPC or upstream batch workers that gevent would stall."""
    if "gevent" not in sys.modules:
        return {"imported": False}, [Finding("gevent", "info", "gevent is not imported by the app (doctor cannot see "
                                             "patching done later by the server's gevent worker)")]
    from gevent import monkey

    patched = [m for m in _GEVENT_MODULES if monkey.is_module_patched(m)]
    facts = {"imported": True, "patched": patched, "grpc_gevent_ready": _grpc_gevent_ready(),
             "app_grpc_channels": grpc_channels()}
    findings = []
    if "socket" in patched:
        if facts["app_grpc_channels"] and not facts["grpc_gevent_ready"]:
            findings.append(Finding(
                "gevent", "error",
                f"the app created {facts['app_grpc_channels']} gRPC object(s) (channels, OTLP gRPC exporters) in a "
                "gevent-patched process without grpc.experimental.gevent.init_gevent(): a slow or blackholed "
                "collector stalls the gevent hub (every request waits) and exports are lost",
                "call grpc.experimental.gevent.init_gevent() right after gevent.monkey.patch_all(), before any gRPC "
                "object exists — or use OTLP/HTTP, or let otel_showmax.setup() build the exporters",
            ))
        elif grpc_signals:
            findings.append(Finding(
                "gevent", "ok", f"gRPC export ({', '.join(grpc_signals)}) under gevent: otel_showmax calls "
                "grpc.experimental.gevent.init_gevent() before its first channel and exports on real OS threads"))
    from ..gevent import check_monkey_patch

    for problem in check_monkey_patch():  # patch order, partial patching, SDK workers as greenlets
        findings.append(Finding("gevent", "warning", problem,
                                "call gevent.monkey.patch_all() first thing, before any other import"))
    if not findings:
        findings.append(Finding("gevent", "ok", f"gevent patched: {', '.join(patched) or 'nothing yet'}"))
    return facts, findings


# -- servers ---------------------------------------------------------------------------------------

def _truthy(value: Any) -> bool:
    return str(value).strip().lower() not in ("", "0", "false", "no", "off", "none")


def parse_uwsgi_options(ini: str | None, args: str | None) -> dict[str, str]:
    """uWSGI options from an ini file's ``[uwsgi]`` section and a command line (the latter wins)."""
    options: dict[str, str] = {}
    if ini:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read(ini)
        if parser.has_section("uwsgi"):
            options.update({k.replace("_", "-"): v for k, v in parser.items("uwsgi")})
    tokens = shlex.split(args or "")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            key, eq, value = token[2:].partition("=")
            if not eq:
                if i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                    value, i = tokens[i + 1], i + 1
                else:
                    value = "true"
            options[key.replace("_", "-")] = value
        i += 1
    return options


def _gunicorn_config(args: str | None) -> dict[str, Any]:
    from gunicorn.config import Config

    cfg = Config()
    namespace = cfg.parser().parse_args(shlex.split(args or ""))
    path = namespace.config or ("gunicorn.conf.py" if os.path.exists("gunicorn.conf.py") else None)
    if path:
        import runpy

        for key, value in runpy.run_path(path).items():
            if key in cfg.settings:
                cfg.set(key, value)
    for key, value in vars(namespace).items():
        if value is not None and key in cfg.settings and key not in ("config", "args"):
            cfg.set(key.lower(), value)
    return {"config_file": path, "preload_app": cfg.preload_app, "worker_class": cfg.worker_class_str,
            "graceful_timeout": cfg.graceful_timeout, "workers": cfg.workers}


def app_from_server_options(args: Any) -> str | None:
    """The ``module:attr`` the server would load, from ``--uwsgi-ini``/``--uwsgi-args`` or ``--gunicorn-args``."""
    uwsgi_ini = args.uwsgi_ini or os.environ.get("UWSGI_INI")
    if uwsgi_ini or args.uwsgi_args:
        options = parse_uwsgi_options(uwsgi_ini, args.uwsgi_args)
        module = options.get("module") or options.get("wsgi")
        if module:
            return module if ":" in module else f"{module}:{options.get('callable', 'application')}"
    gunicorn_args = args.gunicorn_args or os.environ.get("GUNICORN_CMD_ARGS")
    if gunicorn_args:
        try:
            from gunicorn.config import Config

            positional = Config().parser().parse_args(shlex.split(gunicorn_args)).args
        except (ImportError, SystemExit):
            return None
        if positional:
            return str(positional[-1])
    return None


def detect_server(choice: str, gunicorn_args: str | None, uwsgi_ini: str | None, uwsgi_args: str | None) -> str:
    """``gunicorn``, ``uwsgi`` or ``none``, from the flags given or the environment."""
    if choice != "auto":
        return choice
    if uwsgi_ini or uwsgi_args or os.environ.get("UWSGI_INI") or "uwsgi" in sys.modules:
        return "uwsgi"
    if gunicorn_args or os.environ.get("GUNICORN_CMD_ARGS") or "gunicorn" in os.environ.get("SERVER_SOFTWARE", ""):
        return "gunicorn"
    return "none"


def _check_gunicorn(options: dict[str, Any], shutdown_timeout: float, grpc_signals: list[str]) -> list[Finding]:
    findings = []
    channels = grpc_channels()
    if options["preload_app"] and channels:
        findings.append(Finding(
            "server", "error",
            f"gunicorn --preload with {channels} gRPC channel(s) created at import, before the fork: gRPC channels do "
            "not survive fork, so workers' exports through them hang or fail",
            "create gRPC channels lazily in each worker (post_fork), drop --preload, or let otel_showmax build them",
        ))
    elif options["preload_app"]:
        findings.append(Finding("server", "info", "gunicorn --preload: the app and setup() run in the master; "
                                "otel_showmax re-initialises its export pipeline in each forked worker"))
    if options["graceful_timeout"] < shutdown_timeout:
        findings.append(Finding(
            "server", "error",
            f"gunicorn graceful_timeout ({options['graceful_timeout']} s) is shorter than otel_showmax's shutdown "
            f"budget ({shutdown_timeout} s): a worker is killed before it flushes, losing queued telemetry",
            f"set --graceful-timeout above {shutdown_timeout}, or OTEL_SHOWMAX_SHUTDOWN_TIMEOUT below "
            f"{options['graceful_timeout']}",
        ))
    if "gevent" in str(options["worker_class"]) and grpc_signals:
        findings.append(Finding("server", "ok", "gunicorn gevent workers with gRPC export: made gevent-safe per worker"))
    return findings


def _check_uwsgi(o: dict[str, str], shutdown_timeout: float) -> list[Finding]:
    findings = []
    on = {k for k, v in o.items() if _truthy(v)}
    if "skip-atexit" in on:
        findings.append(Finding(
            "server", "error", "uWSGI skip-atexit: atexit hooks never run, so telemetry queued in a worker is "
            "lost at every reload and exit", "remove skip-atexit"))
    for key in ("worker-reload-mercy", "reload-mercy"):
        if key in o and o[key].strip().isdigit() and int(o[key]) < shutdown_timeout:
            findings.append(Finding(
                "server", "error", f"uWSGI {key} = {o[key]} s is shorter than otel_showmax's shutdown budget "
                f"({shutdown_timeout} s): workers are killed before they flush",
                f"set {key} above {shutdown_timeout}, or OTEL_SHOWMAX_SHUTDOWN_TIMEOUT lower"))
    if "gevent-early-monkey-patch" in on and "py-call-uwsgi-fork-hooks" in on:
        findings.append(Finding(
            "server", "error", "uWSGI gevent-early-monkey-patch with py-call-uwsgi-fork-hooks: a known-bad pair "
            "that crashes workers at fork (CPython's fork hooks run over gevent-patched threading in a C-forked "
            "worker), so those workers serve and export nothing",
            "drop py-call-uwsgi-fork-hooks: otel_showmax re-initialises each worker from uwsgi.post_fork_hook "
            "(lazy-apps = true avoids forking a loaded app altogether)"))
    forks_hooked = {"lazy-apps", "lazy", "py-call-uwsgi-fork-hooks", "py-call-osafterfork"} & on
    if "master" in on and not forks_hooked:
        findings.append(Finding(
            "server", "warning", "uWSGI loads the app in the master and forks in C without lazy-apps or fork hooks: "
            "os.register_at_fork does not fire; otel_showmax relies on uWSGI's postfork hook and its pid check",
            "set lazy-apps = true (or py-call-uwsgi-fork-hooks = true without gevent-early-monkey-patch)"))
    if "master" in on and "die-on-term" not in on:
        findings.append(Finding(
            "server", "warning", "uWSGI without die-on-term: SIGTERM means 'reload', so an orchestrator's stop "
            "ends with SIGKILL and queued telemetry is lost", "set die-on-term = true"))
    if not ({"enable-threads", "threads", "gevent"} & set(o)):
        findings.append(Finding(
            "server", "warning", "uWSGI without enable-threads (or threads/gevent): Python threads, including the "
            "export workers, may never run", "set enable-threads = true"))
    return findings


def check_server(args: Any, shutdown_timeout: float, grpc_signals: list[str]) -> tuple[dict[str, Any], list[Finding]]:
    """Detect the server and report settings that lose telemetry."""
    uwsgi_ini = args.uwsgi_ini or os.environ.get("UWSGI_INI")
    server = detect_server(args.server, args.gunicorn_args, uwsgi_ini, args.uwsgi_args)
    if server == "gunicorn":
        try:
            options = _gunicorn_config(args.gunicorn_args or os.environ.get("GUNICORN_CMD_ARGS"))
        except (SystemExit, Exception) as error:  # argparse exits on bad options; a config file may raise
            return {"server": server}, [Finding("server", "error", f"cannot read the gunicorn settings: {error!r}",
                                                "check --gunicorn-args / GUNICORN_CMD_ARGS and the config file")]
        findings = _check_gunicorn(options, shutdown_timeout, grpc_signals)
    elif server == "uwsgi":
        options = parse_uwsgi_options(uwsgi_ini, args.uwsgi_args)
        findings = _check_uwsgi(options, shutdown_timeout)
    else:
        return {"server": "none"}, [Finding("server", "info", "no server options given: pass --gunicorn-args or "
                                            "--uwsgi-ini to check the server's settings")]
    if not findings:
        findings.append(Finding("server", "ok", f"{server} settings keep telemetry"))
    return {"server": server, "options": options}, findings
