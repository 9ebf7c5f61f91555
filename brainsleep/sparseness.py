"""Sparseness measures, the one definition that the pipeline and the analysis share.

The pipeline records each stage's weight sparseness in ``metrics.csv``
(:func:`weight_hoyer`, :func:`small_weight_fraction`) and the population sparseness of
its hidden activations (:func:`population_sparseness`), so that a results directory's
compact files are enough for the claims report; :mod:`analysis.sparsity` uses
:func:`hoyer` on firing rates.

Sources: Hoyer, P. O. (2004), "Non-negative matrix factorization with sparseness
constraints", J. Mach. Learn. Res. 5, 1457-1469, eq. 1; Treves & Rolls (1991) and Vinje
& Gallant (2000) for the population sparseness.
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


def treves_rolls(x: np.ndarray, axis: int = -1) -> float | np.ndarray:
    """Treves-Rolls activity ratio ``a = (mean x)**2 / mean(x**2)``.

    Parameters
    ----------
    x : array_like
        Non-negative values (per-neuron firing rates, or one image's activations).
    axis : int
        Axis holding the values.

    Returns
    -------
    float or numpy.ndarray
        In ``[1/n, 1]``: 1 for uniform activity (dense), ``1/n`` for one-hot (sparse).
        NaN for an all-zero vector.

    Notes
    -----
    Treves, A. & Rolls, E. T. (1991), Network 2, 371-397.

    Examples
    --------
    >>> treves_rolls([1, 1, 0, 0])
    0.5
    """
    x = np.asarray(x, dtype=float)
    m1 = np.mean(x, axis=axis)
    m2 = np.mean(x * x, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(m2 > 0, m1 * m1 / m2, np.nan)
    return float(a) if a.ndim == 0 else a


def population_sparseness(r: np.ndarray, axis: int = -1) -> float | np.ndarray:
    """Population sparseness of non-negative responses (Treves-Rolls, normalised).

    ``(1 - a) / (1 - 1/n)`` with the Treves-Rolls activity ratio
    ``a = mean(r)**2 / mean(r**2)`` over the ``n`` units of ``axis``: 0 when all units
    respond equally, 1 when one unit carries the whole response.

    Parameters
    ----------
    r : array_like
        Responses (e.g. ReLU outputs of a layer, images x units), >= 0.
    axis : int
        Axis of the units.

    Returns
    -------
    float or numpy.ndarray
        In [0, 1]; NaN where every unit is silent (an all-zero response has no shape).

    Notes
    -----
    Treves, A. & Rolls, E. T. (1991), Network 2, 371-397 (the activity ratio ``a``);
    Vinje, W. E. & Gallant, J. L. (2000), Science 287, 1273-1276 (the normalisation).
    Unlike the fraction of active units it is not moved by a few units that turn off.

    Examples
    --------
    >>> population_sparseness([0, 0, 3, 0])
    1.0
    >>> population_sparseness([2, 2, 2, 2])
    0.0
    """
    r = np.asarray(r, dtype=float)
    n = r.shape[axis]
    a = np.asarray(treves_rolls(r, axis=axis))
    s = (1.0 - a) / (1.0 - 1.0 / n) if n >= 2 else np.full(a.shape, np.nan)
    s = np.clip(s, 0.0, 1.0)  # NaN (all silent) stays NaN
    return float(s) if s.ndim == 0 else s


#: A weight counts as near zero below this fraction of its layer's median |w|.
SMALL_WEIGHT_RELATIVE = 0.1


def small_weight_fraction(
    weights: Iterable[np.ndarray], relative: float = SMALL_WEIGHT_RELATIVE
) -> float:
    """Fraction of near-zero weights, averaged over layers (larger is sparser).

    A weight is near zero when ``|w| < relative * median(|w|)`` of its layer. The median
    is not moved by a few heavily depressed rows (which drive the Hoyer measure), and the
    ratio makes the measure blind to a common scale.

    Parameters
    ----------
    weights : iterable of numpy.ndarray
        One matrix per layer, any shape.
    relative : float
        Threshold as a fraction of the layer's median absolute weight (> 0).

    Returns
    -------
    float
        In [0, 1]; a layer whose weights are all zero counts as 1.
    """
    if not relative > 0:
        raise ValueError(f"small_weight_fraction: relative must be > 0, got {relative}")
    fractions = []
    for w in weights:
        a = np.abs(np.ravel(np.asarray(w, dtype=float)))
        med = np.median(a)
        fractions.append(1.0 if med == 0 else float(np.mean(a < relative * med)))
    return float(np.mean(fractions))
