"""SQLAlchemy column types for pgsphere's ``spoint``, ``scircle`` and ``spoly``.

Values travel as pgsphere text literals (e.g. ``{(10d,20d),(11d,20d),(11d,21d)}``);
registering the names with the PostgreSQL dialect lets reflection (Alembic's
drift check) recognise the columns.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.types import UserDefinedType

__all__ = ["SCircle", "SPoint", "SPoly"]


class _PgSphereType(UserDefinedType):
    cache_ok = True
    pg_name = ""

    def get_col_spec(self, **kw) -> str:
        return self.pg_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SPoint(_PgSphereType):
    """pgsphere ``spoint``: a point on the sphere."""

    pg_name = "spoint"


class SCircle(_PgSphereType):
    """pgsphere ``scircle``: a spherical cap."""

    pg_name = "scircle"


class SPoly(_PgSphereType):
    """pgsphere ``spoly``: a spherical polygon (great-circle edges)."""

    pg_name = "spoly"


for _t in (SPoint, SCircle, SPoly):
    ischema_names[_t.pg_name] = _t
