"""The simulated sky: one field as LSST, Euclid and Roman would see it, with its truth.

Pure functions, arrays and tables in and out; the CLI (``jsp sim field``) is a
thin layer over `simulate_field` and `write_field`.

- `jspdb.sim.bands` -- surveys and bands (wavelengths, pixels, zero points, sky).
- `jspdb.sim.spec` -- `FieldSpec`, the validated request.
- `jspdb.sim.sky` / `jspdb.sim.seds` -- the truth catalog (counts, SEDs, morphologies).
- `jspdb.sim.reference` -- the Gaia-like reference catalog.
- `jspdb.sim.psf` -- position- and colour-dependent PSF models.
- `jspdb.sim.systematics` -- observing plan and injected systematics.
- `jspdb.sim.render` -- drawing one image with GalSim.
- `jspdb.sim.field` -- `simulate_field` (process pool) and the `Field` it returns.
- `jspdb.sim.writers` -- per-survey file conventions and `write_field`.
- `jspdb.sim.inject` -- fake-source injection into an existing image.
"""

from jspdb.sim.field import Field, simulate_field
from jspdb.sim.image import SimImage
from jspdb.sim.inject import inject_sources
from jspdb.sim.spec import FieldSpec
from jspdb.sim.writers import write_field

__all__ = ["Field", "FieldSpec", "SimImage", "inject_sources", "simulate_field", "write_field"]
