"""Shared CLI plumbing: turn jspdb errors into one clear line and exit code 1."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from jspdb.errors import JspdbError

T = TypeVar("T")


def run_cli(fn: Callable[[], T]) -> T:
    """Call ``fn``; report a `JspdbError` as ``error: ...`` and exit with status 1."""
    try:
        return fn()
    except JspdbError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from exc
