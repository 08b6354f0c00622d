"""The benchmarked service: the catalogue list endpoint (20 titles as JSON, one application log line).

The list endpoint of examples/catalogue/catalogue.py, copied: the example calls
``otel_showmax.setup()`` unconditionally, so it can neither run uninstrumented nor in the upstream
virtualenv (which must not have otel_showmax).
This module imports otel_showmax only when asked to. ``BENCH_APP_MODE`` selects:

- ``plain``  — no telemetry code at all (uninstrumented, and every ``opentelemetry-instrument`` run);
- ``setup``  — ``otel_showmax.setup()`` called at import, as an application would;
  (``BENCH_ABLATE=encoder`` / ``transport``: with one of its fast paths switched back to upstream's code);
- ``naive``  — the seed's remote log handler: one blocking HTTP POST per log record (benchmarks/naive.py).

Every mode makes the same logging calls and writes the same local log line to stderr.
"""

from __future__ import annotations

import logging
import os
import sys

MODE = os.environ.get("BENCH_APP_MODE", "plain")

# Explicitly, not basicConfig(): that does nothing when a wrapper already put a handler on the root
# logger, and every configuration must write the same local line.
# BENCH_LOCAL_LOG=0: no local handler (the records go to the OTel bridge only, if it is set up).
_local = logging.StreamHandler(sys.stderr)
_local.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
if os.environ.get("BENCH_LOCAL_LOG", "1") != "0":
    logging.getLogger().addHandler(_local)
logging.getLogger().setLevel(logging.INFO)


def ablate(what: set[str]) -> None:
    """Switch otel_showmax's own fast paths back to upstream's code, for the fast-path audit.

    ``encoder``:   spans and log records encoded by upstream's encoder (opentelemetry-exporter-otlp-
                   proto-common), log records first converted to SDK records (the bridge's direct
                   encoding off), as a log exporter other than ours would get them;
    ``transport``: upstream exporters' default ``requests`` transport instead of its urllib3 one.
    Byte-identical telemetry either way; benchmarks/run.py's setup_upenc / setup_requests configurations.
    """
    from otel_showmax._export import otlp_http

    if "encoder" in what:  # what setup()'s check falls back to when our bytes differ
        from otel_showmax._export import contain
        from otel_showmax._pipeline import log_bridge

        contain.ENCODER_ON = False
        log_bridge.DIRECT_ON = False
    if "transport" in what:
        otlp_http.use_urllib3 = lambda exporter, endpoint: False
    unknown = what - {"encoder", "transport"}
    if unknown:
        raise SystemExit(f"BENCH_ABLATE: unknown {sorted(unknown)}; use encoder, transport")


if MODE == "setup":
    import otel_showmax

    if os.environ.get("BENCH_ABLATE"):
        ablate(set(os.environ["BENCH_ABLATE"].split(",")))
    otel_showmax.setup()
elif MODE == "naive":
    import naive

    naive.install(os.environ["BENCH_NAIVE_ENDPOINT"])
elif MODE != "plain":
    raise SystemExit(f"BENCH_APP_MODE={MODE!r}: use plain, setup or naive")

import falcon  # noqa: E402  (after setup(): instrumentation replaces falcon.App)

log = logging.getLogger("catalogue.api")

# The same data and list endpoint as examples/catalogue/catalogue.py (GET /titles: a page of 20).
GENRES = ("drama", "comedy", "documentary", "thriller", "kids", "sport")
PEOPLE = ("Thandiwe Mokoena", "Sipho Dlamini", "Amina Yusuf", "Kwame Asante", "Naledi Khumalo", "Jonas Berg")
TITLES: list[dict[str, object]] = [
    {
        "id": i,
        "title": f"{('The Long', 'Quiet', 'Bright', 'Last', 'Hidden', 'Golden', 'Wild')[i % 7]} "
        f"{('River', 'Summer', 'City', 'Road', 'Coast', 'Season', 'Signal', 'Harbour')[i % 8]} {i}",
        "genre": GENRES[i % len(GENRES)],
        "year": 1995 + (i * 7) % 30,
        "cast": [PEOPLE[i % len(PEOPLE)], PEOPLE[(i * 5 + 1) % len(PEOPLE)]],
        "runtime_min": 20 + (i * 13) % 110,
    }
    for i in range(1, 121)
]


class Titles:
    """A page of titles, optionally filtered by genre, year and a text query."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        genre = req.get_param("genre")
        year = req.get_param_as_int("year")
        query = (req.get_param("q") or "").lower()
        offset = req.get_param_as_int("offset", min_value=0, max_value=1_000_000) or 0
        limit = req.get_param_as_int("limit", min_value=1, max_value=100) or 20
        found = [
            t for t in TITLES
            if (genre is None or t["genre"] == genre)
            and (year is None or t["year"] == year)
            and (not query or query in str(t["title"]).lower())
        ]
        page = found[offset:offset + limit]
        log.info("listed %d of %d titles", len(page), len(found),
                 extra={"catalogue.genre": genre or "", "catalogue.offset": offset})
        resp.media = {"titles": page, "total": len(found), "offset": offset, "limit": limit}


app = falcon.App()
app.add_route("/titles", Titles())
