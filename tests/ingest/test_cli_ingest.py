"""`jsp ingest` and `jsp images` as a user runs them."""

import json
import shutil


def test_ingest_report_and_lookup(run_jsp, ingest_settings, iconn, field_dir, tmp_path):
    env = {"JSP_DATABASE_URL": ingest_settings.database_url, "JSP_DATASTORE_ROOT": str(ingest_settings.datastore),
           "JSP_TILE_ORDER": str(ingest_settings.tile_order), "PATH": "/usr/bin:/bin"}
    d = tmp_path / "in"
    shutil.copytree(field_dir / "images" / "lsst", d)
    (d / "broken.fits").write_text("garbage")
    report = tmp_path / "report.json"
    proc = run_jsp("ingest", "images", str(d), "--workers", "2", "--report", str(report), env=env, check=False)
    assert proc.returncode == 2  # some files failed
    assert f"error: {d / 'broken.fits'}: not a FITS file" in " ".join(proc.stderr.split())
    rep = json.loads(report.read_text())
    n = len(list((field_dir / "images" / "lsst").glob("*.fits")))
    assert len(rep["ingested"]) == n and len(rep["failed"]) == 1
    assert f"ingested {n}, skipped 0, failed 1" in proc.stdout
    spec = json.loads((field_dir / "field.json").read_text())["spec"]
    out = run_jsp("images", "--cone", str(spec["ra"]), str(spec["dec"]), "0.001", "--band", "r", env=env).stdout
    n_r = len(list((field_dir / "images" / "lsst").glob("*_r_*.fits")))
    assert out.splitlines()[0] == f"{n_r} images"
    assert run_jsp("images", env=env, check=False).returncode == 1
