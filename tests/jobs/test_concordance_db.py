"""The concordance from the database: the star-rich field ingested, the chain run, what it stored against the truth.

The chain runs in this process through the jobs' own runner (`run_job`, the
code a worker runs), so this measures the stored, tied frame that later tiers
read (`corrected_wcs`, `photometric_frame`); the worker machinery itself is
tested in test_run.py and test_faults.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
from jobhelpers import load_field

from jspdb.concordance.astrometry import sky_error_mas
from jspdb.db.release import create_release
from jspdb.db.solutions import corrected_wcs, photometric_frame
from jspdb.jobs.plan import plan_run, tiles_with_data
from jspdb.jobs.runner import run_job

#: Targets of the concordance issue.
ASTROM_MAX_MAS = {"lsst": 10.0, "euclid": 5.0, "roman": 5.0}
SURVEY_OFFSET_MAX_MAS = 3.0
#: The cross-survey photometric tie: target 5 mmag (measured 0.6). A survey's scale offset is the mean
#: over its 4-6 images, each good to ~8 mmag, so on this field it is known to ~4 mmag: the test allows 8.
CROSS_SURVEY_TIE_MAX_MMAG = 8.0


@pytest.fixture(scope="module")
def rich_run(make_database, rich_field, tmp_path_factory):
    """The rich field ingested into its own database and its whole chain run into release dr1."""
    from jspdb.config import reset_settings
    from jspdb.sim.writers import write_field

    field_dir = tmp_path_factory.mktemp("richfield")
    write_field(rich_field, field_dir)
    settings = make_database(datastore_root=tmp_path_factory.mktemp("richstore"))
    db = load_field(settings, field_dir)
    with pytest.MonkeyPatch.context() as mp:  # the steps' own settings (QA plots into this datastore)
        mp.setenv("JSP_DATABASE_URL", settings.database_url)
        mp.setenv("JSP_DATASTORE_ROOT", str(settings.datastore))
        reset_settings()
        with psycopg.connect(db.dsn) as c:
            rid = create_release(c, "dr1", settings.partition_order)["release_id"]
            plan = plan_run(c, "dr1", tiles_with_data(c, settings.tile_order), settings.tile_order)
            c.commit()
        queue, outcomes = list(plan.image_jobs), []
        while queue:
            outcomes.append(run_job(db.dsn, queue.pop(0), send=queue.append))
        reset_settings()
    yield db, rid, outcomes
    reset_settings()


def _stored(db, rid: int, field) -> list[tuple]:
    """(sim image, survey, tied WCS, stored tie error mas, tied zero point, its error) per solved image."""
    sims = {im.image_id: im for im in field.images}
    out = []
    with psycopg.connect(db.dsn) as c:
        for image_id, path, survey in c.execute(
                "SELECT i.image_id, i.source_path, s.name FROM jsp.image i JOIN jsp.survey s USING (survey_id) "
                "JOIN jsp.photometric_solution p ON p.image_id = i.image_id AND p.release_id = %s "
                "ORDER BY i.image_id", (rid,)).fetchall():
            sim = sims[max((k for k in sims if k in Path(path).name), key=len)]  # files carry survey prefixes
            frame = photometric_frame(c, "dr1", image_id)
            out.append((sim, survey, corrected_wcs(c, "dr1", image_id), frame.zeropoint_mag,
                        frame.zeropoint_err_mag))
    return out


def test_every_job_done(rich_run, rich_field):
    db, rid, outcomes = rich_run
    assert {o.outcome for o in outcomes} == {"done"}, [o for o in outcomes if o.outcome != "done"]
    assert len(_stored(db, rid, rich_field)) == len(rich_field.images)


def test_stored_astrometry_against_the_truth(rich_run, rich_field):
    db, rid, _ = rich_run
    centre = {}
    for sim, survey, wcs, _, _ in _stored(db, rid, rich_field):
        err = sky_error_mas(wcs, sim.wcs_true, sim.shape)
        print(f"{sim.image_id:16s} tied WCS error {err:5.2f} mas")
        assert err < ASTROM_MAX_MAS[survey], (sim.image_id, err)
        cx, cy = (sim.shape[1] - 1) / 2.0, (sim.shape[0] - 1) / 2.0
        fa, fd = wcs.all_pix2world([cx], [cy], 0)
        ta, td = sim.wcs_true.all_pix2world([cx], [cy], 0)
        centre.setdefault(survey, []).append(
            np.array([(fa[0] - ta[0]) * np.cos(np.radians(td[0])), fd[0] - td[0]]) * 3.6e6)
    mean = {s: np.mean(v, axis=0) for s, v in centre.items()}
    worst = max(np.hypot(*(mean[a] - mean[b])) for a in mean for b in mean)
    print("survey mean offsets (mas):", {s: np.round(v, 2).tolist() for s, v in mean.items()},
          f"largest difference {worst:.2f} mas")
    assert worst < SURVEY_OFFSET_MAX_MAS


def test_stored_zero_points_against_the_truth(rich_run, rich_field):
    """Tied zero points as later tiers read them; Euclid's and Roman's carried from LSST."""
    db, rid, _ = rich_run
    with psycopg.connect(db.dsn) as c:
        summary = c.execute("SELECT result FROM jsp.tile_job WHERE release_id = %s AND step = 'tie'",
                            (rid,)).fetchone()[0]
    failed = {k: v["error"] for k, v in summary["transfer"].items() if "error" in v}
    assert not failed, failed  # every space image got a carried zero point on this field
    d = {}
    for sim, survey, _, zp, err in _stored(db, rid, rich_field):
        diff = zp - sim.zp_true
        print(f"{sim.image_id:16s} tied zero point - true {1000 * diff:6.1f} +- {1000 * err:5.1f} mmag")
        assert abs(diff) < 3 * err, (sim.image_id, diff, err)
        d.setdefault(survey, []).append(diff)
    rms = {s: 1000 * float(np.sqrt(np.mean(np.square(v)))) for s, v in d.items()}
    mean = {s: 1000 * float(np.mean(v)) for s, v in d.items()}
    print("rms (mmag):", {s: round(v, 1) for s, v in rms.items()}, "mean:", {s: round(v, 1) for s, v in mean.items()})
    # measured 6.2 (LSST), 7.1 (Euclid), 7.8 (Roman) mmag rms, scale offsets to LSST -0.6 (Euclid) and
    # -0.2 (Roman) mmag. The 5 mmag per-image target needs more precise stars than a 1' field holds (the
    # reported errors are 9-15 mmag per space image here); on the 3' field of bench/bench_concordance.py
    # the same chain gives 3.9, 5.0 and 3.3 mmag (docs/concordance.md)
    assert rms["lsst"] < 9.0 and rms["euclid"] < 10.0 and rms["roman"] < 10.0, rms
    assert max(abs(mean[s] - mean["lsst"]) for s in ("euclid", "roman")) < CROSS_SURVEY_TIE_MAX_MMAG, mean
