"""Steps for the fault tests, loaded by the workers through ``JSP_STEP_MODULES``.

``fault_work`` (per image) writes one result row per image and logs each
execution in ``fault_exec`` on its own autocommitted connection, so the log
survives a rollback or a killed process: it tells how many times a step
really started. How long it sleeps is read from ``fault_ctl``. Its chain ends
in ``fault_tile`` (per tile), which sums its images' values.
``fault_poison`` kills its own process every time.
"""

from __future__ import annotations

import os
import signal
import time

import psycopg

from jspdb.jobs.steps import Unit, register_step

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS fault_ctl (k text PRIMARY KEY, v float8);
CREATE TABLE IF NOT EXISTS fault_exec (release_id int, step text, unit bigint, pid int, at timestamptz DEFAULT now());
CREATE TABLE IF NOT EXISTS fault_result (release_id int, image_id bigint, value float8, PRIMARY KEY (release_id, image_id));
CREATE TABLE IF NOT EXISTS fault_tile (release_id int, tile_ipix bigint, total float8, n int,
                                       PRIMARY KEY (release_id, tile_ipix));
"""


def _log(conn: psycopg.Connection, unit: Unit, step: str) -> None:
    info = conn.info
    dsn = f"host={info.host} port={info.port} dbname={info.dbname} user={info.user}"
    with psycopg.connect(dsn, autocommit=True) as side:
        side.execute("INSERT INTO fault_exec (release_id, step, unit, pid) VALUES (%s, %s, %s, %s)",
                     (unit.release_id, step, unit.image_id if unit.image_id is not None else unit.tile_ipix,
                      os.getpid()))


def _fp(conn: psycopg.Connection, unit: Unit) -> str:
    return "fault-v1"


@register_step("fault_work", scope="image", fingerprint=_fp, next_step="fault_tile")
def fault_work(conn: psycopg.Connection, unit: Unit) -> dict:
    _log(conn, unit, "fault_work")
    row = conn.execute("SELECT v FROM fault_ctl WHERE k = 'sleep_s'").fetchone()
    conn.execute("DELETE FROM fault_result WHERE release_id = %s AND image_id = %s", (unit.release_id, unit.image_id))
    conn.execute("INSERT INTO fault_result VALUES (%s, %s, %s)",
                 (unit.release_id, unit.image_id, float(unit.image_id) ** 0.5))
    time.sleep(row[0] if row else 0.0)  # the results are written but not committed while we sleep
    return {"value": float(unit.image_id) ** 0.5}


@register_step("fault_tile", scope="tile", fingerprint=_fp)
def fault_tile(conn: psycopg.Connection, unit: Unit) -> dict:
    _log(conn, unit, "fault_tile")
    total, n = conn.execute(
        "SELECT coalesce(sum(r.value), 0), count(*) FROM fault_result r JOIN jsp.image_tile it USING (image_id) "
        "WHERE r.release_id = %s AND it.tile_order = %s AND it.tile_ipix = %s",
        (unit.release_id, unit.tile_order, unit.tile_ipix)).fetchone()
    conn.execute("DELETE FROM fault_tile WHERE release_id = %s AND tile_ipix = %s", (unit.release_id, unit.tile_ipix))
    conn.execute("INSERT INTO fault_tile VALUES (%s, %s, %s, %s)", (unit.release_id, unit.tile_ipix, total, n))
    return {"n": n}


@register_step("fault_poison", scope="image", fingerprint=_fp)
def fault_poison(conn: psycopg.Connection, unit: Unit) -> dict:
    _log(conn, unit, "fault_poison")
    os.kill(os.getpid(), signal.SIGKILL)
    return {}
