"""Tests of data.digits (scikit-learn's bundled 8×8 digits)."""

import jax
import numpy as np
import pytest

from ntkbook import data


def test_digits_split_and_preprocessing():
    ds = data.digits(jax.random.key(0), n_train=300, n_test=100)
    assert ds.x.shape == (300, 64) and ds.x_test.shape == (100, 64) and ds.n_classes == 10
    # on the sphere of radius √n_0, centred by the training mean
    np.testing.assert_allclose(np.linalg.norm(ds.x, axis=1), 8.0, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(ds.x_test, axis=1), 8.0, rtol=1e-12)
    assert set(np.unique(ds.labels)) == set(range(10))
    # same key, same split; different key, different split; train and test disjoint
    again = data.digits(jax.random.key(0), n_train=300, n_test=100)
    np.testing.assert_array_equal(ds.x, again.x)
    other = data.digits(jax.random.key(1), n_train=300, n_test=100)
    assert not np.array_equal(ds.x, other.x)
    full = data.digits(jax.random.key(0), n_train=1000, n_test=data.DIGITS_SIZE - 1000,
                       center=False)
    rows = {tuple(np.round(r, 6)) for r in np.asarray(full.x)}
    assert not rows & {tuple(np.round(r, 6)) for r in np.asarray(full.x_test)}
    # the raw images are u / ‖u‖ · 8: compare with scikit-learn directly
    from sklearn.datasets import load_digits
    raw = load_digits()
    i = int(np.asarray(jax.random.permutation(jax.random.key(0), data.DIGITS_SIZE))[0])
    np.testing.assert_allclose(full.x[0], 8 * raw.data[i] / np.linalg.norm(raw.data[i]))
    assert int(full.labels[0]) == int(raw.target[i])


def test_digits_errors():
    with pytest.raises(ValueError, match="n_test"):
        data.digits(jax.random.key(0), n_train=1500, n_test=400)
    with pytest.raises(ValueError, match="n_train"):
        data.digits(jax.random.key(0), n_train=0, n_test=10)
    with pytest.raises(ValueError, match="key"):
        data.digits(0, n_train=10, n_test=10)
