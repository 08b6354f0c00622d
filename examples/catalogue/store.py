"""The catalogue's storage: titles in SQLite (through the DB-API driver), pages cached in Redis.

SQLite is the database: a file built once (``CATALOGUE_DB``, by default in the temporary
directory), opened by each worker process on first use (a connection never crosses a fork).
Redis is the cache when ``REDIS_URL`` is set (e.g. ``redis://127.0.0.1:6379/0``): a page of titles
is kept for ``CACHE_TTL`` seconds; a cache that is down costs a warning, never a request.

otel_showmax's ``setup()`` turns on the installed sqlite3 and redis instrumentors, so each query
and each cache call is a span under the request's server span, with nothing instrumented here.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import threading
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation

log = logging.getLogger("catalogue.store")

GENRES = ("drama", "comedy", "documentary", "thriller", "kids", "sport")
PEOPLE = ("Thandiwe Mokoena", "Sipho Dlamini", "Amina Yusuf", "Kwame Asante", "Naledi Khumalo", "Jonas Berg")
SEED: list[dict[str, Any]] = [
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
DB_PATH = os.environ.get("CATALOGUE_DB") or os.path.join(tempfile.gettempdir(), f"otel-showmax-catalogue-{os.getuid()}.db")
REDIS_URL = os.environ.get("REDIS_URL", "")
CACHE_TTL = int(os.environ.get("CACHE_TTL", "30"))

_local: dict[int, Any] = {}  # pid -> (sqlite connection, redis client or None)
_lock = threading.Lock()


def build(path: str = DB_PATH) -> None:
    """Create and fill the database once (idempotent; start-up work, not traced)."""
    with suppress_instrumentation(), sqlite3.connect(path, timeout=30) as db:  # workers may build at once
        db.execute(
            "CREATE TABLE IF NOT EXISTS titles (id INTEGER PRIMARY KEY, title TEXT, genre TEXT, year INTEGER,"
            " cast_json TEXT, runtime_min INTEGER)"
        )
        db.executemany(
            "INSERT OR IGNORE INTO titles VALUES (?, ?, ?, ?, ?, ?)",
            [(t["id"], t["title"], t["genre"], t["year"], json.dumps(t["cast"]), t["runtime_min"]) for t in SEED],
        )


def _clients() -> tuple[sqlite3.Connection, Any]:
    pid = os.getpid()
    clients = _local.get(pid)
    if clients is None:
        with _lock:
            clients = _local.get(pid)
            if clients is None:
                db = sqlite3.connect(DB_PATH, timeout=30, check_same_thread=False)
                cache = None
                if REDIS_URL:
                    import redis

                    cache = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
                clients = _local[pid] = (db, cache)
    return clients


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], "title": row[1], "genre": row[2], "year": row[3], "cast": json.loads(row[4]),
            "runtime_min": row[5]}


def titles(genre: str | None, year: int | None, query: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """A page of titles and how many match: from the cache, else one SQL query (then cached)."""
    db, cache = _clients()
    key = "titles:" + json.dumps([genre, year, query, offset, limit])
    if cache is not None:
        try:
            hit = cache.get(key)
            if hit is not None:
                page, total = json.loads(hit)
                return page, total
        except Exception as error:  # a cache that is down costs a warning, never the request
            log.warning("cache unavailable: %s", error)
            cache = None
    rows = db.cursor().execute(  # through a cursor: the DB-API instrumentation traces cursor calls
        "SELECT id, title, genre, year, cast_json, runtime_min, COUNT(*) OVER () FROM titles"
        " WHERE (? IS NULL OR genre = ?) AND (? IS NULL OR year = ?) AND (? = '' OR lower(title) LIKE ?)"
        " ORDER BY id LIMIT ? OFFSET ?",
        (genre, genre, year, year, query, f"%{query}%", limit, offset),
    ).fetchall()
    page, total = [_row(r) for r in rows], (rows[0][6] if rows else 0)
    if cache is not None:
        try:
            cache.setex(key, CACHE_TTL, json.dumps([page, total]))
        except Exception as error:
            log.warning("cache unavailable: %s", error)
    return page, total


def title(title_id: int) -> dict[str, Any] | None:
    db, _ = _clients()
    row = db.cursor().execute("SELECT id, title, genre, year, cast_json, runtime_min FROM titles WHERE id = ?",
                     (title_id,)).fetchone()
    return _row(row) if row else None


def search(query: str, limit: int) -> list[dict[str, Any]]:
    db, _ = _clients()
    like = f"%{query}%"
    rows = db.cursor().execute(
        "SELECT id, title, genre, year, cast_json, runtime_min FROM titles"
        " WHERE lower(title) LIKE ? OR lower(cast_json) LIKE ? ORDER BY id LIMIT ?",
        (like, like, limit),
    ).fetchall()
    return [_row(r) for r in rows]
