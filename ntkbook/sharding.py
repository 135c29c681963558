r"""Beyond one device: row-sharded kernels, empirical NTKs and seed-sharded ensembles.

Everything here runs on JAX's own machinery — a :class:`jax.sharding.Mesh` of devices,
:func:`jax.shard_map` inside :func:`jax.jit`, and (for several hosts)
:func:`jax.distributed.initialize` — with no scheduler of its own.

It is the layer on top: it calls the single-device functions of :mod:`ntkbook.limits`,
:mod:`ntkbook.empirical`, :mod:`ntkbook.montecarlo` and :mod:`ntkbook.training` on each
device's share, and none of them knows about meshes or imports this module.

**Kernels** (:func:`kernels`, :func:`nngp`, :func:`ntk`, :func:`empirical_ntk`). With D
devices, the N1 rows of ``x1`` are cut into D equal slices; device s receives rows
:math:`x1_{sn}, \dots, x1_{sn+n-1}` (n = N1 / D) and all of ``x2``, and computes

.. math::

    K[sn : (s+1)n,\ :] = k(x1[sn : (s+1)n],\ x2)

with the single-device function (:func:`ntkbook.limits.ntk`, :func:`ntkbook.empirical.ntk`,
…). Each entry is the same arithmetic as on one device, so the result equals the single-device
one to rounding (float64: ≤ 1e-12 relative, tested). The output is a global
:class:`jax.Array` whose rows stay on the devices that made them (``out.sharding`` is a
:class:`~jax.sharding.NamedSharding` over the mesh); nothing is gathered unless you ask
(``numpy.asarray(out)``). For a symmetric kernel (``x2=None``) the diagonal is overwritten by
the diagonal recursion, as :mod:`ntkbook.limits` does on one device.

**Larger than memory** (:func:`write_kernel`). Θ∞ of N = 50 000 inputs is 2.5e9 entries
(10 GB in float32). :func:`write_kernel` computes blocks of rows on the mesh and writes each
device's rows to a host array or to a ``.npy`` file through :class:`numpy.memmap`, so device
memory is bounded by one block, (block rows) × N2, and host memory by one block too (the file
is mapped one block at a time, then unmapped). ``numpy.memmap``, not zarr: no new dependency,
a plain ``.npy`` file (``numpy.load(path, mmap_mode="r")`` opens it lazily), and a dense float
kernel gains little from compression while its row blocks are contiguous writes.

**Ensembles** (:func:`ensemble`, :func:`ntk_at_init`, :func:`train_ensemble`). The keys
k_1 … k_S = ``jax.random.split(key, S)`` are the ones :func:`ntkbook.montecarlo.ensemble`
uses; S / D of them go to each device, which evaluates its draws vmapped in blocks of
``block_size``. Sample s depends only on k_s, so the stack equals the single-device one.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from ntkbook import sharding
    >>> mesh = sharding.device_mesh()  # every device JAX sees (here: one CPU)
    >>> theta = sharding.ntk(jnp.eye(4), depth=2, mesh=mesh)
    >>> theta.shape, len(theta.addressable_shards) == mesh.size
    ((4, 4), True)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from . import _checks, costs, empirical, limits, montecarlo, networks, training
from ._output import Progress, _progress, _sync, _target
from ._output import TextProgress as TextProgress  # re-exported: sharding.TextProgress
from .activations import Activation

Array = jax.Array
MeshLike = Mesh | str
ActivationLike = str | Callable[[Array], Array] | Activation
AXIS = "devices"
_KERNELS: tuple[str, ...] = ("kernels", "nngp", "ntk")
# Rows per device and block in write_kernel: tiles of ≤ 2^24 entries (64 MiB in float32), the
# tile limits.ntk computes in one fused pass.
_TILE_ENTRIES = 1 << 24


# ---------------------------------------------------------------------------- meshes


def device_mesh(devices: Sequence[jax.Device] | None = None, *, axis_name: str = AXIS) -> Mesh:
    """A 1-D mesh over ``devices`` (default: :func:`jax.devices`, every device of every process
    once :func:`jax.distributed.initialize` has run).

    Args:
        devices: the devices, in mesh order.
        axis_name: the mesh axis' name.

    Returns:
        A :class:`jax.sharding.Mesh` of shape (len(devices),).

    Raises:
        ValueError: naming ``devices`` if empty or not devices.
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs or not all(isinstance(d, jax.Device) for d in devs):
        raise ValueError(f"devices: expected a non-empty sequence of jax devices, got {devices!r}")
    return Mesh(np.asarray(devs, dtype=object), (axis_name,))


