"""Zero points: synthetic arrays with a known answer, then the simulator's truth (rich field)."""

from __future__ import annotations

import numpy as np
import pytest

from jspdb.concordance.photometry import fit_zeropoint
from jspdb.concordance.tie import tie_zeropoints


def _stars(n, zp, k=0.0, seed=0, outliers=0):
    rng = np.random.default_rng(seed)
    mag = rng.uniform(17, 20, n)
    colour = rng.normal(1.0, 0.4, n)
    merr = np.full(n, 0.01)
    true_flux = 10 ** (-0.4 * (mag - zp - k * (colour - np.median(colour))))
    ferr = 0.01 * true_flux
    flux = true_flux * (1 + rng.normal(0, 0.01, n)) * 10 ** (-0.4 * rng.normal(0, 0.01, n))
    flux[:outliers] *= 3.0  # blended with a neighbour
    return flux, ferr, mag, merr, colour


def test_zero_point_recovered_within_its_error():
    errs = []
    for seed in range(40):
        flux, ferr, mag, merr, _ = _stars(50, 27.3, seed=seed, outliers=3)
        zp = fit_zeropoint(flux, ferr, mag, merr)
        assert zp.n_rejected >= 3
        errs.append((zp.zeropoint_mag - 27.3) / zp.zeropoint_err_mag)
    errs = np.array(errs)
    # pulls: unbiased and of unit width (the reported error is honest)
    assert abs(errs.mean()) < 0.4
    assert 0.6 < errs.std() < 1.5


def test_colour_term_recovered():
    flux, ferr, mag, merr, colour = _stars(200, 25.0, k=0.05, seed=1)
    zp = fit_zeropoint(flux, ferr, mag, merr, colour=colour)
    assert zp.colour_fitted
    assert zp.colour_term == pytest.approx(0.05, abs=0.01)
    assert zp.zeropoint_mag == pytest.approx(25.0, abs=0.005)


def test_colour_term_fixed_when_stars_are_few():
    flux, ferr, mag, merr, colour = _stars(8, 25.0, seed=2)
    zp = fit_zeropoint(flux, ferr, mag, merr, colour=colour, fixed_colour_term=0.02)
    assert not zp.colour_fitted and zp.colour_term == 0.02


def test_too_few_stars():
    with pytest.raises(ValueError, match="too few usable reference stars"):
        fit_zeropoint(np.array([1.0, -1.0]), np.ones(2), np.ones(2), np.ones(2))


def test_tie_brings_images_to_one_scale():
    """Synthetic: 5 images, reference zero points off by 20 mmag, 300 common stars at 2 mmag."""
    rng = np.random.default_rng(5)
    true = 27.0 + rng.normal(0, 0.05, 5)
    ref_zp = true + rng.normal(0, 0.02, 5)
    mags = rng.uniform(18, 22, 300)
    fluxes = {}
    for i in range(5):
        ids = np.flatnonzero(rng.random(300) < 0.7)
        f = 10 ** (-0.4 * (mags[ids] - true[i])) * (1 + rng.normal(0, 0.002, ids.size))
        fluxes[i] = (ids, f, 0.002 * f)
    tie = tie_zeropoints(dict(enumerate(ref_zp)), {i: 0.02 for i in range(5)}, fluxes)
    tied = np.array([tie.zeropoint_mag[i] for i in range(5)])
    # differences between images now come from the common stars (a few 0.1 mmag) ...
    assert np.std((tied - true) - np.mean(tied - true)) < 0.001
    # ... and the common scale is the mean of the reference zero points (error 0.02 / sqrt(5))
    assert abs(np.mean(tied - true)) < 3 * 0.02 / np.sqrt(5)
    assert tie.residual_rms_mag < 0.003
    assert tie.zeropoint_err_mag[0] == pytest.approx(0.02 / np.sqrt(5), rel=0.2)


# -- against the simulator's truth ----------------------------------------------------------------------------


def _zp_rows(field, solutions):
    rows = []
    for im in field.images:
        _, p = solutions[im.image_id]
        rows.append((im.image_id, im.survey, p.zeropoint_mag - im.zp_true, p.zeropoint_err_mag, p))
    return rows


