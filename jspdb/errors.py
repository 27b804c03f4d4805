"""The exceptions jspdb raises, and when.

Users catch these, not ``KeyError`` or driver errors. Every error carries a
message meant to be read by a person: it names the object (file, release,
row) and the reason.

- `JspdbError` -- base class of everything below.
- `ConfigError` -- settings are missing or inconsistent (bad URL, bad order).
- `LocalDatabaseError` -- the project-local PostgreSQL cluster cannot be
  created, started or stopped (binaries missing, port in use, bad data dir).
- `MigrationError` -- a schema migration failed or timed out waiting for a lock.
- `ReleaseError` -- a release does not exist, already exists, has a bad name
  or is in the wrong state for the requested operation.
- `LoadError` -- a bulk load was refused (bad row, missing column); nothing was
  written.
- `IngestError` -- one input file cannot be ingested (not FITS, truncated, no
  or singular WCS, unknown filter, all NaN, missing plane, changed file
  without ``--replace``); the message names the file and the reason.
- `SimulationError` -- the simulator was asked for something it cannot render.
"""

__all__ = [
    "ConfigError",
    "IngestError",
    "JspdbError",
    "LoadError",
    "LocalDatabaseError",
    "MigrationError",
    "ReleaseError",
    "SimulationError",
]


class JspdbError(Exception):
    """Base class of all jspdb errors."""


class ConfigError(JspdbError):
    """Settings are missing or inconsistent."""


class LocalDatabaseError(JspdbError):
    """The project-local PostgreSQL cluster cannot be managed."""


class MigrationError(JspdbError):
    """A schema migration failed (including lock timeouts)."""


class ReleaseError(JspdbError):
    """A release is missing, duplicated, badly named or in the wrong state."""


class LoadError(JspdbError):
    """A bulk load was refused; nothing was written."""


class IngestError(JspdbError):
    """One input file cannot be ingested; the message names it and says why."""


class SimulationError(JspdbError):
    """The simulator cannot render what was asked."""
