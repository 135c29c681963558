"""Tests for ntkbook.data: shapes, norms, determinism per key, and ValueErrors naming arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import data


def test_circle_points_are_unit_and_at_their_angles():
    x = data.circle(12)
    gamma = data.circle_angles(12)
    assert x.shape == (12, 2) and gamma.shape == (12,)
    np.testing.assert_allclose(jnp.linalg.norm(x, axis=1), 1.0, atol=1e-14)
    # angle of each point recovered independently with arctan2, modulo 2π
    recovered = np.mod(np.arctan2(x[:, 1], x[:, 0]), 2 * np.pi)
    np.testing.assert_allclose(recovered, gamma, atol=1e-12)
    # consecutive points are 2π/N apart: cos of the angle between them is cos(2π/N)
    np.testing.assert_allclose(jnp.sum(x * jnp.roll(x, -1, axis=0), axis=1), np.cos(2 * np.pi / 12))


def test_circle_dtype():
    assert data.circle(5, dtype=jnp.float32).dtype == jnp.float32
    assert data.circle(5).dtype == jnp.float64  # conftest enables x64


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_sphere_shape_norm_and_determinism(dim):
    key = jax.random.key(3)
    x = data.sphere(50, dim, key=key)
    assert x.shape == (50, dim)
    np.testing.assert_allclose(jnp.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(x, data.sphere(50, dim, key=key))
    assert not np.array_equal(x, data.sphere(50, dim, key=jax.random.key(4)))


def test_sphere_is_uniform_first_two_moments():
    # Uniform on S^{d-1}: E[x] = 0 and E[x xᵀ] = I/d. With N samples each entry's Monte Carlo
    # error has standard deviation ≤ 1/√N (|x_j| ≤ 1), so 5/√N bounds a 5-sigma deviation.
    n, dim = 4000, 3
    x = np.asarray(data.sphere(n, dim, key=jax.random.key(0)))
    tol = 5 / np.sqrt(n)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=tol)
    np.testing.assert_allclose(x.T @ x / n, np.eye(dim) / dim, atol=tol)


def test_legacy_uint32_key_accepted():
    x = data.sphere(3, 2, key=jax.random.PRNGKey(0))
    assert x.shape == (3, 2)


def test_interval():
    x = data.interval(5, low=-2.0, high=2.0)
    assert x.shape == (5, 1)
    np.testing.assert_allclose(x[:, 0], [-2.0, -1.0, 0.0, 1.0, 2.0])


def test_regression_shapes_noise_and_determinism():
    key = jax.random.key(7)
    ds = data.regression(200, key=key, dim=2, noise=0.3)
    assert ds.x.shape == (200, 2) and ds.y.shape == (200, 1) and ds.y_clean.shape == (200, 1)
    assert float(ds.x.min()) >= -1.0 and float(ds.x.max()) <= 1.0
    np.testing.assert_allclose(ds.y_clean, data.smooth_target(ds.x))
    # the residual is N(0, 0.3²): its sample std is within 5 standard errors (0.3/√(2N)) of 0.3
    resid = np.asarray(ds.y - ds.y_clean)
    assert abs(resid.std() - 0.3) < 5 * 0.3 / np.sqrt(2 * 200)
    again = data.regression(200, key=key, dim=2, noise=0.3)
    for a, b in zip(ds, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_regression_noiseless_and_custom_target():
    ds = data.regression(10, key=jax.random.key(1), noise=0.0, target=lambda x: x**2)
    np.testing.assert_array_equal(ds.y, ds.y_clean)
    np.testing.assert_allclose(ds.y, ds.x**2)


def test_smooth_target_closed_form():
    x = jnp.array([[0.5, 0.0], [1.0, -0.5]])
    np.testing.assert_allclose(
        data.smooth_target(x)[:, 0], [1 / np.sqrt(2), -1 / np.sqrt(2)], atol=1e-15
    )


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: data.circle(0), "n_angles"),
        (lambda: data.circle(2.5), "n_angles"),
        (lambda: data.circle(3, dtype=jnp.int32), "dtype"),
        (lambda: data.sphere(0, 2, key=jax.random.key(0)), "n"),
        (lambda: data.sphere(3, 0, key=jax.random.key(0)), "dim"),
        (lambda: data.sphere(3, 2, key=0), "key"),
        (lambda: data.sphere(3, 2, key=jax.random.split(jax.random.key(0), 2)), "key"),
        (lambda: data.interval(1), "n"),
        (lambda: data.interval(3, low=1.0, high=0.0), "high"),
        (lambda: data.regression(5, key=jax.random.key(0), noise=-1.0), "noise"),
        (lambda: data.regression(5, key=jax.random.key(0), dim=0), "dim"),
        (lambda: data.regression(5, key=jax.random.key(0), target=3), "target"),
        (lambda: data.regression(5, key=jax.random.key(0), target=lambda x: x[:, 0]), "target"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()


def test_single_index_statistics_and_shared_direction():
    w = jnp.zeros(6).at[2].set(3.0)
    ds = data.single_index(20000, key=jax.random.key(0), dim=6, direction=w, dtype=jnp.float64)
    assert ds.x.shape == (20000, 6) and ds.y.shape == (20000, 1)
    np.testing.assert_allclose(jnp.sum(ds.x**2, axis=1), 6.0, rtol=1e-12)
    np.testing.assert_allclose(ds.y[:, 0], (ds.x[:, 2] ** 2 - 1) / np.sqrt(2), rtol=1e-12)
    # ⟨w, x⟩ for x uniform on the sphere of radius √d has mean 0 and variance 1, so
    # E[y] = 0 and E[y²] = (E u⁴ − 2 E u² + 1)/2 with E u⁴ = 3d/(d + 2): 0.625 for d = 6
    assert abs(float(ds.y.mean())) < 5 * float(ds.y.std()) / np.sqrt(20000)
    assert float(jnp.mean(ds.y**2)) == pytest.approx(0.625, rel=0.05)
    a = data.single_index(3, key=jax.random.key(1), dim=4)
    b = data.single_index(3, key=jax.random.key(1), dim=4)
    np.testing.assert_array_equal(a.y, b.y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim": 0}, "dim"),
        ({"direction": jnp.ones(3)}, "direction"),
        ({"direction": jnp.zeros(4)}, "direction"),
        ({"direction": jnp.array([1.0, jnp.nan, 0.0, 0.0])}, "direction"),
    ],
)
def test_single_index_rejects_bad_arguments(kwargs, match):
    args = {"dim": 4} | kwargs
    with pytest.raises(ValueError, match=match):
        data.single_index(5, key=jax.random.key(0), **args)


def test_digits_split_and_preprocessing():
    ds = data.digits(key=jax.random.key(0), n_train=300, n_test=100)
    assert ds.x.shape == (300, 64) and ds.x_test.shape == (100, 64) and ds.n_classes == 10
    # on the sphere of radius √n_0, centred by the training mean
    np.testing.assert_allclose(np.linalg.norm(ds.x, axis=1), 8.0, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(ds.x_test, axis=1), 8.0, rtol=1e-12)
    assert set(np.unique(ds.labels)) == set(range(10))
    # same key, same split; different key, different split; train and test disjoint
    again = data.digits(key=jax.random.key(0), n_train=300, n_test=100)
    np.testing.assert_array_equal(ds.x, again.x)
    other = data.digits(key=jax.random.key(1), n_train=300, n_test=100)
    assert not np.array_equal(ds.x, other.x)
    full = data.digits(
        key=jax.random.key(0), n_train=1000, n_test=data.DIGITS_SIZE - 1000, center=False
    )
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
        data.digits(key=jax.random.key(0), n_train=1500, n_test=400)
    with pytest.raises(ValueError, match="n_train"):
        data.digits(key=jax.random.key(0), n_train=0, n_test=10)
    with pytest.raises(ValueError, match="key"):
        data.digits(key=0, n_train=10, n_test=10)
