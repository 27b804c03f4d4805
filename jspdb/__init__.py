"""jspdb: a joint-survey-processing warehouse for LSST, Euclid and Roman.

The library is organised by tier (see ``ARCHITECTURE.md``):

- :mod:`jspdb.healpix` -- HEALPix (nested) helpers used for partitioning;
- :mod:`jspdb.db` -- engine, schema models, local cluster, bulk loader, queries;
- :mod:`jspdb.sim` -- the simulated sky with truth used to test every tier.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jspdb")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
