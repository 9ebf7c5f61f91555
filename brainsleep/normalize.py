"""Data-based weight normalisation: the per-layer alphas of the sleep phase.

This follows the reference ``utils/normalize_nn_data.m`` (tmtadros/SleepReplayConsolidation):

1. Run the network in test mode on the training data: ``a_0 = x``,
   ``a_l = relu(a_{l-1} @ W_l.T)``; every HIDDEN activation is then multiplied by
   ``hidden_scale`` (0.75 for the reference's non-inverted dropout 0.25, 1.0 for a net
   trained with inverted dropout); the output is not scaled.
2. ``prev = 1``; for each layer ``l``::

       s_l     = max(max(W_l), max(a_l), 0)   # a_l as stored above: hidden ones scaled
       f_l     = s_l / prev
       alpha_l = 1 / f_l
       prev    = f_l        # the reference's quirk; the textbook form stores s_l

3. ``alphas *= alpha_scale``.

The activation maximum is taken of the activations exactly as the reference's ``nnff``
stores them in ``nn.a{l+1}`` in test mode, i.e. AFTER the 0.75 scaling for hidden
layers (and without scaling for the output layer).

The quirk
---------
Because ``prev`` holds the previous *factor* rather than the previous *scale*, the
alphas are, in closed form (before ``alpha_scale``)::

    alpha_1 = 1 / s_1
    alpha_2 = s_1 / s_2
    alpha_3 = s_2 / (s_1 * s_3)           # textbook (quirk=False): s_2 / s_3

With ``quirk=False`` (``prev = s_l``) every layer gets ``alpha_l = s_{l-1} / s_l``; the
two forms agree on the first two layers and differ from the third on.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from brainsleep.ann import MLP

__all__ = ["AlphasCache", "Normalization", "alphas_for_model", "normalization_alphas"]


@dataclass(frozen=True)
class Normalization:
    """Result of the data-based normalisation.

    Attributes
    ----------
    alphas
        Per-layer alpha, ``alpha_scale`` included (what the sleep phase multiplies
        the impulse by).
    s
        Per-layer scale ``max(max(W_l), max(a_l), 0)``.
    factors
        Per-layer ``f_l = s_l / prev`` (``alpha_l = alpha_scale / f_l``).
    weight_max, activation_max
        The two terms of ``s`` (each clipped at 0).
    hidden_scale
        Factor applied to hidden activations in the test-mode pass.
    alpha_scale
        Multiplier applied to ``1 / f``.
    quirk
        True: reference form (``prev = f``); False: textbook form (``prev = s``).
    percentile
        None: ``activation_max`` is the maximum (Diehl et al. 2015, the reference);
        p: the p-th percentile of the positive activations (Rueckauer et al. 2017), and
        ``s`` is that alone (no weight term).
    """

    alphas: list[float]
    s: list[float]
    factors: list[float]
    weight_max: list[float]
    activation_max: list[float]
    hidden_scale: float
    alpha_scale: float
    quirk: bool
    percentile: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able); ``percentile`` only when one was used (records made
        before it existed read the same)."""
        d = asdict(self)
        if d["percentile"] is None:
            del d["percentile"]
        return d


