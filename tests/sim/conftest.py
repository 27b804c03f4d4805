"""Fixtures of the simulator tests: one small field rendered once per session, and helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# The session field (`field`, `field_dir`) is shared with every tier: tests/conftest.py.


@pytest.fixture(scope="session")
def field_index(field_dir: Path) -> dict:
    return json.loads((field_dir / "field.json").read_text())