def test_zero_points_against_truth(rich_field, rich_solutions):
    """Honest figures: see docs/concordance.md for why the 5 mmag target is missed."""
    rows = _zp_rows(rich_field, rich_solutions)
    by = {}
    for image_id, survey, d, err, p in rows:
        print(f"{image_id:16s} zp - true {1000 * d:7.1f} +- {1000 * err:5.1f} mmag  apcorr {1000 * p.apcorr_mag:6.1f}"
              f" (PSF model EE {p.psf_ee_total:.4f})  n={p.zeropoint.n_stars}")
        by.setdefault(survey, []).append(d)
        # no gross failure: within 4 sigma of its own error plus 5 mmag (aperture-correction noise)
        assert abs(d) < 4 * err + 0.005, (image_id, d, err)
    rms = {s: float(np.sqrt(np.mean(np.square(v)))) for s, v in by.items()}
    mean = {s: float(np.mean(v)) for s, v in by.items()}
    print("rms", {s: round(1000 * v, 1) for s, v in rms.items()}, "mean", {s: round(1000 * v, 1) for s, v in mean.items()})
    # each image's own zero point, from the reference alone (target 5 mmag, missed): LSST 6.8, Euclid 29,
    # Roman 87 mmag rms; test_zero_points_carried_from_the_ground_survey gives the tied ones
    assert rms["lsst"] < 0.009
    assert rms["euclid"] < 0.045
    assert rms["roman"] < 0.105
    # the PSF-wing bias is gone: LSST's 12 images average to 0.8 mmag (was -7.8 with the wings missed)
    assert abs(mean["lsst"]) < 0.004


def test_psf_model_ee_against_the_simulators_psf(rich_field, rich_solutions):
    """The encircled energy at the total radius vs the same measure of the simulator's own PSF (image centre).

    Space: the models share the optics (docs/concordance.md), so this checks the drawing and the
    band wavelength only; ground: the Kolmogorov matched to the image's measured FWHM.
    """
    from jspdb.concordance.psf_ee import encircled_energy_profile
    from jspdb.sim.bands import get_band

    worst = {}
    for im in rich_field.images:
        _, p = rich_solutions[im.image_id]
        n = im.psf.nx
        true = encircled_energy_profile(im.psf.profile(0.5 * (n + 1), 0.5 * (n + 1)), get_band(im.band).pixel_scale,
                                        p.total_radius_px)[0]
        dmag = 2.5 * np.log10(p.psf_ee_total / true)
        print(f"{im.image_id:16s} EE model {p.psf_ee_total:.4f}  simulator {true:.4f}  {1000 * dmag:+5.2f} mmag")
        worst[im.survey] = max(worst.get(im.survey, 0.0), abs(dmag))
        assert 0.94 < p.psf_ee_total < 0.995
    print({s: round(1000 * v, 2) for s, v in worst.items()})
    assert worst["lsst"] < 0.001  # 0.4 mmag measured
    assert worst["euclid"] < 0.0005 and worst["roman"] < 0.0005  # < 0.1 mmag measured (shared optics)


def test_tie_across_lsst_epochs_against_truth(rich_field, rich_solutions):
    """Two epochs per LSST band tied on their common reference stars: zero-point differences vs truth."""
    errs, internal = [], []
    bands = sorted({im.band for im in rich_field.images if im.survey == "lsst"})
    for band in bands:
        ims = [im for im in rich_field.images if im.band == band]
        zps, zperr, fluxes = {}, {}, {}
        for im in ims:
            a, p = rich_solutions[im.image_id]
            zps[im.image_id], zperr[im.image_id] = p.zeropoint_mag, p.zeropoint_err_mag
            fluxes[im.image_id] = (a.ref_index, p.flux, p.flux_err)
        tie = tie_zeropoints(zps, zperr, fluxes)
        d_fit = tie.zeropoint_mag[ims[0].image_id] - tie.zeropoint_mag[ims[1].image_id]
        d_true = ims[0].zp_true - ims[1].zp_true
        errs.append(d_fit - d_true)
        internal.append(tie.residual_rms_mag)
        print(f"{band}: tied difference - true {1000 * (d_fit - d_true):6.1f} mmag, star residual rms "
              f"{1000 * tie.residual_rms_mag:5.1f} mmag, n={tie.n_stars}")
    rms = float(np.sqrt(np.mean(np.square(errs))))
    print(f"tie vs truth rms {1000 * rms:.1f} mmag over {len(errs)} bands")
    assert rms < 0.005  # target met: 2.7 mmag
    assert max(internal) < 0.005  # star-by-star residual after the tie


