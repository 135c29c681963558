"""ntkbook.spectra: numerical rank, harmonic dimensions, zonal spectra on the sphere."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import data, limits, spectra


def test_numerical_rank_of_exact_low_rank_matrix():
    a = jax.random.normal(jax.random.key(1), (50, 7))
    r = spectra.numerical_rank(a @ a.T)
    assert r.rank == 7
    assert r.gap > 1e8
    assert r.eigs.shape == (50,) and np.all(np.diff(r.eigs) <= 0)
    assert r.tol == pytest.approx(50 * np.finfo(float).eps * r.eigs[0])
    full = spectra.numerical_rank(jnp.eye(4))
    assert full.rank == 4 and full.gap == float("inf") and full.largest_dropped == 0.0


def test_numerical_rank_rtol_changes_the_count():
    k = jnp.diag(jnp.array([1.0, 1e-3, 1e-9]))
    assert spectra.numerical_rank(k).rank == 3
    assert spectra.numerical_rank(k, rtol=1e-6).rank == 2


@pytest.mark.parametrize(
    ("gram", "rtol", "name"),
    [
        (jnp.ones((2, 3)), None, "gram"),
        (jnp.array([[1.0, jnp.nan], [jnp.nan, 1.0]]), None, "gram"),
        (jnp.array([[1.0, 0.5], [0.0, 1.0]]), None, "gram"),
        (-jnp.eye(2), None, "gram"),
        (jnp.eye(2), 2.0, "rtol"),
        (jnp.eye(2), 0.0, "rtol"),
    ],
)
def test_numerical_rank_errors(gram, rtol, name):
    with pytest.raises(ValueError, match=name):
        spectra.numerical_rank(gram, rtol=rtol)


def test_harmonic_dimension_known_values():
    assert [spectra.harmonic_dimension(2, k) for k in range(4)] == [1, 2, 2, 2]
    assert [spectra.harmonic_dimension(3, k) for k in range(4)] == [1, 3, 5, 7]
    # polynomials of degree ≤ 2 on S^9: 1 + 10 + 54 = 65 = C(11, 2) + C(10, 1)
    assert sum(spectra.harmonic_dimension(10, k) for k in range(3)) == 65
    with pytest.raises(ValueError, match="dim"):
        spectra.harmonic_dimension(1, 2)
    with pytest.raises(ValueError, match="degree"):
        spectra.harmonic_dimension(3, -1)


def test_zonal_spectrum_on_circle_equals_circulant_eigenvalues():
    # erf: geometric decay, so the aliasing of the N-point DFT is below round-off.
    n = 64
    x = data.circle(n, dtype=jnp.float64)
    k = np.asarray(limits.ntk(x, depth=2, activation="erf", beta=0.3))
    z = spectra.zonal_spectrum(dim=2, max_degree=n // 2, depth=2, activation="erf", beta=0.3)
    eig = np.sort(np.linalg.eigvalsh(k))[::-1]
    # circulant: eigenvalue n μ_k for k = 0 and twice n μ_k for 0 < k < n/2
    predicted = np.sort(
        np.concatenate([[z.mu[0]], np.repeat(z.mu[1 : n // 2], 2), [z.mu[n // 2]]]) * n
    )[::-1]
    np.testing.assert_allclose(eig[:20], predicted[:20], rtol=1e-9, atol=1e-12 * eig[0])


def test_zonal_spectrum_sums_to_the_diagonal_and_matches_gram_eigenvalues_on_s2():
    z = spectra.zonal_spectrum(dim=3, max_degree=40, depth=2, activation="erf", beta=0.3)
    x0 = jnp.array([[1.0, 0.0, 0.0]])
    diag = float(limits.ntk(x0, depth=2, activation="erf", beta=0.3)[0, 0])
    assert float(np.sum(z.multiplicity * z.mu)) == pytest.approx(diag, rel=1e-10)
    assert list(z.multiplicity[:3]) == [1, 3, 5]
    # Gram/N of many random points: its top eigenvalue is μ_0 up to O(N^{-1/2}) sampling error
    x = data.sphere(600, 3, key=jax.random.key(2), dtype=jnp.float64)
    top = np.linalg.eigvalsh(np.asarray(limits.ntk(x, depth=2, activation="erf", beta=0.3)))[-1]
    assert top / 600 == pytest.approx(z.mu[0], rel=0.1)


def test_zonal_spectrum_relu_two_layers_has_no_odd_modes_above_one():
    z = spectra.zonal_spectrum(dim=3, max_degree=9, depth=2, activation="relu")
    assert abs(z.mu[1]) > 1e-3
    assert np.max(np.abs(z.mu[3::2])) < 1e-12 * z.mu[0]
    assert np.all(z.mu[0::2] > 0)


def test_zonal_spectrum_errors():
    with pytest.raises(ValueError, match="dim"):
        spectra.zonal_spectrum(dim=1, max_degree=3, depth=2)
    with pytest.raises(ValueError, match="kernel"):
        spectra.zonal_spectrum(dim=2, max_degree=3, depth=2, kernel="gp")
    with pytest.raises(ValueError, match="nodes"):
        spectra.zonal_spectrum(dim=2, max_degree=30, depth=2, nodes=20)
    with pytest.raises(ValueError, match="max_degree"):
        spectra.zonal_spectrum(dim=2, max_degree=-1, depth=2)
    with pytest.raises(ValueError, match="activation"):
        spectra.zonal_spectrum(dim=2, max_degree=3, depth=2, activation="nope")
