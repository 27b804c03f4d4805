"""``jsp ingest``: images and reference catalogs into the warehouse; ``jsp images``: find them."""

from __future__ import annotations

from pathlib import Path

import typer

from jspdb.cli.common import run_cli
from jspdb.config import get_settings

app = typer.Typer(help="Ingest survey images and reference catalogs.", no_args_is_help=True)


@app.command("images")
def images(
    paths: list[Path] = typer.Argument(..., help="FITS/ASDF files or directories (searched recursively)."),
    survey: str = typer.Option("auto", help="auto, lsst, euclid, roman, or a generic mapping's survey name."),
    mapping: list[Path] = typer.Option([], help="Generic survey mapping file(s) (TOML); see jspdb.ingest.generic."),
    workers: int = typer.Option(1, help="Processes reading files in parallel."),
    mode: str = typer.Option("copy", help="copy (into the datastore) or reference (leave files in place)."),
    batch_size: int = typer.Option(50, help="Images per transaction."),
    replace: bool = typer.Option(False, "--replace", help="Accept changed files at paths already ingested."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first bad file."),
    report: Path = typer.Option(None, help="Write a JSON report of what went in, was skipped, failed."),
    submit: bool = typer.Option(False, "--submit", help="Enqueue Celery tasks (one per batch) for the worker "
                                "fleet instead of ingesting here."),
) -> None:
    """Ingest images: one unified metadata record per image, footprint, tiles, datastore."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from jspdb.db.engine import connect
    from jspdb.ingest.generic import load_mapping
    from jspdb.ingest.images import expand_paths, ingest_images

    err = Console(stderr=True, soft_wrap=True)

    def _run() -> None:
        for m in mapping:
            load_mapping(m)
        settings = get_settings()
        files = expand_paths(paths)
        if submit:
            if mapping:
                from jspdb.errors import ConfigError

                raise ConfigError("--submit with --mapping is not supported: workers load built-in adapters only")
            from workers.tasks_ingest import ingest_images_task

            for start in range(0, len(files), batch_size):
                chunk = [str(f.resolve()) for f in files[start:start + batch_size]]
                res = ingest_images_task.delay(chunk, survey=survey, mode=mode, replace=replace,
                                               batch_size=batch_size)
                typer.echo(f"submitted task {res.id}: {len(chunk)} files")
            return
        with connect() as conn, Progress(TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(),
                                         TimeRemainingColumn(), console=err) as bar:
            task = bar.add_task("ingest", total=len(files))
            rep = ingest_images(
                conn, files, tile_order=settings.tile_order, datastore=settings.datastore, survey=survey,
                mode=mode, workers=workers, batch_size=batch_size, replace=replace, strict=strict,
                on_error=lambda msg: err.print(f"[red]error[/]: {msg}", highlight=False),
                progress=lambda k: bar.advance(task, k),
            )
        if report:
            rep.write(report)
        for w in rep.warnings:
            err.print(f"[yellow]warning[/]: {w['path']}: {w['reason']}", highlight=False)
        typer.echo(f"ingested {len(rep.ingested)}, skipped {len(rep.skipped)}, failed {len(rep.failed)}")
        for s in rep.skipped:
            typer.echo(f"  skipped {s['path']}: {s['reason']}")
        if rep.failed:
            raise typer.Exit(2)

    run_cli(_run)


@app.command("refcat")
def refcat(file: Path = typer.Argument(..., help="Reference catalog: Parquet, FITS table, CSV or ECSV.")) -> None:
    """Bulk-load a Gaia-like reference catalog (binary COPY, one transaction)."""
    from jspdb.db.engine import connect
    from jspdb.ingest.refcat import ingest_refcat

    def _run() -> None:
        with connect() as conn:
            res = ingest_refcat(conn, file)
        typer.echo(f"loaded {res['stars']} reference stars and {res['synphot_rows']} synthetic magnitudes")
        if res["ignored_columns"]:
            typer.echo(f"  ignored columns: {', '.join(res['ignored_columns'])}")

    run_cli(_run)


def list_images(
    cone: tuple[float, float, float] = typer.Option(None, help="RA DEC RADIUS (degrees)."),
    tile: tuple[int, int] = typer.Option(None, help="ORDER IPIX of a processing tile."),
    band: list[str] = typer.Option([], help="Keep these bands (repeatable)."),
) -> None:
    """List images overlapping a cone or a tile."""
    from jspdb.db.engine import connect
    from jspdb.db.query import images_in_cone, images_in_tile
    from jspdb.errors import ConfigError

    def _run() -> None:
        with connect() as conn:
            if cone:
                rows = images_in_cone(conn, *cone, bands=band or None)
            elif tile:
                rows = [r for r in images_in_tile(conn, *tile) if not band or r["band"] in band]
            else:
                raise ConfigError("give --cone RA DEC RADIUS or --tile ORDER IPIX")
        typer.echo(f"{len(rows)} images")
        for r in rows:
            typer.echo(f"  {r['image_id']:>6d}  {r['survey']:7s} {r['band']:5s} {r['obs_id']:30s} {r['uri']}")

    run_cli(_run)
