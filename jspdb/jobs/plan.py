"""Plan a run: one job row per (release, step, unit); messages only after commit.

A run covers tiles that hold data. For each tile it plans the image steps of
every image touching the tile (each image once, however many tiles it
touches) and the tile steps of the tile. Image jobs are sent at once; a tile
job is sent by the last image job of its tile to finish (`next_jobs`).

Job rows are written and committed first; only then are tasks sent, and the
rows marked ``queued``. A crash between the two leaves ``pending`` rows that
`sweep` (``jsp run --sweep``) sends again; sending twice is harmless because
the runner runs a job once (`jspdb.jobs.runner`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psycopg

from jspdb.db.release import get_release
from jspdb.jobs.steps import Step, get_step, load_steps

__all__ = ["RunPlan", "chain", "ensure_job", "missing_followups", "next_jobs", "orphaned_jobs", "plan_run", "send_jobs", "sweep",
           "tiles_with_data", "unfinished_inputs"]


def ensure_job(conn: psycopg.Connection, release_id: int, step: str, *, image_id: int | None = None,
               tile_order: int | None = None, tile_ipix: int | None = None) -> int:
    """The job row of a unit (created ``pending`` if new); returns its id."""
    row = conn.execute(
        "INSERT INTO jsp.tile_job (release_id, step, image_id, tile_order, tile_ipix) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT ON CONSTRAINT tile_job_unit_key DO UPDATE SET step = EXCLUDED.step RETURNING job_id",
        (release_id, step, image_id, tile_order, tile_ipix)).fetchone()
    return int(row[0])


def chain(first_step: str) -> list[Step]:
    """The steps from ``first_step`` on, following each step's ``next``."""
    steps, seen = [], set()
    name: str | None = first_step
    while name is not None:
        if name in seen:
            raise ValueError(f"step chain loops at {name!r}")
        seen.add(name)
        step = get_step(name)
        steps.append(step)
        name = step.next
    return steps


def _image_steps_before(tile_step: str) -> tuple[list[str], str | None]:
    """Image steps whose chain leads to ``tile_step``, and the last of them (whose ``next`` it is)."""
    steps = load_steps()
    last = next((s.name for s in steps.values() if s.scope == "image" and s.next == tile_step), None)
    before = []
    for s in steps.values():
        if s.scope == "image" and any(c.name == tile_step for c in chain(s.name)):
            before.append(s.name)
    return before, last


def tiles_with_data(conn: psycopg.Connection, tile_order: int, *, cone: Sequence[float] | None = None,
                    tiles: Iterable[int] | None = None) -> list[int]:
    """Tiles (nested ipix at ``tile_order``) that ingested images touch, optionally limited to a cone or a list.

    ``cone`` is (ra, dec, radius) in degrees: tiles whose boundary overlaps it.
    """
    sql = "SELECT DISTINCT it.tile_ipix FROM jsp.image_tile it"
    where, params = ["it.tile_order = %s"], [tile_order]
    if cone is not None:
        from jspdb.healpix import cone_ranges, to_order

        ranges = cone_ranges(float(cone[0]), float(cone[1]), float(cone[2]), tile_order)
        where.append("(" + " OR ".join(["it.tile_ipix BETWEEN %s AND %s"] * len(ranges)) + ")")
        # hpx29 ranges [lo, hi) -> the first and last nested pixel at the tile order
        params += [int(v) for lo, hi in ranges for v in (to_order(lo, tile_order), to_order(hi - 1, tile_order))]
    if tiles is not None:
        where.append("it.tile_ipix = ANY(%s)")
        params.append([int(t) for t in tiles])
    return [r[0] for r in conn.execute(f"{sql} WHERE {' AND '.join(where)} ORDER BY 1", params)]


@dataclass
class RunPlan:
    """Job ids of a planned run: image jobs to send now, tile jobs sent when their images finish."""

    tiles: list[int]
    image_jobs: list[int]
    tile_jobs: list[int]


