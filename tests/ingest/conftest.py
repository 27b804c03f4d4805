"""Fixtures of the ingest tests: a fresh migrated database and datastore per module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from jspdb.config import Settings
from jspdb.db import migrate
from jspdb.db.engine import libpq_dsn


@pytest.fixture(scope="module")
def ingest_settings(make_database, tmp_path_factory) -> Settings:
    settings = make_database(datastore_root=tmp_path_factory.mktemp("datastore"), tile_order=12)
    migrate.upgrade("head", settings=settings)
    return settings


@pytest.fixture
def idsn(ingest_settings) -> str:
    return libpq_dsn(make_url(ingest_settings.database_url))


@pytest.fixture
def iconn(idsn, ingest_settings) -> Iterator[psycopg.Connection]:
    """Connection to the module's database, emptied of images (and datastore) first: ingest commits."""
    shutil.rmtree(ingest_settings.datastore, ignore_errors=True)
    with psycopg.connect(idsn) as c:
        c.execute("TRUNCATE jsp.image, jsp.image_version, jsp.tile CASCADE")
        c.commit()
        yield c
