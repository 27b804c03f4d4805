"""Celery task of tier 0: ingest a list of image files on a worker of the fleet.

The body is idempotent (a file already ingested is skipped by checksum), so a
redelivered task (``acks_late``, worker lost) does no harm. A lost database
connection rolls the current batch back and the task is retried with backoff.
"""

from __future__ import annotations

from dataclasses import asdict

import psycopg

from jspdb.config import get_settings
from jspdb.db.engine import connect
from jspdb.errors import IngestError
from jspdb.ingest.images import ingest_images
from workers.app import app

__all__ = ["ingest_images_task"]


@app.task(name="jspdb.ingest.images", bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3)
def ingest_images_task(self, paths: list[str], survey: str = "auto", mode: str = "copy",
                       replace: bool = False, batch_size: int = 50) -> dict:
    """Ingest ``paths`` (files or directories); returns the ingest report as a dict."""
    settings = get_settings()
    try:
        with connect(settings) as conn:
            report = ingest_images(conn, paths, tile_order=settings.tile_order, datastore=settings.datastore,
                                   survey=survey, mode=mode, replace=replace, batch_size=batch_size)
    except (IngestError, psycopg.OperationalError) as exc:
        if isinstance(exc, psycopg.OperationalError) or isinstance(exc.__cause__, psycopg.OperationalError):
            raise self.retry(exc=exc, countdown=2 ** self.request.retries) from exc
        raise
    return asdict(report)
