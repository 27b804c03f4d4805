"""ADQL 2.1 -> PostgreSQL (pg_sphere, q3c) translation; see `jspdb.adql.translate`."""

from jspdb.adql.translate import AdqlError, Catalog, Translation, translate

__all__ = ["AdqlError", "Catalog", "Translation", "translate"]
