"""`FieldSpec`: what to simulate. Validated on construction; bad requests raise `SimulationError`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from jspdb.errors import SimulationError
from jspdb.sim.bands import SURVEYS

__all__ = ["FieldSpec"]


@dataclass(frozen=True)
class FieldSpec:
    """One simulated field.

    Attributes
    ----------
    ra, dec
        Field centre (ICRS), deg.
    size_arcmin
        Side of the square field, arcmin (0.25 to 20).
    seed
        Master random seed: the same spec gives bit-identical output.
    density
        Multiplier on the number counts of stars and galaxies (1 = published
        deep-field counts; 4 = heavily confused for the ground).
    surveys
        Surveys to render, any of ``"lsst"``, ``"euclid"``, ``"roman"``.
    lsst_epochs
        Number of LSST epochs per band (Euclid and Roman: one image per band).
    star_density
        Extra multiplier on star counts only (tests use more stars than the sky has).
    bright_stars
        Extra stars at 13 < r < 15.5 AB added so saturation is exercised in every field.
    mag_limit
        Faintest galaxy (LSST i) and star (LSST r) magnitude drawn, AB.
    margin_arcsec
        Sources are drawn over the field enlarged by this margin on every side,
        so images that are dithered and rotated are filled to their edges, arcsec.
    ground_psf
        ``"kolmogorov"`` or ``"moffat"``.
    """

    ra: float
    dec: float
    size_arcmin: float
    seed: int
    density: float = 1.0
    surveys: tuple[str, ...] = ("lsst", "euclid", "roman")
    lsst_epochs: int = 3
    star_density: float = 1.0
    bright_stars: int = 2
    mag_limit: float = 28.0
    margin_arcsec: float = 15.0
    ground_psf: str = "kolmogorov"

    def __post_init__(self) -> None:
        raw = self.surveys.split(",") if isinstance(self.surveys, str) else self.surveys
        surveys = tuple(s.strip().lower() for s in raw if s.strip())
        object.__setattr__(self, "surveys", surveys)
        problems = []
        if not 0.0 <= self.ra < 360.0:
            problems.append(f"ra={self.ra} deg is outside [0, 360)")
        if not -89.0 <= self.dec <= 89.0:
            problems.append(f"dec={self.dec} deg is outside [-89, 89] (poles not supported)")
        if not 0.25 <= self.size_arcmin <= 20.0:
            problems.append(f"size_arcmin={self.size_arcmin} is outside [0.25, 20]")
        if not 0.0 < self.density <= 50.0:
            problems.append(f"density={self.density} is outside (0, 50]")
        if not 0.0 <= self.star_density <= 1000.0:
            problems.append(f"star_density={self.star_density} is outside [0, 1000]")
        if self.seed < 0 or self.seed >= 2**63:
            problems.append(f"seed={self.seed} must be a non-negative 63-bit integer")
        if not surveys:
            problems.append("no survey requested")
        unknown = [s for s in surveys if s not in SURVEYS]
        if unknown:
            problems.append(f"unknown surveys {unknown}; known: {sorted(SURVEYS)}")
        if len(set(surveys)) != len(surveys):
            problems.append(f"surveys listed twice: {list(surveys)}")
        if not 1 <= self.lsst_epochs <= 50:
            problems.append(f"lsst_epochs={self.lsst_epochs} is outside [1, 50]")
        if not 0 <= self.bright_stars <= 100:
            problems.append(f"bright_stars={self.bright_stars} is outside [0, 100]")
        if not 20.0 <= self.mag_limit <= 30.0:
            problems.append(f"mag_limit={self.mag_limit} is outside [20, 30] AB")
        if not 0.0 <= self.margin_arcsec <= 120.0:
            problems.append(f"margin_arcsec={self.margin_arcsec} is outside [0, 120]")
        if self.ground_psf not in ("kolmogorov", "moffat"):
            problems.append(f"ground_psf={self.ground_psf!r} must be 'kolmogorov' or 'moffat'")
        if problems:
            raise SimulationError("bad field request: " + "; ".join(problems))

    @property
    def area_deg2(self) -> float:
        """Area over which sources are drawn (field plus margin), deg^2 (tangent plane)."""
        side = self.size_arcmin / 60.0 + 2.0 * self.margin_arcsec / 3600.0
        return side * side

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of the spec."""
        d = asdict(self)
        d["surveys"] = list(self.surveys)
        return d