def test_qa_plots(rich_field, rich_solutions, tmp_path):
    from jspdb.concordance.qa import plot_astrometric_residuals, plot_zeropoint_residuals

    im = rich_field.images[4]
    a, p = rich_solutions[im.image_id]
    out = plot_astrometric_residuals(a.x, a.y, a.residuals_mas[:, 0], a.residuals_mas[:, 1], tmp_path / "astrom.png",
                                     shape=im.shape, used=a.fit.used, title=im.image_id)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    zp = p.zeropoint
    mag = rich_field.reference.column(f"mag_{im.band}").to_numpy()[a.ref_index]
    err = rich_field.reference.column(f"magerr_{im.band}").to_numpy()[a.ref_index]
    resid = mag + 2.5 * np.log10(p.flux) - zp.zeropoint_mag
    out = plot_zeropoint_residuals(p.colour, resid, err, tmp_path / "zp.png", colour_term=zp.colour_term,
                                   colour_pivot=zp.colour_pivot, used=zp.used, colour_name=p.colour_ref)
    assert out.stat().st_size > 1000


def _carried(rich_field, rich_solutions):
    """The tile-step recipe on the rich field: LSST tied per band, zero points carried to Euclid and Roman."""
    from jspdb.concordance.transfer import ImagePhotometry, combine, cross_survey_zeropoints
    from jspdb.sim.bands import all_bands

    ref = rich_field.reference
    sims = {im.image_id: im for im in rich_field.images}
    own = {k: (p.zeropoint_mag, p.zeropoint_err_mag) for k, (_, p) in rich_solutions.items()}
    final = dict(own)
    for band in {im.band for im in rich_field.images if im.survey == "lsst"}:
        ks = [k for k, im in sims.items() if im.band == band]
        t = tie_zeropoints({k: own[k][0] for k in ks}, {k: own[k][1] for k in ks},
                           {k: (rich_solutions[k][0].ref_index, rich_solutions[k][1].flux,
                                rich_solutions[k][1].flux_err) for k in ks})
        final.update({k: (t.zeropoint_mag[k], t.zeropoint_err_mag[k]) for k in ks})
    scale_err = {k: 0.0 if p.psf is None else p.psf.to_total_err_mag for k, (_, p) in rich_solutions.items()}
    images = {k: ImagePhotometry(survey=sims[k].survey, band=sims[k].band, wl_nm=sims[k].band_info.wl_eff,
                                 zeropoint_mag=final[k][0], zeropoint_err_mag=float(np.hypot(final[k][1], scale_err[k])),
                                 colour_term=p.zeropoint.colour_term or 0.0, source_id=a.ref_index,
                                 flux=p.flux if p.psf is None else p.psf.flux,  # as the tie step
                                 flux_err=p.flux_err if p.psf is None else p.psf.flux_err, colour=p.colour)
              for k, (a, p) in rich_solutions.items()}
    reference = {b.name: (np.arange(ref.num_rows), ref.column(f"mag_{b.name}").to_numpy(),
                          ref.column(f"magerr_{b.name}").to_numpy()) for b in all_bands()}
    carried = cross_survey_zeropoints(images, reference, {b.name: b.wl_eff for b in all_bands()})
    for k, t in carried.items():
        assert not isinstance(t, str), (k, t)  # the rich field has enough precise stars everywhere
        final[k] = combine(*own[k], t.zeropoint_mag, float(np.hypot(t.zeropoint_err_mag, scale_err[k])))
    return sims, own, carried, final


