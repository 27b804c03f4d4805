"""Where the faint-star bias of ground aperture photometry in crowded fields comes from, against truth.

The concordance measures each star in a 2-FWHM aperture with the pixels of
other detected sources masked, after subtracting sep's background mesh
(`jspdb.concordance.photometry.aperture_fluxes`). On the star-rich accuracy
fields the faint stars come out fainter than the bright ones (docs/concordance.md,
"Why the misses"). This probe measures the same apertures, with the same
neighbour masks, on three backgrounds:

- ``mesh``: sep's 64x64-pixel mesh on the image, as the pipeline does;
- ``true``: none (the simulator subtracted the true sky: the truth is 0);
- ``masked-mesh``: sep's mesh with the detected sources (grown 4 px) masked.

and prints, per LSST band and true AB magnitude bin, the median of
(measured aperture magnitude - true magnitude) relative to the bright bin,
in mmag (positive: measured too faint). The stars are those the pipeline
could detect on their own: no true source within 1 FWHM brighter than half
the star, a segment of its own centred on it, not saturated, true S/N > 20,
aperture clean of neighbour pixels.

Run::

    .venv/bin/python bench/probe_crowding.py --size-arcmin 2
"""

from __future__ import annotations

import argparse

import numpy as np
import sep
from scipy.ndimage import binary_dilation, center_of_mass
from scipy.spatial import cKDTree

from jspdb.concordance.photometry import _masked_sum, _neighbour_masks, _planes
from jspdb.sim.bands import AB_NJY_ZP
from jspdb.sim.field import simulate_field
from jspdb.sim.spec import FieldSpec

BINS = (14.0, 19.0, 20.0, 21.0, 22.0)  # true AB magnitude in the image's band; the first bin is the reference


def backgrounds(science, variance, mask) -> dict[str, tuple]:
    """(data, err, bad) with each background subtracted."""
    sci, err, bad = _planes(science, variance, mask)
    mesh = sep.Background(sci, mask=bad, bw=64, bh=64).back()
    _, seg = sep.extract(sci - mesh, 1.5, err=err, mask=bad, minarea=3, segmentation_map=True)
    masked = sep.Background(sci, mask=bad | binary_dilation(seg > 0, iterations=4), bw=64, bh=64).back()
    return {"mesh": (np.ascontiguousarray(sci - mesh), err, bad), "true": (sci, err, bad),
            "masked-mesh": (np.ascontiguousarray(sci - masked), err, bad)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-arcmin", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--star-density", type=float, default=150.0)
    args = ap.parse_args()
    field = simulate_field(FieldSpec(ra=150.1, dec=2.2, size_arcmin=args.size_arcmin, seed=args.seed,
                                     star_density=args.star_density, lsst_epochs=1, surveys=("lsst",)), workers=2)
    t = field.truth
    star = np.array([k == "star" for k in t.column("kind").to_pylist()])
    ra, dec = t.column("ra").to_numpy(), t.column("dec").to_numpy()
    pmra, pmdec = np.nan_to_num(t.column("pmra").to_numpy()), np.nan_to_num(t.column("pmdec").to_numpy())
    epoch = np.nan_to_num(t.column("ref_epoch").to_numpy(), nan=2016.0)
    print(f"{args.size_arcmin:g}'x{args.size_arcmin:g}' field, seed {args.seed}, star density x{args.star_density:g}; "
          f"median (aperture mag - true mag) minus that of the {BINS[0]:g}-{BINS[1]:g} bin, mmag (stars)")
    header = " ".join(f"{lo:g}-{hi:g}".rjust(12) for lo, hi in zip(BINS[1:-1], BINS[2:], strict=True))
    print(f"{'band':8s} {'background':12s} {header}")
    for im in field.images:
        flux_njy = t.column(f"flux_{im.band}").to_numpy()
        dt = 2000.0 + (im.mjd - 51544.5) / 365.25 - epoch
        x, y = im.wcs_true.all_world2pix(ra + pmra * dt / 3.6e6 / np.cos(np.radians(dec)), dec + pmdec * dt / 3.6e6, 0)
        fwhm_px = im.psf.fwhm_ref / 0.2
        # detectable on its own: no true source within 1 FWHM brighter than half the star
        tree = cKDTree(np.c_[x, y])
        alone = np.array([all(j == i or flux_njy[j] < 0.5 * flux_njy[i] for j in tree.query_ball_point((x[i], y[i]),
                                                                                                      fwhm_px))
                          for i in range(len(x))])
        ny, nx = im.science.shape
        m_true = AB_NJY_ZP - 2.5 * np.log10(flux_njy)
        counts = flux_njy / 10 ** (-0.4 * (im.zp_true - AB_NJY_ZP))
        peak = counts / (2 * np.pi * (fwhm_px / 2.355) ** 2)
        use = star & alone & (x > 20) & (x < nx - 21) & (y > 20) & (y < ny - 21) & (m_true < BINS[-1]) & (
            peak < 0.8 * im.saturation)
        xs, ys, ms, cs = x[use], y[use], m_true[use], counts[use]
        r_ap = max(2.0 * fwhm_px, 3.0)
        for name, (data, err, bad) in backgrounds(im.science, im.variance, im.mask).items():
            seg, sid = _neighbour_masks(data, err, bad, xs, ys)
            flux, ferr, clean = _masked_sum(data, err, bad, seg, sid, xs, ys, r_ap, 1)
            res = 1000 * -2.5 * np.log10(np.where(flux > 0, flux, np.nan) / cs)
            # its own segment, centred on it (else the pipeline would not match a detection to it)
            own = sid > 0
            cy, cx = (np.array(c) for c in zip(*center_of_mass(np.clip(data, 0, None), seg, sid[own]), strict=True))
            centred = np.zeros(len(xs), bool)
            centred[own] = np.hypot(cx - xs[own], cy - ys[own]) < 0.5 * fwhm_px
            # S/N from the true flux: a cut on the measured flux would favour stars measured too bright
            ok = clean & centred & (cs > 20 * ferr)
            sel = [ok & (ms >= lo) & (ms < hi) for lo, hi in zip(BINS[:-1], BINS[1:], strict=True)]
            med = [(float(np.nanmedian(res[b])) if b.sum() >= 3 else np.nan, int(b.sum())) for b in sel]
            ref = med[0][0]
            print(f"{im.band:8s} {name:12s} " + " ".join(
                (f"{m - ref:+7.1f} ({n:3d})" if n >= 3 else "    -       ") for m, n in med[1:]), flush=True)


if __name__ == "__main__":
    main()
