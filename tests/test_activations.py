"""Tests of ntkbook.activations: registry, derivatives, the stable angle and the closed forms.

The closed forms are checked against Monte Carlo here (and against quadrature in
test_limits.py); Monte Carlo tolerances are 5 standard errors of the sample mean.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

from ntkbook import activations, limits
from ntkbook.activations import angle, correlation, from_function, get, leaky_relu, safe_sqrt


def test_angle_matches_arccos_to_rounding_and_has_finite_gradient():
    rho = jnp.linspace(-1.0, 1.0, 100_001)
    theta, sin = angle(rho)
    np.testing.assert_allclose(theta, np.arccos(np.asarray(rho)), atol=2e-15)
    np.testing.assert_allclose(sin, np.sqrt(1 - np.asarray(rho) ** 2), atol=2e-15)
    grad = jax.vmap(jax.grad(lambda r: angle(r)[0]))(jnp.array([-1.0, -0.5, 0.0, 0.5, 1.0]))
    np.testing.assert_allclose(grad[1:4], -1 / np.sqrt(1 - np.array([0.25, 0.0, 0.25])), rtol=1e-12)
    assert np.all(np.isfinite(grad))


def test_float32_angle_polynomial_is_within_float32_rounding():
    rho = np.linspace(-1.0, 1.0, 100_001, dtype=np.float32)
    theta, _ = angle(jnp.asarray(rho))
    assert theta.dtype == jnp.float32
    # A&S 4.4.46 error 2e-8, plus float32 rounding of θ ≤ π (ulp(π) = 2.4e-7): 2 ulp.
    np.testing.assert_allclose(theta, np.arccos(rho.astype(np.float64)), atol=5e-7)
    grad = jax.vmap(jax.grad(lambda r: angle(r)[0]))(jnp.array([-1.0, 1.0], jnp.float32))
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_angle_snaps_only_within_a_few_ulps_of_plus_minus_one(dtype):
    eps = float(jnp.finfo(dtype).eps)
    near = 1.0 - eps * np.arange(1, 9)  # within _SNAP_ULPS = 8 ulps: ρ = ±1 up to rounding
    theta, sin = angle(jnp.asarray(near, dtype))
    assert np.all(np.asarray(theta) == 0.0) and np.all(np.asarray(sin) == 0.0)
    theta, sin = angle(jnp.asarray(-near, dtype))
    np.testing.assert_array_equal(theta, np.full(8, np.pi, np.dtype(dtype)))
    assert np.all(np.asarray(sin) == 0.0)
    # 64 ulps away the angle is kept: arccos(1 − δ) ≈ √(2δ) = 4e-3 (float32), 2e-7 (float64).
    far = np.asarray(1.0 - 64 * eps, dtype)
    theta = float(angle(jnp.asarray(far))[0])
    assert theta == pytest.approx(math.acos(float(far)), rel=1e-3)


def test_angle_custom_derivative_matches_finite_differences():
    rho = np.array([-0.999, -0.6, 0.0, 0.3, 0.9, 0.9999])
    d_theta, d_sin = jax.vmap(jax.jacfwd(angle))(jnp.asarray(rho))
    h = 1e-7
    fd_theta = (np.arccos(rho + h) - np.arccos(rho - h)) / (2 * h)
    fd_sin = (np.sqrt(1 - (rho + h) ** 2) - np.sqrt(1 - (rho - h) ** 2)) / (2 * h)
    # central differences: error O(h² f⁽³⁾) + O(eps/h) ≲ 1e-8 relative even at ρ = 0.9999
    np.testing.assert_allclose(d_theta, fd_theta, rtol=1e-6)
    np.testing.assert_allclose(d_sin, fd_sin, rtol=1e-6)
    rev = jax.vmap(jax.grad(lambda r: angle(r)[1]))(jnp.asarray(rho))
    np.testing.assert_allclose(rev, d_sin, rtol=1e-14)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_elementwise_arcsin_is_within_a_few_ulps_relative(dtype):
    tiny = np.logspace(-30, 0, 3001)
    z = np.concatenate([np.linspace(-1.0, 1.0, 200_001), tiny, -tiny]).astype(dtype)
    got = np.asarray(activations.arcsin(jnp.asarray(z)), np.float64)
    want = np.arcsin(z.astype(np.float64))
    rel = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(np.float64).tiny)
    # rounding of s, of one division and of the sum with jπ/16: a few ulps (measured 2.3)
    assert rel.max() < 4 * np.finfo(dtype).eps, rel.max() / np.finfo(dtype).eps
    z = jnp.asarray([-0.9, 0.0, 0.3, 0.99], dtype)
    grad = jax.vmap(jax.grad(activations.arcsin))(z)
    np.testing.assert_allclose(grad, 1 / np.sqrt(1 - np.asarray(z, np.float64) ** 2), rtol=1e-5)


def test_correlation_is_zero_for_degenerate_inputs_and_clipped():
    s, rho = correlation(
        jnp.array([0.0, 1.0]), jnp.array([0.0, 1.0 + 1e-12]), jnp.array([1.0, 1.0])
    )
    np.testing.assert_array_equal(rho, [0.0, 1.0])
    np.testing.assert_array_equal(s, [0.0, 1.0])
    assert float(jax.grad(lambda x: safe_sqrt(x))(0.0)) == 0.0


@pytest.mark.parametrize("name", ["relu", "abs", "erf", "identity", "leaky"])
def test_closed_forms_match_monte_carlo(name):
    act = leaky_relu(0.3) if name == "leaky" else get(name)
    k11, k12, k22, samples = 1.3, -0.5, 0.8, 400_000
    chol = np.linalg.cholesky(np.array([[k11, k12], [k12, k22]]))
    z = np.random.default_rng(3).normal(size=(samples, 2)) @ chol.T
    u, v = jnp.asarray(z[:, 0]), jnp.asarray(z[:, 1])
    e_ss, e_dd = act.expectation(jnp.array(k11), jnp.array(k12), jnp.array(k22))
    for sample, exact in (
        (act.sigma(u) * act.sigma(v), e_ss),
        (act.sigma_dot(u) * act.sigma_dot(v), e_dd),
    ):
        sample = np.asarray(sample)
        se = sample.std() / math.sqrt(samples)
        assert abs(sample.mean() - float(exact)) < 5 * se + 1e-15


def test_leaky_relu_limits_and_derivatives():
    z = jnp.array([-2.0, -0.5, 0.5, 2.0])
    np.testing.assert_allclose(leaky_relu(0.0).sigma(z), jax.nn.relu(z))
    np.testing.assert_allclose(leaky_relu(-1.0).sigma(z), jnp.abs(z))
    np.testing.assert_allclose(leaky_relu(0.2).sigma_dot(z), [0.2, 0.2, 1.0, 1.0])
    k = (jnp.array(1.0), jnp.array(0.2), jnp.array(2.0))
    for a, b in zip(leaky_relu(-1.0).expectation(*k), get("abs").expectation(*k), strict=True):
        assert float(a) == pytest.approx(float(b), rel=1e-14)
    assert leaky_relu(0.2) is leaky_relu(0.2)  # cached: jit does not recompile


@pytest.mark.parametrize("name", activations.NAMES)
def test_registry_derivatives_match_autodiff(name):
    act = get(name)
    z = jnp.array([-1.7, -0.3, 0.4, 1.9])
    auto = jax.vmap(jax.grad(act.sigma))(z)
    np.testing.assert_allclose(act.sigma_dot(z), auto, rtol=1e-6, atol=1e-12)


def test_get_and_from_function():
    assert get("linear") is get("identity")
    assert from_function(jnp.sin) is from_function(jnp.sin)
    assert float(from_function(jnp.sin).sigma_dot(jnp.array(0.0))) == 1.0
    with pytest.raises(ValueError, match="^activation"):
        get("swish")
    with pytest.raises(ValueError, match="^activation"):
        get(3)


def _tensor_gauss_hermite(f, k11, k12, k22, n=80):
    """E[f(u) f(v)] by an n × n Gauss–Hermite rule in numpy after the Cholesky map."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / np.sqrt(2 * np.pi)
    rho = k12 / np.sqrt(k11 * k22)
    u = np.sqrt(k11) * z[:, None]
    v = np.sqrt(k22) * (rho * z[:, None] + np.sqrt(1 - rho * rho) * z[None, :])
    return float(w @ (f(u) * f(v)) @ w)


