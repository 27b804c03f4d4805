"""Same seed, same bytes (whatever the number of workers); different seeds differ."""

from __future__ import annotations

import hashlib

import pytest

from jspdb.sim.field import simulate_field
from jspdb.sim.spec import FieldSpec
from jspdb.sim.writers import write_field


def _digest(directory):
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    spec = FieldSpec(ra=10.0, dec=-30.0, size_arcmin=0.3, seed=5, lsst_epochs=1)
    out = {}
    for name, s, workers in (("a", spec, 2), ("b", spec, 1),
                             ("c", FieldSpec(**{**spec.to_dict(), "seed": 6, "surveys": spec.surveys}), 2)):
        d = tmp_path_factory.mktemp(f"det_{name}")
        write_field(simulate_field(s, workers=workers), d)
        out[name] = _digest(d)
    return out


def test_same_seed_gives_identical_files(small_runs):
    a, b = small_runs["a"], small_runs["b"]
    assert len(a) > 20
    assert a.keys() == b.keys()
    different = [k for k in a if a[k] != b[k]]
    assert different == []


def test_different_seed_gives_different_files(small_runs):
    a, c = small_runs["a"], small_runs["c"]
    assert a.keys() == c.keys()
    assert a["truth.parquet"] != c["truth.parquet"]
    images = [k for k in a if k.startswith("images/")]
    assert all(a[k] != c[k] for k in images)
