"""Survey adapters on files written in each survey's convention (no database)."""

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from jspdb.ingest.adapters import identify
from jspdb.ingest.images import expand_paths, prepare_image
from jspdb.ingest.masks import JSP_BITS
from jspdb.ingest.wcs import footprint
from jspdb.sim.image import MASK_BITS


def _truth(field_dir: Path, path: Path) -> dict:
    index = json.loads((field_dir / "field.json").read_text())
    for entry in index["images"]:
        if Path(entry["file"]).name == path.name:
            return json.loads((field_dir / entry["truth"]).read_text())
    raise KeyError(path)


@pytest.fixture(scope="module")
def files(field_dir):
    return expand_paths([field_dir / "images"])


def test_every_survey_file_is_recognised(files, field):
    assert len(files) == len(field.images)
    names = {identify(f).name for f in files}
    assert names == {"lsst", "euclid", "roman"}
    assert any(f.suffix == ".asdf" for f in files)  # Roman L2 really is ASDF


def test_metadata_equals_what_the_headers_say(files, field_dir):
    for f in files:
        rec = prepare_image(f).record
        truth = _truth(field_dir, f)
        assert rec.survey == truth["survey"]
        assert rec.band.lower() == truth["filter"].lower()
        assert (rec.naxis2, rec.naxis1) == tuple(truth["shape"])
        assert rec.t_min_mjd == pytest.approx(truth["mjd"], abs=1e-6)
        assert rec.exptime_s == pytest.approx(truth["exptime"])
        assert rec.t_max_mjd == pytest.approx(truth["mjd"] + truth["exptime"] / 86400, abs=1e-6)
        # the zero point is read (LSST, Euclid) or derived from the photometric
        # conversion (Roman) and must equal the nominal one written
        assert rec.zeropoint_mag == pytest.approx(truth["zp_nominal"], abs=1e-6)
        assert {p.plane for p in rec.planes} == {"science", "variance", "mask"}
        if f.suffix != ".asdf":
            with fits.open(f) as hdul:
                assert rec.header["FILTER"] == hdul[0].header["FILTER"]
                assert rec.header["EXPTIME"] == hdul[0].header["EXPTIME"]


def _inside_polygon(ra, dec, pra, pdec, c_ra, c_dec):
    """Point-in-polygon in the tangent plane at (c_ra, c_dec) (fine for images < 1 deg)."""
    from matplotlib.path import Path as MPath

    def proj(a, d):
        return np.column_stack([((a - c_ra + 180) % 360 - 180) * np.cos(np.radians(c_dec)), d - c_dec])

    return MPath(proj(np.asarray(ra), np.asarray(dec))).contains_points(proj(np.asarray(pra), np.asarray(pdec)))


def test_footprint_contains_corners_and_excludes_outside(files):
    for f in files:
        rec = prepare_image(f).record
        ra, dec = footprint(rec.wcs, (rec.naxis2, rec.naxis1))
        ny, nx = rec.naxis2, rec.naxis1
        c_ra, c_dec = rec.wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)

        def inside(pra, pdec, ra=ra, dec=dec, c_ra=c_ra, c_dec=c_dec):
            return _inside_polygon(ra, dec, pra, pdec, c_ra, c_dec)

        corners = rec.wcs.pixel_to_world_values(np.array([0, nx - 1, nx - 1, 0]), np.array([0, 0, ny - 1, ny - 1]))
        assert inside(*corners).all()
        out = rec.wcs.pixel_to_world_values(np.array([-3, nx + 2, nx / 2, nx / 2]),
                                            np.array([ny / 2, ny / 2, -3, ny + 2]))
        assert not inside(*out).any()


def _expected_jsp_mask(internal: np.ndarray, roman: bool) -> np.ndarray:
    exp = np.zeros(internal.shape, dtype=np.int32)
    for name in ("BAD", "SAT", "CR"):
        exp[(internal & (1 << MASK_BITS[name])) != 0] |= JSP_BITS[name]
    if roman:  # Roman flags saturated pixels DO_NOT_USE as well, which is BAD here
        exp[(internal & (1 << MASK_BITS["SAT"])) != 0] |= JSP_BITS["BAD"]
    return exp


def test_planes_in_jspdb_conventions(files, field):
    by_id = {im.image_id: im for im in field.images}
    for f in files:
        adapter = identify(f)
        planes = adapter.read_planes(f)
        image = next(im for iid, im in by_id.items() if f.name.split(".")[0].endswith(iid)
                     or f.name.split(".")[0].endswith(f"{iid}_cal"))
        np.testing.assert_allclose(planes.science, image.science, rtol=1e-6, atol=1e-6)
        # RMS planes (Euclid, Roman) come back as variance
        # Roman L2 stores err as float16 (as the real products do): ~1e-3 precision
        np.testing.assert_allclose(planes.variance, image.variance, rtol=2e-3 if f.suffix == ".asdf" else 1e-5)
        expected = _expected_jsp_mask(image.mask, roman=f.suffix == ".asdf")
        for name in ("BAD", "SAT", "CR"):
            bit = JSP_BITS[name]
            np.testing.assert_array_equal(planes.mask & bit, expected & bit, err_msg=f"{f.name} {name}")
        assert (planes.mask & JSP_BITS["BAD"]).any()  # the simulator's bad columns survive translation
