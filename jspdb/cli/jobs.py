"""``jsp worker``, ``jsp run``, ``jsp status``: the processing fleet from the command line."""

from __future__ import annotations

import os
import sys

import typer

from jspdb.cli.common import run_cli


def worker(
    concurrency: int = typer.Option(2, help="Worker processes."),
    loglevel: str = typer.Option("warning", help="Celery log level."),
) -> None:
    """Start a Celery worker of the fleet (broker: JSP_BROKER_URL, else PostgreSQL itself; queue: JSP_QUEUE)."""
    from workers.app import worker_argv

    os.execv(sys.executable, worker_argv(concurrency, loglevel))


def run(
    release: str = typer.Option(..., help="Release to process into."),
    cone: tuple[float, float, float] = typer.Option(None, help="RA DEC RADIUS (deg): the tiles overlapping it."),
    tiles: str = typer.Option(None, help="Comma-separated tile indices (nested HEALPix at the tile order)."),
    all_: bool = typer.Option(False, "--all", help="Every tile that holds data."),
    step: str = typer.Option("astrometry", help="First step (the chain follows)."),
    wait: bool = typer.Option(False, "--wait", help="Show a progress bar until the run is finished."),
    sweep_: bool = typer.Option(False, "--sweep", help="Re-send pending, stale or orphaned jobs of the release."),
    timeout: float = typer.Option(3600, help="With --wait: give up after this many seconds."),
) -> None:
    """Plan one chain of steps per tile that holds data and enqueue it (rows first, messages after commit)."""
    from jspdb.config import get_settings
    from jspdb.db.engine import connect
    from jspdb.errors import ConfigError
    from jspdb.jobs.plan import chain, plan_run, send_jobs, sweep, tiles_with_data

    settings = get_settings()

    def _run() -> None:
        from workers.tasks_jobs import send

        with connect() as conn:
            if sweep_:
                n = sweep(conn, release, send, stale_after_s=settings.job_stale_after_s)
                typer.echo(f"re-sent {n} jobs")
            else:
                if [cone is not None, tiles is not None, all_].count(True) != 1:
                    raise ConfigError("give exactly one of --cone RA DEC RADIUS, --tiles I,J,... or --all")
                try:
                    wanted = [int(t) for t in tiles.split(",") if t.strip()] if tiles else None
                except ValueError as exc:
                    raise ConfigError(f"--tiles takes comma-separated integers, got {tiles!r}") from exc
                found = tiles_with_data(conn, settings.tile_order, cone=cone, tiles=wanted)
                if wanted is not None and set(wanted) - set(found):
                    raise ConfigError(f"no data in tiles {sorted(set(wanted) - set(found))} "
                                      f"(order {settings.tile_order})")
                if not found:
                    raise ConfigError("no tile with data in that selection")
                try:
                    plan = plan_run(conn, release, found, settings.tile_order, first_step=step)
                except (ValueError, KeyError) as exc:
                    raise ConfigError(str(exc.args[0])) from exc
                conn.commit()
                n = send_jobs(conn, plan.image_jobs, send)
                typer.echo(f"planned {len(plan.tiles)} tiles: {len(plan.image_jobs)} {step} jobs "
                           f"(sent {n}) and {len(plan.tile_jobs)} tile jobs")
        if wait:
            from jspdb.jobs.status import wait_for_run

            try:
                wait_for_run(release, timeout, lambda c: sweep(c, release, send, stale_after_s=settings.job_stale_after_s),
                             steps=() if sweep_ else [s.name for s in chain(step)])
            except TimeoutError as exc:
                raise ConfigError(str(exc)) from exc

    run_cli(_run)


def status(release: str = typer.Option(..., help="Release.")) -> None:
    """Per step: jobs pending, running, done, failed; timings; the last error."""
    from jspdb.db.engine import connect
    from jspdb.jobs.status import run_status

    def _run() -> None:
        with connect() as conn:
            rows = run_status(conn, release)
        typer.echo(f"{'step':16s} {'pending':>7s} {'running':>7s} {'done':>6s} {'failed':>6s} {'mean_s':>7s} "
                   f"{'max_s':>7s}  last error")
        for r in rows:
            typer.echo(f"{r['step']:16s} {r['pending']:7d} {r['running']:7d} {r['done']:6d} {r['failed']:6d} "
                       f"{(r['mean_s'] or 0):7.2f} {(r['max_s'] or 0):7.2f}  {r['last_error'] or ''}")

    run_cli(_run)
