"""``jsp serve``: the TAP / SIA HTTP service under uvicorn."""

from __future__ import annotations

import typer

from jspdb.cli.common import run_cli

__all__ = ["serve"]


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="uvicorn worker processes."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Serve TAP 1.1 at /tap (sync, async, VOSI) and SIA v2 at /sia/query."""
    import uvicorn

    def _run() -> None:
        from jspdb.api.app import create_app

        if workers > 1:
            uvicorn.run("jspdb.api.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                        log_level=log_level)
        else:
            uvicorn.run(create_app(), host=host, port=port, log_level=log_level)

    run_cli(_run)