@pytest.mark.parametrize("name", ["sin", "square"])
def test_sin_and_square_closed_forms_match_tensor_quadrature(name):
    # square: a polynomial, integrated exactly by the rule; sin at variances ≤ 3: entire, the
    # 80-point rule has converged to rounding
    fns = {"sin": (np.sin, np.cos), "square": (np.square, lambda z: 2 * z)}[name]
    act = activations.get(name)
    for k11, k12, k22 in [(1.0, 0.3, 2.0), (3.0, -2.0, 1.5), (0.2, 0.0, 0.7)]:
        got = act.expectation(jnp.asarray(k11), jnp.asarray(k12), jnp.asarray(k22))
        for g, f in zip(got, fns, strict=True):
            assert abs(float(g) - _tensor_gauss_hermite(f, k11, k12, k22)) < 1e-12


def test_sin_closed_form_does_not_overflow_at_huge_variance():
    act = activations.get("sin")
    ss, cc = act.expectation(jnp.asarray(1e4), jnp.asarray(1e4), jnp.asarray(1e4))  # ρ = 1
    assert float(ss) == pytest.approx(0.5) and float(cc) == pytest.approx(0.5)


def test_square_closed_form_matches_mehler_series():
    # Isserlis: E[u²v²] = k11 k22 + 2 k12², E[4uv] = 4 k12; the Mehler series is exact for a
    # degree-2 polynomial, so the two routes agree to round-off.
    k11, k12, k22 = jnp.array([0.7, 2.0]), jnp.array([-0.3, 1.1]), jnp.array([0.5, 3.0])
    closed = limits.expectation(k11, k12, k22, activation="square", quadrature="closed")
    series = limits.expectation(k11, k12, k22, activation="square", quadrature="mehler")
    for a, b in zip(closed, series, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(closed[0], k11 * k22 + 2 * k12**2, rtol=1e-15)
    assert activations.get("x2").expectation is not None


def test_square_closed_form_matches_monte_carlo():
    z = jax.random.normal(jax.random.key(0), (400_000, 2))
    u, v = z[:, 0], 0.6 * z[:, 0] + 0.8 * z[:, 1]  # k11 = k22 = 1, k12 = 0.6
    e_ss, e_dd = limits.expectation(1.0, 0.6, 1.0, activation="square")
    mc = jnp.mean(u**2 * v**2)
    # Var(u²v²) ≤ E[u⁴v⁴] ≈ 25 at ρ = 0.6: standard error ≈ 5/√4e5 ≈ 0.008; 5 SE
    assert abs(float(mc - e_ss)) < 0.04
    assert abs(float(jnp.mean(4 * u * v)) - float(e_dd)) < 0.04


# ---------------------------------------------------------------- declared kinks (issue 22)


def _piecewise_reference(act, k11, k12, k22):
    """E[σ(u)σ(v)], E[σ̇(u)σ̇(v)] for a piecewise-linear σ, independently of Φ₂: the outer
    integral over u = d1 x by adaptive quadrature split at the kinks (smooth on each piece),
    the inner E[σ(v) | u] in closed form (v | u is N(μ, τ²); E[relu(μ + τZ − t)] =
    τ φ(z) + (μ − t) Q(z), z = (t − μ)/τ). scipy's quad reaches ~1e-14 here."""
    from scipy import integrate, special, stats

    p = act.expectation.args[0]
    d1, d2 = math.sqrt(k11), math.sqrt(k22)
    r = k12 / (d1 * d2)
    tau = d2 * math.sqrt(1 - r * r)

    def inner(x, dot):
        mu = r * d2 * x
        out = p.a if dot else p.c + p.a * mu
        for t, s in zip(p.kinks, p.jumps, strict=True):
            z = (t - mu) / tau
            tail = special.ndtr(-z)
            out += s * (tail if dot else tau * stats.norm.pdf(z) + (mu - t) * tail)
        return out

    def outer(x, dot):
        z = jnp.asarray(d1 * x)
        f = act.sigma_dot(z) if dot else act.sigma(z)
        return stats.norm.pdf(x) * float(f) * inner(x, dot)

    edges = [-40.0, *sorted(t / d1 for t in p.kinks), 40.0]
    return [
        sum(
            integrate.quad(outer, a, b, args=(dot,), epsabs=1e-15, epsrel=1e-13, limit=200)[0]
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        )
        for dot in (False, True)
    ]


CLIP = activations.from_function(lambda z: jnp.clip(z, -0.5, 2.0), name="clip", kinks=(2.0, -0.5))


@pytest.mark.parametrize("name", ["relu6", "hard_tanh", "hard_sigmoid", "clip"])
@pytest.mark.parametrize(
    "k", [(1.0, 0.3, 2.0), (30.0, -20.0, 25.0), (0.2, 0.19, 0.2), (4.0, -3.99, 4.0)]
)
def test_declared_kinks_give_exact_expectations(name, k):
    # the target for declared kinks is 1e-10 relative (the polar rule was 3e-3 off);
    # the reference is accurate to ~1e-14, Φ₂ (Genz) to ~1e-15
    act = CLIP if name == "clip" else get(name)
    assert act.expectation is not None and act.kinked
    got = act.expectation(*(jnp.asarray(v) for v in k))
    want = _piecewise_reference(act, *k)
    for g, w in zip(got, want, strict=True):
        assert abs(float(g) - w) <= 1e-10 * max(abs(w), 1e-3), (float(g), w)


def test_declared_kinks_at_correlation_plus_minus_one_and_zero_variance():
    # ρ = ±1 exactly (x = ±x′): u = ±v, so E[σ(u)σ(±u)] is 1-D: adaptive quadrature over
    # u = 3x ~ N(0, 9), split at the kinks x = 0 and ±2
    act = get("relu6")
    k = 9.0
    for sign in (1.0, -1.0):
        got = act.expectation(jnp.asarray(k), jnp.asarray(sign * k), jnp.asarray(k))
        for g, f in zip(got, (act.sigma, act.sigma_dot), strict=True):
            want = sum(
                integrate.quad(
                    lambda x, f=f, c=sign: stats.norm.pdf(x) * float(f(3.0 * x) * f(3.0 * c * x)),
                    a, b, epsabs=1e-15,
                )[0]
                for a, b in [(-40, -2), (-2, 0), (0, 2), (2, 40)]
            )  # fmt: skip
            assert abs(float(g) - want) < 1e-12, (sign, float(g), want)
    # k11 = 0: u ≡ 0, so E[σ(0)σ(v)] = σ(0) E[σ(v)] — for hard_tanh σ(0) = 0, σ̇(0) = 1
    ht = get("hard_tanh")
    ss, dd = ht.expectation(jnp.asarray(0.0), jnp.asarray(0.0), jnp.asarray(2.0))
    assert abs(float(ss)) < 1e-15
    assert float(dd) == pytest.approx(2 * special.ndtr(1 / math.sqrt(2.0)) - 1, rel=1e-14)


def test_declared_kinks_in_the_kernels_and_recognised_functions():
    assert activations.recognise(jax.nn.relu6) is get("relu6")
    assert activations.recognise(jax.nn.hard_tanh) is get("hard_tanh")
    x = jnp.asarray([[2.0, -1.0, 0.5], [0.3, 3.0, -2.0]])
    # depth 2: Σ^(2) = σ_w² E[σσ] at Σ^(1) + β², the latter computed here by hand
    sw, beta = 1.5, 0.2
    k1 = sw**2 * (x @ x.T) / 3 + beta**2
    want = sw**2 * CLIP.expectation(k1[0, 0], k1[0, 1], k1[1, 1])[0] + beta**2
    got = limits.nngp(x, depth=2, activation=CLIP, beta=beta, sigma_w=sw)
    assert float(got[0, 1]) == pytest.approx(float(want), rel=1e-14)
    ref = _piecewise_reference(CLIP, float(k1[0, 0]), float(k1[0, 1]), float(k1[1, 1]))[0]
    assert float(got[0, 1]) == pytest.approx(sw**2 * ref + beta**2, rel=1e-10)


def test_declared_kinks_are_validated():
    with pytest.raises(ValueError, match="^kinks: .*not linear"):
        from_function(jnp.tanh, kinks=(1.0,))
    with pytest.raises(ValueError, match="^kinks"):
        from_function(jax.nn.relu, kinks=("a",))
    with pytest.raises(ValueError, match="^kinks"):
        from_function(jax.nn.relu, kinks=(math.inf,))
    elu = from_function(jax.nn.elu, kinks=(0.0,))  # kinked at 0, not piecewise linear
    assert elu.kinked and elu.expectation is None
    shifted = from_function(lambda z: jax.nn.relu(z - 1.0), kinks=[1.0])
    assert shifted.expectation.args[0].kinks == (1.0,)


def test_non_elementwise_and_numpy_activations_raise_naming_activation():
    with pytest.raises(TypeError, match="^activation: .*NumPy ufunc"):
        get(np.tanh)
    with pytest.raises(ValueError, match="^activation: .*not elementwise"):
        get(lambda z: z - jnp.mean(z))
    with pytest.raises((TypeError, ValueError), match="^activation: "):
        get(jnp.sort)  # fails on a scalar under vmap: TypeError naming activation
    with pytest.raises(TypeError, match="^activation"):
        get(lambda z: np.tanh(np.asarray(z)))  # not traceable
