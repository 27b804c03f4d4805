"""The query service: TAP 1.1 (sync, async/UWS), VOSI, SIA v2 over the warehouse.

- `jspdb.api.app` -- the FastAPI application (`create_app`), run by ``jsp serve``.
- `jspdb.api.service` -- runs ADQL under the caller's read-only role (sync and workers).
- `jspdb.api.jobs` -- UWS jobs in ``jsp.uws_job``, results in the datastore.
- `jspdb.api.formats` -- VOTable (BINARY2/TABLEDATA), CSV, FITS, Parquet writers.
- `jspdb.api.users` -- users, bearer tokens, roles and private schemas.
- `jspdb.api.limits` -- per-user limits and the rate limiter.
- `jspdb.api.vosi`, `jspdb.api.sia` -- VOSI documents, SIA v2 queries.

See ``docs/tap.md``.
"""
