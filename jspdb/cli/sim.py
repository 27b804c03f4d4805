"""``jsp sim``: render simulated LSST/Euclid/Roman fields with truth (thin layer over `jspdb.sim`)."""

from __future__ import annotations

from pathlib import Path

import typer

from jspdb.cli.common import run_cli

app = typer.Typer(help="Render simulated LSST/Euclid/Roman fields with truth.", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """Render simulated LSST/Euclid/Roman fields with truth."""


@app.command("field")
def field(
    ra: float = typer.Option(..., "--ra", help="Field centre right ascension (ICRS), deg."),
    dec: float = typer.Option(..., "--dec", help="Field centre declination (ICRS), deg."),
    size_arcmin: float = typer.Option(4.0, "--size-arcmin", help="Side of the square field, arcmin."),
    seed: int = typer.Option(..., "--seed", help="Random seed: the same seed gives identical files."),
    out: Path = typer.Option(..., "--out", help="Output directory."),
    density: float = typer.Option(1.0, "--density", help="Multiplier on the source counts."),
    surveys: str = typer.Option("lsst,euclid,roman", "--surveys", help="Comma-separated surveys."),
    lsst_epochs: int = typer.Option(3, "--lsst-epochs", help="LSST epochs per band."),
    star_density: float = typer.Option(1.0, "--star-density", help="Extra multiplier on star counts."),
    ground_psf: str = typer.Option("kolmogorov", "--ground-psf", help="LSST PSF: kolmogorov or moffat."),
    workers: int = typer.Option(0, "--workers", help="Worker processes (0: all cores)."),
) -> None:
    """Render one sky as LSST, Euclid and Roman would see it; write images, truth and reference catalog."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from jspdb.sim.field import simulate_field
    from jspdb.sim.spec import FieldSpec
    from jspdb.sim.writers import write_field

    console = Console(stderr=True)

    def _run() -> None:
        spec = FieldSpec(
            ra=ra, dec=dec, size_arcmin=size_arcmin, seed=seed, density=density,
            surveys=tuple(surveys.split(",")), lsst_epochs=lsst_epochs, star_density=star_density,
            ground_psf=ground_psf,
        )
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[current]}"), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("rendering", total=None, current="")

            def _render(done: int, total: int, image_id: str) -> None:
                bar.update(task, total=total, completed=done, current=image_id)

            sim = simulate_field(spec, workers=workers or None, progress=_render)
            wtask = bar.add_task("writing", total=len(sim.images), current="")

            def _write(done: int, total: int, image_id: str) -> None:
                bar.update(wtask, total=total, completed=done, current=image_id)

            write_field(sim, out, progress=_write)
        s = sim.summary
        st = sim.stats
        typer.echo(
            f"{s['n_galaxies']} galaxies, {s['n_stars']} stars, {s['n_reference']} reference stars; "
            f"{len(sim.images)} images, {st['pixels'] / 1e6:.1f} Mpix in {st['wall_s']:.1f} s "
            f"({st['pixels'] / st['wall_s'] / 1e6:.2f} Mpix/s)"
        )
        for name, b in s["surveys"].items():
            typer.echo(
                f"  {name:7s} {b['band']:11s} FWHM {b['fwhm_arcsec']:.2f}\"  depth {b['depth_mag']:.2f} AB  "
                f"{b['n_detectable']} detectable  {b['beams_per_source']:.1f} beams/source"
            )
        typer.echo(f"wrote {out}")

    run_cli(_run)
