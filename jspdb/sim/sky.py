"""The true sky: stars and galaxies with positions, motions, SED fluxes and morphologies.

Models and their sources
------------------------
Galaxy counts
    Differential counts in LSST i, ``dN/dm = A 10^(0.31 (m - 25.3))`` per deg^2 per
    mag brighter than i = 25.3 and slope 0.22 fainter, with A fixed so that
    N(i < 25.3) = 55 arcmin^-2 (LSST Science Book 2009, Sect. 3.7.2; slopes from
    Metcalfe et al. 2001 and Capak et al. 2004). This gives ~280 arcmin^-2 to
    i = 28, as in the Hubble Ultra Deep Field.
Redshifts
    ``p(z | i) ~ z^2 exp(-z / z0)``, ``z0 = 0.0417 i - 0.744`` (LSST Science Book eq. 3.8).
SEDs
    CWW templates E / Sbc / Scd / Im (15 / 30 / 30 / 25 per cent), normalised to the
    drawn i magnitude; all other band fluxes follow from the template at z.
Sizes
    Disk scale length ``r_d = exp(-1.145 - 0.269 (i - 23))`` arcsec, log-normal scatter
    0.3 (Miller et al. 2013, CFHTLenS); disk half-light radius ``1.678 r_d``; bulge
    half-light radius 0.6 times the disk's. Radii are circularised
    (``sqrt(a b)``), floored at 0.03 arcsec.
Morphology
    Exponential disk plus Sersic bulge (n in {2, 3, 4}); bulge fraction by template
    (E 0.6-1, Sbc 0.2-0.5, Scd 0-0.2, Im 0); ellipticities as reduced shear
    ``|g| = (a - b) / (a + b)`` with per-component sigma 0.25 (disk) and 0.1 (bulge),
    capped at 0.8; one position angle for both, deg east of north.
Stars
    Counts ``dN/dm = 300 10^(0.12 (r - 20))`` deg^-2 mag^-1 scaled by
    ``sin 45 deg / sin|b|`` (a rough high-latitude Milky Way; Bahcall & Soneira
    1980 in shape), black-body SEDs, a main-sequence absolute magnitude for the
    distance (parallax), and tangential velocities of a disk (sigma 35 km/s,
    d < 1.5 kpc) or halo (sigma 120 km/s) population for proper motions. Stellar
    positions are at epoch J2016.0 (Gaia DR3's).
Positions
    Uniform in the tangent plane of the field (no clustering).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from astropy.coordinates import SkyCoord

from jspdb.sim.bands import AB_NJY_ZP, all_bands, mag_to_njy
from jspdb.sim.seds import GALAXY_TEMPLATES, band_photometry, blackbody_flambda, galaxy_flambda
from jspdb.sim.spec import FieldSpec

__all__ = [
    "GALAXY_COUNT_ANCHOR",
    "REF_EPOCH",
    "expected_counts",
    "galaxy_counts",
    "make_truth",
    "star_counts",
    "tangent_to_sky",
    "sky_to_tangent",
]

#: Reference epoch of stellar positions (Julian year).
REF_EPOCH = 2016.0
#: Cumulative galaxy density at i < 25.3, per deg^2 (55 arcmin^-2).
GALAXY_COUNT_ANCHOR = 55.0 * 3600.0
_GAL_BREAK = 25.3
_GAL_SLOPE_BRIGHT = 0.31
_GAL_SLOPE_FAINT = 0.22
_GAL_A = GALAXY_COUNT_ANCHOR * _GAL_SLOPE_BRIGHT * np.log(10.0)
_GAL_BRIGHT = 18.0
_STAR_BRIGHT = 15.0


def galaxy_counts(mag: np.ndarray) -> np.ndarray:
    """Differential galaxy counts at LSST i magnitude ``mag``, per deg^2 per mag."""
    m = np.asarray(mag, dtype=float)
    slope = np.where(m < _GAL_BREAK, _GAL_SLOPE_BRIGHT, _GAL_SLOPE_FAINT)
    return _GAL_A * 10 ** (slope * (m - _GAL_BREAK))


def _latitude_factor(ra: float, dec: float) -> float:
    b = SkyCoord(ra=ra, dec=dec, unit="deg", frame="icrs").galactic.b.deg
    return float(np.sin(np.radians(45.0)) / np.sin(np.radians(max(abs(b), 10.0))))


def star_counts(mag: np.ndarray, ra: float, dec: float) -> np.ndarray:
    """Differential star counts at LSST r magnitude ``mag`` towards (ra, dec) deg, per deg^2 per mag."""
    m = np.asarray(mag, dtype=float)
    return 300.0 * 10 ** (0.12 * (m - 20.0)) * _latitude_factor(ra, dec)


def _integral(fn, lo: float, hi: float) -> float:
    grid = np.linspace(lo, hi, 2001)
    return float(np.trapezoid(fn(grid), grid))


def expected_counts(spec: FieldSpec) -> dict[str, float]:
    """Expected numbers of galaxies and stars (excluding the added bright stars) over the drawn area."""
    area = spec.area_deg2
    ngal = area * spec.density * _integral(galaxy_counts, _GAL_BRIGHT, spec.mag_limit)
    nstar = (
        area
        * spec.density
        * spec.star_density
        * _integral(lambda m: star_counts(m, spec.ra, spec.dec), _STAR_BRIGHT, spec.mag_limit)
    )
    return {"galaxy": ngal, "star": nstar}


def _sample_mags(rng: np.random.Generator, fn, lo: float, hi: float, n: int) -> np.ndarray:
    grid = np.linspace(lo, hi, 4001)
    pdf = fn(grid)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    return np.interp(rng.random(n), cdf, grid)


def tangent_to_sky(
    xi: np.ndarray, eta: np.ndarray, ra0: float, dec0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic deprojection: tangent-plane offsets (deg, xi east, eta north) to (ra, dec) deg."""
    x = np.radians(np.asarray(xi, dtype=float))
    y = np.radians(np.asarray(eta, dtype=float))
    a0, d0 = np.radians(ra0), np.radians(dec0)
    den = np.cos(d0) - y * np.sin(d0)
    ra = a0 + np.arctan2(x, den)
    dec = np.arctan2(np.sin(d0) + y * np.cos(d0), np.hypot(x, den))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def sky_to_tangent(
    ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic projection of (ra, dec) deg about (ra0, dec0): tangent-plane offsets (xi, eta), deg."""
    a = np.radians(np.asarray(ra, dtype=float))
    d = np.radians(np.asarray(dec, dtype=float))
    a0, d0 = np.radians(ra0), np.radians(dec0)
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return np.degrees(xi), np.degrees(eta)


def _shape(rng: np.random.Generator, sigma: float, n: int) -> np.ndarray:
    g = np.abs(rng.normal(0.0, sigma, size=(n, 2)))
    mod = np.hypot(g[:, 0], g[:, 1])
    return np.minimum(mod, 0.8)


_MS_TEFF = np.array([3200.0, 3500.0, 4000.0, 4500.0, 5000.0, 5800.0, 6500.0, 7500.0])
_MS_MR = np.array([12.5, 10.5, 8.5, 7.0, 5.9, 4.7, 3.8, 2.8])


def _stars(rng: np.random.Generator, spec: FieldSpec, n: int, bright: int) -> dict[str, np.ndarray]:
    mags = np.concatenate(
        [
            _sample_mags(
                rng, lambda m: star_counts(m, spec.ra, spec.dec), _STAR_BRIGHT, spec.mag_limit, n
            ),
            rng.uniform(13.0, 15.5, bright),
        ]
    )
    ntot = mags.size
    pop = rng.random(ntot)
    teff = np.where(
        pop < 0.6,
        rng.uniform(3200.0, 4000.0, ntot),
        np.where(pop < 0.9, rng.uniform(4000.0, 6000.0, ntot), rng.uniform(6000.0, 7500.0, ntot)),
    )
    abs_r = np.interp(teff, _MS_TEFF, _MS_MR)
    dist_pc = 10 ** ((mags - abs_r + 5.0) / 5.0)
    disk = dist_pc < 1500.0
    sigma_v = np.where(disk, 35.0, 120.0)
    v_ra = rng.normal(0.0, 1.0, ntot) * sigma_v - 15.0
    v_dec = rng.normal(0.0, 1.0, ntot) * sigma_v - 20.0
    d_kpc = dist_pc / 1000.0
    return {
        "mag": mags,
        "teff": teff,
        "parallax": 1.0 / d_kpc,
        "pmra": v_ra / (4.74047 * d_kpc),
        "pmdec": v_dec / (4.74047 * d_kpc),
    }


def make_truth(spec: FieldSpec) -> pa.Table:
    """Draw the true sky of a field.

    Parameters
    ----------
    spec
        The field request.

    Returns
    -------
    pyarrow.Table
        One row per source; the columns are described in ``docs/sim.md``. Positions
        (``ra``, ``dec``, deg) are at epoch J2016.0 for stars; ``pmra`` (mu_alpha*
        cos delta) and ``pmdec`` in mas/yr; ``parallax`` in mas; ``flux_<band>`` in
        nJy and ``leff_<band>`` in nm for every band of every survey; radii in
        arcsec; position angles in deg east of north.
    """
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1]))
    expect = expected_counts(spec)
    n_gal = int(rng.poisson(expect["galaxy"]))
    n_star = int(rng.poisson(expect["star"]))
    n_bright = spec.bright_stars
    half = 0.5 * spec.size_arcmin / 60.0 + spec.margin_arcsec / 3600.0
    bands = all_bands()
    names = [b.name for b in bands]
    i_index = names.index("lsst_i")
    r_index = names.index("lsst_r")

    # --- galaxies
    gmag = _sample_mags(rng, galaxy_counts, _GAL_BRIGHT, spec.mag_limit, n_gal)
    z0 = np.maximum(0.0417 * gmag - 0.744, 0.05)
    z = np.clip(rng.gamma(3.0, z0), 0.01, 4.0)
    template = rng.choice(len(GALAXY_TEMPLATES), size=n_gal, p=[0.15, 0.30, 0.30, 0.25])
    lo_bt = np.array([0.6, 0.2, 0.0, 0.0])[template]
    hi_bt = np.array([1.0, 0.5, 0.2, 0.0])[template]
    bulge_fraction = lo_bt + (hi_bt - lo_bt) * rng.random(n_gal)
    r_d = np.exp(-1.145 - 0.269 * (gmag - 23.0) + rng.normal(0.0, 0.3, n_gal))
    disk_hlr = np.maximum(1.678 * r_d, 0.03)
    bulge_hlr = np.maximum(0.6 * disk_hlr, 0.03)
    bulge_n = rng.choice(np.array([2.0, 3.0, 4.0]), size=n_gal, p=[0.25, 0.35, 0.40])
    disk_e = _shape(rng, 0.25, n_gal)
    bulge_e = _shape(rng, 0.10, n_gal)
    pa_deg = rng.uniform(0.0, 180.0, n_gal)
    g_xi = rng.uniform(-half, half, n_gal)
    g_eta = rng.uniform(-half, half, n_gal)
    if n_gal:
        gfnu, gleff, gg = band_photometry(galaxy_flambda(template, z), names, with_gaia=True)
        scale = mag_to_njy(gmag) / gfnu[:, i_index]
        gflux = gfnu * scale[:, None]
        g_gaia = AB_NJY_ZP - 2.5 * np.log10(gg * scale)
    else:
        gflux = gleff = np.zeros((0, len(names)))
        g_gaia = np.zeros(0)

    # --- stars
    st = _stars(rng, spec, n_star, n_bright)
    ns = st["mag"].size
    s_xi = rng.uniform(-half, half, ns)
    s_eta = rng.uniform(-half, half, ns)
    if ns:
        sfnu, sleff, sg = band_photometry(blackbody_flambda(st["teff"]), names, with_gaia=True)
        scale = mag_to_njy(st["mag"]) / sfnu[:, r_index]
        sflux = sfnu * scale[:, None]
        s_gaia = AB_NJY_ZP - 2.5 * np.log10(sg * scale)
    else:
        sflux = sleff = np.zeros((0, len(names)))
        s_gaia = np.zeros(0)

    xi = np.concatenate([s_xi, g_xi])
    eta = np.concatenate([s_eta, g_eta])
    ra, dec = tangent_to_sky(xi, eta, spec.ra, spec.dec)
    n = ns + n_gal
    nan_s = np.full(ns, np.nan)
    nan_g = np.full(n_gal, np.nan)
    cols: dict[str, pa.Array] = {
        "id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "kind": pa.array(["star"] * ns + ["galaxy"] * n_gal, type=pa.string()),
        "ra": pa.array(ra),
        "dec": pa.array(dec),
        "pmra": pa.array(np.concatenate([st["pmra"], np.zeros(n_gal)])),
        "pmdec": pa.array(np.concatenate([st["pmdec"], np.zeros(n_gal)])),
        "parallax": pa.array(np.concatenate([st["parallax"], np.zeros(n_gal)])),
        "ref_epoch": pa.array(np.full(n, REF_EPOCH)),
        "redshift": pa.array(np.concatenate([nan_s, z])),
        "sed": pa.array(["blackbody"] * ns + [GALAXY_TEMPLATES[t] for t in template], type=pa.string()),
        "teff": pa.array(np.concatenate([st["teff"], nan_g])),
        "gaia_g": pa.array(np.concatenate([s_gaia, g_gaia])),
        "bulge_fraction": pa.array(np.concatenate([nan_s, bulge_fraction])),
        "bulge_n": pa.array(np.concatenate([nan_s, bulge_n])),
        "bulge_hlr": pa.array(np.concatenate([nan_s, bulge_hlr])),
        "bulge_e": pa.array(np.concatenate([nan_s, bulge_e])),
        "disk_n": pa.array(np.concatenate([nan_s, np.ones(n_gal)])),
        "disk_hlr": pa.array(np.concatenate([nan_s, disk_hlr])),
        "disk_e": pa.array(np.concatenate([nan_s, disk_e])),
        "pa": pa.array(np.concatenate([nan_s, pa_deg])),
    }
    flux = np.concatenate([sflux, gflux])
    leff = np.concatenate([sleff, gleff])
    for k, name in enumerate(names):
        cols[f"flux_{name}"] = pa.array(flux[:, k])
    for k, name in enumerate(names):
        cols[f"leff_{name}"] = pa.array(leff[:, k])
    return pa.table(cols)
