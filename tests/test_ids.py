import numpy as np

from jspdb.healpix import tile_index
from jspdb.ids import ID_ORDER, id_pixel, make_ids


def test_ids_encode_their_pixel_and_are_unique():
    rng = np.random.default_rng(0)
    ra, dec = rng.uniform(150, 150.1, 5000), rng.uniform(2, 2.1, 5000)
    ids = make_ids(ra, dec)
    assert len(np.unique(ids)) == ids.size
    np.testing.assert_array_equal(id_pixel(ids), tile_index(ra, dec, ID_ORDER))
    np.testing.assert_array_equal(id_pixel(ids, 9), tile_index(ra, dec, 9))
    np.testing.assert_array_equal(make_ids(ra, dec), ids)  # deterministic
    assert np.all(ids > 0)