def test_zero_points_carried_from_the_ground_survey(rich_field, rich_solutions):
    """Euclid and Roman zero points through LSST's measurements of their stars, against the truth.

    The reference alone leaves them at 29 and 87 mmag rms (its precise stars saturate in space);
    carried from LSST with forced PSF fluxes they are 7.1 and 6.5 mmag, each image within 3 sigma
    of its reported error. On this 1' field 10-15 stars per image carry a transfer, and the
    reported errors (9-15 mmag per image) say that 5 mmag is out of reach here; on the 3' field of
    bench/bench_concordance.py the same chain gives 5.0 and 3.3 mmag (docs/concordance.md).
    """
    sims, own, carried, final = _carried(rich_field, rich_solutions)
    by, by_own = {}, {}
    for k, im in sims.items():
        d = final[k][0] - im.zp_true
        line = f"{k:16s} own {1000 * (own[k][0] - im.zp_true):7.1f} +- {1000 * own[k][1]:5.1f}"
        if k in carried:
            t = carried[k]
            tr = t.transformation
            line += (f"  carried {1000 * (t.zeropoint_mag - im.zp_true):6.1f} +- {1000 * t.zeropoint_err_mag:5.1f}"
                     f" n={t.n_stars:2d} [{tr.base} on {tr.blue}-{tr.red}, {tr.n_stars} stars]")
            assert abs(d) < 3 * final[k][1], (k, d, final[k][1])
        print(f"{line}  final {1000 * d:6.1f} +- {1000 * final[k][1]:5.1f} mmag")
        by.setdefault(im.survey, []).append(d)
        by_own.setdefault(im.survey, []).append(own[k][0] - im.zp_true)
    rms = {s: 1000 * float(np.sqrt(np.mean(np.square(v)))) for s, v in by.items()}
    rms_own = {s: 1000 * float(np.sqrt(np.mean(np.square(v)))) for s, v in by_own.items()}
    mean = {s: 1000 * float(np.mean(v)) for s, v in by.items()}
    print("rms mmag: own", {s: round(v, 1) for s, v in rms_own.items()}, "final", {s: round(v, 1) for s, v in rms.items()})
    print("survey mean offset mmag", {s: round(v, 1) for s, v in mean.items()})
    assert rms["euclid"] < 10.0 and rms["roman"] < 10.0, rms  # measured 7.1 and 6.5
    for s in ("euclid", "roman"):
        assert rms[s] < rms_own[s] / 2.5, (s, rms, rms_own)
    # the cross-survey tie: each survey's scale against LSST's (mean over its images): measured -1.4 (Euclid)
    # and +1.4 (Roman) mmag, target 5; each mean is known to ~5 mmag here, so the test allows 8
    assert max(abs(mean[s] - mean["lsst"]) for s in ("euclid", "roman")) < 8.0, mean


def test_transformation_recovers_a_known_relation():
    """Synthetic stars on a quadratic colour relation, with noisy faint stars that must not flatten it."""
    from jspdb.concordance.transfer import fit_transformation, transfer_zeropoint

    rng = np.random.default_rng(5)
    n = 200
    colour = rng.uniform(0.0, 2.0, n)
    err = np.where(np.arange(n) < 30, 0.01, 0.3)  # 30 precise (bright) stars, the rest faint
    truth = lambda c: 0.1 - 0.4 * c + 0.05 * c**2  # noqa: E731
    base = rng.uniform(16, 21, n)
    target = base + truth(colour)
    t = fit_transformation(target + rng.normal(0, err), err, base, 0 * err, colour + rng.normal(0, err) * 1.4,
                           err * 1.4)
    assert t.n_stars >= 28 and len(t.coeffs) == 3
    grid = np.linspace(0, 2, 9)
    assert np.max(np.abs(t(grid) - truth(grid))) < 0.02
    assert t.error(1.0) < 0.01
    # a target image with zero point 27.3 seen through the relation
    flux = 10 ** (-0.4 * (target[30:60] - 27.3))
    zp = transfer_zeropoint(flux, flux * 0.005, base[30:60], np.full(30, 0.005), colour[30:60], np.full(30, 0.005), t)
    assert abs(zp.zeropoint_mag - 27.3) < 3 * zp.zeropoint_err_mag and zp.zeropoint_err_mag < 0.02


