"""Image ingest against the real database: idempotent, consistent, safe on bad input."""

import shutil
from pathlib import Path

import numpy as np
import psycopg
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

from jspdb.db.query import images_in_cone, images_in_tile
from jspdb.errors import IngestError
from jspdb.healpix import tile_index
from jspdb.ingest.datastore import sha256_of, uri_to_path
from jspdb.ingest.images import expand_paths, ingest_images, prepare_image


def _ingest(conn, settings, paths, **kw):
    return ingest_images(conn, paths, tile_order=settings.tile_order, datastore=settings.datastore, **kw)


def _count(conn, table="jsp.image"):
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _datastore_files(settings):
    root = Path(settings.datastore)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def lsst_file(field_dir):
    return sorted((field_dir / "images" / "lsst").glob("*.fits"))[0]


def test_whole_field_ingests_once(iconn, ingest_settings, field_dir, field):
    files = expand_paths([field_dir / "images"])
    rep = _ingest(iconn, ingest_settings, [field_dir / "images"], workers=2, batch_size=5)
    assert rep.ok, rep.failed
    assert len(rep.ingested) == len(files) == len(field.images) == _count(iconn)
    # every file is in the datastore with its checksum
    for uri, sha, size in iconn.execute("SELECT uri, checksum_sha256, size_bytes FROM jsp.image"):
        p = uri_to_path(uri)
        assert p.is_file() and sha256_of(p) == sha and p.stat().st_size == size
        assert p.is_relative_to(Path(ingest_settings.datastore).resolve())
    # metadata equals the headers
    for f in files:
        rec = prepare_image(f).record
        row = iconn.execute(
            "SELECT s.name, b.name, naxis1, naxis2, t_min_mjd, exptime_s, zeropoint_mag, has_variance, has_mask, "
            "kind FROM jsp.image i JOIN jsp.band b USING (band_id) JOIN jsp.survey s ON s.survey_id = i.survey_id "
            "WHERE source_path = %s", (str(f.resolve()),)).fetchone()
        assert row == (rec.survey, rec.band, rec.naxis1, rec.naxis2, pytest.approx(rec.t_min_mjd),
                       pytest.approx(rec.exptime_s), pytest.approx(rec.zeropoint_mag), True, True, "single_epoch")
    assert _count(iconn, "jsp.image_plane") == 3 * len(files)
    # the same files again add nothing
    before = _datastore_files(ingest_settings)
    rep2 = _ingest(iconn, ingest_settings, [field_dir / "images"])
    assert not rep2.ingested and len(rep2.skipped) == len(files)
    assert all("already ingested" in s["reason"] for s in rep2.skipped)
    assert _count(iconn) == len(files)
    assert _datastore_files(ingest_settings) == before


def test_footprints_contain_corners_and_exclude_outside(iconn, ingest_settings, field_dir):
    _ingest(iconn, ingest_settings, [field_dir / "images"])
    for f in expand_paths([field_dir / "images"]):
        rec = prepare_image(f).record
        nx, ny = rec.naxis1, rec.naxis2
        inside = rec.wcs.pixel_to_world_values(np.array([0, nx - 1, nx - 1, 0, nx / 2]),
                                               np.array([0, 0, ny - 1, ny - 1, ny / 2]))
        outside = rec.wcs.pixel_to_world_values(np.array([-3, nx + 2, nx / 2, nx / 2]),
                                                np.array([ny / 2, ny / 2, -3, ny + 2]))
        for pts, want in ((inside, True), (outside, False)):
            for a, d in zip(*pts, strict=True):
                got = iconn.execute(
                    "SELECT footprint @> spoint(radians(%s), radians(%s)) FROM jsp.image WHERE source_path = %s",
                    (float(a) % 360, float(d), str(f.resolve()))).fetchone()[0]
                assert got is want, (f.name, a, d)


