"""``jsp db``: the local cluster and schema migrations."""

from __future__ import annotations

import typer

from jspdb.cli.common import run_cli
from jspdb.config import get_settings

app = typer.Typer(help="Local PostgreSQL cluster and schema migrations.", no_args_is_help=True)


def _cluster():
    from jspdb.db.local import LocalCluster
    from jspdb.errors import LocalDatabaseError

    settings = get_settings()
    if not settings.uses_local_cluster:
        raise LocalDatabaseError(
            "JSP_DATABASE_URL is set: jspdb uses that server, not a local cluster "
            "(unset it to manage the local one)"
        )
    return LocalCluster.from_settings(settings)


@app.command()
def start() -> None:
    """Create (first time) and start the project-local PostgreSQL cluster."""

    def _run() -> None:
        c = _cluster()
        started = c.start()
        typer.echo(f"{'started' if started else 'already running'}: {c.url().render_as_string()} "
                   f"(data in {c.datadir})")

    run_cli(_run)


@app.command()
def stop() -> None:
    """Stop the project-local cluster (its data stays)."""

    def _run() -> None:
        c = _cluster()
        typer.echo("stopped" if c.stop() else "not running")

    run_cli(_run)


@app.command()
def status() -> None:
    """Show which database jspdb uses and whether it is up to date."""
    from jspdb.db import migrate

    def _run() -> None:
        settings = get_settings()
        if settings.uses_local_cluster:
            st = _cluster().status()
            for k, v in st.items():
                typer.echo(f"{k:12s} {v}")
            if not st["running"]:
                return
        else:
            from jspdb.db.engine import database_url

            typer.echo(f"url          {database_url().render_as_string(hide_password=True)}")
        cur = migrate.current()
        head = migrate.head()
        typer.echo(f"revision     {cur or '(empty)'} (head {head}){'' if cur == head else '  -> run: jsp db upgrade'}")

    run_cli(_run)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Bring the database schema to a revision (default: head)."""
    from jspdb.db import migrate

    applied = run_cli(lambda: migrate.upgrade(revision))
    typer.echo(f"applied {', '.join(applied)}" if applied else "nothing to apply")
    typer.echo(f"database at {migrate.current()}")


@app.command()
def downgrade(revision: str = typer.Argument(..., help="Target revision, or 'base' for empty.")) -> None:
    """Take the database schema back to a revision."""
    from jspdb.db import migrate

    removed = run_cli(lambda: migrate.downgrade(revision))
    typer.echo(f"removed {', '.join(removed)}" if removed else "nothing to remove")
    typer.echo(f"database at {migrate.current() or '(empty)'}")


@app.command()
def check() -> None:
    """Fail if the schema models and the database differ (drift)."""
    from jspdb.db import migrate

    run_cli(migrate.check)
    typer.echo("no drift")
