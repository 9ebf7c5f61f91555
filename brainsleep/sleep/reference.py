"""The numpy oracle: Sleep Replay Consolidation exactly as the reference loop does it.

Independent of Brian2 and of the model files: this is the reference rule
(``models/src.py``) written directly in float64 numpy, step by step, so the Brian2
devices can be checked against it. Per step t (see ``docs`` and the reference
``sleepnn_old.m``):

1. every layer's potential decays: ``v = decay * v``;
2. input pixel i spikes iff ``u * rescale / 2 <= x[t, i]``, one fresh uniform per pixel;
3. for each weight layer l in order, reading layer l-1's spikes of the same step:
   ``v += alpha_l * W_l[:, j]`` for each spiking presynaptic j in increasing order
   (the order in which Brian2 delivers events, so potentials agree bit for bit),
   spikes where ``v >= threshold_l``, the Hebbian update of the spiking rows
   (``w + inc*g(w)`` where the presynaptic neuron fired, ``w - dec*g(w)`` elsewhere),
   then ``v = 0`` for the spikers.
"""

from __future__ import annotations

import math

import numpy as np

from .inputs import UNIFORM_STREAM, SleepInput
from .params import SleepParams

#: ``model_content_digest`` of the model whose equations and declarations this oracle
#: implements: ``models/src.py`` as shipped. The reference device runs a model only when
#: its content is this one (keyed by content, not by name: an edited copy named src.py
#: is another model). Change the oracle and this digest together with src.py's equations.
ORACLE_MODEL_CONTENT = "eaf6a30feb69a891ab422aef9aa368b774c5a909dc9c6118c17279edacb09122"

W_SHARPNESS = 0.001
# Outside |w / W_SHARPNESS| <= 40, g is exactly 0.0 or 2.0 in float64 whatever the last
# bit of exp is; inside, numpy's vectorised exp differs from the C library's exp (what
# compiled Brian2 code calls) by one ulp for a few percent of arguments.
_EXP_BAND = 40.0
_exp_object = np.frompyfunc(math.exp, 1, 1)


def g_weight(w: np.ndarray, exact_exp: bool = True) -> np.ndarray:
    """The reference's weight dependence ``g(w) = 2 * (1 - 1 / (1 + exp(-w / 0.001)))``.

    Parameters
    ----------
    w : ndarray
        Weights (float64).
    exact_exp : bool
        Evaluate exp with the C library (``math.exp``) where its last bit matters, so the
        result is bit-identical to generated C++ code. Slower; False uses ``np.exp``.
    """
    z = -w / W_SHARPNESS
    with np.errstate(over="ignore"):
        e = np.exp(z)
    if exact_exp:
        band = np.abs(z) <= _EXP_BAND
        if band.any():
            e[band] = _exp_object(z[band]).astype(np.float64)
    return 2 * (1 - 1 / (1 + e))


def simulate_reference(
    weights: list[np.ndarray],
    inputs: SleepInput,
    params: SleepParams,
    seed: int = 0,
    record_layers: tuple[int, ...] | None = None,
    exact_exp: bool = True,
    progress: bool = False,
    rest_every: int = 0,
):
    """Run the sleep phase in numpy.

    Parameters
    ----------
    weights : list of ndarray
        Weight matrices (n_out, n_in), float64; copied, not modified.
    inputs : SleepInput
        Input intensities per step (:meth:`SleepInput.frames`).
    params : SleepParams
        Values of the reference rule's parameters (``models/src.py``: max_rate, decay,
        v_thresh per layer, inc, dec) and the layer scales.
    seed : int
        Seeds the input uniforms (stream ``[seed, 2]``) and the masked-input windows.
    record_layers : tuple of int, optional
        Layers whose spikes are kept (0 = input); default all.
    exact_exp : bool
        See :func:`g_weight`.
    progress : bool
        Show a tqdm progress bar over steps.
    rest_every : int
        Every this many steps (from step 0) every potential is set to 0 before the
        decay: the rest between images of SNN evaluation (0: never).

    Returns
    -------
    weights : list of ndarray
        Weights after sleep.
    spikes : list of (steps, neurons) int arrays per layer, or None for unrecorded layers.
    """
    from tqdm.auto import tqdm

    W = [np.array(w, dtype=np.float64, copy=True) for w in weights]
    n_layers = len(W)
    if record_layers is None:
        record_layers = tuple(range(n_layers + 1))
    v = [np.zeros(w.shape[0]) for w in W]
    rng = np.random.default_rng([seed, UNIFORM_STREAM])
    n_in = W[0].shape[1]
    max_rate, decay = params["max_rate"], params["decay"]
    inc, dec = params["inc"], params["dec"]
    rescale = math.inf if max_rate == 0 else 1.0 / (params.dt * max_rate)
    rec_steps = [[] for _ in range(n_layers + 1)]
    rec_neurons = [[] for _ in range(n_layers + 1)]

    def record(layer: int, step: int, idx: np.ndarray) -> None:
        if layer in record_layers and idx.size:
            rec_steps[layer].append(np.full(idx.size, step, dtype=np.int32))
            rec_neurons[layer].append(idx.astype(np.int32))

    frames = inputs.frames(seed)
    n_steps = inputs.n_steps
    for step in tqdm(range(n_steps), disable=not progress, desc="reference sleep", unit="step"):
        x = next(frames)
        if rest_every and step % rest_every == 0:
            for vl in v:
                vl[:] = 0.0
        for vl in v:
            vl *= decay
        u = rng.random(n_in)
        pre = (u * rescale / 2) <= x
        pre_idx = np.flatnonzero(pre)
        record(0, step, pre_idx)
        for layer in range(n_layers):
            w, vl = W[layer], v[layer]
            alpha = params.alphas[layer]
            if pre_idx.size:
                # Sequential sum in presynaptic order: add.accumulate does not reorder.
                terms = np.empty((vl.size, pre_idx.size + 1))
                terms[:, 0] = vl
                terms[:, 1:] = alpha * w[:, pre_idx]
                vl[:] = np.add.accumulate(terms, axis=1)[:, -1]
            post = vl >= params.layer_value("v_thresh", layer)
            post_idx = np.flatnonzero(post)
            if post_idx.size:
                rows = w[post_idx]
                g = g_weight(rows, exact_exp)
                w[post_idx] = np.where(pre, rows + inc * g, rows - dec * g)
                vl[post_idx] = 0.0
            record(layer + 1, step, post_idx)
            pre, pre_idx = post, post_idx
    spikes = []
    for layer in range(n_layers + 1):
        if layer not in record_layers:
            spikes.append(None)
        elif rec_steps[layer]:
            spikes.append((np.concatenate(rec_steps[layer]), np.concatenate(rec_neurons[layer])))
        else:
            spikes.append((np.zeros(0, np.int32), np.zeros(0, np.int32)))
    return W, spikes
