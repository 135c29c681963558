"""Host-side output of :func:`ntkbook.sharding.write_kernel`: progress reports and the target
(a host array or a ``.npy`` file mapped one block of rows at a time)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from . import _checks

Progress = Callable[[int, int], None]


class TextProgress:
    r"""A progress callback ``progress(done, total)`` that prints a line to ``stream`` (default
    stderr) at most every ``every`` seconds, and at the end: rows done, their share, the time
    elapsed and the time left at the average rate so far,

    .. math:: t_{\rm left} = t_{\rm elapsed}\, (\text{total} - \text{done}) / \text{done}.

    Args:
        label: what is counted (shown first on each line).
        every: seconds between lines (≥ 0).
        stream: a text stream; default ``sys.stderr``.
    """

    def __init__(self, label: str = "rows", *, every: float = 5.0, stream: Any = None) -> None:
        self.label = label
        self.every = _checks.nonnegative("every", every)
        self.stream = stream
        self._start: float | None = None
        self._last = -np.inf

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self._start is None:
            self._start = now
        if done < total and now - self._last < self.every:
            return
        self._last = now
        elapsed = now - self._start
        left = f", about {elapsed * (total - done) / done:.0f} s left" if 0 < done < total else ""
        print(
            f"{self.label}: {done}/{total} ({100 * done / max(total, 1):.0f} %), "
            f"{elapsed:.1f} s{left}",
            file=self.stream or sys.stderr, flush=True,
        )  # fmt: skip


def _progress(progress: object) -> Progress:
    """``None`` → no report; ``True`` → :class:`TextProgress`; a callable as given."""
    if progress is None or progress is False:
        return lambda done, total: None
    if progress is True:
        return TextProgress()
    if callable(progress):
        return progress
    raise ValueError(f"progress: expected None, True or a callable(done, total), got {progress!r}")


class _Target(NamedTuple):
    """Where :func:`write_kernel` puts rows: a host array, or a ``.npy`` file mapped one block
    of rows at a time (so the resident memory stays that of a block)."""

    array: np.ndarray | None
    path: str  # the .npy file when ``array`` is None
    header: int
    shape: tuple[int, int]
    dtype: np.dtype

    def write(self, row: int, columns: slice, data: np.ndarray) -> None:
        if self.array is not None:
            self.array[row : row + data.shape[0], columns] = data
            return
        region = np.memmap(
            self.path, dtype=self.dtype, mode="r+", shape=(data.shape[0], self.shape[1]),
            offset=self.header + row * self.shape[1] * self.dtype.itemsize,
        )  # fmt: skip
        region[:, columns] = data
        region.flush()
        del region  # unmapped: its pages leave the resident set

    def result(self) -> np.ndarray:
        if self.array is not None:
            return self.array
        return np.load(self.path, mmap_mode="r")


def _target(out: object, shape: tuple[int, int], dtype: np.dtype) -> _Target:
    """Validate ``out`` (an array of ``shape`` or a ``.npy`` path) and prepare it."""
    if isinstance(out, np.ndarray):
        if out.shape != shape or not np.issubdtype(out.dtype, np.floating):
            raise ValueError(
                f"out: expected a float array of shape {shape}, got {out.dtype} {out.shape}"
            )
        if not out.flags.writeable:
            raise ValueError("out: the array is read-only")
        return _Target(out, "", 0, shape, out.dtype)
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out).endswith(".npy"):
        raise ValueError(f"out: expected a numpy array or a path ending in .npy, got {out!r}")
    path = os.fspath(out)
    if jax.process_index() == 0:  # a sparse file of the final size, with a .npy header
        np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape).flush()
    _sync("created")
    return _Target(None, path, int(np.load(path, mmap_mode="r").offset), shape, dtype)


def _sync(what: str) -> None:
    """With several processes (jax.distributed), wait for all of them."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"ntkbook.sharding.write_kernel: {what}")
