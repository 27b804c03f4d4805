"""Star widths match the intended seeing / optics per image; the colour dependence has the right sign."""

from __future__ import annotations

import galsim
import numpy as np
import pytest
from sim_helpers import isolated_stars, truth_pixels

from jspdb.sim.inject import inject_sources
from jspdb.sim.psf import measure_fwhm

# Well-sampled images only: HSM moments need a PSF wider than ~1.5 pixels, which
# Roman (0.11"/pix) and Euclid NISP (0.3"/pix) are not (they are undersampled by design).
SAMPLED = ["lsst_u", "lsst_g", "lsst_r", "lsst_i", "lsst_z", "lsst_y", "euclid_vis"]


def _stamp(arr, x, y, half):
    ix, iy = int(round(x)) - 1, int(round(y)) - 1
    return arr[iy - half: iy + half + 1, ix - half: ix + half + 1]


def _model_fwhm(image, x, y, leff, half):
    """FWHM of the image's intended PSF, drawn with the pixel at the star's sub-pixel phase."""
    scale = image.band_info.pixel_scale
    dx, dy = x - round(x), y - round(y)
    img = image.psf.profile(x, y, leff).drawImage(
        nx=2 * half + 1, ny=2 * half + 1, scale=scale, offset=galsim.PositionD(dx, dy)
    )
    return measure_fwhm(img.array, scale)


@pytest.mark.parametrize("band", SAMPLED)
def test_star_fwhm_matches_intended_psf(field, band):
    ratios = []
    for image in [im for im in field.images if im.band == band]:
        fwhm0 = image.systematics["psf_fwhm_arcsec"]
        if image.psf.ground:
            # the intended seeing is the model's FWHM at the image centre (to the few per
            # cent that the PSF's shear there, |g| <~ 0.03, changes a measured FWHM)
            assert image.systematics["seeing_fwhm_arcsec"] == pytest.approx(fwhm0, rel=0.03)
            assert 0.6 <= image.systematics["seeing_fwhm_arcsec"] <= 1.0
        else:
            assert fwhm0 == pytest.approx(0.17, rel=0.1)  # Euclid VIS ~0.17"
        half = int(np.ceil(2.5 * fwhm0 / image.band_info.pixel_scale))
        for star in isolated_stars(field, image, 2.0 * fwhm0, min_snr=50.0):
            measured = measure_fwhm(_stamp(image.science, star["x"], star["y"], half),
                                    image.band_info.pixel_scale)
            expected = _model_fwhm(image, star["x"], star["y"], star["leff"], half)
            assert measured == pytest.approx(expected, rel=0.10), image.image_id
            ratios.append(measured / expected)
    assert len(ratios) >= 3, f"only {len(ratios)} bright isolated stars in {band}"
    assert np.median(ratios) == pytest.approx(1.0, abs=0.03)


def _moment_width(psf, x, y):
    """Adaptive-moment width (arcsec) of the PSF without pixel: invariant under its shear."""
    img = psf.profile(x, y).drawImage(nx=256, ny=256, scale=0.01, method="no_pixel")
    return measure_fwhm(img.array, 0.01)


def test_psf_varies_across_the_field(field):
    for image in (field.image("lsst_r_e00"), field.image("euclid_vis_e00")):
        ny, nx = image.shape
        corners = [(1, 1), (nx, 1), (1, ny), (nx, ny)]
        centre = _moment_width(image.psf, (nx + 1) / 2, (ny + 1) / 2)
        widths = np.array([_moment_width(image.psf, x, y) for x, y in corners])
        assert widths.max() - widths.min() > 0.005 * centre
        # the widths follow the injected dilation
        dil = np.array([image.psf.field_factors(x, y)[0] for x, y in corners])
        assert np.allclose(widths / centre, dil, rtol=0.005)


@pytest.mark.parametrize("band,blue_wider", [("lsst_g", True), ("lsst_r", True), ("euclid_vis", False)])
def test_psf_colour_dependence_sign(field, band, blue_wider):
    """Inject the bluest and the reddest star of the field at the same spot of an empty copy."""
    image = field.image(f"{band}_e00")
    tp = truth_pixels(field, image)
    leff = tp["leff"][tp["star"] & np.isfinite(tp["leff"])]
    blue, red = float(leff.min()), float(leff.max())
    assert red - blue > 5.0, "the field's stars should span a range of colours"
    ny, nx = image.shape
    ra, dec = image.wcs_true.all_pix2world([nx / 2.0 + 0.3], [ny / 2.0 - 0.2], 1)
    empty = image.copy()
    empty.science[:] = 0.0
    widths = {}
    for name, wl in (("blue", blue), ("red", red)):
        out, truth = inject_sources(empty, {"ra": ra, "dec": dec, "flux": [1e6], "leff": [wl]},
                                    seed=1, add_noise=False)
        x, y = truth.column("x")[0].as_py(), truth.column("y")[0].as_py()
        half = int(np.ceil(3 * image.systematics["psf_fwhm_arcsec"] / image.band_info.pixel_scale))
        widths[name] = measure_fwhm(_stamp(out.science, x, y, half), image.band_info.pixel_scale)
    if blue_wider:
        assert widths["blue"] > widths["red"] * 1.002
        # Kolmogorov: FWHM ~ lambda^-0.2, diluted by the pixel
        assert widths["blue"] / widths["red"] < (blue / red) ** -0.2 * 1.01
    else:
        assert widths["blue"] < widths["red"] / 1.002
        # diffraction: at most proportional to wavelength
        assert widths["red"] / widths["blue"] < red / blue * 1.01


def test_space_psf_scales_with_wavelength(field):
    """Model level (undersampled bands too): optical width grows with wavelength, across and within bands."""
    roman = [im for im in field.images if im.survey == "roman"]
    widths = [im.systematics["psf_fwhm_arcsec"] for im in sorted(roman, key=lambda im: im.psf.wl_ref)]
    assert np.all(np.diff(widths) > 0)
    im = roman[0]
    c = (im.shape[1] + 1) / 2
    assert im.psf.fwhm(c, c, im.psf.wl_ref * 1.1) > im.psf.fwhm(c, c, im.psf.wl_ref)


def test_moffat_ground_psf_option():
    from jspdb.sim.spec import FieldSpec
    from jspdb.sim.systematics import plan_images

    spec = FieldSpec(ra=10.0, dec=0.0, size_arcmin=0.5, seed=3, surveys=("lsst",), ground_psf="moffat")
    for plan in plan_images(spec):
        assert plan.psf.kind == "moffat"
        c = (plan.nx + 1) / 2
        assert plan.psf.fwhm(c, c) == pytest.approx(plan.systematics["seeing_fwhm_arcsec"], rel=0.03)
