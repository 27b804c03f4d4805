"""Per-user limits of the query service and the request-rate limiter.

Anonymous callers get the tighter defaults; a user's row in ``jsp.api_user``
may override any limit. The limits are enforced where they can be: query
time by PostgreSQL (``statement_timeout``, transaction-scoped), rows by
MAXREC (cut with the overflow marker), bytes after serialisation,
concurrent async jobs by counting the user's jobs in ``jsp.uws_job``, and
request rate by a token bucket per caller in each API process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ApiSettings", "Limits", "RateLimiter", "get_api_settings"]


@dataclass(frozen=True)
class Limits:
    """What one caller may do.

    Attributes
    ----------
    max_rows
        Hard cap on MAXREC (rows returned by one query).
    default_maxrec
        MAXREC when the request does not give one.
    max_bytes
        Largest serialised result.
    timeout_ms
        ``statement_timeout`` of a sync query.
    async_timeout_s
        Largest EXECUTIONDURATION of an async job.
    max_async_jobs
        Jobs queued or executing at once.
    rate_per_min
        Requests per minute (token bucket, burst = one minute's worth).
    """

    max_rows: int
    default_maxrec: int
    max_bytes: int
    timeout_ms: int
    async_timeout_s: int
    max_async_jobs: int
    rate_per_min: int

    def with_overrides(self, row: dict) -> Limits:
        """These limits with a user's non-NULL overrides applied."""
        keys = ("max_rows", "max_bytes", "timeout_ms", "max_async_jobs", "rate_per_min")
        return replace(self, **{k: row[k] for k in keys if row.get(k) is not None})


class ApiSettings(BaseSettings):
    """Settings of the query service (``JSP_API_*`` environment variables)."""

    model_config = SettingsConfigDict(env_prefix="JSP_API_", extra="ignore")

    anon_max_rows: int = 100_000
    anon_default_maxrec: int = 10_000
    anon_max_bytes: int = 50_000_000
    anon_timeout_ms: int = 10_000
    anon_async_timeout_s: int = 600
    anon_max_async_jobs: int = 2
    anon_rate_per_min: int = 600
    user_max_rows: int = 10_000_000
    user_default_maxrec: int = 100_000
    user_max_bytes: int = 2_000_000_000
    user_timeout_ms: int = 60_000
    user_async_timeout_s: int = 7200
    user_max_async_jobs: int = 4
    user_rate_per_min: int = 3000
    #: Lifetime of async jobs and their results.
    job_lifetime_s: int = 7 * 86400
    #: Connections of one API process to PostgreSQL.
    pool_max: int = 16
    #: Seconds a cached TAP_SCHEMA (per role) is trusted.
    catalog_ttl_s: float = 30.0
    #: Public base URL (for job and result links); default: from the request.
    base_url: str | None = None

    def anonymous(self) -> Limits:
        """Limits of callers without a token."""
        return Limits(self.anon_max_rows, self.anon_default_maxrec, self.anon_max_bytes, self.anon_timeout_ms,
                      self.anon_async_timeout_s, self.anon_max_async_jobs, self.anon_rate_per_min)

    def user(self) -> Limits:
        """Default limits of authenticated users."""
        return Limits(self.user_max_rows, self.user_default_maxrec, self.user_max_bytes, self.user_timeout_ms,
                      self.user_async_timeout_s, self.user_max_async_jobs, self.user_rate_per_min)


def get_api_settings() -> ApiSettings:
    """Read the service settings (environment, then defaults)."""
    return ApiSettings()


class RateLimiter:
    """Token buckets keyed by caller; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, per_min: int) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty."""
        now = time.monotonic()
        rate = per_min / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key, (float(per_min), now))
            tokens = min(float(per_min), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1.0, now)
            return True