def _brute_overlap(rec, ra0, dec0, radius, step=4):
    """Does the image overlap the cone? Decided on a dense pixel grid; None if too close to call."""
    nx, ny = rec.naxis1, rec.naxis2
    xs, ys = np.meshgrid(np.arange(-0.5, nx, step), np.arange(-0.5, ny, step))
    edge = np.concatenate([np.arange(-0.5, nx, 1.0)])
    x = np.concatenate([xs.ravel(), edge, edge, np.full(ny, -0.5), np.full(ny, nx - 0.5)])
    y = np.concatenate([ys.ravel(), np.full(edge.size, -0.5), np.full(edge.size, ny - 0.5),
                        np.arange(ny) * 1.0, np.arange(ny) * 1.0])
    ra, dec = rec.wcs.pixel_to_world_values(x, y)
    d = SkyCoord(ra, dec, unit="deg").separation(SkyCoord(ra0, dec0, unit="deg")).deg
    margin = step * rec.wcs.proj_plane_pixel_scales()[0].value * 1.5
    if d.min() <= radius:
        return True
    if d.min() > radius + margin:
        return False
    return None


def test_cone_and_tile_lookups_equal_brute_force(iconn, ingest_settings, field_dir, field):
    _ingest(iconn, ingest_settings, [field_dir / "images"])
    recs = {str(f.resolve()): prepare_image(f).record for f in expand_paths([field_dir / "images"])}
    ids = dict(iconn.execute("SELECT source_path, image_id FROM jsp.image").fetchall())
    rng = np.random.default_rng(5)
    spec = field.spec
    checked = 0
    for _ in range(12):
        ra0 = spec.ra + rng.uniform(-1.5, 1.5) / 60
        dec0 = spec.dec + rng.uniform(-1.5, 1.5) / 60
        radius = rng.uniform(0.05, 0.6) / 60
        got = {r["image_id"] for r in images_in_cone(iconn, ra0, dec0, radius)}
        for path, rec in recs.items():
            want = _brute_overlap(rec, ra0, dec0, radius)
            if want is None:
                continue
            checked += 1
            assert (ids[path] in got) is want, (path, ra0, dec0, radius)
    assert checked > 100
    # band filter
    some = images_in_cone(iconn, spec.ra, spec.dec, 0.2 / 60, bands=["r"])
    assert some and all(r["band"] == "r" for r in some)
    # tiles: every tile that holds pixels of an image is recorded for it
    order = ingest_settings.tile_order
    for path, rec in recs.items():
        xs, ys = np.meshgrid(np.linspace(0, rec.naxis1 - 1, 40), np.linspace(0, rec.naxis2 - 1, 40))
        ra, dec = rec.wcs.pixel_to_world_values(xs.ravel(), ys.ravel())
        touched = set(tile_index(ra, dec, order).tolist())
        recorded = {t for (t,) in iconn.execute(
            "SELECT tile_ipix FROM jsp.image_tile WHERE image_id = %s AND tile_order = %s", (ids[path], order))}
        assert touched <= recorded
        for t in touched:
            assert ids[path] in {r["image_id"] for r in images_in_tile(iconn, order, t)}
    # tile rows carry their boundary, which contains their centre
    bad = iconn.execute("SELECT count(*) FROM jsp.tile WHERE NOT boundary @> "
                        "spoint(radians(ra_center), radians(dec_center))").fetchone()[0]
    assert bad == 0


# -- bad input ---------------------------------------------------------------


def _variant(src: Path, dest: Path, edit) -> Path:
    with fits.open(src) as hdul:
        edit(hdul)
        hdul.writeto(dest, overwrite=True, output_verify="silentfix")
    return dest


