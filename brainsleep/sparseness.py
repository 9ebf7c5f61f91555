"""Hoyer sparseness, the one definition that the pipeline and the analysis share.

The pipeline records each stage's weight sparseness in ``metrics.csv``
(:func:`weight_hoyer`), so that a results directory's compact files are enough for the
claims report; :mod:`analysis.sparsity` uses :func:`hoyer` on firing rates.

Source: Hoyer, P. O. (2004), "Non-negative matrix factorization with sparseness
constraints", J. Mach. Learn. Res. 5, 1457-1469, eq. 1.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def hoyer(x: np.ndarray, axis: int = -1) -> float | np.ndarray:
    """Hoyer sparseness ``(sqrt(n) - L1/L2) / (sqrt(n) - 1)``.

    Parameters
    ----------
    x : array_like
        Values (e.g. per-neuron firing rates); absolute values are used for ``L1``.
    axis : int
        Axis holding the ``n`` values.

    Returns
    -------
    float or numpy.ndarray
        In [0, 1]: 1 for one-hot, 0 for uniform. NaN for an all-zero vector or ``n < 2``.

    Examples
    --------
    >>> hoyer([0, 0, 3, 0])
    1.0
    >>> hoyer([2, 2, 2, 2])
    0.0
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[axis]
    l1 = np.sum(np.abs(x), axis=axis)
    l2 = np.sqrt(np.sum(x * x, axis=axis))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = (np.sqrt(n) - l1 / l2) / (np.sqrt(n) - 1.0) if n >= 2 else np.full(l1.shape, np.nan)
    # Rounding can put a uniform vector a hair below 0; the measure is defined on [0, 1].
    h = np.where(l2 > 0, np.clip(h, 0.0, 1.0), np.nan)
    return float(h) if h.ndim == 0 else h


def weight_hoyer(weights: Iterable[np.ndarray]) -> float:
    """Hoyer sparseness of a network's weight matrices, averaged over layers.

    Parameters
    ----------
    weights : iterable of numpy.ndarray
        One matrix per layer, any shape (each is flattened), e.g.
        :func:`brainsleep.ann.get_weights` or the values of
        :func:`brainsleep.formats.load_weights`.

    Returns
    -------
    float
        Mean over layers of :func:`hoyer` of the layer's flattened weights; in [0, 1],
        larger is sparser.
    """
    return float(np.mean([hoyer(np.ravel(w)) for w in weights]))
