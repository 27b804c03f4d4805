"""One typed settings object for the whole of jspdb.

Values come, in order of precedence, from ``JSP_*`` environment variables,
then from a TOML config file (``JSP_CONFIG``, default ``./jsp.toml`` when it
exists), then from the defaults below. No other module reads ``os.environ``.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from jspdb.errors import ConfigError

__all__ = ["Settings", "get_settings", "reset_settings"]

#: Deepest HEALPix order (nside = 2**29) representable in a signed 64-bit index.
MAX_ORDER = 29


class _TomlSource(PydanticBaseSettingsSource):
    """Read settings from the TOML file named by ``JSP_CONFIG`` (or ``./jsp.toml``)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        explicit = os.environ.get("JSP_CONFIG")
        path = Path(explicit) if explicit else Path("jsp.toml")
        self._data: dict[str, Any] = {}
        if explicit and not path.is_file():
            raise ConfigError(f"JSP_CONFIG={explicit}: no such config file")
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
            # Accept both a flat file and a [jsp] table.
            self._data = data.get("jsp", data)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    """jspdb configuration.

    Attributes
    ----------
    database_url
        SQLAlchemy URL of the PostgreSQL database. When unset, the project-local
        cluster (``jsp db start``) is used.
    broker_url
        Celery broker URL. When unset, kombu's SQLAlchemy transport on the
        database is used, so the local default needs nothing but PostgreSQL.
    queue
        Name of the Celery task queue (fleets sharing one RabbitMQ for
        several warehouses give each its own).
    home
        Directory holding project-local state: the local cluster's data
        directory and the default datastore.
    datastore_root
        Root of the file datastore (FITS files). Default ``<home>/datastore``.
    local_port
        TCP port of the local cluster (it listens on 127.0.0.1 and on a Unix
        socket inside ``home``).
    local_os_user
        Operating-system user that runs the local cluster when jspdb is run as
        root (PostgreSQL refuses to run as root).
    tile_order
        HEALPix order of a processing tile (order 9: ~6.9 arcmin pixels).
    partition_order
        HEALPix order of a catalog partition (order 3: 768 partitions, ~7.3 deg).
    statement_timeout_ms
        Default statement timeout for interactive queries, in milliseconds.
    migration_lock_timeout_ms
        ``lock_timeout`` applied while migrating, in milliseconds, so that a
        migration blocked by a running query fails fast instead of queueing
        every other client behind it.
    job_max_attempts
        Attempts a tile/image job gets (a crash of its worker process counts)
        before it ends as ``failed``.
    job_soft_time_limit_s, job_time_limit_s
        Celery soft and hard time limits of one job, in seconds.
    job_stale_after_s
        When nothing of a release has run or started for this long, in
        seconds, ``jsp run --wait`` and ``jsp run --sweep`` re-send its jobs
        still ``queued`` (their messages were lost). A running job whose
        worker died is re-sent at once: its database lock is gone.
    job_sweep_interval_s
        How often ``celery -A workers.app beat`` runs the sweep of every
        release with unfinished jobs, in seconds.
    step_modules
        Extra Python modules to import for their ``@register_step`` steps
        (JSON list, e.g. ``JSP_STEP_MODULES='["mypkg.steps"]'``).
    """

    model_config = SettingsConfigDict(env_prefix="JSP_", extra="ignore")

    database_url: str | None = None
    broker_url: str | None = None
    queue: str = "jspdb"
    home: Path = Field(default_factory=lambda: Path(".jsp").absolute())
    datastore_root: Path | None = None
    local_port: int = 55432
    local_os_user: str = "postgres"
    tile_order: int = 9
    partition_order: int = 3
    statement_timeout_ms: int = 60_000
    migration_lock_timeout_ms: int = 5_000
    migration_statement_timeout_ms: int = 600_000
    job_max_attempts: int = 3
    job_soft_time_limit_s: float = 1800.0
    job_time_limit_s: float = 2000.0
    job_stale_after_s: float = 300.0
    job_sweep_interval_s: float = 60.0
    step_modules: list[str] = Field(default_factory=list)

    @field_validator("tile_order", "partition_order")
    @classmethod
    def _order_in_range(cls, v: int) -> int:
        if not 0 <= v <= MAX_ORDER:
            raise ValueError(f"HEALPix order must be within 0..{MAX_ORDER}, got {v}")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def datastore(self) -> Path:
        """Datastore root directory (``datastore_root`` or ``<home>/datastore``)."""
        return self.datastore_root or self.home / "datastore"

    @property
    def uses_local_cluster(self) -> bool:
        """True when no database URL is configured and the local cluster serves."""
        return self.database_url is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (read once, then cached)."""
    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"invalid jspdb settings: {exc}") from exc


def reset_settings() -> None:
    """Forget the cached settings so the next `get_settings` re-reads them."""
    get_settings.cache_clear()
