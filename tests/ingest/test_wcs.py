"""The WCS as the database stores it: text out, the same mapping back."""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS, Sip

from jspdb.ingest.wcs import wcs_from_text, wcs_to_text


def test_sip_wcs_round_trips_through_text():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.wcs.crval = [359.99, -89.5]  # RA wrap and near the pole
    w.wcs.crpix = [100.5, 80.5]
    w.wcs.cd = [[-5.5e-5, 1.0e-6], [1.2e-6, 5.5e-5]]
    a = np.zeros((3, 3))
    b = np.zeros((3, 3))
    a[2, 0], b[0, 2] = 2e-6, -3e-6
    w.sip = Sip(a, b, None, None, w.wcs.crpix)
    back = wcs_from_text(wcs_to_text(w), shape=(160, 200))
    assert back.pixel_shape == (200, 160)
    x, y = np.meshgrid(np.linspace(0, 199, 7), np.linspace(0, 159, 5))
    ra0, dec0 = w.all_pix2world(x.ravel(), y.ravel(), 0)
    ra1, dec1 = back.all_pix2world(x.ravel(), y.ravel(), 0)
    assert np.max(np.abs((ra1 - ra0 + 180) % 360 - 180) * np.cos(np.radians(dec0))) * 3.6e6 < 1e-3  # mas
    assert np.max(np.abs(dec1 - dec0)) * 3.6e6 < 1e-3
    assert back.sip is not None
