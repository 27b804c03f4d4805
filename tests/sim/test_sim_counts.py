"""Truth counts and beams per source follow the requested density."""

from __future__ import annotations

import numpy as np
import pytest

from jspdb.sim.bands import njy_to_mag
from jspdb.sim.field import beams_per_source
from jspdb.sim.sky import expected_counts, make_truth, sky_to_tangent
from jspdb.sim.spec import FieldSpec


def _spec(density, seed=11):
    return FieldSpec(ra=53.1, dec=-27.8, size_arcmin=3.0, seed=seed, density=density, bright_stars=0)


@pytest.mark.parametrize("density", [0.25, 1.0, 4.0])
def test_counts_follow_requested_density(density):
    spec = _spec(density)
    truth = make_truth(spec)
    kind = truth.column("kind").to_numpy(zero_copy_only=False)
    expect = expected_counts(spec)
    n_gal = np.count_nonzero(kind == "galaxy")
    assert abs(n_gal - expect["galaxy"]) < 4 * np.sqrt(expect["galaxy"])
    n_star = np.count_nonzero(kind == "star")
    assert abs(n_star - expect["star"]) < 4 * np.sqrt(expect["star"]) + 1
    # the published anchor: 55 galaxies per arcmin^2 brighter than i = 25.3 (LSST Science Book)
    i_mag = njy_to_mag(truth.column("flux_lsst_i").to_numpy())
    area_arcmin2 = spec.area_deg2 * 3600.0
    n_bright = np.count_nonzero((kind == "galaxy") & (i_mag < 25.3))
    target = 55.0 * density * area_arcmin2
    assert abs(n_bright - target) < 4 * np.sqrt(target)
    # and ~280 per arcmin^2 to i = 28 (Hubble Ultra Deep Field)
    assert n_gal / (density * area_arcmin2) == pytest.approx(280.0, rel=0.15)


def test_galaxy_sizes_shrink_with_magnitude():
    truth = make_truth(_spec(1.0))
    kind = truth.column("kind").to_numpy(zero_copy_only=False)
    gal = kind == "galaxy"
    mag = njy_to_mag(truth.column("flux_lsst_i").to_numpy())[gal]
    hlr = truth.column("disk_hlr").to_numpy()[gal]
    bright = np.median(hlr[mag < 23.0])
    faint = np.median(hlr[mag > 26.5])
    assert bright > 2.0 * faint
    assert 0.1 < faint < 0.4  # arcsec, as in deep HST imaging


def test_beams_per_source_scale_inversely_with_density():
    t1, t4 = make_truth(_spec(1.0)), make_truth(_spec(4.0, seed=12))
    b1 = beams_per_source(t1, "lsst_r", 0.8, 24.5, 53.1, -27.8, 3.0)
    b4 = beams_per_source(t4, "lsst_r", 0.8, 24.5, 53.1, -27.8, 3.0)
    ratio = b1["beams_per_source"] / b4["beams_per_source"]
    # Poisson error of the ratio of two counts
    rel = np.sqrt(1 / b1["n_detectable"] + 1 / b4["n_detectable"])
    assert ratio == pytest.approx(4.0, rel=4 * rel)
    # recount independently: sources in the field brighter than the depth
    xi, eta = sky_to_tangent(t4.column("ra").to_numpy(), t4.column("dec").to_numpy(), 53.1, -27.8)
    inside = (np.abs(xi) <= 1.5 / 60) & (np.abs(eta) <= 1.5 / 60)
    mag = njy_to_mag(t4.column("flux_lsst_r").to_numpy())
    n = np.count_nonzero(inside & (mag <= 24.5))
    assert b4["n_detectable"] == n
    assert b4["beams_per_source"] == pytest.approx(180.0**2 / (n * np.pi / (4 * np.log(2)) * 0.8**2))


def test_field_summary_records_beams_per_survey(field):
    s = field.summary
    assert set(s["surveys"]) == {"lsst", "euclid", "roman"}
    # space resolution: many more beams per source than from the ground
    assert s["surveys"]["roman"]["beams_per_source_all"] > 10 * s["surveys"]["lsst"]["beams_per_source_all"]
    assert s["n_galaxies"] + s["n_stars"] == field.truth.num_rows