@pytest.fixture
def bad_dir(tmp_path, lsst_file):
    d = tmp_path / "batch"
    d.mkdir()
    good = shutil.copy(lsst_file, d / "a_good.fits")
    raw = Path(good).read_bytes()
    (d / "b_truncated.fits").write_bytes(raw[: len(raw) // 2])
    (d / "c_not_fits.fits").write_text("this is not a FITS file\n" * 100)

    def no_wcs(h):
        for k in list(h["IMAGE"].header):
            if k.startswith(("CTYPE", "CRVAL", "CRPIX", "CD", "PC", "CDELT", "CUNIT", "WCSAXES", "LONPOLE",
                             "LATPOLE", "RADESYS", "EQUINOX", "MJDREF")):
                del h["IMAGE"].header[k]
        h[0].header["MJD-OBS"] += 1e-6  # different bytes, different checksum

    def singular(h):
        for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2", "PC1_1", "PC1_2", "PC2_1", "PC2_2"):
            if k in h["IMAGE"].header:
                h["IMAGE"].header[k] = 0.0

    def unknown_filter(h):
        h[0].header["FILTER"] = "q_sim"
        h[0].header["BAND"] = "q"

    def all_nan(h):
        h["IMAGE"].data[:] = np.nan

    def no_variance(h):
        del h["VARIANCE"]

    _variant(lsst_file, d / "d_no_wcs.fits", no_wcs)
    _variant(lsst_file, d / "e_singular.fits", singular)
    _variant(lsst_file, d / "f_unknown_filter.fits", unknown_filter)
    _variant(lsst_file, d / "g_all_nan.fits", all_nan)
    _variant(lsst_file, d / "h_no_variance.fits", no_variance)
    return d


def test_bad_files_get_clear_errors_and_leave_nothing(iconn, ingest_settings, bad_dir):
    lines = []
    missing = bad_dir / "z_missing.fits"
    rep = _ingest(iconn, ingest_settings, [*sorted(bad_dir.iterdir()), missing], on_error=lines.append,
                  batch_size=3)
    reasons = {Path(f["path"]).name: f["reason"] for f in rep.failed}
    assert set(reasons) == {"b_truncated.fits", "c_not_fits.fits", "d_no_wcs.fits", "e_singular.fits",
                            "f_unknown_filter.fits", "g_all_nan.fits", "z_missing.fits"}
    assert "truncated" in reasons["b_truncated.fits"]
    assert "not a FITS file" in reasons["c_not_fits.fits"]
    assert "no celestial WCS" in reasons["d_no_wcs.fits"]
    assert "singular WCS" in reasons["e_singular.fits"]
    assert "unknown LSST filter 'q_sim'" in reasons["f_unknown_filter.fits"]
    assert "entirely NaN" in reasons["g_all_nan.fits"]
    assert "no such file" in reasons["z_missing.fits"]
    # one line each, naming the file
    assert len(lines) == 7 and all(str(bad_dir) in line or "z_missing" in line for line in lines)
    # the good file and the one without variance (flagged) went in; nothing else
    assert sorted(Path(i["path"]).name for i in rep.ingested) == ["a_good.fits", "h_no_variance.fits"]
    assert iconn.execute("SELECT has_variance FROM jsp.image WHERE source_path LIKE %s",
                         ("%h_no_variance.fits",)).fetchone()[0] is False
    assert any("no variance plane" in w["reason"] for w in rep.warnings)
    assert _count(iconn) == 2
    names = {p.name.split("_", 1)[1] for p in _datastore_files(ingest_settings)}
    assert names == {"a_good.fits", "h_no_variance.fits"}


def test_strict_stops_at_first_bad_file(iconn, ingest_settings, bad_dir):
    with pytest.raises(IngestError, match="truncated"):
        _ingest(iconn, ingest_settings, sorted(bad_dir.iterdir()), strict=True, batch_size=10)
    assert _count(iconn) == 0


def test_changed_file_is_refused_unless_replace(iconn, ingest_settings, lsst_file, tmp_path):
    f = Path(shutil.copy(lsst_file, tmp_path / "visit.fits"))
    assert len(_ingest(iconn, ingest_settings, [f]).ingested) == 1
    old_sha = sha256_of(f)
    with fits.open(f, mode="update") as h:
        h[0].header["HISTORY"] = "reprocessed"
    rep = _ingest(iconn, ingest_settings, [f])
    assert rep.failed and "changed since it was ingested" in rep.failed[0]["reason"]
    assert "--replace" in rep.failed[0]["reason"]
    assert iconn.execute("SELECT checksum_sha256 FROM jsp.image").fetchone()[0] == old_sha
    rep = _ingest(iconn, ingest_settings, [f], replace=True)
    assert len(rep.ingested) == 1 and _count(iconn) == 1
    assert iconn.execute("SELECT checksum_sha256 FROM jsp.image").fetchone()[0] == sha256_of(f)
    kept = iconn.execute("SELECT checksum_sha256, record->>'obs_id' FROM jsp.image_version").fetchall()
    assert kept[0][0] == old_sha and kept[0][1]


def test_database_lost_mid_batch_rolls_back_and_rerun_completes(idsn, ingest_settings, field_dir):
    files = expand_paths([field_dir / "images"])
    with psycopg.connect(idsn) as c:
        c.execute("TRUNCATE jsp.image, jsp.tile CASCADE")
        c.commit()
    for p in _datastore_files(ingest_settings):
        p.unlink()
    victim = psycopg.connect(idsn)
    handled = []

    def kill_in_second_batch(k):
        handled.append(k)
        if len(handled) == 6:  # batch 1 = files 0..3 committed; batch 2 is half written
            with psycopg.connect(idsn, autocommit=True) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))

    with pytest.raises(IngestError, match="rolled back; rerun"):
        _ingest(victim, ingest_settings, files, batch_size=4, progress=kill_in_second_batch)
    victim.close()
    with psycopg.connect(idsn) as c:
        assert _count(c) == 4
        assert _count(c, "jsp.image_plane") == 12
        stored = {uri_to_path(u) for (u,) in c.execute("SELECT uri FROM jsp.image_plane")}
    assert set(_datastore_files(ingest_settings)) == stored  # no orphans of the lost batch
    with psycopg.connect(idsn) as c:
        rep = _ingest(c, ingest_settings, files)
        assert len(rep.ingested) == len(files) - 4 and len(rep.skipped) == 4
        assert _count(c) == len(files)


