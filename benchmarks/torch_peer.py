"""A plain torch implementation of the sleep loop: the peer a user would pick instead of Brian2.

Not part of the ``brainsleep`` package: a benchmark peer only. It runs the same per-step
rule as the numpy oracle (:func:`brainsleep.sleep.reference.simulate_reference`), written
the way a competent torch user would write it (float64 on CPU, the spiking columns and
rows picked by indexing / ``index_select``, in-place updates, one Python loop over
steps), so the Brian2 devices' speed can be compared with what a user gets without them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from brainsleep.sleep.inputs import SleepInput
from brainsleep.sleep.params import SleepParams

# g(w) = 2 * (1 - 1 / (1 + exp(-w / W_SHARPNESS))), as in the oracle.
W_SHARPNESS = 0.001

#: Transmission gathers the spiking presynaptic columns while at most this fraction of
#: the presynaptic layer fired, else it takes the dense product with the 0/1 spike vector.
#: Why 1/8: a column gather from the row-major (n_out, n_in) matrix touches one 64-byte
#: cache line (8 weights) per row and column, so beyond n_in / 8 columns it reads as many
#: lines as the dense product, which is then faster (BLAS, no index arithmetic). Measured
#: on a 1200 x 784 matrix, one thread: the crossover is near 100 columns.
DENSE_FRACTION = 1 / 8


def _g_weight(rows: torch.Tensor) -> torch.Tensor:
    """g(rows) in one new tensor (the first operation allocates, the rest work in place).

    Same operation order as the oracle's ``2 * (1 - 1 / (1 + exp(-w / 0.001)))`` so the
    only difference is the last bit of torch's exp against numpy's.
    """
    return rows.div(-W_SHARPNESS).exp_().add_(1.0).reciprocal_().neg_().add_(1.0).mul_(2.0)


def simulate_torch(
    weights: list[np.ndarray],
    inputs: SleepInput,
    params: SleepParams,
    seed: int = 0,
    record_layers: tuple[int, ...] | None = None,
    threads: int = 1,
) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray] | None]]:
    """Run the sleep phase in torch (benchmark peer, not part of the package).

    The loop of :func:`~brainsleep.sleep.reference.simulate_reference` (decay, input
    spikes ``u * rescale / 2 <= x``, per layer: transmission, threshold, Hebbian update of
    the spiking rows, reset), vectorised over neurons in torch float64 on the CPU.

    Differences from the oracle, both deliberate:

    - the input uniforms come from torch's own generator (``torch.Generator`` seeded with
      ``seed``), so on random input the spikes agree with the oracle only statistically;
      on deterministic input (every firing probability exactly 0 or 1) they are identical;
    - transmission adds the spiking columns with one ``sum`` of the gathered columns
      (few spikes) or one matrix-vector product with the 0/1 spike vector (more than
      :data:`DENSE_FRACTION` of the presynaptic layer), in torch's reduction order, not
      one presynaptic spike after another, so potentials and weights may differ from the
      oracle's by rounding (about 1e-16 relative).

    Parameters
    ----------
    weights : list of ndarray
        Weight matrices (n_out, n_in), float64; copied, not modified.
    inputs : SleepInput
        Input intensities per step (:meth:`SleepInput.frames`, called with ``seed``).
    params : SleepParams
        ``max_rate``, ``decay``, ``inc``, ``dec``, ``v_thresh`` per layer, ``alphas``, ``dt``.
    seed : int
        Seeds torch's generator for the input uniforms, and the input's frames.
    record_layers : tuple of int, optional
        Layers whose spikes are kept (0 = input); default all.
    threads : int
        torch intra-op threads during the run (the previous setting is restored after).

    Returns
    -------
    weights : list of ndarray
        Weights after sleep, float64.
    spikes : list of (steps, neurons) int32 array pairs per layer, or None for unrecorded
        layers; within a step, neurons in increasing order.
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _simulate(weights, inputs, params, seed, record_layers)
    finally:
        torch.set_num_threads(previous_threads)


def _simulate(weights, inputs, params, seed, record_layers):
    f64 = torch.float64
    W = [torch.tensor(np.asarray(w, dtype=np.float64), dtype=f64) for w in weights]
    n_layers = len(W)
    if record_layers is None:
        record_layers = tuple(range(n_layers + 1))
    v = [torch.zeros(w.shape[0], dtype=f64) for w in W]
    # Per layer, the coefficient of g for each presynaptic neuron (inc if it fired this
    # step, -dec otherwise): reused buffers, filled only on steps with a post spike.
    coef = [torch.empty(w.shape[1], dtype=f64) for w in W]
    thresholds = [params.layer_value("v_thresh", k) for k in range(n_layers)]
    gen = torch.Generator().manual_seed(seed)
    n_in = W[0].shape[1]
    max_rate, decay = params["max_rate"], params["decay"]
    inc, dec = params["inc"], params["dec"]
    rescale = math.inf if max_rate == 0 else 1.0 / (params.dt * max_rate)
    u = torch.empty(n_in, dtype=f64)
    recorded = [[] for _ in range(n_layers + 1)]  # (step, neuron index tensor) per layer

    for step, x in zip(range(inputs.n_steps), inputs.frames(seed), strict=False):
        x = torch.from_numpy(np.asarray(x, dtype=np.float64))
        for vl in v:
            vl.mul_(decay)
        torch.rand(n_in, generator=gen, dtype=f64, out=u)
        # (u * rescale) / 2 in the oracle's order, so 0/1 probabilities round the same.
        pre = torch.le(u.mul_(rescale).div_(2.0), x)
        pre_idx = pre.nonzero().view(-1)
        if 0 in record_layers and pre_idx.numel():
            recorded[0].append((step, pre_idx))
        for layer in range(n_layers):
            w, vl = W[layer], v[layer]
            k = pre_idx.numel()
            if k > DENSE_FRACTION * w.shape[1]:
                vl.addmv_(w, pre.to(f64), alpha=params.alphas[layer])
            elif k:
                # Indexing the transposed view's rows: about twice as fast as
                # index_select along dim 1 (torch 2.13, CPU; 0.68 s vs 1.46 s for the whole
                # quiet 784-1200-1200-10 run of 2000 steps), and faster than gather.
                cols = w.t()[pre_idx]  # (k, n_out)
                vl.add_(cols.sum(0), alpha=params.alphas[layer])
            post = vl >= thresholds[layer]
            post_idx = post.nonzero().view(-1)
            if post_idx.numel():
                rows = w.index_select(0, post_idx)  # a copy, updated then written back
                c = coef[layer].fill_(-dec).masked_fill_(pre, inc)
                g = _g_weight(rows)
                w.index_copy_(0, post_idx, rows.addcmul_(g, c))
                vl.index_fill_(0, post_idx, 0.0)
                if layer + 1 in record_layers:
                    recorded[layer + 1].append((step, post_idx))
            pre, pre_idx = post, post_idx

    spikes: list[tuple[np.ndarray, np.ndarray] | None] = []
    for layer in range(n_layers + 1):
        if layer not in record_layers:
            spikes.append(None)
        elif recorded[layer]:
            steps = np.concatenate(
                [np.full(idx.numel(), s, dtype=np.int32) for s, idx in recorded[layer]]
            )
            neurons = torch.cat([idx for _, idx in recorded[layer]]).numpy().astype(np.int32)
            spikes.append((steps, neurons))
        else:
            spikes.append((np.zeros(0, np.int32), np.zeros(0, np.int32)))
    return [w.numpy() for w in W], spikes