def test_transformation_refuses_too_few_precise_stars():
    from jspdb.concordance.transfer import fit_transformation

    c = np.linspace(0, 1, 20)
    err = np.where(np.arange(20) < 4, 0.01, 0.2)
    with pytest.raises(ValueError, match="too few stars for a colour transformation: 4"):
        fit_transformation(c, err, 0 * c, 0 * c, c, err)


def test_reference_information_floor(rich_field, rich_solutions):
    """How well could any method do from the reference alone? The floor per image, and LSST at it.

    Floor: inverse-variance sum of the synthetic-magnitude errors of every
    reference star on the image that does not saturate (true PSF peak below
    0.8 of saturation), as if its photometry were perfect.
    """
    ref = rich_field.reference
    rows = {v: k for k, v in enumerate(rich_field.truth.column("id").to_numpy())}
    truth_rows = np.array([rows[t] for t in ref.column("truth_id").to_numpy()])
    ra, dec = ref.column("ra").to_numpy(), ref.column("dec").to_numpy()
    floor, own = {}, {}
    for im in rich_field.images:
        x, y = im.wcs_true.all_world2pix(ra, dec, 0)
        inside = (x > 5) & (y > 5) & (x < im.shape[1] - 6) & (y < im.shape[0] - 6)
        counts = im.njy_to_units(rich_field.truth.column(f"flux_{im.band}").to_numpy()[truth_rows])
        peak_frac = im.psf.profile(im.shape[1] / 2, im.shape[0] / 2).drawImage(
            nx=31, ny=31, scale=im.band_info.pixel_scale).array.max()
        usable = inside & (counts * peak_frac + im.sky_level < 0.8 * im.saturation)
        err = ref.column(f"magerr_{im.band}").to_numpy()[usable]
        floor.setdefault(im.survey, []).append(1.0 / np.sqrt(np.sum(1.0 / err**2)))
        own.setdefault(im.survey, []).append(rich_solutions[im.image_id][1].zeropoint_mag - im.zp_true)
    rms = {s: 1000 * float(np.sqrt(np.mean(np.square(v)))) for s, v in floor.items()}
    got = {s: 1000 * float(np.sqrt(np.mean(np.square(v)))) for s, v in own.items()}
    print("reference-only floor, rms over images (mmag):", {s: round(v, 1) for s, v in rms.items()},
          "achieved:", {s: round(v, 1) for s, v in got.items()})
    assert rms["euclid"] > 10 and rms["roman"] > 25  # why space needs the transfer from the ground
    assert got["lsst"] < 1.5 * rms["lsst"]  # LSST's own zero points are at the floor


def test_aperture_fluxes_of_isolated_stars_against_the_drawn_flux():
    """Stars drawn by GalSim on a flat sky: 2-FWHM apertures hold the PSF's encircled energy.

    sep's background mesh takes ~0.1 % of the stars' wings with it (the mechanism that biases faint stars in
    crowded fields); the scatter about the mean is the noise the errors report.
    """
    import galsim

    from jspdb.concordance.photometry import aperture_fluxes
    from jspdb.concordance.psf_ee import encircled_energy_profile

    rng = np.random.default_rng(21)
    psf, scale, flux = galsim.Kolmogorov(fwhm=0.8), 0.2, 1e5
    img = galsim.ImageD(256, 256, scale=scale)
    xs, ys = [], []
    for x in range(24, 240, 48):
        for y in range(24, 240, 48):
            dx, dy = rng.uniform(-0.5, 0.5, 2)
            stamp = (psf * flux).drawImage(scale=scale, nx=41, ny=41, offset=(dx, dy))
            stamp.setCenter(x + 1, y + 1)
            img[stamp.bounds] += stamp
            xs.append(x + dx)
            ys.append(y + dy)
    data = img.array + rng.normal(0.0, 2.0, img.array.shape)
    f, fe, clean = aperture_fluxes(data, np.full(data.shape, 4.0), np.zeros(data.shape, np.int32), xs, ys, 8.0,
                                   mask_neighbours=True)
    ee = encircled_energy_profile(psf, scale, [8.0])[0]
    assert clean.all()
    z = (f - flux * ee) / fe
    assert abs(np.mean(f) / (flux * ee) - 1.0) < 3e-3
    assert 0.6 < np.std(z) < 1.5
