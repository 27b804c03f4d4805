"""``jsp user``: users of the query service (bearer tokens, private schemas)."""

from __future__ import annotations

import typer

from jspdb.cli.common import run_cli

app = typer.Typer(help="Add, list and remove users of the TAP service.", no_args_is_help=True)


@app.command()
def add(name: str = typer.Argument(..., help="User name (lower-case letters, digits, _).")) -> None:
    """Create a user with a private schema; print their bearer token (shown once)."""
    from jspdb.api.users import add_user
    from jspdb.db.engine import connect

    def _run() -> None:
        with connect() as conn:
            row, token = add_user(conn, name)
        typer.echo(f"created user {row['name']} (private schema {row['schema_name']})", err=True)
        typer.echo(token)

    run_cli(_run)


@app.command()
def token(name: str = typer.Argument(..., help="User name.")) -> None:
    """Issue another bearer token for an existing user."""
    from jspdb.api.users import UserError, new_token
    from jspdb.db.engine import connect

    def _run() -> None:
        with connect() as conn:
            row = conn.execute("SELECT user_id FROM jsp.api_user WHERE name = %s", (name,)).fetchone()
            if row is None:
                raise UserError(f"no user named {name!r}")
            typer.echo(new_token(conn, row[0]))

    run_cli(_run)


@app.command("list")
def list_() -> None:
    """List users."""
    from jspdb.db.engine import connect

    def _run() -> None:
        with connect() as conn:
            for name, schema, created in conn.execute(
                    "SELECT name, schema_name, created_at FROM jsp.api_user ORDER BY name"):
                typer.echo(f"{name}\t{schema}\t{created:%Y-%m-%d %H:%M}")

    run_cli(_run)


@app.command()
def remove(name: str = typer.Argument(..., help="User name.")) -> None:
    """Remove a user with their schema, jobs, tokens and database role."""
    from jspdb.api.users import delete_user
    from jspdb.db.engine import connect

    def _run() -> None:
        with connect() as conn:
            delete_user(conn, name)
        typer.echo(f"removed user {name}")

    run_cli(_run)
