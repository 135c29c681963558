"""Tests of ntkbook.limits against independent references.

References: closed forms typed from the literature (Cho & Saul 2009; Williams 1997), scipy's
adaptive quadrature in float64, Monte Carlo over wide networks (ntkbook.networks) and autodiff of a
plain JAX network. Each tolerance says where it comes from.
"""

import functools
import inspect
import math
import warnings

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special

import ntkbook
from ntkbook import limits, networks
from ntkbook.activations import Activation, from_function, get, leaky_relu

RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 3))
Y = RNG.normal(size=(4, 3))


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ------------------------------------------------------------------ closed form <-> quadrature


@pytest.mark.parametrize("name", ["relu", "abs", "leaky", "identity"])
def test_closed_form_matches_polar_quadrature_every_layer(name):
    act = leaky_relu(0.2) if name == "leaky" else get(name)
    opts = dict(depth=4, activation=act, beta=0.3, sigma_w=1.3)
    exact = limits.kernels(X, Y, **opts)
    quad = limits.kernels(X, Y, quadrature="polar", points=12, **opts)
    # Polar Gauss rules are exact on the ReLU/abs cells up to rounding; the floor is the
    # √eps ≈ 1.5e-8 conditioning of θ = arccos ρ near ρ = 1, times O(depth): 1e-6.
    for field in range(3):
        assert rel_err(quad[field], exact[field]) < 1e-6, field


def test_erf_closed_form_matches_mehler_series_every_layer():
    opts = dict(depth=4, activation="erf", beta=0.3, sigma_w=1.3)
    exact = limits.kernels(X, Y, **opts)
    series = limits.kernels(X, Y, quadrature="mehler", points=160, **opts)
    # erf(√k z) is entire: its Hermite tail decays super-geometrically; with 160 terms and
    # variances k ≲ 5 here the tail is < 1e-10 (the 64-term default gives ~1e-7 at k = 3).
    for field in range(3):
        assert rel_err(series[field], exact[field]) < 1e-8, field


def test_polar_rule_beats_tensor_gauss_hermite_on_relu():
    k11, k12, k22 = np.array([1.0]), np.array([0.3]), np.array([2.0])
    exact = limits.expectation(k11, k12, k22, activation="relu")
    # the registry's relu refuses "hermite" (test_kinked_activation_refuses_hermite_rules); a
    # copy that does not declare its kink takes it, with a warning naming the points
    undeclared = Activation("relu-undeclared", jax.nn.relu, get("relu").sigma_dot)
    with pytest.warns(UserWarning, match="^points: 25 hermite points"):
        tensor = limits.expectation(
            k11, k12, k22, activation=undeclared, quadrature="hermite", points=25
        )
    polar = limits.expectation(k11, k12, k22, activation="relu", quadrature="polar", points=8)
    err_tensor = max(rel_err(a, b) for a, b in zip(tensor, exact, strict=True))
    err_polar = max(rel_err(a, b) for a, b in zip(polar, exact, strict=True))
    # Tensor Gauss–Hermite converges only algebraically across the kink (neural-tangents'
    # ~1e-2 at 25 points); the kink-split rule is exact for piecewise-linear σ up to rounding.
    assert err_tensor > 1e-4
    assert err_polar < 1e-12


# ------------------------------------------------------------------ quadrature <-> scipy


def scipy_expectation(f, k11, k12, k22):
    """E[f(u) f(v)] by nested adaptive quadrature in float64 (u = √k11 z1, v = ...)."""
    rho = k12 / math.sqrt(k11 * k22)
    s = math.sqrt(1 - rho * rho)
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731

    def inner(z1):
        g = lambda z2: f(math.sqrt(k22) * (rho * z1 + s * z2)) * phi(z2)  # noqa: E731
        return integrate.quad(g, -11, 11, epsabs=1e-13, epsrel=1e-12, limit=200)[0]

    outer = lambda z1: f(math.sqrt(k11) * z1) * phi(z1) * inner(z1)  # noqa: E731
    return integrate.quad(outer, -11, 11, epsabs=1e-12, epsrel=1e-11, limit=200)[0]