def _check_inputs(weights: Sequence[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """float64 copies of ``weights`` after shape and finiteness checks."""
    if len(weights) == 0:
        raise ValueError("normalization_alphas: no weight matrices given")
    if x.ndim != 2:
        raise ValueError(f"normalization_alphas: x must be 2-D (N, n_in), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("normalization_alphas: x has no rows")
    if not np.isfinite(x).all():
        raise ValueError("normalization_alphas: x contains NaN or inf")
    ws = []
    n_prev, prev_name = x.shape[1], "x"
    for i, w in enumerate(weights, start=1):
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(
                f"normalization_alphas: layer {i}: weights must be 2-D, got shape {w.shape}"
            )
        if w.shape[1] != n_prev:
            raise ValueError(
                f"normalization_alphas: layer {i}: weights {w.shape} take {w.shape[1]} inputs "
                f"but {prev_name} provides {n_prev}"
            )
        if not np.isfinite(w).all():
            raise ValueError(f"normalization_alphas: layer {i}: weights contain NaN or inf")
        ws.append(w)
        n_prev, prev_name = w.shape[0], f"layer {i}"
    return ws


def _activation_maxima(
    ws: list[np.ndarray],
    x: np.ndarray,
    hidden_scale: float,
    batch_size: int,
    percentile: float | None = None,
) -> list[float]:
    """Per layer, ``max(a_l, 0)`` over all rows of the test-mode pass (hidden ones scaled),
    or the ``percentile`` of its positive entries (0 when there are none)."""
    maxima = [0.0] * len(ws)
    positive: list[list[np.ndarray]] = [[] for _ in ws]
    for start in range(0, x.shape[0], batch_size):
        a = x[start : start + batch_size]
        for i, w in enumerate(ws):
            a = np.maximum(a @ w.T, 0.0)
            if i < len(ws) - 1:
                # Scaled before the max: the reference takes max of nn.a{l+1} as nnff
                # stores it in test mode, and the next layer reads the same values.
                a = a * hidden_scale
            maxima[i] = max(maxima[i], float(a.max(initial=0.0)))
            if percentile is not None:
                positive[i].append(a[a > 0])
    if percentile is None:
        return maxima
    # snn_toolbox's get_percentile: the percentile of the non-zero activations
    return [
        float(np.percentile(np.concatenate(p), percentile)) if sum(map(len, p)) else 0.0
        for p in positive
    ]


def normalization_alphas(
    weights: Sequence[np.ndarray],
    x: np.ndarray,
    hidden_scale: float = 0.75,
    alpha_scale: float = 1.0,
    quirk: bool = True,
    batch_size: int = 1000,
    percentile: float | None = None,
) -> Normalization:
    """Per-layer alphas of the reference's data-based normalisation (see module doc).

    Parameters
    ----------
    weights
        Weight matrices, shape ``(n_out, n_in)`` each (``nn.Linear`` layout), no biases.
    x
        Data the net is run on (the reference uses all training images), ``(N, n_in)``.
    hidden_scale
        Test-time factor of hidden activations: ``1 - dropout`` for reference
        (non-inverted) dropout, 1.0 for inverted dropout.
    alpha_scale
        Multiplies every alpha (the last entry of the reference's parameter vectors).
    quirk
        True (reference): ``prev = f``; False: ``prev = s``.
    batch_size
        Rows per forward pass (bounds memory; the result does not depend on it).
    percentile
        None (the reference, Diehl et al. 2015): ``s_l = max(max(W_l), max(a_l), 0)``.
        A value p in (0, 100]: ``s_l`` is the p-th percentile of the positive entries of
        ``a_l`` (Rueckauer et al. 2017, Front. Neurosci. 11:682, section 2.3; 99.9 there),
        so that rare large activations saturate instead of slowing every other neuron.

    Returns
    -------
    Normalization

    Raises
    ------
    ValueError
        NaN/inf in weights or data, shapes that do not chain, non-positive
        ``hidden_scale``/``alpha_scale``, a percentile outside (0, 100], or a layer
        whose scale ``s`` is 0.
    """
    x = np.asarray(x, dtype=np.float64)
    ws = _check_inputs(weights, x)
    for name, v in (("hidden_scale", hidden_scale), ("alpha_scale", alpha_scale)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"normalization_alphas: {name} must be finite and > 0, got {v}")
    if batch_size < 1:
        raise ValueError(f"normalization_alphas: batch_size must be >= 1, got {batch_size}")
    if percentile is not None and not (
        isinstance(percentile, int | float) and 0 < percentile <= 100
    ):
        raise ValueError(f"normalization_alphas: percentile must be in (0, 100], got {percentile}")
    act_max = _activation_maxima(ws, x, float(hidden_scale), int(batch_size), percentile)
    w_max = [max(float(w.max()), 0.0) for w in ws]
    s, factors, alphas = [], [], []
    prev = 1.0
    for i, (wm, am) in enumerate(zip(w_max, act_max, strict=True), start=1):
        s_l = max(wm, am) if percentile is None else am
        if s_l == 0.0:
            raise ValueError(
                f"normalization_alphas: layer {i}: scale is 0 (no positive weight and no "
                "positive activation), alpha undefined"
            )
        f = s_l / prev
        s.append(s_l)
        factors.append(f)
        alphas.append(float(alpha_scale) / f)
        prev = f if quirk else s_l
    return Normalization(
        alphas=alphas,
        s=s,
        factors=factors,
        weight_max=w_max,
        activation_max=act_max,
        hidden_scale=float(hidden_scale),
        alpha_scale=float(alpha_scale),
        quirk=bool(quirk),
        percentile=None if percentile is None else float(percentile),
    )


def alphas_for_model(
    model: MLP,
    x: np.ndarray | torch.Tensor,
    alpha_scale: float = 1.0,
    quirk: bool = True,
    batch_size: int = 1000,
    percentile: float | None = None,
) -> Normalization:
    """:func:`normalization_alphas` for a :class:`brainsleep.ann.MLP`.

    ``hidden_scale`` follows the model's dropout convention (``model.eval_hidden_scale``:
    ``1 - dropout`` for ``"reference"``, 1.0 for ``"inverted"``) and is recorded in the
    result.
    """
    from brainsleep.ann import get_weights  # deferred: keeps numpy-only use torch-free

    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return normalization_alphas(
        get_weights(model),
        np.asarray(x, dtype=np.float64),
        hidden_scale=model.eval_hidden_scale,
        alpha_scale=alpha_scale,
        quirk=quirk,
        batch_size=batch_size,
        percentile=percentile,
    )


class AlphasCache:
    """:func:`alphas_for_model` on fixed images, computed once per set of weights.

    A sleep-parameter search sleeps one baseline with many parameter sets, and its alphas
    depend only on the weights and the images: recomputing them was half of a search
    trial's time at MNIST 10 % (``benchmarks/engine_speed.md``). The key is a SHA-256
    digest of the weights and of the dropout convention, so a model changed in place is
    never given stale alphas. SHA-256 rather than BLAKE2: on CPUs with SHA instructions
    (AMD Zen, Intel since Ice Lake) it is 2.7x faster, 5.5 ms against 14.7 ms per trial
    for a 784-1200-1200-10 net on this project's machine; on older ones it is slower by a
    few milliseconds. Holds one entry (the last model asked for).

    Parameters
    ----------
    x : ndarray (N, n_in)
        The images the maxima are taken over (the cell's training subset).
    """

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._key: bytes | None = None
        self._norm: Normalization | None = None

    def __call__(self, model: MLP) -> Normalization:
        """The :class:`Normalization` of ``model`` on the held images."""
        digest = hashlib.sha256(repr(model.eval_hidden_scale).encode())
        # The tensors' own bytes, no float64 copy: half the bytes, and no copy at all for
        # the contiguous CPU tensors a model holds (a tenth of a trial before).
        for name, t in model.state_dict().items():
            a = np.ascontiguousarray(t.detach().cpu().numpy())
            digest.update(f"{name} {a.dtype} {a.shape}".encode())
            digest.update(a.data)
        key = digest.digest()
        if key != self._key:
            self._norm, self._key = alphas_for_model(model, self.x), key
        return self._norm
