"""What operators see of a run: per step, how many jobs are in each state, timings, last error."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import psycopg
from psycopg.rows import dict_row

__all__ = ["run_status", "wait_for_run"]


def run_status(conn: psycopg.Connection, release: str) -> list[dict]:
    """One row per step: counts by state, mean/max duration (s), attempts, last error."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT step,
                   count(*) FILTER (WHERE j.state IN ('pending', 'queued')) AS pending,
                   count(*) FILTER (WHERE j.state = 'running') AS running,
                   count(*) FILTER (WHERE j.state = 'done') AS done,
                   count(*) FILTER (WHERE j.state = 'failed') AS failed,
                   avg(duration_s) FILTER (WHERE j.state = 'done') AS mean_s,
                   max(duration_s) FILTER (WHERE j.state = 'done') AS max_s,
                   sum(attempts) AS attempts,
                   (array_agg(split_part(error, E'\\n', 1) ORDER BY finished_at DESC NULLS LAST)
                      FILTER (WHERE error IS NOT NULL))[1] AS last_error
              FROM jsp.tile_job j JOIN jsp.release r USING (release_id)
             WHERE r.name = %s
             GROUP BY step ORDER BY bool_and(j.image_id IS NULL), min(job_id)  -- image steps, then tile steps
            """, (release,)).fetchall()


def wait_for_run(release: str, timeout: float, repair: Callable[[psycopg.Connection], object] | None = None,
                 console=None, steps: Sequence[str] = ()) -> list[dict]:
    """Progress bars per step until no job of ``release`` is pending or running; returns the last status.

    ``steps`` (the run's chain) are drawn in that order from the start; other
    steps get a bar when their first job appears (a later step's jobs are
    created only as the earlier ones finish).

    Every few seconds ``repair(conn)`` runs (the CLI passes a sweep that
    re-sends what crashes lost). A database that goes away (restart,
    failover) is waited for, up to the deadline. Raises `TimeoutError` after
    ``timeout`` seconds.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from jspdb.db.engine import connect

    deadline = time.monotonic() + timeout
    last_repair = time.monotonic()
    with Progress(TextColumn("{task.description:16s}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, int] = {s: bar.add_task(s, total=None, failed=0) for s in steps}
        while True:
            try:
                with connect() as conn:
                    rows = run_status(conn, release)
                    if repair is not None and time.monotonic() - last_repair > 5:
                        repair(conn)
                        last_repair = time.monotonic()
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise
                bar.console.print(f"database unavailable ({str(exc).strip().splitlines()[0]}); waiting")
                time.sleep(2.0)
                continue
            for r in rows:
                total = r["pending"] + r["running"] + r["done"] + r["failed"]
                if r["step"] not in tasks:
                    tasks[r["step"]] = bar.add_task(r["step"], total=total, failed=0)
                bar.update(tasks[r["step"]], total=total, completed=r["done"] + r["failed"], failed=r["failed"])
            if rows and all(r["pending"] == 0 and r["running"] == 0 for r in rows):
                for s in set(tasks) - {r["step"] for r in rows}:  # a step the run never reached
                    bar.update(tasks[s], total=0)
                return rows
            if time.monotonic() > deadline:
                raise TimeoutError(f"run not finished after {timeout:.0f} s (see jsp status)")
            time.sleep(0.5)
