"""Bad requests raise SimulationError; the CLI is a thin layer that writes a field."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from jspdb.cli.sim import app
from jspdb.errors import SimulationError
from jspdb.sim.bands import get_band, get_survey
from jspdb.sim.spec import FieldSpec


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"dec": 95.0}, "dec"),
        ({"size_arcmin": 0.0}, "size_arcmin"),
        ({"density": -1.0}, "density"),
        ({"surveys": ("lsst", "jwst")}, "jwst"),
        ({"surveys": ()}, "no survey"),
        ({"ground_psf": "gaussian"}, "ground_psf"),
    ],
)
def test_bad_requests_raise(kwargs, match):
    base = {"ra": 10.0, "dec": 0.0, "size_arcmin": 1.0, "seed": 1}
    with pytest.raises(SimulationError, match=match):
        FieldSpec(**{**base, **kwargs})


def test_unknown_band_and_survey():
    with pytest.raises(SimulationError, match="unknown band"):
        get_band("lsst_q")
    with pytest.raises(SimulationError, match="unknown survey"):
        get_survey("hst")


def test_band_definitions():
    r = get_band("lsst_r")
    assert r.pixel_scale == 0.2 and 530 < r.wl_min < r.wl_eff < r.wl_max < 720
    vis = get_band("euclid_vis")
    assert (vis.wl_min, vis.wl_max, vis.pixel_scale) == (550.0, 900.0, 0.1)
    assert get_band("euclid_h").pixel_scale == 0.3
    assert get_band("roman_f158").pixel_scale == 0.11
    assert [get_band(b).filter for b in get_survey("roman").bands] == ["F062", "F087", "F106", "F129", "F158", "F184"]


def test_cli_field(tmp_path):
    out = tmp_path / "f"
    result = CliRunner().invoke(app, [
        "field", "--ra", "150.1", "--dec", "2.2", "--size-arcmin", "0.3", "--seed", "9",
        "--surveys", "lsst,roman", "--lsst-epochs", "1", "--out", str(out), "--workers", "1",
    ])
    assert result.exit_code == 0, result.output
    assert "beams/source" in result.output
    index = json.loads((out / "field.json").read_text())
    assert {e["survey"] for e in index["images"]} == {"lsst", "roman"}
    assert len(index["images"]) == 12
    assert all((out / e["file"]).is_file() and (out / e["truth"]).is_file() for e in index["images"])


def test_cli_bad_request_is_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["field", "--ra", "10", "--dec", "-95", "--seed", "1", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "dec=-95" in result.output
