"""HEALPix helpers against healpy (an independent implementation)."""

import astropy.units as u
import healpy as hp
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from hypothesis import given, settings
from hypothesis import strategies as st

from jspdb import healpix

ras = st.floats(-720, 720, allow_nan=False, allow_infinity=False)
decs = st.floats(-90, 90, allow_nan=False, allow_infinity=False)


def random_sky(n, seed=0):
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    # poles and the RA seam explicitly
    ra = np.concatenate([ra, [0.0, 359.9999999, 360.0 - 1e-12, 180.0, 0.0, 123.0]])
    dec = np.concatenate([dec, [0.0, 45.0, -45.0, 90.0, -90.0, 89.9999999]])
    return ra, dec


def test_hpx29_matches_healpy_on_random_points():
    ra, dec = random_sky(100_000)
    ours = healpix.hpx29(ra, dec)
    theirs = hp.ang2pix(2**29, ra, dec, nest=True, lonlat=True)
    assert ours.dtype == np.int64
    # Points within ~1e-9 deg of a pixel edge may fall either side in two
    # floating-point implementations; order-29 pixels are 0.4 mas wide.
    mismatch = ours != theirs
    assert mismatch.sum() <= 2, f"{mismatch.sum()} mismatches"
    assert np.all(ours >= 0) and np.all(ours < 12 * 4**29)


@settings(max_examples=300, deadline=None)
@given(ra=ras, dec=decs, order=st.integers(0, 29))
def test_tile_index_matches_healpy_and_wraps_ra(ra, dec, order):
    ours = healpix.tile_index(ra, dec, order)
    theirs = hp.ang2pix(2**order, ra % 360.0, dec, nest=True, lonlat=True)
    if ours != theirs:
        # Only legitimate at a pixel edge: the neighbour must contain the point
        # to within floating-point precision.
        neighbours = hp.get_all_neighbours(2**order, ra % 360.0, dec, nest=True, lonlat=True)
        assert ours in neighbours
    wrapped = healpix.tile_index(ra + 360.0, dec, order)
    if wrapped != ours:  # ra + 360 rounds differently only on a pixel edge
        assert wrapped in hp.get_all_neighbours(2**order, ra % 360.0, dec, nest=True, lonlat=True)


def test_tile_index_is_a_shift_of_hpx29():
    ra, dec = random_sky(20_000, seed=1)
    h29 = healpix.hpx29(ra, dec)
    for order in (0, 3, 9, 12, 20):
        np.testing.assert_array_equal(healpix.to_order(h29, order), healpix.tile_index(ra, dec, order))
        lo, hi = healpix.pixel_range29(healpix.tile_index(ra, dec, order), order)
        assert np.all((lo <= h29) & (h29 < hi))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="dec must lie"):
        healpix.hpx29([10.0], [91.0])
    with pytest.raises(ValueError, match="finite"):
        healpix.hpx29([np.nan], [0.0])
    with pytest.raises(ValueError, match="order"):
        healpix.tile_index(0.0, 0.0, 30)
    with pytest.raises(ValueError, match="radius"):
        healpix.cone_ranges(0.0, 0.0, 0.0, 5)


def test_merge_ranges():
    got = healpix.merge_ranges([5, 0, 3, 20, 10], [8, 3, 4, 25, 12])
    np.testing.assert_array_equal(got, [[0, 4], [5, 8], [10, 12], [20, 25]])
    assert healpix.merge_ranges([], []).shape == (0, 2)


@pytest.mark.parametrize(
    ("ra", "dec", "radius", "order"),
    [(150.0, 2.0, 1 / 60, 8), (0.01, -30.0, 0.5, 6), (359.99, 10.0, 2.0, 4), (45.0, 89.9, 1.0, 7),
     (200.0, -89.5, 3.0, 5), (10.0, 0.0, 30.0, 3)],
)
def test_cone_ranges_cover_the_cone_like_healpy(ra, dec, radius, order):
    ranges = healpix.cone_ranges(ra, dec, radius, order)
    assert np.all(ranges[1:, 0] > ranges[:-1, 1])  # disjoint, sorted, merged
    # every pixel healpy says touches the cone is covered
    vec = hp.ang2vec(ra, dec, lonlat=True)
    hp_pix = hp.query_disc(2**order, vec, np.radians(radius), inclusive=True, nest=True)
    lo, hi = healpix.pixel_range29(hp_pix, order)
    covered = [np.any((ranges[:, 0] <= a) & (b <= ranges[:, 1])) for a, b in zip(lo, hi, strict=True)]
    # healpy's inclusive mode is itself approximate (it may add a few extra
    # pixels near the edge); ours must contain every pixel holding a point of
    # the cone, which the next assertion checks directly.
    assert np.mean(covered) > 0.9
    rng = np.random.default_rng(7)
    centre = SkyCoord(ra, dec, unit="deg")
    pts = centre.directional_offset_by(rng.uniform(0, 360, 5000) * u.deg,
                                       np.sqrt(rng.uniform(0, 1, 5000)) * radius * u.deg)
    h = healpix.hpx29(pts.ra.deg, pts.dec.deg)
    idx = np.searchsorted(ranges[:, 0], h, side="right") - 1
    assert np.all(idx >= 0) and np.all(h < ranges[idx, 1])


def test_polygon_ranges_contain_points_inside():
    ra = [10.0, 12.0, 12.0, 10.0]
    dec = [-1.0, -1.0, 1.0, 1.0]
    ranges = healpix.polygon_ranges(ra, dec, 8)
    rng = np.random.default_rng(3)
    pra, pdec = rng.uniform(10.01, 11.99, 3000), rng.uniform(-0.99, 0.99, 3000)
    h = healpix.hpx29(pra, pdec)
    idx = np.searchsorted(ranges[:, 0], h, side="right") - 1
    assert np.all(idx >= 0) and np.all(h < ranges[idx, 1])
    hp_pix = hp.query_polygon(2**8, hp.ang2vec(ra, dec, lonlat=True), inclusive=False, nest=True)
    lo, hi = healpix.pixel_range29(hp_pix, 8)
    assert all(np.any((ranges[:, 0] <= a) & (b <= ranges[:, 1])) for a, b in zip(lo, hi, strict=True))


@pytest.mark.parametrize(("ipix", "order"), [(0, 0), (5, 1), (700, 3), (123456, 9)])
def test_pixel_boundary_matches_healpy(ipix, order):
    ra, dec = healpix.pixel_boundary(ipix, order)
    vec = hp.boundaries(2**order, ipix, step=1, nest=True)
    hra, hdec = hp.vec2ang(vec.T, lonlat=True)
    ours = SkyCoord(ra, dec, unit="deg")
    theirs = SkyCoord(hra, hdec, unit="deg")
    # same four corners, possibly starting at a different one
    sep = ours[:, None].separation(theirs[None, :]).arcsec
    assert np.all(sep.min(axis=1) < 1e-6)
    literal = healpix.boundary_spoly(ipix, order)
    assert literal.startswith("{(") and literal.count("d,") == 4