def plan_run(conn: psycopg.Connection, release: str, tiles: Iterable[int], tile_order: int,
             first_step: str = "astrometry") -> RunPlan:
    """Job rows for the chain from ``first_step`` on the given tiles (committed by the caller)."""
    rid = get_release(conn, release)["release_id"]
    steps = chain(first_step)
    tiles = sorted({int(t) for t in tiles})
    missing = set(tiles) - {r[0] for r in conn.execute(
        "SELECT ipix FROM jsp.tile WHERE tile_order = %s AND ipix = ANY(%s)", (tile_order, tiles))}
    if missing:
        raise ValueError(f"no data in tiles {sorted(missing)[:10]} at order {tile_order}")
    image_jobs: list[int] = []
    if steps[0].scope == "image":
        images = [r[0] for r in conn.execute(
            "SELECT DISTINCT image_id FROM jsp.image_tile WHERE tile_order = %s AND tile_ipix = ANY(%s) "
            "ORDER BY 1", (tile_order, tiles))]
        image_jobs = [ensure_job(conn, rid, first_step, image_id=i) for i in images]
    tile_jobs = [ensure_job(conn, rid, s.name, tile_order=tile_order, tile_ipix=t)
                 for s in steps if s.scope == "tile" for t in tiles]
    if steps[0].scope == "tile":  # a run starting at a tile step has nothing to wait for
        image_jobs, tile_jobs = tile_jobs, []
    return RunPlan(tiles, image_jobs, tile_jobs)


def unfinished_inputs(conn: psycopg.Connection, tile_job_id: int) -> int:
    """How many images of a tile job's tile have not finished the image steps leading to it."""
    step, order, ipix, rid = conn.execute(
        "SELECT step, tile_order, tile_ipix, release_id FROM jsp.tile_job WHERE job_id = %s",
        (tile_job_id,)).fetchone()
    if order is None:
        return 0
    before, last = _image_steps_before(step)
    if last is None:
        return 0
    # An image is finished when its last image step is done or failed, or an earlier one failed
    # (the chain stops there); images with no job in this release are not part of the run.
    return conn.execute(
        """
        SELECT count(*) FROM jsp.image_tile it
         WHERE it.tile_order = %(o)s AND it.tile_ipix = %(p)s
           AND EXISTS (SELECT 1 FROM jsp.tile_job j WHERE j.release_id = %(r)s AND j.image_id = it.image_id
                          AND j.step = ANY(%(before)s))
           AND NOT EXISTS (SELECT 1 FROM jsp.tile_job j WHERE j.release_id = %(r)s AND j.image_id = it.image_id
                              AND ((j.step = %(last)s AND j.state IN ('done', 'failed'))
                                   OR (j.step = ANY(%(before)s) AND j.state = 'failed')))
        """, {"o": order, "p": ipix, "r": rid, "before": before, "last": last}).fetchone()[0]


def next_jobs(conn: psycopg.Connection, job_id: int) -> list[int]:
    """Jobs to send after job ``job_id`` finished (committed): its next image step, or tile jobs now ready."""
    row = conn.execute("SELECT release_id, step, image_id, state, tile_order, tile_ipix FROM jsp.tile_job "
                       "WHERE job_id = %s", (job_id,)).fetchone()
    if row is None:
        return []
    rid, name, image_id, state, tile_order, tile_ipix = row
    step = get_step(name)
    if step.next is None:
        return []
    nxt = get_step(step.next)
    if nxt.scope == "image":
        if state != "done" or image_id is None:
            return []
        return [ensure_job(conn, rid, nxt.name, image_id=image_id)]
    if image_id is None:  # tile -> tile
        return [ensure_job(conn, rid, nxt.name, tile_order=tile_order, tile_ipix=tile_ipix)] if state == "done" else []
    # image -> tile: only tiles this run planned; the last image to finish sends.
    tile_jobs = [r[0] for r in conn.execute(
        "SELECT j.job_id FROM jsp.tile_job j JOIN jsp.image_tile it ON it.tile_order = j.tile_order "
        "AND it.tile_ipix = j.tile_ipix WHERE j.release_id = %s AND j.step = %s AND it.image_id = %s "
        "AND j.state IN ('pending', 'queued', 'done')", (rid, nxt.name, image_id))]
    return [t for t in tile_jobs if unfinished_inputs(conn, t) == 0]