SMOOTH = {
    "tanh": (math.tanh, lambda z: 1 - math.tanh(z) ** 2),
    "softplus": (
        lambda z: math.log1p(math.exp(-abs(z))) + max(z, 0.0),
        lambda z: 1 / (1 + math.exp(-z)),
    ),
    "gelu": (
        lambda z: 0.5 * z * (1 + math.erf(z / math.sqrt(2))),
        lambda z: (
            0.5 * (1 + math.erf(z / math.sqrt(2)))
            + z * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(SMOOTH))
@pytest.mark.parametrize("k", [(1.0, 0.6, 0.8), (0.5, -0.3, 1.5)])
def test_mehler_series_matches_scipy_reference(name, k):
    f, f_dot = SMOOTH[name]
    e_ss, e_dd = limits.expectation(*(np.array([v]) for v in k), activation=name)
    # The requirement: ≤ 1e-6 relative for smooth σ (scipy's own tolerance is 1e-11).
    assert rel_err(e_ss, scipy_expectation(f, *k)) < 1e-6
    assert rel_err(e_dd, scipy_expectation(f_dot, *k)) < 1e-6


def test_polar_rule_converges_for_kinked_function_without_closed_form():
    act = from_function(lambda z: jnp.abs(z) + jnp.tanh(z), name="abs+tanh", kinked=True)
    k = (1.0, 0.4, 0.7)
    e_ss, _ = limits.expectation(*(np.array([v]) for v in k), activation=act, points=16)
    ref = scipy_expectation(lambda z: abs(z) + math.tanh(z), *k)
    assert rel_err(e_ss, ref) < 1e-6  # analytic on each polar cell: exponential convergence


# ------------------------------------------------------------------ known values


def test_one_hidden_relu_layer_textbook_formula():
    n0 = X.shape[1]
    k = limits.kernels(X, Y, depth=2)
    norms = np.linalg.norm(X, axis=1)[:, None] * np.linalg.norm(Y, axis=1)[None, :]
    theta = np.arccos(np.clip(X @ Y.T / norms, -1, 1))
    sigma2 = norms / (2 * np.pi * n0) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
    sigma_dot2 = (np.pi - theta) / (2 * np.pi)
    np.testing.assert_allclose(k.sigma[1], sigma2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(k.sigma_dot[1], sigma_dot2, rtol=1e-12)
    np.testing.assert_allclose(
        k.theta[1], X @ Y.T / n0 * sigma_dot2 + sigma2, rtol=1e-12, atol=1e-14
    )
    np.testing.assert_array_equal(k.sigma_dot[0], 0.0)


def test_one_hidden_erf_layer_williams_formula():
    beta, n0 = 0.5, X.shape[1]
    k1 = X @ Y.T / n0 + beta**2
    d1 = np.sum(X * X, 1)[:, None] / n0 + beta**2
    d2 = np.sum(Y * Y, 1)[None, :] / n0 + beta**2
    sigma2 = 2 / np.pi * np.arcsin(2 * k1 / np.sqrt((1 + 2 * d1) * (1 + 2 * d2))) + beta**2
    np.testing.assert_allclose(
        ntkbook.nngp(X, Y, depth=2, activation="erf", beta=beta), sigma2, rtol=1e-12
    )


# ------------------------------------------------------------------ Monte Carlo of real networks


@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_second_layer_kernels_match_wide_network_monte_carlo(name):
    # For one hidden layer the n hidden pre-activations are exactly i.i.d. N(0, Σ^(1)), so the
    # average of σ(α̃_i(x)) σ(α̃_i(x')) over units and seeds is an unbiased estimate of
    # (Σ^(2) − β²)/σ_w²; tolerance: 5 standard errors (from the sample variance).
    beta, sigma_w, width, seeds = 0.4, 1.2, 2048, 16
    x = X[:3]
    net = networks.mlp((3, width, 1), activation=name, beta=beta, sigma_w=sigma_w)
    act = net.activation

    def features(key):
        pre = networks.forward(net, networks.init(net, key=key, dtype=jnp.float64), x).pre[0]
        a, d = act.sigma(pre), act.sigma_dot(pre)
        return jnp.einsum("in,jn->nij", a, a), jnp.einsum("in,jn->nij", d, d)

    ss, dd = jax.vmap(features)(jax.random.split(jax.random.key(1), seeds))
    k = limits.kernels(x, depth=2, activation=name, beta=beta, sigma_w=sigma_w)
    for sample, target in (
        (ss, (k.sigma[1] - beta**2) / sigma_w**2),
        (dd, k.sigma_dot[1] / sigma_w**2),
    ):
        sample = np.asarray(sample).reshape(-1, 3, 3)
        se = sample.std(0) / math.sqrt(sample.shape[0])
        assert np.all(np.abs(sample.mean(0) - target) < 5 * se + 1e-12)


def test_ntk_matches_autodiff_of_plain_network_averaged_over_seeds():
    # Depth 2, NTK parametrisation: E_init[∂f·∂f] = Θ^(2) exactly at any width (the output
    # weights are independent of the hidden units with E[W²] = 1); 5 standard errors.
    beta, width, seeds, x = 0.3, 64, 400, X[:3]

    def f(params, x):
        w1, b1, w2, b2 = params
        h = jnp.tanh(x @ w1 / math.sqrt(3) + beta * b1[None, :])
        return (h @ w2 / math.sqrt(width) + beta * b2[None, :])[:, 0]

    def empirical(key):
        ks = jax.random.split(key, 4)
        shapes = [(3, width), (width,), (width, 1), (1,)]
        params = [jax.random.normal(k, s, jnp.float64) for k, s in zip(ks, shapes, strict=True)]
        jac = jax.jacrev(f)(params, x)
        flat = jnp.concatenate([j.reshape(3, -1) for j in jac], axis=1)
        return flat @ flat.T

    sample = np.asarray(jax.vmap(empirical)(jax.random.split(jax.random.key(2), seeds)))
    se = sample.std(0) / math.sqrt(seeds)
    theta = ntkbook.ntk(x, depth=2, activation="tanh", beta=beta)
    assert np.all(np.abs(sample.mean(0) - theta) < 5 * se)


# ------------------------------------------------------------------ properties


# Fixed shapes and few depths: every new (shape, depth, activation) is a new XLA compile.
matrices = hnp.arrays(np.float64, (4, 3), elements=st.floats(-3, 3, width=64))
DEPTHS = st.sampled_from([1, 3])
ACTS = st.sampled_from(["relu", "erf", "tanh", "abs", "identity"])


@settings(max_examples=25, deadline=None)
@given(x=matrices, y=matrices, act=ACTS, beta=st.floats(0, 1), depth=DEPTHS)
def test_symmetry_and_diagonal_consistency(x, y, act, beta, depth):
    kxy = limits.kernels(x, y, depth=depth, activation=act, beta=beta)
    kyx = limits.kernels(y, x, depth=depth, activation=act, beta=beta)
    kxx = limits.kernels(x, depth=depth, activation=act, beta=beta)
    diag = limits.kernels(x, depth=depth, activation=act, beta=beta, diagonal=True)
    for field in range(3):
        np.testing.assert_allclose(
            kxy[field], np.swapaxes(kyx[field], 1, 2), rtol=1e-10, atol=1e-12
        )
        np.testing.assert_allclose(
            np.diagonal(kxx[field], axis1=1, axis2=2), diag[field], rtol=1e-7, atol=1e-12
        )


@settings(max_examples=25, deadline=None)
@given(x=matrices, act=ACTS, beta=st.floats(0, 1), depth=DEPTHS)
def test_positive_semidefinite(x, act, beta, depth):
    k = limits.kernels(x, depth=depth, activation=act, beta=beta)
    for field in (k.sigma, k.theta):
        for layer in np.asarray(field):
            eig = np.linalg.eigvalsh(layer)
            assert eig.min() >= -1e-9 * max(1.0, eig.max())


@settings(max_examples=25, deadline=None)
@given(x=matrices, y=matrices, c=st.floats(0.1, 10), depth=DEPTHS)
def test_relu_positive_homogeneity_and_sigma_dot_range(x, y, c, depth):
    k = limits.kernels(x, y, depth=depth)
    kc = limits.kernels(c * x, y, depth=depth)
    # At ρ = ±1 (x ∥ y) the rounded ρ moves θ by O(√eps) ≈ 1.5e-8: absolute tolerance 1e-8 of
    # the kernel's scale; elsewhere the relative 1e-7 holds.
    for a, b, scale in (
        (kc.sigma, k.sigma, c),
        (kc.theta, k.theta, c),
        (kc.sigma_dot, k.sigma_dot, 1),
    ):
        atol = 1e-8 * scale * max(1e-300, float(np.max(np.abs(b))))
        np.testing.assert_allclose(a, scale * b, rtol=1e-7, atol=atol)
    assert np.all((np.asarray(k.sigma_dot) >= 0) & (np.asarray(k.sigma_dot) <= 1))


# ------------------------------------------------------------------ edge cases and shapes


def test_relu_edge_cases_values_and_finite_gradients():
    x = np.array([[1.0, 2.0, -1.0]])
    pairs = {"same": (x, x), "opposite": (x, -x), "zero": (np.zeros_like(x), x)}
    for label, (a, b) in pairs.items():
        k = limits.kernels(a, b, depth=3)
        assert all(np.all(np.isfinite(f)) for f in k), label
        grad = jax.grad(lambda a, b=b: ntkbook.ntk(a, b, depth=3)[0, 0])(jnp.asarray(a))
        assert np.all(np.isfinite(grad)), label
    opposite = limits.kernels(x, -x, depth=2)
    assert float(opposite.sigma[1, 0, 0]) == pytest.approx(0.0, abs=1e-15)  # θ = π
    # ρ = −1 + O(eps) after rounding, so θ = π − O(√eps): Σ̇ = (π − θ)/2π ≤ √(8 eps)/2π ≈ 5e-9.
    assert float(opposite.sigma_dot[1, 0, 0]) == pytest.approx(0.0, abs=1e-8)
    zero = limits.kernels(np.zeros_like(x), depth=2)
    assert float(zero.sigma[1, 0, 0]) == 0.0 and float(zero.theta[1, 0, 0]) == 0.0


def test_shapes_blocks_dtypes():
    k = limits.kernels(X, Y, depth=3, activation="tanh")
    assert k.sigma.shape == (3, 5, 4)
    blocked = limits.kernels(X, Y, depth=3, activation="tanh", block_size=2)  # 3 blocks
    for a, b in zip(k, blocked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    k32 = limits.kernels(X, Y, depth=3, activation="tanh", dtype=jnp.float32)
    assert k32.theta.dtype == jnp.float32
    np.testing.assert_allclose(k32.theta, k.theta, rtol=1e-5, atol=1e-6)  # float32 rounding
    assert ntkbook.nngp(X, depth=2, diagonal=True).shape == (5,)
    assert limits.kernels(X, X + 1, depth=2, diagonal=True).theta.shape == (2, 5)
    wide = RNG.normal(size=(3, 1000))
    assert ntkbook.ntk(wide, wide[:2], depth=2).shape == (3, 2)


def test_fused_closed_form_blocks_and_scanned_layers_agree(monkeypatch):
    opts = dict(depth=5, activation="relu", beta=0.2, sigma_w=1.4)
    whole = limits.kernels(X, Y, **opts)
    blocked = limits.kernels(X, Y, **opts, block_size=2)  # rows 0–1, 2–3, 3–4 (overlap)
    for a, b in zip(whole, blocked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)  # only GEMM shapes differ
    ntk_blocked = ntkbook.ntk(X, Y, **opts, block_size=2)
    np.testing.assert_allclose(ntk_blocked, whole.theta[-1], rtol=1e-13, atol=1e-15)
    monkeypatch.setattr(limits, "_UNROLL_DEPTH", 0)  # the lax.scan over layers instead
    jax.clear_caches()
    try:
        scanned = limits.kernels(X, Y, **opts)
    finally:
        monkeypatch.undo()
        jax.clear_caches()
    for a, b in zip(whole, scanned, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("activation, depth", [("relu", 4), ("relu", 20), ("tanh", 4)])
def test_layers_option_returns_the_same_layers(activation, depth):
    # the unrolled closed form (depth 4), the scanned one (depth 20 > 16) and the Mehler series
    opts = dict(depth=depth, activation=activation, beta=0.2)
    every = limits.kernels(X, Y, **opts)
    for layers, rows in (([-1], [depth - 1]), ([1, -1], [0, depth - 1]), ([3, 2, 3], [1, 2])):
        part = limits.kernels(X, Y, **opts, layers=layers)
        for a, b in zip(every, part, strict=True):
            np.testing.assert_allclose(np.asarray(a)[rows], b, rtol=1e-13, atol=1e-15)
    last = limits.kernels(X, **opts, layers=[-1])  # symmetric: the diagonal override too
    np.testing.assert_allclose(last.theta[0], limits.kernels(X, **opts).theta[-1], rtol=1e-13)
    assert limits.kernels(X, **opts, layers=[-1], diagonal=True).theta.shape == (1, 5)


@pytest.mark.parametrize("name", ["relu", "abs", "leaky", "identity"])
@pytest.mark.parametrize("which", ["ntk", "nngp"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_closed_form_layers_fuse_into_one_pass_without_n_by_n_temporaries(name, which, dtype):
    # The speed of the arc-cosine kernels rests on XLA fusing every layer after the Gram matrix
    # into one elementwise pass (benchmarks/limits.py). Whether it does depends on the exact
    # graph: e.g. dropping the clip of ρ splits the ReLU recursion into five (N, N) passes, 2.6×
    # slower. The compiled program's temporaries reveal a split: one (N, N) array is 1–2 MiB here.
    # (erf is not in the list: its per-entry divisions make XLA keep each layer's Σ in memory.)
    act = leaky_relu(0.2) if name == "leaky" else get(name)
    n = 512
    x = jnp.asarray(RNG.normal(size=(n, 8)), dtype)
    cfg = limits._Config(4, act, (limits._Rule("closed"),) * 3)
    sigma_w, beta = jnp.asarray(1.0, dtype), jnp.asarray(0.1, dtype)
    compiled = limits._full.lower(
        x, x, sigma_w, beta, (None,), cfg=cfg, which=which, block_size=n, symmetric=True
    ).compile()
    memory = compiled.memory_analysis()
    matrix = n * n * jnp.dtype(dtype).itemsize
    # one (N, N) kernel, plus the range check's largest variance (a scalar, 0 for closed forms)
    # and the output tuple's table of pointers: under 64 bytes, far below a second matrix
    assert matrix < memory.output_size_in_bytes < matrix + 64, memory.output_size_in_bytes
    assert memory.temp_size_in_bytes < matrix // 8, memory.temp_size_in_bytes


@pytest.mark.parametrize("n0", [3, 64, 1024])
def test_float32_diagonal_is_exact_to_rounding(n0):
    # k(x, x) from the Gram matrix has ρ = 1 − O(n0 eps) (GEMM and row sums round differently)
    # and arccos turns that into θ ~ √eps: Θ(x, x) was off by ~1e-4. The symmetric kernel takes
    # its diagonal from the diagonal recursion, where ρ = 1 up to a few ulps (snapped to 1).
    x = RNG.normal(size=(40, n0))
    opts = dict(depth=4, beta=0.1)
    ref = np.asarray(ntkbook.ntk(x, **opts))
    x32 = x.astype(np.float32)
    eps = float(np.finfo(np.float32).eps)
    scale = np.abs(ref).max()
    for got in (ntkbook.ntk(x32, **opts), ntkbook.ntk(x32, **opts, block_size=16)):
        err = np.abs(np.asarray(got, np.float64) - ref) / scale
        # elementwise float32 rounding through three layers of ~40 operations each
        assert np.diag(err).max() < 32 * eps, np.diag(err).max()
        assert err.max() < 32 * eps
        # the symmetric kernel's diagonal is the diagonal recursion's, bit for bit
        np.testing.assert_array_equal(np.diag(got), ntkbook.ntk(x32, **opts, diagonal=True))
    diag = np.asarray(ntkbook.ntk(x32, **opts, diagonal=True), np.float64)
    assert np.abs(diag - np.diag(ref)).max() / scale < 32 * eps


@pytest.mark.parametrize("name", ["relu", "erf", "tanh"])
def test_depth_100_float32_stays_finite(name):
    x = RNG.normal(size=(4, 8)).astype(np.float32)
    k = limits.kernels(x, depth=100, activation=name, beta=0.1)
    assert all(np.all(np.isfinite(np.asarray(f))) for f in k)
    relu = limits.kernels(x, depth=100)  # β = 0: Σ halves per layer and underflows to 0
    assert all(np.all(np.isfinite(np.asarray(f))) for f in relu)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(x1=X, x2=RNG.normal(size=(2, 4)), depth=2), "x2"),
        (dict(x1=X, depth=0), "depth"),
        (dict(x1=np.where(X > 1, np.nan, X), depth=2), "x1"),
        (dict(x1=X, x2=np.full((2, 3), np.inf), depth=2), "x2"),
        (dict(x1=X, depth=2, beta=-1.0), "beta"),
        (dict(x1=X, depth=2, sigma_w=-1.0), "sigma_w"),
        (dict(x1=X, depth=2, activation="swish"), "activation"),
        (dict(x1=X, depth=2, quadrature="simpson"), "quadrature"),
        (dict(x1=X, depth=2, activation="tanh", quadrature="closed"), "quadrature"),
        (dict(x1=X, depth=2, points=1, quadrature="polar"), "points"),
        (dict(x1=X, depth=2, block_size=0), "block_size"),
        (dict(x1=X[0], depth=2), "x1"),
        (dict(x1=X, x2=Y, depth=2, diagonal=True), "x2"),
        (dict(x1=X, depth=2, dtype=jnp.int32), "dtype"),
        (dict(x1=X, depth=2, layers=[0]), "layers"),
        (dict(x1=X, depth=2, layers=[3]), "layers"),
        (dict(x1=X, depth=2, layers=[-3]), "layers"),
        (dict(x1=X, depth=2, layers=[]), "layers"),
        (dict(x1=X, depth=2, layers=[1.5]), "layers"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        limits.kernels(**kwargs)


def test_nngp_ntk_have_explicit_keyword_only_signatures():
    # help() shows every option; an unknown one is Python's own TypeError naming it
    for fn in (limits.kernels, limits.nngp, limits.ntk, limits.standard_ntk):
        params = inspect.signature(fn).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), fn
        for name in ("activation", "beta", "sigma_w", "quadrature", "points", "block_size"):
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (fn, name)
    with pytest.raises(TypeError, match="bogus"):
        ntkbook.ntk(X, depth=2, bogus=1)


def test_custom_activation_object_is_accepted():
    act = Activation("relu-copy", jax.nn.relu, get("relu").sigma_dot, kinked=True)
    np.testing.assert_allclose(
        ntkbook.ntk(X, depth=3, activation=act), ntkbook.ntk(X, depth=3), rtol=1e-6
    )


def test_standard_ntk_one_layer_is_exact():
    # L = 1, standard parametrisation: ∂f/∂W = x, ∂f/∂b = 1, so Θ = xᵀx′ + 1 at any width.
    x = np.random.default_rng(0).normal(size=(5, 3))
    got = limits.standard_ntk(x, widths=(3, 1), beta=0.7, sigma_w=1.3)
    np.testing.assert_allclose(got, x @ x.T + 1.0, rtol=1e-12)


def test_standard_ntk_matches_wide_standard_networks():
    # Mean over seeds of the empirical standard-parametrisation NTK at width n against the
    # formula; the relative fluctuation of the traced NTK is O(n^{-1/2}) ≈ 0.03 at n = 1024 per
    # seed, so 8 seeds sit well inside 5 % (a generous multiple of the rate).
    from ntkbook import empirical, networks

    x = np.random.default_rng(1).normal(size=(4, 3))
    widths = (3, 1024, 1024, 1)
    net = networks.mlp(widths, activation="relu", parametrisation="standard", beta=0.5)
    keys = jax.random.split(jax.random.key(0), 8)
    emp = np.mean(
        [empirical.ntk(x, net=net, params=networks.init(net, key=k), traced=True) for k in keys], 0
    )
    want = limits.standard_ntk(x, widths=widths, beta=0.5)
    np.testing.assert_allclose(emp, want, rtol=0.05)


# ------------------------------------------------------------------ accuracy at any input scale
# Reference: a composite 8-point Gauss–Legendre product rule on [−9, 9]² in (z1, z2), panels
# 0.1 wide, in numpy float64, after the Cholesky map u = √k11 z1, v = √k22 (ρ z1 + √(1−ρ²) z2).
# It shares nothing with the code under test (Hermite series, polar rule) and resolves
# tanh(10 z) (variance 100): halving the panels changes it by < 1e-13, and the Gaussian tail
# beyond 9 is e^{−40}. It needs σ smooth (a kinked σ is checked against its closed form).


def _panel_rule(width=0.1, order=8, bound=9.0):
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.arange(-bound, bound + 1e-9, width)
    a, b = edges[:-1, None], edges[1:, None]
    z = (0.5 * (b - a) * x + 0.5 * (a + b)).ravel()
    return z, (0.5 * (b - a) * w).ravel() * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)


PANEL = _panel_rule()


def reference_expectation(f, k11, k12, k22):
    z, w = PANEL
    rho = k12 / math.sqrt(k11 * k22)
    s = math.sqrt(max(0.0, 1.0 - rho * rho))
    inner = f(math.sqrt(k22) * (rho * z[:, None] + s * z[None, :])) @ w
    return float(w @ (f(math.sqrt(k11) * z) * inner))


_C = math.sqrt(2 / math.pi)


def _tanh_dot(z):
    return 1.0 - np.tanh(z) ** 2


def _gelu_tanh(z):
    return 0.5 * z * (1.0 + np.tanh(_C * (z + 0.044715 * z**3)))


def _gelu_tanh_dot(z):
    t = np.tanh(_C * (z + 0.044715 * z**3))
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * _C * (1 + 3 * 0.044715 * z * z)


NUMPY = {  # σ, σ̇ written in numpy for the reference
    "tanh": (np.tanh, _tanh_dot),
    "gelu": (
        lambda z: 0.5 * z * (1 + special.erf(z / math.sqrt(2))),
        lambda z: (
            0.5 * (1 + special.erf(z / math.sqrt(2)))
            + z * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        ),
    ),
    "gelu_tanh": (_gelu_tanh, _gelu_tanh_dot),
    "softplus": (lambda z: np.logaddexp(0.0, z), special.expit),
    "sin": (np.sin, np.cos),
    "tanh+z/4": (lambda z: np.tanh(z) + 0.25 * z, lambda z: _tanh_dot(z) + 0.25),
}
CALLABLES = {  # what a user passes → the numpy reference it must match
    "tanh": "tanh",
    "gelu": "gelu",
    "softplus": "softplus",
    "sin": "sin",
    jnp.tanh: "tanh",
    jax.nn.gelu: "gelu_tanh",
}


def _pairs(k):
    """Probe covariances at variance k: three correlations, and k against k/7."""
    k11 = np.array([k, k, k, k])
    k22 = np.array([k, k, k, k / 7])
    k12 = np.array([0.999, 0.4, -0.8, 0.6]) * np.sqrt(k11 * k22)
    return k11, k12, k22


@pytest.mark.parametrize("activation", ["tanh", "gelu", "softplus", "sin", jax.nn.gelu])
@pytest.mark.parametrize("k", [0.1, 4.0, 30.0, 100.0])
def test_expectation_default_is_accurate_at_any_variance(activation, k):
    # The requirement: ≤ 1e-8 relative (to the largest value) with defaults only, for
    # variances up to 100. Before, "tanh" was off by 7e-3 at 10 and jnp.tanh by 0.1 at 30.
    f, f_dot = NUMPY[CALLABLES[activation]]
    pairs = _pairs(k)
    got = limits.expectation(*pairs, activation=activation)
    for g, fn in zip(got, (f, f_dot), strict=True):
        want = np.array([reference_expectation(fn, *p) for p in zip(*pairs, strict=True)])
        assert rel_err(g, want) < 1e-8, (activation, k, rel_err(g, want))


def reference_kernels(f, f_dot, x, depth, beta, sigma_w):
    """Σ, Σ̇, Θ of every layer on the rows of x by the recursion with the reference above."""
    k = sigma_w**2 * x @ x.T / x.shape[1] + beta**2
    sig, dot, theta = [k], [np.zeros_like(k)], [k]
    n = len(x)
    for _ in range(depth - 1):
        e = np.zeros((2, n, n))
        for i in range(n):
            for j in range(i, n):
                for t, fn in enumerate((f, f_dot)):
                    e[t, i, j] = e[t, j, i] = reference_expectation(fn, k[i, i], k[i, j], k[j, j])
        k = sigma_w**2 * e[0] + beta**2
        sig.append(k)
        dot.append(sigma_w**2 * e[1])
        theta.append(theta[-1] * dot[-1] + k)
    return np.array(sig), np.array(dot), np.array(theta)


def _scaled_inputs(sigma1, beta, sigma_w):
    """Three inputs in n_0 = 3 with Σ¹(x, x) = sigma1 for the first two (at an angle of 1 rad)
    and a third of 0.4× their norm."""
    r = math.sqrt(3 * (sigma1 - beta**2)) / sigma_w
    rows = [[r, 0, 0], [r * math.cos(1.0), r * math.sin(1.0), 0], [0.0, 0.24 * r, 0.32 * r]]
    return np.array(rows)


@pytest.mark.parametrize(
    "activation, sigma1, depth, beta, sigma_w",
    [
        ("tanh", 100.0, 4, 0.1, 1.0),
        (jnp.tanh, 30.0, 10, 0.3, 1.5),
        ("gelu", 10.0, 6, 0.0, 1.4),
        ("softplus", 100.0, 3, 0.2, 1.0),
        ("sin", 4.0, 10, 0.5, 1.2),
    ],
)
def test_kernels_default_are_accurate_for_large_variances_and_depths(
    activation, sigma1, depth, beta, sigma_w
):
    # Σ, Σ̇ and Θ of every layer within 1e-8 relative of the independent recursion.
    f, f_dot = NUMPY[CALLABLES[activation]]
    x = _scaled_inputs(sigma1, beta, sigma_w)[: 3 if depth <= 4 else 2]  # reference time
    want = reference_kernels(f, f_dot, x, depth, beta, sigma_w)
    got = limits.kernels(x, depth=depth, activation=activation, beta=beta, sigma_w=sigma_w)
    for name, g, w in zip(("sigma", "sigma_dot", "theta"), got, want, strict=True):
        for layer in range(1 if name == "sigma_dot" else 0, depth):
            err = rel_err(g[layer], w[layer])
            assert err < 1e-8, (name, layer + 1, err)


@pytest.mark.parametrize(
    "fn, name",
    [
        (jax.nn.relu, "relu"),
        (jnp.abs, "abs"),
        (jnp.tanh, "tanh"),
        (jax.scipy.special.erf, "erf"),
        (jax.nn.softplus, "softplus"),
        (jax.nn.gelu, "gelu_tanh"),
        (functools.partial(jax.nn.gelu, approximate=True), "gelu_tanh"),
        (functools.partial(jax.nn.gelu, approximate=False), "gelu"),
        (jnp.sin, "sin"),
        (jax.nn.identity, "identity"),
        (jax.nn.leaky_relu, "leaky_relu(0.01)"),
        (functools.partial(jax.nn.leaky_relu, negative_slope=0.2), "leaky_relu(0.2)"),
    ],
)
def test_well_known_jax_functions_are_recognised(fn, name):
    act = get(fn)
    assert act.name == name
    want = leaky_relu(float(name[11:-1])) if name.startswith("leaky") else get(name)
    assert act is want  # the registry's entry: its closed form and kink flag
    if act.expectation is not None:  # relu, abs, erf, sin, identity, leaky: closed forms
        x = _scaled_inputs(4.0, 0.1, 1.0)
        cfg = limits.kernels(x, depth=3, activation=fn, beta=0.1)
        assert all(np.all(np.isfinite(np.asarray(f))) for f in cfg)


def test_relu_callable_matches_arc_cosine_formula_at_every_depth():
    # Before: jax.nn.relu took the smooth-σ Mehler series and was off by 1.1e-2 … 3.3e-2 at
    # depth 2 … 4. Reference: the arc-cosine recursion in numpy (Cho & Saul 2009).
    x = _scaled_inputs(1.0, 0.1, 1.0)
    k = x @ x.T / 3 + 0.01
    got = limits.kernels(x, depth=4, activation=jax.nn.relu, beta=0.1)
    for layer in range(1, 4):
        s = np.sqrt(np.outer(np.diag(k), np.diag(k)))
        theta = np.arccos(np.clip(k / s, -1, 1))
        k = s * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi) + 0.01
        assert rel_err(got.sigma[layer], k) < 1e-12


def test_unknown_callables_smooth_or_kinked_at_zero_are_exact():
    # An unrecognised smooth σ: the Mehler series, its length from the coefficients' tail.
    f, f_dot = NUMPY["tanh+z/4"]
    pairs = _pairs(30.0)
    got = limits.expectation(*pairs, activation=lambda z: jnp.tanh(z) + 0.25 * z)
    for g, fn in zip(got, (f, f_dot), strict=True):
        want = np.array([reference_expectation(fn, *p) for p in zip(*pairs, strict=True)])
        assert rel_err(g, want) < 1e-8
    # An unrecognised σ kinked at 0 (leaky ReLU with slope −1/2 written by hand): its Hermite
    # tail decays like a power, so the automatic choice takes the polar rule, exact on each
    # cell; reference: the closed form of leaky_relu(−0.5). Floor: the √eps conditioning of
    # θ = arccos ρ near ρ = 1 (~1e-10 here), under the promised 1e-8.
    x = _scaled_inputs(10.0, 0.2, 1.0)
    by_hand = lambda z: jnp.where(z > 0, z, -0.5 * z)  # noqa: E731
    hand = limits.kernels(x, depth=4, activation=by_hand, beta=0.2)
    exact = limits.kernels(x, depth=4, activation=leaky_relu(-0.5), beta=0.2)
    for a, b in zip(hand, exact, strict=True):
        assert rel_err(a, b) < 1e-8


def test_kink_away_from_zero_warns_naming_activation():
    # relu(z − 1): no rule converges (the polar rule splits at 0 only): say so, never NaN.
    with pytest.warns(UserWarning, match="^activation: no rule reaches"):
        k = limits.expectation(*_pairs(1.0), activation=lambda z: jax.nn.relu(z - 1.0))
    assert all(np.all(np.isfinite(np.asarray(e))) for e in k)


@pytest.mark.parametrize("quadrature", ["mehler", "hermite"])
@pytest.mark.parametrize("activation", ["relu", jnp.abs, leaky_relu(0.1)])
def test_kinked_activation_refuses_hermite_rules(quadrature, activation):
    with pytest.raises(ValueError, match=f"^quadrature: '{quadrature}' cannot be accurate.*kinked"):
        limits.ntk(X, depth=2, activation=activation, quadrature=quadrature, points=32)


def test_explicit_points_too_small_warn_and_large_points_stay_finite():
    x = _scaled_inputs(10.0, 0.1, 1.0)
    with pytest.warns(UserWarning, match="^points: 16 Mehler terms"):
        limits.ntk(x, depth=2, activation="tanh", quadrature="mehler", points=16)
    with pytest.warns(UserWarning, match="^points: 6 polar points"):
        limits.ntk(x, depth=2, activation="tanh", quadrature="polar", points=6)
    # numpy's Hermite rule overflowed to NaN from 189 (Mehler) / 379 (hermite) points
    x1 = _scaled_inputs(1.0, 0.1, 1.0)
    want = reference_kernels(*NUMPY["tanh"], x1, 2, 0.1, 1.0)[2][-1]
    for quadrature, points in (("mehler", 400), ("hermite", 400)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # hermite: the tensor rule's own accuracy
            got = limits.ntk(x1, depth=2, activation="tanh", beta=0.1, quadrature=quadrature,
                             points=points)  # fmt: skip
        assert np.all(np.isfinite(np.asarray(got)))
        assert rel_err(got, want) < (1e-12 if quadrature == "mehler" else 1e-6)


@pytest.mark.parametrize("name", ["relu", "erf", "tanh"])
def test_gradients_with_respect_to_beta_and_sigma_w_match_finite_differences(name):
    # One jitted value (reused by the four finite-difference points) and one jitted gradient:
    # two compiles (tanh took 73 s when every call compiled a long series under reverse mode).
    x = jnp.asarray(X / 2)

    @jax.jit
    def total(beta, sigma_w):
        return jnp.sum(ntkbook.ntk(x, depth=3, activation=name, beta=beta, sigma_w=sigma_w))

    b0, s0 = 0.3, 1.2
    grads = jax.jit(jax.grad(total, argnums=(0, 1)))(b0, s0)
    h = 1e-5
    fd = (
        (total(b0 + h, s0) - total(b0 - h, s0)) / (2 * h),
        (total(b0, s0 + h) - total(b0, s0 - h)) / (2 * h),
    )
    # central differences: O(h²) ≈ 1e-10 truncation, O(eps/h) ≈ 1e-11 rounding
    for g, d in zip(grads, fd, strict=True):
        assert abs(float(g) - float(d)) <= 1e-7 * abs(float(d)), (name, g, d)


def test_gradient_of_gp_log_likelihood_under_jit():
    # Fitting β and σ_w by marginal likelihood: the kernel inside jit(grad(...)).
    x, y = jnp.asarray(X), jnp.asarray(np.sin(X[:, :1]))

    def nll(params):
        k = ntkbook.nngp(x, depth=3, beta=params[0], sigma_w=params[1]) + 0.1 * jnp.eye(len(x))
        chol = jnp.linalg.cholesky(k)
        alpha = jax.scipy.linalg.cho_solve((chol, True), y)
        return 0.5 * jnp.sum(y * alpha) + jnp.sum(jnp.log(jnp.diag(chol)))

    p = jnp.array([0.4, 1.3])
    g = jax.jit(jax.grad(nll))(p)
    h = 1e-5
    for i in range(2):
        e = jnp.zeros(2).at[i].set(h)
        assert abs(float(g[i]) - float((nll(p + e) - nll(p - e)) / (2 * h))) < 1e-7


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(x1=np.zeros((3, 0)), depth=2), "x1"),
        (dict(x1=X + 1j * X, depth=2), "x1"),
        (dict(x1=X, x2=Y.astype(np.complex64), depth=2), "x2"),
        (dict(x1=X.astype(np.float16), depth=2), "x1"),
        (dict(x1=jnp.asarray(X, jnp.bfloat16), depth=2), "x1"),
        (dict(x1=X, depth=2, dtype=jnp.float16), "dtype"),
        (dict(x1=X, depth=2, dtype=jnp.bfloat16), "dtype"),
        (dict(x1=X, depth=2, beta=np.ones(2)), "beta"),
        (dict(x1=X, depth=2, sigma_w=jnp.ones((1, 1))), "sigma_w"),
        (dict(x1=X, depth=2, beta=1j), "beta"),
        (dict(x1=X, depth=2, sigma_w=jnp.asarray(0.0)), "sigma_w"),
        (dict(x1=X, depth=2, activation="tanh", points=100_000), "points"),
    ],
)
def test_more_bad_inputs_raise_value_error_naming_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        limits.kernels(**kwargs)


@pytest.mark.parametrize("name", ["relu", "abs", "identity"])
def test_homogeneous_kernels_stay_exact_for_huge_and_tiny_float32_inputs(name):
    # With β = 0, Σ and Θ scale as |x||x'| (Σ̇ not at all). The Gram matrix of inputs of norm
    # 1e±20 over- or underflows float32 (1e40, 1e-40); the kernels of unit inputs times the
    # norms (taken in float64) stay exact where the result itself is representable. Own seed:
    # a pair with ρ near ±1 would add float32's √eps arccos conditioning (~3e-4) to any input.
    x = np.random.default_rng(7).normal(size=(4, 3))
    scale = np.array([[1e20], [1e-20], [1e15], [1e-15]])  # products 1e35 … 1e-35: representable
    big = (x * scale).astype(np.float32)
    want = limits.kernels(x, depth=3, activation=name)
    got = limits.kernels(big[:2], big[2:], depth=3, activation=name)
    outer = scale[:2] * scale[2:].T
    for field, factor in ((0, outer), (1, 1.0), (2, outer)):
        expected = np.asarray(want[field])[:, :2, 2:] * factor
        np.testing.assert_allclose(np.asarray(got[field], np.float64), expected, rtol=1e-5)
    diag = limits.ntk(big[2:], depth=3, activation=name, diagonal=True)  # 1e30 and 1e-30
    ref = np.asarray(limits.ntk(x[2:], depth=3, activation=name, diagonal=True)) * scale[2:, 0] ** 2
    np.testing.assert_allclose(np.asarray(diag, np.float64), ref, rtol=1e-5)


def test_float32_depth_that_underflows_warns_naming_depth():
    x = RNG.normal(size=(3, 4)).astype(np.float32)
    with pytest.warns(UserWarning, match="^depth: in float32, the kernels of 'relu' reach 2"):
        limits.ntk(x, depth=200)  # Σ halves per layer: 2^-199
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        limits.ntk(x, depth=100)  # 2^-99: still a normal float32
        limits.ntk(x.astype(np.float64), depth=200)  # float64 is not checked (2^-1022)


# ------------------------------------------------------------------ issue 22: traced calls


def test_polar_rule_under_jit_equals_eager():
    # The probes that choose the polar rule used to run on tracers inside jit
    # (TracerArrayConversionError). Now the rule depends on static information only (activation,
    # points, the variance bound: 16 by default, eager and traced alike), so eager and jit run
    # the same program: ≤ 1e-12 relative (the bound; rounding, reduction order).
    x = jnp.asarray(X)
    for opts in (dict(activation=jax.nn.elu), dict(quadrature="polar", points=16)):
        eager = limits.ntk(x, depth=3, **opts)
        traced = jax.jit(lambda a, opts=opts: limits.ntk(a, depth=3, **opts))(x)
        assert rel_err(traced, eager) <= 1e-12, opts


def test_traced_inputs_beyond_the_assumed_variance_are_nan_not_wrong():
    # Inside a trace, without max_variance, the rule covers Σ^(l)(x, x) ≤ 16; an input beyond
    # used to give a silently wrong kernel (1e-1 off at ‖x‖²/n0 = 3000). Now its entries, and the
    # derivatives through them, are NaN; entries of in-range pairs are untouched, and equal the
    # eager call's (same rule: ≤ 1e-12). Eagerly, a declared max_variance below the data raises.
    x = jnp.asarray(X / np.linalg.norm(X, axis=1, keepdims=True) * math.sqrt(3.0))
    x = x.at[0].multiply(math.sqrt(300.0))  # row 0: Σ¹ = 900 > 16
    opts = dict(depth=2, activation="softplus", beta=0.1)
    row = jax.vmap(lambda a: limits.ntk(a[None], x[1:], **opts)[0])(x)
    assert bool(np.all(np.isnan(row[0])))
    eager = limits.ntk(x[1:], x[1:], **opts)
    assert rel_err(row[1:], eager) <= 1e-12
    # jit(grad): no values, the default range, NaN through row 0 only; plain grad: the inputs'
    # primal values choose the range as eagerly, so every derivative is finite
    loss = lambda a: jnp.sum(limits.ntk(a, x[1:], **opts))  # noqa: E731
    grad = jax.jit(jax.grad(loss))(x)
    assert bool(np.all(np.isnan(grad[0]))) and bool(np.all(np.isfinite(grad[1:])))
    assert bool(np.all(np.isfinite(jax.grad(loss)(x))))
    with pytest.raises(ValueError, match="^max_variance"):
        limits.ntk(x, **opts, max_variance=16.0)
    big = limits.ntk(x, **opts)  # eager without max_variance: the rule for the data's range
    assert bool(np.all(np.isfinite(np.asarray(big))))


def test_diagonal_must_be_a_bool():
    with pytest.raises(TypeError, match="^diagonal: "):
        limits.ntk(X, depth=2, diagonal="yes")
