"""``jsp``: one command, subcommands, ``--help`` on each."""

from __future__ import annotations

import typer

from jspdb.cli import db as db_cli
from jspdb.cli import ingest as ingest_cli
from jspdb.cli import jobs as jobs_cli
from jspdb.cli import release as release_cli
from jspdb.cli import serve as serve_cli
from jspdb.cli import sim as sim_cli
from jspdb.cli import user as user_cli
from jspdb.cli.common import run_cli

app = typer.Typer(
    name="jsp",
    help="jspdb: joint survey processing warehouse (LSST + Euclid + Roman).",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db_cli.app, name="db")
app.add_typer(release_cli.app, name="release")
app.add_typer(sim_cli.app, name="sim")
app.add_typer(ingest_cli.app, name="ingest")
app.command("images")(ingest_cli.list_images)
app.command("worker")(jobs_cli.worker)
app.command("run")(jobs_cli.run)
app.command("status")(jobs_cli.status)
app.add_typer(user_cli.app, name="user")
app.command("serve")(serve_cli.serve)


@app.command("demo")
def demo(
    n_rows: int = typer.Option(200_000, help="Synthetic reference-catalog rows to load."),
    release: str = typer.Option("demo", help="Release to create (if missing)."),
    field_arcmin: float = typer.Option(1.0, help="Side of the simulated field processed by the tile chain, "
                                                 "arcmin (0: skip the concordance)."),
) -> None:
    """Run the main job end to end on the configured (or local) database."""
    from jspdb.pipeline.demo import run_demo

    run_cli(lambda: run_demo(n_rows=n_rows, release=release, field_arcmin=field_arcmin))


@app.command("cone")
def cone(
    ra: float = typer.Argument(..., help="Centre right ascension, degrees."),
    dec: float = typer.Argument(..., help="Centre declination, degrees."),
    radius_arcsec: float = typer.Argument(..., help="Radius, arcsec."),
    limit: int = typer.Option(20, help="Rows to print."),
) -> None:
    """Cone search on the reference catalog (HEALPix-pruned, q3c-indexed)."""
    from jspdb.db.engine import connect
    from jspdb.db.query import refcat_cone

    def _run() -> None:
        with connect() as conn:
            rows = refcat_cone(conn, ra, dec, radius_arcsec / 3600.0)
        typer.echo(f"{len(rows)} sources within {radius_arcsec}\" of ({ra}, {dec})")
        for r in rows[:limit]:
            typer.echo(f"  {r['source_id']:>20d}  {r['ra']:11.6f} {r['dec']:+11.6f}  G={r['g_mag']:.3f}")

    run_cli(_run)


if __name__ == "__main__":  # pragma: no cover
    app()