def send_jobs(conn: psycopg.Connection, job_ids: Iterable[int], send: Callable[[int], None]) -> int:
    """Send tasks for committed jobs and mark pending ones queued.

    Jobs already ``done`` are sent too: the runner skips them when their input
    fingerprint is unchanged and reruns them when inputs changed. Jobs that
    ``failed`` for good are not sent again (fix the cause, then reset them).
    """
    ids = [int(j) for j in job_ids]
    sendable = {r[0] for r in conn.execute(
        "SELECT job_id FROM jsp.tile_job WHERE job_id = ANY(%s) AND state <> 'failed'", (ids,))}
    sent = []
    for job_id in ids:  # in the order given
        if job_id in sendable:
            send(job_id)
            sent.append(job_id)
    conn.execute("UPDATE jsp.tile_job SET state = CASE WHEN state = 'pending' THEN 'queued' ELSE state END, "
                 "queued_at = now() WHERE job_id = ANY(%s)", (sent,))
    conn.commit()
    return len(sent)


def orphaned_jobs(conn: psycopg.Connection, release: str) -> list[int]:
    """Jobs marked ``running`` whose worker holds no lock on them any more (the process died)."""
    from jspdb.jobs.runner import LOCK_CLASS

    return [r[0] for r in conn.execute(
        """
        SELECT j.job_id FROM jsp.tile_job j JOIN jsp.release r USING (release_id)
         WHERE r.name = %s AND j.state = 'running'
           AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.database = (
                              SELECT oid FROM pg_database WHERE datname = current_database())
                             AND l.classid = %s AND l.objid = j.job_id AND l.objsubid = 1)
        """, (release, LOCK_CLASS))]


def missing_followups(conn: psycopg.Connection, release: str) -> list[int]:
    """Next image steps of ``done`` image jobs that were never created (a crash or outage right after a commit)."""
    out = []
    steps = load_steps()
    for step in steps.values():
        if step.scope != "image" or step.next is None or steps[step.next].scope != "image":
            continue
        for (image_id, rid) in conn.execute(
                "SELECT j.image_id, j.release_id FROM jsp.tile_job j JOIN jsp.release r USING (release_id) "
                "WHERE r.name = %s AND j.step = %s AND j.state = 'done' AND NOT EXISTS (SELECT 1 FROM jsp.tile_job n "
                "WHERE n.release_id = j.release_id AND n.image_id = j.image_id AND n.step = %s)",
                (release, step.name, step.next)).fetchall():
            out.append(ensure_job(conn, rid, step.next, image_id=image_id))
    return out


def sweep(conn: psycopg.Connection, release: str, send: Callable[[int], None], stale_after_s: float = 300.0) -> int:
    """Re-send what a crash may have lost.

    ``pending`` image jobs (recorded, never sent), ``pending`` tile jobs whose
    images have all finished, ``running`` jobs whose worker died (no lock
    held), the next steps of finished jobs that were never created, and,
    when the release's fleet has been idle for ``stale_after_s`` seconds
    (nothing running, nothing started) while jobs are still ``queued``,
    those jobs: their messages were lost (a worker host died holding them,
    with a broker that cannot redeliver). A long queue that is being worked
    through is left alone. Sending a job twice is harmless.
    """
    missing_followups(conn, release)
    idle = conn.execute(
        "SELECT count(*) FILTER (WHERE j.state = 'running') = 0 AND coalesce(max(greatest(j.started_at, "
        "j.finished_at)) < now() - make_interval(secs => %s), true) FROM jsp.tile_job j JOIN jsp.release r "
        "USING (release_id) WHERE r.name = %s", (stale_after_s, release)).fetchone()[0]
    ids = [r[0] for r in conn.execute(
        "SELECT job_id FROM jsp.tile_job j JOIN jsp.release r USING (release_id) WHERE r.name = %s AND "
        "(j.state = 'pending' OR (%s AND j.state = 'queued' AND queued_at < now() - make_interval(secs => %s))) "
        "ORDER BY job_id", (release, bool(idle), stale_after_s))]
    ids = [i for i in ids if unfinished_inputs(conn, i) == 0] + orphaned_jobs(conn, release)
    conn.commit()
    return send_jobs(conn, ids, send)
