"""A Gaia-like reference catalog drawn from the truth: astrometry and synthetic photometry with errors.

Errors follow Gaia DR3 as a function of G (Lindegren et al. 2021, A&A 649, A2;
Gaia Collaboration, Vallenari et al. 2023): position at epoch 2016.0 0.01 mas at
G < 15, 0.05 mas at G = 17, 0.4 mas at G = 20, 1.0 mas at G = 21; parallax 0.02,
0.07, 0.5, 1.3 mas; proper motion 0.02, 0.07, 0.5, 1.4 mas/yr. Synthetic
magnitudes in every survey band (as Gaia XP synthetic photometry provides;
Gaia Collaboration, Montegriffo et al. 2023) get an error
``0.005 + 0.003 * 10^(0.4 (G - 15))`` mag (three times larger in LSST u);
XP spectra exist only for G < 17.65, flagged by ``has_xp``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from jspdb.sim.bands import all_bands, njy_to_mag

__all__ = ["REF_G_LIMIT", "SOURCE_ID_OFFSET", "XP_G_LIMIT", "gaia_errors", "make_reference"]

#: Faintest G magnitude in the reference catalog.
REF_G_LIMIT = 21.0
#: Faintest G magnitude with XP spectra (synthetic photometry).
XP_G_LIMIT = 17.65
#: A reference star's ``source_id`` is its truth ``id`` plus this (Gaia-like 64-bit ids).
SOURCE_ID_OFFSET = 10**15

_G = np.array([10.0, 15.0, 17.0, 20.0, 21.0])
_POS = np.array([0.01, 0.013, 0.05, 0.4, 1.0])
_PLX = np.array([0.02, 0.025, 0.07, 0.5, 1.3])
_PM = np.array([0.02, 0.025, 0.07, 0.5, 1.4])


def gaia_errors(g: np.ndarray) -> dict[str, np.ndarray]:
    """Gaia DR3-like 1-sigma errors at G magnitude ``g``.

    Returns
    -------
    dict
        ``pos`` (mas, per coordinate at epoch 2016.0), ``parallax`` (mas),
        ``pm`` (mas/yr, per component), ``phot`` (mag, synthetic photometry).
    """
    g = np.asarray(g, dtype=float)

    def logi(table: np.ndarray) -> np.ndarray:
        return 10 ** np.interp(g, _G, np.log10(table), left=np.log10(table[0]))

    return {
        "pos": logi(_POS),
        "parallax": logi(_PLX),
        "pm": logi(_PM),
        "phot": 0.005 + 0.003 * 10 ** (0.4 * (g - 15.0)),
    }


def make_reference(truth: pa.Table, seed: int) -> pa.Table:
    """Observe the truth's stars as Gaia would.

    Parameters
    ----------
    truth
        Truth catalog from `jspdb.sim.sky.make_truth`.
    seed
        Random seed of the field.

    Returns
    -------
    pyarrow.Table
        Gaia-like columns: ``source_id``, ``ra``/``dec`` (deg, epoch ``ref_epoch``),
        ``ra_error``/``dec_error`` (mas), ``parallax``/``parallax_error`` (mas),
        ``pmra``/``pmra_error``/``pmdec``/``pmdec_error`` (mas/yr),
        ``phot_g_mean_mag`` (AB-like G, mag), ``has_xp``, ``mag_<band>``/``magerr_<band>``
        (AB mag) for every band, and ``truth_id`` (simulation only: the truth row).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    kind = truth.column("kind").to_numpy(zero_copy_only=False)
    g_all = truth.column("gaia_g").to_numpy()
    sel = np.flatnonzero((kind == "star") & (g_all < REF_G_LIMIT))
    n = sel.size
    g_true = g_all[sel]
    err = gaia_errors(g_true)
    dec_true = truth.column("dec").to_numpy()[sel]
    cosd = np.cos(np.radians(dec_true))
    dra_mas = rng.normal(0.0, 1.0, n) * err["pos"]
    ddec_mas = rng.normal(0.0, 1.0, n) * err["pos"]
    cols: dict[str, pa.Array] = {
        "source_id": pa.array(np.asarray(truth.column("id").to_numpy()[sel], dtype=np.int64) + SOURCE_ID_OFFSET),
        "ref_epoch": pa.array(np.full(n, 2016.0)),
        "ra": pa.array(truth.column("ra").to_numpy()[sel] + dra_mas / 3.6e6 / cosd),
        "ra_error": pa.array(err["pos"]),
        "dec": pa.array(dec_true + ddec_mas / 3.6e6),
        "dec_error": pa.array(err["pos"]),
        "parallax": pa.array(truth.column("parallax").to_numpy()[sel] + rng.normal(0.0, 1.0, n) * err["parallax"]),
        "parallax_error": pa.array(err["parallax"]),
        "pmra": pa.array(truth.column("pmra").to_numpy()[sel] + rng.normal(0.0, 1.0, n) * err["pm"]),
        "pmra_error": pa.array(err["pm"]),
        "pmdec": pa.array(truth.column("pmdec").to_numpy()[sel] + rng.normal(0.0, 1.0, n) * err["pm"]),
        "pmdec_error": pa.array(err["pm"]),
        "phot_g_mean_mag": pa.array(g_true + rng.normal(0.0, 1.0, n) * 0.3 * err["phot"]),
        "has_xp": pa.array(g_true < XP_G_LIMIT),
    }
    for band in all_bands():
        mag_true = njy_to_mag(truth.column(f"flux_{band.name}").to_numpy()[sel])
        sigma = err["phot"] * (3.0 if band.name == "lsst_u" else 1.0)
        cols[f"mag_{band.name}"] = pa.array(mag_true + rng.normal(0.0, 1.0, n) * sigma)
        cols[f"magerr_{band.name}"] = pa.array(sigma)
    cols["truth_id"] = pa.array(np.asarray(truth.column("id").to_numpy()[sel], dtype=np.int64))
    return pa.table(cols)
