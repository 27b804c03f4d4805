"""A star-rich simulated field for the concordance accuracy tests, rendered once per session.

The shared 1' field (``SIM_SPEC_KW`` in tests/conftest.py) gives 5-20 usable
reference stars per image: enough to exercise the code, too few to measure
mas-level accuracy. The rich field (``rich_field`` in tests/conftest.py)
has 5x its star density (about 45 reference stars per image, of which the
unsaturated, isolated ones are used).
"""

from __future__ import annotations

import pytest
from concordance_helpers import jsp_mask, reference_arrays


@pytest.fixture(scope="session")
def rich_solutions(rich_field):
    """Astrometric and photometric solutions of every image of the rich field: {image_id: (astrom, photom)}."""
    from jspdb.concordance.astrometry import solve_astrometry
    from jspdb.concordance.photometry import solve_photometry
    from jspdb.concordance.psf_ee import instrument_psf
    from jspdb.sim.bands import get_band

    ref = reference_arrays(rich_field)
    out = {}
    for im in rich_field.images:
        mask = jsp_mask(im.mask)
        band = get_band(im.band)  # what jsp.band holds: wl_eff_nm; the image's pixel scale
        a = solve_astrometry(im.science, im.variance, mask, im.wcs_written, ref, im.mjd, saturation=im.saturation,
                             psf_profile=instrument_psf(im.survey, band.wl_eff))
        j = a.ref_index
        mag = rich_field.reference.column(f"mag_{im.band}").to_numpy()[j]
        err = rich_field.reference.column(f"magerr_{im.band}").to_numpy()[j]
        g = rich_field.reference.column("mag_lsst_g").to_numpy()[j]
        i = rich_field.reference.column("mag_lsst_i").to_numpy()[j]
        p = solve_photometry(im.science, im.variance, mask, a.x, a.y, mag, err, fwhm_px=a.fwhm_px, colour=g - i,
                             colour_ref="lsst_g-lsst_i", survey=im.survey, lam_nm=band.wl_eff,
                             pixel_scale_arcsec=band.pixel_scale, fit_colour=False)  # as photometry_step
        out[im.image_id] = (a, p)
    return out