def test_tile_compressed_fits(iconn, ingest_settings, lsst_file, tmp_path):
    with fits.open(lsst_file) as h:
        hdus = [fits.PrimaryHDU(header=h[0].header)]
        for ext in h[1:]:
            hdus.append(fits.CompImageHDU(data=ext.data, header=ext.header, name=ext.name,
                                          compression_type="GZIP_2" if ext.data.dtype.kind == "f" else "RICE_1"))
        fz = tmp_path / "calexp.fits.fz"
        fits.HDUList(hdus).writeto(fz)
    rep = _ingest(iconn, ingest_settings, [fz])
    assert len(rep.ingested) == 1, rep.failed
    plain = prepare_image(lsst_file).record
    row = iconn.execute("SELECT naxis1, naxis2, ra_center, dec_center FROM jsp.image").fetchone()
    c = plain.wcs.pixel_to_world_values((plain.naxis1 - 1) / 2, (plain.naxis2 - 1) / 2)
    assert row[:2] == (plain.naxis1, plain.naxis2)
    assert row[2] == pytest.approx(float(c[0])) and row[3] == pytest.approx(float(c[1]))


def test_euclid_mer_separate_plane_files(iconn, ingest_settings, field_dir, tmp_path):
    src = next((field_dir / "images" / "euclid").glob("*VIS*.fits"))
    d = tmp_path / "mer"
    d.mkdir()
    with fits.open(src) as h:
        prim = h[0].header
        for name, ext in (("BGSUB-MOSAIC-VIS", "SCI"), ("MOSAIC-VIS-RMS", "RMS"), ("MOSAIC-VIS-FLAG", "FLG")):
            hdr = prim.copy()
            for card in h[ext].header.cards:
                if card.keyword not in ("XTENSION", "PCOUNT", "GCOUNT", "EXTNAME", "BITPIX", "NAXIS",
                                        "NAXIS1", "NAXIS2"):
                    hdr.append(card)
            fits.PrimaryHDU(data=h[ext].data, header=hdr).writeto(
                d / f"EUC_MER_{name}_TILE102018211-8A5C3E_20241017T042532.823494Z_00.00.fits")
    rep = _ingest(iconn, ingest_settings, [d])
    assert len(rep.ingested) == 1, rep.failed
    assert sorted(s["reason"][:8] for s in rep.skipped) == ["plane of", "plane of"]
    planes = dict(iconn.execute("SELECT plane, convention FROM jsp.image_plane").fetchall())
    assert planes == {"science": "science", "variance": "rms", "mask": "euclid-flag"}
    assert iconn.execute("SELECT kind FROM jsp.image").fetchone()[0] == "coadd"
    # and read back in jspdb conventions: RMS squared, flags translated
    from jspdb.ingest.euclid import EuclidAdapter

    sci_file = next(d.glob("EUC_MER_BGSUB*"))
    p_sep = EuclidAdapter().read_planes(sci_file)
    p_mef = EuclidAdapter().read_planes(src)
    np.testing.assert_array_equal(p_sep.variance, p_mef.variance)
    np.testing.assert_array_equal(p_sep.mask, p_mef.mask)


