"""Registry of processing steps.

A step has a scope (``image``: one job per image; ``tile``: one per tile), a
fingerprint of its inputs (a job whose fingerprint is unchanged since its last
success is skipped) and a body that reads its inputs and *replaces* its own
results for its unit inside the transaction it is given, so a rerun yields
the same rows and a killed worker leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

__all__ = ["STEPS", "Step", "Unit", "get_step", "load_steps", "register_step"]


@dataclass(frozen=True)
class Unit:
    """What one job works on."""

    release_id: int
    release: str
    image_id: int | None = None
    tile_order: int | None = None
    tile_ipix: int | None = None


@dataclass(frozen=True)
class Step:
    name: str
    scope: str  # "image" or "tile"
    fingerprint: Callable[[psycopg.Connection, Unit], str]
    run: Callable[[psycopg.Connection, Unit], dict]
    next: str | None = None


#: Registered steps by name.
STEPS: dict[str, Step] = {}


def register_step(name: str, scope: str, fingerprint: Callable, next_step: str | None = None):
    """Decorator registering ``fn(conn, unit) -> dict`` as step ``name``."""
    if scope not in ("image", "tile"):
        raise ValueError(f"step scope must be image or tile, got {scope!r}")

    def deco(fn: Callable[[psycopg.Connection, Unit], dict]):
        STEPS[name] = Step(name=name, scope=scope, fingerprint=fingerprint, run=fn, next=next_step)
        return fn

    return deco


def load_steps() -> dict[str, Step]:
    """Import the built-in steps and those of ``settings.step_modules``; returns the registry."""
    import importlib

    from jspdb.config import get_settings
    from jspdb.jobs import builtin_steps  # noqa: F401  (registers the built-in steps)

    for module in get_settings().step_modules:
        importlib.import_module(module)
    return STEPS


def get_step(name: str) -> Step:
    """The registered step ``name`` (KeyError naming the known ones if there is none)."""
    load_steps()
    try:
        return STEPS[name]
    except KeyError:
        raise KeyError(f"no step named {name!r} (known: {', '.join(STEPS)})") from None
