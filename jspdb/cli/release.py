"""``jsp release``: concordance releases (one schema each)."""

from __future__ import annotations

import json

import typer

from jspdb.cli.common import run_cli
from jspdb.config import get_settings

app = typer.Typer(help="Create, list and publish releases.", no_args_is_help=True)


@app.command()
def create(
    name: str = typer.Argument(..., help="Release name = schema name, e.g. dr1."),
    partition_order: int = typer.Option(None, help="HEALPix partition order (default: JSP_PARTITION_ORDER)."),
    config: str = typer.Option("{}", help="Processing configuration (JSON) recorded with the release."),
) -> None:
    """Create a release in state staging, with its schema and partitions."""
    from jspdb.db.engine import connect
    from jspdb.db.release import create_release
    from jspdb.errors import ReleaseError

    def _run() -> None:
        try:
            cfg = json.loads(config)
        except json.JSONDecodeError as exc:
            raise ReleaseError(f"--config is not valid JSON: {exc}") from exc
        order = partition_order if partition_order is not None else get_settings().partition_order
        with connect() as conn:
            row = create_release(conn, name, order, cfg)
        typer.echo(f"created release {row['name']} (schema {row['name']}, partition order {order}, "
                   f"{12 * 4 ** order} partitions per table)")

    run_cli(_run)


@app.command("list")
def list_() -> None:
    """List releases with their state."""
    from jspdb.db.engine import connect
    from jspdb.db.release import list_releases

    def _run() -> None:
        with connect() as conn:
            for r in list_releases(conn):
                typer.echo(f"{r['name']:12s} {r['state']:8s} order={r['partition_order']} "
                           f"version={r['software_version']} created={r['created_at']:%Y-%m-%d %H:%M}")

    run_cli(_run)


@app.command()
def publish(name: str = typer.Argument(..., help="Release to publish.")) -> None:
    """Make a staging release public (readable by the reader role) in one step."""
    from jspdb.db.engine import connect
    from jspdb.db.release import publish_release

    def _run() -> None:
        with connect() as conn:
            r = publish_release(conn, name)
        typer.echo(f"release {r['name']} is {r['state']}")

    run_cli(_run)
