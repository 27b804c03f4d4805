"""Reference catalogs from files: Parquet (the simulator's), CSV and FITS; all or nothing."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from jspdb.errors import IngestError
from jspdb.ingest.refcat import ingest_refcat


@pytest.fixture
def rconn(iconn):
    iconn.execute("TRUNCATE jsp.refcat, jsp.refcat_synphot")
    iconn.commit()
    return iconn


def test_simulated_reference_catalog_round_trips(rconn, field_dir):
    src = pq.read_table(field_dir / "reference.parquet").to_pandas()
    res = ingest_refcat(rconn, field_dir / "reference.parquet")
    rconn.commit()
    assert res["stars"] == len(src) > 0
    assert set(res["ignored_columns"]) == {"has_xp", "truth_id"}
    rows = rconn.execute("SELECT source_id, ra, dec, ra_err_mas, pmra, parallax, g_mag, ref_epoch "
                         "FROM jsp.refcat ORDER BY source_id").fetchall()
    src = src.sort_values("source_id")
    got = np.array(rows, dtype=float)
    np.testing.assert_array_equal(got[:, 0], src["source_id"])
    np.testing.assert_array_equal(got[:, 1], src["ra"] % 360)
    np.testing.assert_array_equal(got[:, 2], src["dec"])
    np.testing.assert_array_equal(got[:, 3], src["ra_error"])
    np.testing.assert_array_equal(got[:, 4], src["pmra"])
    np.testing.assert_array_equal(got[:, 5], src["parallax"])
    np.testing.assert_array_equal(got[:, 6], src["phot_g_mean_mag"])
    assert set(got[:, 7]) == {2016.0}
    # synthetic photometry: one row per star and survey band, values intact
    n_bands = sum(1 for c in src.columns if c.startswith("mag_"))
    assert res["synphot_rows"] == len(src) * n_bands == n_bands * res["stars"]
    mag = rconn.execute(
        "SELECT p.mag, p.mag_err FROM jsp.refcat_synphot p JOIN jsp.band b USING (band_id) "
        "JOIN jsp.survey s USING (survey_id) WHERE s.name = 'euclid' AND b.name = 'VIS' ORDER BY p.source_id"
    ).fetchall()
    np.testing.assert_array_equal(np.array(mag)[:, 0], src["mag_euclid_vis"])
    np.testing.assert_array_equal(np.array(mag)[:, 1], src["magerr_euclid_vis"])


@pytest.mark.parametrize("fmt", ["csv", "fits", "ecsv"])
def test_other_formats(rconn, field_dir, tmp_path, fmt):
    t = Table.read(field_dir / "reference.parquet")
    path = tmp_path / f"ref.{fmt}"
    t.write(path, format={"csv": "ascii.csv", "fits": "fits", "ecsv": "ascii.ecsv"}[fmt])
    res = ingest_refcat(rconn, path)
    assert res["stars"] == len(t)
    assert rconn.execute("SELECT count(*) FROM jsp.refcat").fetchone()[0] == len(t)


def test_bad_catalogs_load_nothing(rconn, field_dir, tmp_path):
    t = Table.read(field_dir / "reference.parquet")
    t["dec"][len(t) // 2] = 123.0
    bad = tmp_path / "bad.parquet"
    t.write(bad)
    with pytest.raises(IngestError, match=r"bad.parquet: row \d+ .*dec=123"):
        ingest_refcat(rconn, bad)
    assert rconn.execute("SELECT count(*) FROM jsp.refcat").fetchone()[0] == 0
    assert rconn.execute("SELECT count(*) FROM jsp.refcat_synphot").fetchone()[0] == 0
    t.remove_column("ref_epoch")
    t["dec"][len(t) // 2] = 0.0
    no_epoch = tmp_path / "noepoch.parquet"
    t.write(no_epoch)
    with pytest.raises(IngestError, match="ref_epoch"):
        ingest_refcat(rconn, no_epoch)
    (tmp_path / "x.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(IngestError, match="cannot read"):
        ingest_refcat(rconn, tmp_path / "x.parquet")
    (tmp_path / "x.txt").write_text("ra dec\n1 2\n")
    with pytest.raises(IngestError, match="unknown catalog format"):
        ingest_refcat(rconn, tmp_path / "x.txt")
    with pytest.raises(IngestError, match="no such file"):
        ingest_refcat(rconn, tmp_path / "missing.parquet")