def _mesh(mesh: object) -> Mesh:
    """A :class:`Mesh` as given, or ``"all"``: :func:`device_mesh` over every device."""
    if isinstance(mesh, Mesh):
        if mesh.size < 1:
            raise ValueError("mesh: has no devices")
        return mesh
    if isinstance(mesh, str) and mesh == "all":
        return device_mesh()
    raise ValueError(f"mesh: expected a jax.sharding.Mesh or 'all', got {mesh!r}")


def _rows_spec(mesh: Mesh, ndim: int, axis: int) -> P:
    """PartitionSpec splitting axis ``axis`` (negative: from the end) over every mesh axis."""
    spec: list[object] = [None] * ndim
    spec[axis] = tuple(mesh.axis_names)
    return P(*spec)


def _per_device(name: str, count: int, mesh: Mesh, what: str, hint: str = "") -> int:
    """count / mesh.size, or a ``ValueError`` naming ``name`` when it does not divide."""
    if count % mesh.size:
        raise ValueError(
            f"{name}: {count} {what} do not split evenly over the mesh's {mesh.size} devices; "
            f"use a multiple of {mesh.size}{hint}"
        )
    return count // mesh.size


def _freeze(options: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    """Options as a hashable, sorted tuple (lists → tuples), to be a static argument of jit."""
    items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
    try:
        hash(items)
    except TypeError:
        bad = next(k for k, v in items if not _hashable(v))
        raise ValueError(
            f"{bad}: must be hashable (a static option), got {options[bad]!r}"
        ) from None
    return items


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _sharded_call(
    local: Callable[..., Any],
    mesh: Mesh,
    sharded: tuple[tuple[Array, int], ...],
    replicated: tuple[Any, ...],
    *,
    out_axis: Callable[[int], int],
) -> Any:
    """``shard_map`` of ``local(*blocks, *replicated)``: each ``(array, axis)`` of ``sharded``
    split along ``axis`` over every mesh axis, ``replicated`` on every device, and every output
    leaf stacked along ``out_axis(ndim)`` (call it under jit)."""
    arrays = tuple(a for a, _ in sharded)
    local_shapes = [
        jax.ShapeDtypeStruct(
            tuple(d // mesh.size if i == axis % a.ndim else d for i, d in enumerate(a.shape)),
            a.dtype,
        )
        for a, axis in sharded
    ]
    out = jax.eval_shape(local, *local_shapes, *replicated)
    in_specs = (
        *(_rows_spec(mesh, a.ndim, axis) for a, axis in sharded),
        *(jax.tree.map(lambda _: P(), r) for r in replicated),
    )
    out_specs = jax.tree.map(lambda s: _rows_spec(mesh, s.ndim, out_axis(s.ndim)), out)
    # check_vma=False: the single-device functions inside (scan/fori_loop carries initialised
    # from constants) were not written with shard_map's varying-axis types in mind
    fn = jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    return fn(*arrays, *replicated)


# ---------------------------------------------------------------------------- limits


def _set_diagonal(out: Array, diag: Array, first_column: Array) -> Array:
    """Rows i of a (…, n, N2) block get ``diag[…, i]`` at column ``first_column + i``."""
    i = jnp.arange(out.shape[-2])
    return out.at[..., i, first_column + i].set(diag)


@partial(jax.jit, static_argnames=("mesh", "kernel", "options", "symmetric"))
def _limits_rows(
    x1: Array,
    x2: Array,
    diag: Any,
    offset: Array,
    *,
    mesh: Mesh,
    kernel: str,
    options: tuple[tuple[str, object], ...],
    symmetric: bool,
) -> Any:
    """Rows of ``x1`` split over ``mesh``. ``diagonal=True``: k(x1_i, x2_i), x2's rows split
    alike. Otherwise ``x2`` goes to every device; with ``symmetric`` (x2 is the whole x1 and
    ``x1`` its rows ``offset`` …) the diagonal is overwritten by ``diag`` (the diagonal
    recursion, a pytree of (…, N1) leaves split like x1)."""
    fn = getattr(limits, kernel)
    opts = dict(options)
    if opts.get("diagonal"):
        pairs: tuple[tuple[Array, int], ...] = ((x1, 0),) if symmetric else ((x1, 0), (x2, 0))
        return _sharded_call(
            lambda xb, *x2b: fn(x1=xb, x2=x2b[0] if x2b else None, **opts),
            mesh, pairs, (), out_axis=lambda nd: nd - 1,
        )  # fmt: skip
    if not symmetric:
        return _sharded_call(
            lambda xb, x_all: fn(x1=xb, x2=x_all, **opts),
            mesh, ((x1, 0),), (x2,), out_axis=lambda nd: nd - 2,
        )  # fmt: skip
    leaves, tree = jax.tree.flatten(diag)

    def local(xb: Array, index: Array, *rest: Any) -> Any:
        *db, x_all, start = rest
        out = fn(x1=xb, x2=x_all, **opts)
        first = start + index[0] * xb.shape[0]  # the block's first global row
        return jax.tree.map(
            partial(_set_diagonal, first_column=first), out, jax.tree.unflatten(tree, db)
        )

    # each device's position along the split, as data (axis_index is unbound in eval_shape)
    index = jnp.arange(mesh.size, dtype=jnp.int32)
    pairs = ((x1, 0), (index, 0), *((d, d.ndim - 1) for d in leaves))
    return _sharded_call(local, mesh, pairs, (x2, offset), out_axis=lambda nd: nd - 2)


def _put(tree: Any, mesh: Mesh, spec: Callable[[Array], P]) -> Any:
    """Every leaf of ``tree`` placed on ``mesh`` with the sharding ``spec(leaf)``."""
    return jax.tree.map(lambda a: jax.device_put(a, NamedSharding(mesh, spec(a))), tree)


def _replicated(tree: Any, mesh: Mesh) -> Any:
    return _put(tree, mesh, lambda a: P())


def _limits(
    kernel: str, x1: object, x2: object, *, depth: int, mesh: object, options: dict[str, object]
) -> Any:
    """Validate, then run :func:`_limits_rows` over the whole of ``x1``."""
    m = _mesh(mesh)
    a = _checks.matrix("x1", x1)
    b = None if x2 is None else _checks.matrix("x2", x2, n_features=a.shape[1])
    _per_device("x1", a.shape[0], m, "rows", " (write_kernel takes any number of rows)")
    diagonal = bool(options.get("diagonal", False))
    if diagonal and b is not None and b.shape[0] != a.shape[0]:
        raise ValueError(
            f"x2: diagonal=True pairs rows of x1 and x2, so both need N rows; got "
            f"{a.shape[0]} and {b.shape[0]}"
        )
    options = limits.rule_options(a, b, depth=depth, options=options)  # one rule for all rows
    frozen = _freeze({**options, "depth": depth})
    fn = getattr(limits, kernel)
    diag = None
    if b is None and not diagonal:  # the single-device diagonal recursion, O(N) work
        diag = fn(x1=a, depth=depth, **{**options, "diagonal": True})
    first_axis = partial(_put, mesh=m, spec=lambda t: _rows_spec(m, t.ndim, 0))
    second = a if b is None else b
    return _limits_rows(
        first_axis(a),
        first_axis(second) if diagonal else _replicated(second, m),
        _put(diag, m, lambda t: _rows_spec(m, t.ndim, t.ndim - 1)),  # (…, N1) leaves, or None
        _replicated(jnp.zeros((), jnp.int32), m),
        mesh=m, kernel=kernel, options=frozen, symmetric=b is None,
    )  # fmt: skip


def _limit_options(
    activation: ActivationLike, beta: float, sigma_w: float, quadrature: str,
    points: int | None, block_size: int | None, dtype: object, **more: object,
) -> dict[str, object]:  # fmt: skip
    """The options of :func:`ntkbook.limits.kernels`, as one dict to freeze for jit."""
    return dict(
        activation=activation, beta=beta, sigma_w=sigma_w, quadrature=quadrature,
        points=points, block_size=block_size, dtype=dtype, **more,
    )  # fmt: skip


def kernels(
    x1: Array,
    x2: Array | None = None,
    *,
    depth: int,
    activation: ActivationLike = "relu",
    beta: float = 0.0,
    sigma_w: float = 1.0,
    diagonal: bool = False,
    quadrature: str = "auto",
    points: int | None = None,
    block_size: int | None = None,
    dtype: object = None,
    layers: Sequence[int] | None = None,
    max_variance: float | None = None,
    mesh: MeshLike = "all",
) -> limits.Kernels:
    r""":func:`ntkbook.limits.kernels` with the rows of ``x1`` split over the devices of ``mesh``.

    Device s computes Σ^(l), Σ̇^(l), Θ^(l) for its N1/D rows against all of ``x2`` (see the
    module docstring); each field of the result, (L, N1, N2), is sharded along N1.

    Args:
        x1: inputs (N1, n_0), finite; N1 a multiple of the number of devices D.
        x2: inputs (N2, n_0); default ``x1``.
        depth: L ≥ 1.
        activation, beta, sigma_w, diagonal, quadrature: as in :func:`ntkbook.limits.kernels`.
        points, block_size, dtype, layers, max_variance: as in :func:`ntkbook.limits.kernels`;
            every option must be hashable (lists are made tuples). Without ``max_variance``,
            every device uses the rule the single-device call would choose from the whole input.
        mesh: a :class:`jax.sharding.Mesh` (rows are split over all its axes), or ``"all"``:
            :func:`device_mesh` over every device.

    Returns:
        :class:`ntkbook.limits.Kernels`, equal to the single-device result to rounding.

    Raises:
        ValueError: naming ``mesh``, ``x1`` (not finite, or N1 not a multiple of D), ``x2``,
            or any option :func:`ntkbook.limits.kernels` rejects.
    """
    options = _limit_options(
        activation, beta, sigma_w, quadrature, points, block_size, dtype, diagonal=diagonal,
        layers=None if layers is None else tuple(layers), max_variance=max_variance,
    )  # fmt: skip
    return _limits("kernels", x1, x2, depth=depth, mesh=mesh, options=options)


def nngp(
    x1: Array,
    x2: Array | None = None,
    *,
    depth: int,
    activation: ActivationLike = "relu",
    beta: float = 0.0,
    sigma_w: float = 1.0,
    diagonal: bool = False,
    quadrature: str = "auto",
    points: int | None = None,
    block_size: int | None = None,
    dtype: object = None,
    max_variance: float | None = None,
    mesh: MeshLike = "all",
) -> Array:
    """Σ^(L) (:func:`ntkbook.limits.nngp`), the rows of ``x1`` split over ``mesh``.

    Arguments and errors as in :func:`kernels`.
    """
    options = _limit_options(
        activation, beta, sigma_w, quadrature, points, block_size, dtype, diagonal=diagonal,
        max_variance=max_variance,
    )  # fmt: skip
    return _limits("nngp", x1, x2, depth=depth, mesh=mesh, options=options)


def ntk(
    x1: Array,
    x2: Array | None = None,
    *,
    depth: int,
    activation: ActivationLike = "relu",
    beta: float = 0.0,
    sigma_w: float = 1.0,
    diagonal: bool = False,
    quadrature: str = "auto",
    points: int | None = None,
    block_size: int | None = None,
    dtype: object = None,
    max_variance: float | None = None,
    mesh: MeshLike = "all",
) -> Array:
    r"""Θ∞^(L) (:func:`ntkbook.limits.ntk`), the rows of ``x1`` split over ``mesh``.

    Arguments and errors as in :func:`kernels`.

    .. math::

        Θ^{(L)}[sn:(s+1)n,\ :] \text{ computed on device } s, \qquad n = N_1 / D.

    Example:
        >>> import jax.numpy as jnp
        >>> theta = ntk(jnp.ones((2, 4)), depth=2, mesh="all")
        >>> round(float(theta[0, 1]), 6)
        1.0
    """
    options = _limit_options(
        activation, beta, sigma_w, quadrature, points, block_size, dtype, diagonal=diagonal,
        max_variance=max_variance,
    )  # fmt: skip
    return _limits("ntk", x1, x2, depth=depth, mesh=mesh, options=options)


# ---------------------------------------------------------------------------- empirical NTK


@partial(jax.jit, static_argnames=("net", "mesh", "options"))
def _empirical_rows(
    params: networks.Params,
    x1: Array,
    x2: Array,
    *,
    net: networks.MLP,
    mesh: Mesh,
    options: tuple[tuple[str, object], ...],
) -> Array:
    opts: dict[str, Any] = dict(options)
    return _sharded_call(
        lambda xb, p, x_all: empirical.ntk(xb, x_all, net=net, params=p, **opts),
        mesh, ((x1, 0),), (params, x2), out_axis=lambda nd: 0,
    )  # fmt: skip


def empirical_ntk(
    x1: Array,
    x2: Array | None = None,
    *,
    net: networks.MLP,
    params: networks.Params,
    method: empirical.Method = "auto",
    traced: bool = False,
    block_size: int | None = None,
    mesh: MeshLike = "all",
) -> Array:
    r""":func:`ntkbook.empirical.ntk` with the rows of ``x1`` split over the devices of ``mesh``.

    .. math::

        \Theta_{kk'}(x, x') = \sum_p \partial_{\theta_p} f_k(x)\, \partial_{\theta_p} f_{k'}(x'),
        \quad x \in x1[sn:(s+1)n] \text{ on device } s,

    with the parameters and ``x2`` on every device.

    Args:
        x1: inputs (N1, n_0); N1 a multiple of the number of devices D.
        x2: inputs (N2, n_0); default ``x1``.
        net, params, method, traced, block_size: as in :func:`ntkbook.empirical.ntk`.
        mesh: a :class:`jax.sharding.Mesh` or ``"all"``.

    Returns:
        (N1, N2, n_L, n_L), or (N1, N2) with ``traced=True``, sharded along N1.

    Raises:
        ValueError: naming ``net``, ``params``, ``mesh``, ``x1``, ``x2`` or an option.
    """
    m = _mesh(mesh)
    if not isinstance(net, networks.MLP):
        raise ValueError(f"net: expected an ntkbook.networks.MLP (see networks.mlp), got {net!r}")
    networks.check_params(net, params)
    a = _checks.matrix("x1", x1, n_features=net.widths[0])
    b = a if x2 is None else _checks.matrix("x2", x2, n_features=net.widths[0])
    _per_device("x1", a.shape[0], m, "rows")
    return _empirical_rows(
        _replicated(params, m), _put(a, m, lambda t: _rows_spec(m, 2, 0)), _replicated(b, m),
        net=net, mesh=m,
        options=_freeze({"method": method, "traced": bool(traced), "block_size": block_size}),
    )  # fmt: skip


# ---------------------------------------------------------------------------- ensembles


@partial(jax.jit, static_argnames=("fn", "mesh", "block_size"))
def _ensemble_rows(
    keys: Array, args: tuple[Any, ...], *, fn: Callable[..., Any], mesh: Mesh, block_size: int
) -> Any:
    def local(kb: Array, *a: Any) -> Any:
        draw = partial(_call_with, fn, a)
        if block_size == 1:  # one draw at a time, unbatched (no vmap of size 1)
            return jax.lax.map(draw, kb)
        return jax.lax.map(draw, kb, batch_size=block_size)

    return _sharded_call(local, mesh, ((keys, 0),), args, out_axis=lambda nd: 0)


def _call_with(fn: Callable[..., Any], args: tuple[Any, ...], key: Array) -> Any:
    return fn(key, *args)


def _seeds(
    key: object, n_samples: object, mesh: object, block_size: object
) -> tuple[Mesh, Array, int]:
    """(mesh, the S keys split over it, samples per vmapped block on each device)."""
    m = _mesh(mesh)
    k = _checks.key("key", key)
    s = _checks.positive_int("n_samples", n_samples)
    per = _per_device("n_samples", s, m, "samples")
    if block_size is not None:
        size = min(_checks.positive_int("block_size", block_size), per)
    elif m.size > 1 and all(d.platform == "cpu" for d in m.devices.flat):
        # several (simulated) CPU devices: jaxlib 0.10.2's batched CPU LAPACK kernels (eigh in
        # training's operator norms) wait on the thread pool the devices share, and deadlock
        size = 1
    else:
        size = per
    keys = _put(jax.random.split(k, s), m, lambda t: _rows_spec(m, t.ndim, 0))
    return m, keys, size


def ensemble(
    fn: Callable[[Array], Any],
    *,
    key: Array,
    n_samples: int,
    mesh: MeshLike = "all",
    block_size: int | None = None,
) -> Any:
    r""":func:`ntkbook.montecarlo.ensemble` with the seeds split over the devices of ``mesh``.

    The keys k_1 … k_S = ``jax.random.split(key, S)`` are those of the single-device ensemble;
    device d evaluates ``fn`` at :math:`k_{dS/D+1}, \dots, k_{(d+1)S/D}`, ``block_size`` of them
    vmapped at a
    time, so sample s is the same draw as on one device.

    Args:
        fn: ``fn(key)`` → a pytree of arrays; hashable (a function, not a fresh lambda per
            call, to reuse the compilation).
        key: a ``jax.random`` key.
        n_samples: S ≥ 1, a multiple of the number of devices D.
        mesh: a :class:`jax.sharding.Mesh` or ``"all"``.
        block_size: samples per vmapped block on each device (default: all S/D at once; 1 on
            a mesh of several CPU devices, where batched LAPACK kernels such as a vmapped
            ``eigh`` were seen to deadlock in jaxlib 0.10.2).

    Returns:
        The pytree of ``fn``'s outputs, each leaf with a leading axis S, sharded along it.

    Raises:
        ValueError: naming ``fn``, ``key``, ``n_samples`` (also when D does not divide it),
            ``mesh`` or ``block_size``.
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a function of a key, got {fn!r}")
    m, keys, size = _seeds(key, n_samples, mesh, block_size)
    return _ensemble_rows(keys, (), fn=fn, mesh=m, block_size=size)


def ntk_at_init(
    x1: Array,
    x2: Array | None = None,
    *,
    net: networks.MLP,
    key: Array,
    n_samples: int,
    mesh: MeshLike = "all",
    dtype: jax.typing.DTypeLike = jnp.float32,
    block_size: int | None = None,
) -> montecarlo.InitNTK:
    r""":func:`ntkbook.montecarlo.ntk_at_init` with the initialisations split over ``mesh``.

    .. math::

        \begin{aligned}
        &\Theta_{kk'}(x, x'; \theta_s), \quad \theta_s = \text{init}(k_s), \\
        &k_s = \texttt{split(key, S)}[s] \text{ on device } \lfloor sD/S \rfloor,
        \end{aligned}

    the draw :func:`ntkbook.montecarlo.init_ntk_draw` run by :func:`ensemble`, so sample s is
    the one :func:`ntkbook.montecarlo.ntk_at_init` returns.

    Args:
        x1: inputs (N1, n_0); x2: inputs (N2, n_0), default ``x1``.
        net: the architecture (:func:`ntkbook.networks.mlp`).
        key: a ``jax.random`` key.
        n_samples: S, a multiple of the number of devices D.
        mesh: a :class:`jax.sharding.Mesh` or ``"all"``.
        dtype: float dtype of the parameters (and of the computation).
        block_size: initialisations per vmapped block on each device (as in :func:`ensemble`).

    Returns:
        :class:`ntkbook.montecarlo.InitNTK` ``(by_layer (S, L, N1, N2), full (S, N1, N2, n_L,
        n_L))``, sharded along S.

    Raises:
        ValueError: naming ``net``, ``key``, ``x1``, ``x2``, ``n_samples``, ``mesh``, ``dtype``
            or ``block_size``.
    """
    draw = montecarlo.init_ntk_draw(x1, x2, net=net, dtype=dtype)
    return ensemble(draw, key=key, n_samples=n_samples, mesh=mesh, block_size=block_size)


class _TrainDraw(NamedTuple):
    """One ensemble member: θ₀ = init(k_s), then :func:`ntkbook.training.train` (hashable, so
    equal draws share a compilation)."""

    net: networks.MLP
    dtype: Any
    options: tuple[tuple[str, object], ...]

    def __call__(self, key: Array, x: Array, y: Array, *x_test: Array) -> training.Trajectory:
        params = networks.init(self.net, key=key, dtype=self.dtype)
        test = x_test[0] if x_test else None
        options: dict[str, Any] = dict(self.options)
        return training.train(x, y, net=self.net, params=params, x_test=test, **options)


def train_ensemble(
    x: Array,
    y: Array,
    *,
    net: networks.MLP,
    key: Array,
    n_samples: int,
    lr: float,
    steps: int,
    record_at: int | Sequence[int] = 11,
    x_test: Array | None = None,
    cost: costs.Cost | Callable[[Array, Array], Array] | None = None,
    linearised: bool = False,
    record_ntk: bool = False,
    normalise: bool = True,
    trainable: Sequence[int] | None = None,
    output_scale: float = 1.0,
    dtype: jax.typing.DTypeLike = jnp.float32,
    block_size: int | None = None,
    mesh: MeshLike = "all",
) -> training.Trajectory:
    r"""S networks trained by :func:`ntkbook.training.train` from S initialisations, the seeds
    split over the devices of ``mesh``.

    .. math::

        \theta^{(s)}_0 = \text{init}(k_s), \quad
        \theta^{(s)}_{k+1} = \theta^{(s)}_k - \eta\, s_N \sum_i J(x_i)^\top d^{(s)}_k(x_i),
        \qquad s = 1, \dots, S,

    with k_s = ``jax.random.split(key, S)[s]``: member s is what
    ``training.train(x, y, net=net, params=networks.init(net, key=k_s, dtype=dtype), ...)``
    returns.

    Args:
        x, y: training inputs (N, n_0) and targets (N, n_L), shared by every member.
        net: the architecture (:func:`ntkbook.networks.mlp`).
        key: a ``jax.random`` key.
        n_samples: S, a multiple of the number of devices D.
        lr, steps, record_at, x_test, cost: as in :func:`ntkbook.training.train` (``x_test``:
            test inputs (M, n_0), if any).
        linearised, record_ntk, normalise, trainable, output_scale: as in
            :func:`ntkbook.training.train`.
        dtype: float dtype of the parameters.
        block_size: members per vmapped block on each device (default: all S/D at once, or 1
            on a mesh of several CPU devices, as in :func:`ensemble`; memory
            ∝ block_size · parameters).
        mesh: a :class:`jax.sharding.Mesh` or ``"all"``.

    Returns:
        :class:`ntkbook.training.Trajectory` whose every field has a leading axis S (sharded
        along it; ``steps`` and ``t`` are repeated per member).

    Raises:
        ValueError: naming ``net``, ``key``, ``x``, ``y``, ``x_test``, ``n_samples``, ``mesh``,
            ``dtype``, ``block_size`` or a training option.
    """
    if not isinstance(net, networks.MLP):
        raise ValueError(f"net: expected an ntkbook.networks.MLP (see networks.mlp), got {net!r}")
    dt = _checks.float_dtype("dtype", dtype)
    xs = _checks.matrix("x", x, n_features=net.widths[0]).astype(dt)
    ys = _checks.matrix("y", y, n_features=net.widths[-1]).astype(dt)
    if ys.shape[0] != xs.shape[0]:
        raise ValueError(f"y: expected {xs.shape[0]} rows (one per row of x), got {ys.shape}")
    args: tuple[Array, ...] = (xs, ys)
    if x_test is not None:
        args += (_checks.matrix("x_test", x_test, n_features=net.widths[0]).astype(dt),)
    m, keys, size = _seeds(key, n_samples, mesh, block_size)
    options = dict(
        lr=lr, steps=steps, record_at=record_at, cost=cost, linearised=linearised,
        record_ntk=record_ntk, normalise=normalise, trainable=trainable, output_scale=output_scale,
    )  # fmt: skip
    draw = _TrainDraw(net, dt, _freeze(options))
    return _ensemble_rows(keys, _replicated(args, m), fn=draw, mesh=m, block_size=size)


# ---------------------------------------------------------------------------- larger than memory


def write_kernel(
    out: np.ndarray | str | os.PathLike[str],
    x1: Array,
    x2: Array | None = None,
    *,
    depth: int,
    kernel: str = "ntk",
    activation: ActivationLike = "relu",
    beta: float = 0.0,
    sigma_w: float = 1.0,
    quadrature: str = "auto",
    points: int | None = None,
    dtype: object = None,
    mesh: MeshLike | None = None,
    block_size: int | None = None,
    progress: bool | Progress | None = None,
) -> np.ndarray:
    r"""Θ∞^(L) (or Σ^(L)) of any size, written block by block to a host array or a ``.npy`` file.

    Blocks of ``block_size`` rows of ``x1`` are computed on the mesh, each device taking
    ``block_size / D`` of them (as in :func:`ntk`), and every device's rows are copied to
    ``out`` while the next block computes:

    .. math::

        \text{out}[r : r + B,\ :] = k(x1[r : r + B],\ x2), \qquad r = 0, B, 2B, \dots

    (the last block starts at N1 − B, overlapping its predecessor, so any N1 ≥ D works and
    only one program is compiled). Device memory holds ``x2`` and two blocks, B × N2 each;
    host memory one block (a file is mapped one block at a time). Each device's rows are
    written by the process that owns the device, so with several hosts (jax.distributed) a
    file on a shared filesystem receives every row.

    Args:
        out: a writable float :class:`numpy.ndarray` of shape (N1, N2), or a path ending in
            ``.npy`` (created, or overwritten, through :func:`numpy.lib.format.open_memmap`).
        x1: inputs (N1, n_0), finite, N1 ≥ D.
        x2: inputs (N2, n_0); default ``x1`` (the symmetric kernel).
        depth: L ≥ 1.
        kernel: ``"ntk"`` (Θ∞^(L)) or ``"nngp"`` (Σ^(L)).
        activation, beta, sigma_w, quadrature, points, dtype: as in :func:`ntkbook.limits.ntk`.
        mesh: a :class:`jax.sharding.Mesh`, ``"all"``, or ``None``: the first local device.
        block_size: rows per block B, a multiple of D (default: D × ⌊2^24 / N2⌋, tiles of
            64 MiB in float32 per device).
        progress: ``True`` prints progress (:class:`TextProgress`); a callable is called as
            ``progress(rows_done, N1)`` after each block; ``None``: silent.

    Returns:
        ``out`` itself for an array; for a path, the file opened read-only with
        ``numpy.load(path, mmap_mode="r")`` (nothing is read until indexed).

    Raises:
        ValueError: naming ``out``, ``x1``, ``x2``, ``kernel``, ``mesh``, ``block_size``,
            ``progress`` or an option.

    Example:
        >>> import numpy as np
        >>> theta = write_kernel(np.zeros((4, 4), np.float32), np.eye(4, dtype=np.float32), depth=2)
        >>> bool(np.allclose(theta, ntk(np.eye(4, dtype=np.float32), depth=2)))
        True
    """
    name = _checks.choice("kernel", kernel, ("nngp", "ntk"))
    options = _limit_options(activation, beta, sigma_w, quadrature, points, None, dtype)
    m = device_mesh(jax.local_devices()[:1]) if mesh is None else _mesh(mesh)
    a = np.asarray(_checks.matrix("x1", x1))
    b = None if x2 is None else _checks.matrix("x2", x2, n_features=a.shape[1])
    n1, n2, d = a.shape[0], a.shape[0] if b is None else b.shape[0], m.size
    if n1 < d:
        raise ValueError(f"x1: {n1} rows, fewer than the mesh's {d} devices")
    if block_size is None:
        rows = d * max(1, _TILE_ENTRIES // n2)
    else:
        rows = _checks.positive_int("block_size", block_size)
        _per_device("block_size", rows, m, "rows")
    rows = min(rows, (n1 // d) * d)
    report = _progress(progress)
    # one rule for all rows: the one an eager call on the whole (a, b) would choose
    b_arr = None if b is None else jnp.asarray(b)
    options = limits.rule_options(jnp.asarray(a), b_arr, depth=depth, options=options)
    frozen = _freeze({**options, "depth": depth})
    fn = getattr(limits, name)
    diag = None if b is not None else np.asarray(fn(x1=a, depth=depth, diagonal=True, **options))
    x_all = _replicated(a if b is None else b, m)
    split = partial(_put, mesh=m, spec=lambda t: _rows_spec(m, t.ndim, 0))  # rows, diagonal

    def launch(start: int) -> Array:
        db = None if diag is None else split(diag[start : start + rows])
        return _limits_rows(
            split(a[start : start + rows]), x_all, db,
            _replicated(jnp.asarray(start, jnp.int32), m),
            mesh=m, kernel=name, options=frozen, symmetric=b is None,
        )  # fmt: skip

    starts = [min(i * rows, n1 - rows) for i in range(-(-n1 // rows))]
    report(0, n1)
    pending = launch(starts[0])
    target = _target(out, (n1, n2), np.dtype(pending.dtype))
    for i, start in enumerate(starts):
        block = pending
        if i + 1 < len(starts):
            pending = launch(starts[i + 1])  # dispatched now, computed while this block is written
        for shard in block.addressable_shards:
            row, columns = shard.index
            target.write(start + (row.start or 0), columns, np.asarray(shard.data))
        report(start + rows, n1)
    _sync("written")
    return target.result()