def test_generic_adapter_from_a_mapping(iconn, ingest_settings, lsst_file, tmp_path):
    from jspdb.ingest.adapters import ADAPTERS
    from jspdb.ingest.generic import load_mapping

    ztf = tmp_path / "ztf_000123_zg_c01_q1_sciimg.fits"
    with fits.open(lsst_file) as h:
        sci = fits.PrimaryHDU(data=h["IMAGE"].data, header=h["IMAGE"].header)
        sci.header["TELESCOP"] = "P48"
        sci.header["FILTER"] = "ZTF_g"
        sci.header["OBSMJD"] = 59000.25
        sci.header["EXPTIME"] = 30.0
        sci.header["MAGZP"] = 26.3
        sci.header["SATURATE"] = 50000.0
        var = fits.ImageHDU(data=np.sqrt(h["VARIANCE"].data), name="UNC")
        msk = fits.ImageHDU(data=h["MASK"].data, name="MSK")
        fits.HDUList([sci, var, msk]).writeto(ztf)
    mapping = tmp_path / "ztf.toml"
    mapping.write_text('''
[survey]
name = "ztf"
facility = "Palomar 48-inch"
platform = "ground"
instrument = "ZTF"
pixel_scale_arcsec = 1.01

[match]
TELESCOP = "P48"

[keywords]
filter = "FILTER"
mjd = "OBSMJD"
exptime = "EXPTIME"
zeropoint = "MAGZP"
saturation = "SATURATE"

[filters]
"ZTF_g" = { band = "g", wl_min_nm = 410.0, wl_eff_nm = 480.0, wl_max_nm = 550.0 }

[planes]
science = "0"
variance = { hdu = "UNC", convention = "rms" }
mask = { hdu = "MSK", bits = { 1 = "BAD", 2 = "SAT", 8 = "CR" } }
''')
    try:
        load_mapping(mapping)
        rep = _ingest(iconn, ingest_settings, [ztf])
        assert len(rep.ingested) == 1, rep.failed
        row = iconn.execute(
            "SELECT s.name, b.name, b.wl_eff_nm, i.t_min_mjd, i.zeropoint_mag, i.saturation FROM jsp.image i "
            "JOIN jsp.band b USING (band_id) JOIN jsp.survey s ON s.survey_id = i.survey_id").fetchone()
        assert row == ("ztf", "g", 480.0, 59000.25, 26.3, 50000.0)
        planes = ADAPTERS["ztf"].read_planes(ztf)
        with fits.open(lsst_file) as h:
            np.testing.assert_allclose(planes.variance, h["VARIANCE"].data, rtol=1e-5)
    finally:
        ADAPTERS.pop("ztf", None)
        iconn.rollback()


def test_planes_read_back_from_the_database(iconn, ingest_settings, field_dir):
    """What the database says about planes is enough to read them, wherever the datastore put them."""
    from jspdb.ingest.adapters import identify
    from jspdb.ingest.planes import load_planes

    _ingest(iconn, ingest_settings, [field_dir / "images"])
    for image_id, src, wcs_header, nx, ny in iconn.execute(
            "SELECT image_id, source_path, wcs_header, naxis1, naxis2 FROM jsp.image").fetchall():
        rows = [dict(zip(("plane", "uri", "hdu", "convention"), r, strict=True)) for r in iconn.execute(
            "SELECT plane, uri, hdu, convention FROM jsp.image_plane WHERE image_id = %s", (image_id,))]
        got = load_planes(rows, wcs_header, (ny, nx))
        want = identify(Path(src)).read_planes(Path(src))
        np.testing.assert_array_equal(got.science, want.science)
        np.testing.assert_array_equal(got.variance, want.variance)
        np.testing.assert_array_equal(got.mask, want.mask)
        a = got.wcs.pixel_to_world_values([0, nx - 1], [0, ny - 1])
        b = want.wcs.pixel_to_world_values([0, nx - 1], [0, ny - 1])
        np.testing.assert_allclose(np.ravel(a), np.ravel(b), atol=1e-9)
