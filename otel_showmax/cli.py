"""The ``otel-showmax`` command: ``receive``, ``doctor`` and ``demo``.

- ``otel-showmax receive`` runs an OTLP receiver on 127.0.0.1 and prints incoming traces as trees
  with each span's log lines under it.
- ``otel-showmax doctor --app module:attr`` loads an app as a server would and reports what would
  lose or duplicate telemetry (non-zero exit when something would).
- ``otel-showmax demo`` runs the two-service catalogue example and shows its traces and logs.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["build_parser", "main"]


def _receive(args: argparse.Namespace) -> int:
    from ._cli.receive import run_receive

    grpc_port = None if args.no_grpc else args.grpc_port
    color = False if args.no_color else None
    return run_receive(args.host, args.port, grpc_port, args.jsonl, otlp_json=args.otlp_json, quiet=args.quiet,
                       duration=args.duration, port_file=args.port_file, color=color, max_body=args.max_body,
                       max_items=args.max_items, max_depth=args.max_depth, max_threads=args.max_threads)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not > 0")
    return value


def _doctor(args: argparse.Namespace) -> int:
    from ._cli.doctor import run_doctor

    return run_doctor(args)


def _demo(args: argparse.Namespace) -> int:
    from ._cli.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``otel-showmax`` command."""
    parser = argparse.ArgumentParser(prog="otel-showmax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    receive = commands.add_parser("receive", help="run a local OTLP receiver and print traces with their logs",
                                  description="Print each trace as a tree (service, span, duration bar, status) "
                                  "with its log lines under their spans; times are UTC.")
    receive.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    receive.add_argument("--port", type=int, default=4318, help="OTLP/HTTP port, 0 for a free one (default: %(default)s)")
    receive.add_argument("--grpc-port", type=int, default=4317, help="OTLP/gRPC port (default: %(default)s)")
    receive.add_argument("--no-grpc", action="store_true", help="serve OTLP/HTTP only")
    receive.add_argument("--jsonl", metavar="FILE",
                         help="append each span, log record and metric point to FILE as a JSON line (decoded)")
    receive.add_argument("--otlp-json", metavar="FILE",
                         help="append each export request to FILE as one line of OTLP/JSON (like the collector's "
                         "file exporter)")
    receive.add_argument("--quiet", type=float, default=1.0, metavar="SECONDS",
                         help="print a trace once it has been quiet this long (default: %(default)s)")
    receive.add_argument("--duration", type=float, metavar="SECONDS",
                         help="stop after this long (default: run until Ctrl-C)")
    receive.add_argument("--port-file", metavar="FILE", help="write the bound OTLP/HTTP port to FILE once listening")
    receive.add_argument("--no-color", action="store_true", help="never use ANSI colours")
    limits = receive.add_argument_group("limits", "what one client may cost the receiver (see docs/receiver.md)")
    limits.add_argument("--max-body", type=_positive_int, default=16 * 1024 * 1024, metavar="BYTES",
                        help="largest request body, as sent and decompressed; larger is 413 (default: %(default)s)")
    limits.add_argument("--max-items", type=_positive_int, default=1_000_000, metavar="N",
                        help="most protobuf messages (spans, logs, points, attributes, values …) in one request; "
                        "more is 413 (default: %(default)s)")
    limits.add_argument("--max-depth", type=_positive_int, default=32, metavar="N",
                        help="deepest message nesting in one request; deeper is 400 (default: %(default)s)")
    limits.add_argument("--max-threads", type=_positive_int, default=64, metavar="N",
                        help="OTLP/HTTP connections served at once (more wait in the listen backlog) and "
                        "OTLP/gRPC calls in flight (default: %(default)s)")
    receive.set_defaults(func=_receive)

    doctor = commands.add_parser("doctor", help="check an app's telemetry set-up before deploying it")
    doctor.add_argument("--app", metavar="MODULE:ATTR",
                        help="the WSGI app, as given to gunicorn or uWSGI (default: the one in the server options)")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    doctor.add_argument("--server", choices=["auto", "gunicorn", "uwsgi", "none"], default="auto",
                        help="the server the app will run under (default: detected)")
    doctor.add_argument("--gunicorn-args", metavar="ARGS",
                        help="the gunicorn command-line options, e.g. '--preload -k gevent'")
    doctor.add_argument("--uwsgi-ini", metavar="FILE", help="the uWSGI ini file the app will run with")
    doctor.add_argument("--uwsgi-args", metavar="ARGS", help="the uWSGI command-line options")
    doctor.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                        help="connectivity check timeout per endpoint (default: %(default)s)")
    doctor.add_argument("--no-connect", action="store_true", help="skip the connectivity check")
    doctor.set_defaults(func=_doctor)

    demo = commands.add_parser("demo", help="run the two-service catalogue example and show its traces and logs")
    demo.add_argument("--requests", type=int, default=5, help="successful requests to send (default: %(default)s)")
    demo.add_argument("--receiver", choices=["auto", "embedded", "collector"], default="auto",
                      help="where telemetry goes: the built collector agent if present, else the embedded receiver")
    demo.add_argument("--no-color", action="store_true", help="never use ANSI colours")
    demo.add_argument("--keep-running", action="store_true", help="keep the services up until Ctrl-C")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``otel-showmax`` command; returns its exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
