"""Engines and connections to the jspdb database.

One place decides which server is used: ``JSP_DATABASE_URL`` when set,
otherwise the project-local cluster (`jspdb.db.local`), which must be running.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url

from jspdb.config import Settings, get_settings
from jspdb.errors import ConfigError

__all__ = ["connect", "database_url", "get_engine", "libpq_dsn", "make_engine"]


def database_url(settings: Settings | None = None) -> URL:
    """SQLAlchemy URL of the database to use (psycopg 3 driver).

    Parameters
    ----------
    settings
        Settings to read; the process settings by default.
    """
    settings = settings or get_settings()
    if settings.database_url:
        try:
            url = make_url(settings.database_url)
        except Exception as exc:
            raise ConfigError(f"JSP_DATABASE_URL is not a database URL: {exc}") from exc
        if not url.drivername.startswith("postgresql"):
            raise ConfigError(f"jspdb needs PostgreSQL, got a {url.drivername!r} URL")
        return url.set(drivername="postgresql+psycopg")
    from jspdb.db.local import LocalCluster

    return LocalCluster.from_settings(settings).url()


def libpq_dsn(url: URL) -> str:
    """A libpq connection string for a SQLAlchemy URL (for raw psycopg use)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: URL, **kwargs) -> Engine:
    """Create an engine with the connection settings jspdb relies on.

    - ``pool_pre_ping``: workers hold connections for hours and the server may
      restart under them; a ping costs one round trip and avoids failing the
      next step on a dead socket.
    - ``pool_size=5, max_overflow=5``: a worker runs one step at a time and the
      API serves a handful of concurrent queries per process; more connections
      only cost server memory.
    - ``application_name``: lets operators tell jspdb sessions apart in
      ``pg_stat_activity``.
    """
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("application_name", "jspdb")
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=kwargs.pop("pool_size", 5),
        max_overflow=kwargs.pop("max_overflow", 5),
        connect_args=connect_args,
        **kwargs,
    )


@lru_cache(maxsize=4)
def _engine_for(url_string: str) -> Engine:
    return make_engine(make_url(url_string))


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine for the configured database (cached per URL)."""
    return _engine_for(database_url(settings).render_as_string(hide_password=False))


@contextmanager
def connect(settings: Settings | None = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A raw psycopg 3 connection (for COPY and hand-written SQL).

    The transaction is committed on normal exit and rolled back on error.
    """
    dsn = libpq_dsn(database_url(settings))
    with psycopg.connect(dsn, autocommit=autocommit, application_name="jspdb") as conn:
        yield conn
