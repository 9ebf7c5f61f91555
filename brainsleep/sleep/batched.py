"""Batched SNN simulation: many images at once, one time step for all of them.

The spiking network of SNN evaluation (plasticity off) simulated as Diehl et al. (2015)
do it in ``nnlifsim.m`` (dannyneil/spiking_relu_conversion): the state of every neuron
for every image is one ``(images, neurons)`` array, and one step of all images is one
matrix product per layer. Each image is its own simulation from rest, which is what the
Brian2 path does with a rest at the start of every presentation window
(:func:`brainsleep.sleep.inference.evaluate_snn`).

This is a second implementation of the model's inference dynamics, so it runs a model
only when the model's statements are the ones it implements (:data:`IMPLEMENTS`, compared
as text after removing comments and spaces): a model edited in any of them is refused in
one line, naming the statement, and runs on the Brian2 devices instead. The arithmetic
per step is that of the Brian2 network (``brainsleep/sleep/network.py``): decay of every
layer, input spikes, then per layer the transmission ``v += alpha * w`` summed over the
presynaptic spikes of the same step, the threshold, the reset. Summed in another order,
the potentials can differ from Brian2's in the last bits, so a spike can differ only
where a potential lies within about 1e-15 of its threshold; the tests check spike for
spike against the Brian2 devices on the same input spikes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .model import SleepModel

#: The model statements whose dynamics this simulator computes (those of models/src.py).
IMPLEMENTS = {
    ("INPUT", "threshold"): "x > 0 and rand() * rescale / 2 <= x",
    ("NEURON", "decay_step"): "v = decay * v",
    ("NEURON", "threshold"): "v >= v_thresh",
    ("NEURON", "reset"): "v = 0",
    ("NEURON", "rest"): "v = 0",
    ("SYNAPSE", "on_pre"): "v_post += alpha * w",
}
#: ... and the input's rate definition, a line of INPUT["equations"].
RESCALE_LINE = "rescale = 1 / (dt * max_rate) : 1 (shared)"

#: Resets this simulator implements, by the statement that names them.
RESET_STATEMENTS = {"v = 0": "zero", "v = v - v_thresh": "subtraction"}


def _canonical(code: str) -> str:
    """Code without comments, blank lines or spaces (the text compared)."""
    lines = (line.split("#", 1)[0] for line in code.splitlines())
    return "\n".join(re.sub(r"\s+", "", line) for line in lines if line.strip())


def check_batched_model(model: SleepModel) -> None:
    """Refuse, in one line, a model whose inference dynamics differ from :data:`IMPLEMENTS`.

    Raises
    ------
    ValueError
        Names the first statement that differs and the way out (``--snn-evaluator
        device``, which runs any model's equations on the Brian2 devices).
    """
    for (block, key), expected in IMPLEMENTS.items():
        got = model.block(block).get(key) or ""
        if _canonical(got) != _canonical(expected):
            raise ValueError(
                f"model {model.name}: {block}[{key!r}] is {' '.join(got.split())!r}, not the "
                f"{expected!r} the batched SNN evaluator implements; evaluate this model with "
                "--snn-evaluator device (Brian2 runs any model's equations)"
            )
    eqs = {_canonical(line) for line in model.input["equations"].splitlines()}
    if _canonical(RESCALE_LINE) not in eqs:
        raise ValueError(
            f"model {model.name}: INPUT equations do not define {RESCALE_LINE!r}, the input "
            "rate the batched SNN evaluator implements; use --snn-evaluator device"
        )


@dataclass
class BatchedRun:
    """Outcome of :func:`simulate_batched`.

    Attributes
    ----------
    output_counts : ndarray of int32, shape (len(steps), n_images, n_out)
        Output spikes of each image counted over its first ``steps[k]`` steps.
    steps : tuple of int
        The presentation lengths counted (ascending; the last is the window).
    layer_spikes : ndarray of int64, shape (n_layers + 1,)
        Spikes of each layer (0 = input) summed over every image and step.
    spikes : ndarray of int64, shape (n_spikes, 4), or None
        With ``record=True``: every spike as (image, step, layer, neuron), sorted.
    """

    output_counts: np.ndarray
    steps: tuple[int, ...]
    layer_spikes: np.ndarray
    spikes: np.ndarray | None = None


def _check_layers(weights, alphas, thresholds) -> list[np.ndarray]:
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    if not ws or any(w.ndim != 2 for w in ws):
        raise ValueError("weights must be a non-empty list of 2-D (n_out, n_in) arrays")
    for k in range(1, len(ws)):
        if ws[k].shape[1] != ws[k - 1].shape[0]:
            raise ValueError(
                f"weights of layer {k + 1} take {ws[k].shape[1]} inputs, "
                f"layer {k} gives {ws[k - 1].shape[0]}"
            )
    if len(alphas) != len(ws) or len(thresholds) != len(ws):
        raise ValueError(
            f"give one alpha and one threshold per weight layer ({len(ws)}), got "
            f"{len(alphas)} and {len(thresholds)}"
        )
    return ws


def simulate_batched(
    weights,
    alphas,
    thresholds,
    *,
    window: int,
    images: np.ndarray | None = None,
    input_spikes: np.ndarray | None = None,
    max_rate: float = 500.0,
    dt: float = 0.001,
    decay: float = 1.0,
    reset: str = "zero",
    seed: int = 0,
    steps=None,
    batch: int = 1000,
    record: bool = False,
) -> BatchedRun:
    """Simulate the converted network on many images at once (plasticity off).

    Parameters
    ----------
    weights : list of ndarray, each (n_out, n_in)
        ANN weights, unchanged (the synapses' ``w``).
    alphas, thresholds : sequence of float, one per weight layer
        The synapses' ``alpha`` and the layers' ``v_thresh``.
    window : int
        Steps each image is shown (>= 1); every image starts from rest (v = 0).
    images : ndarray (n_images, n_in), optional
        Intensities >= 0: each pixel spikes with P = min(1, 2 dt max_rate x) per step
        (``models/src.py``'s input: ``x > 0 and u * rescale / 2 <= x``,
        ``rescale = 1 / (dt max_rate)``, one fresh uniform u per pixel, image and step).
    input_spikes : ndarray of bool (n_images, window, n_in), optional
        Given input spikes instead of ``images`` (to compare with another simulator).
    max_rate, dt : float
        Input rate scale (Hz) and time step (s).
    decay : float
        ``v = decay * v`` at the start of every step (1.0: none).
    reset : {"zero", "subtraction"}
        ``v = 0`` (Diehl et al. 2015) or ``v = v - v_thresh`` (Rueckauer et al. 2017)
        for the neurons that spiked.
    seed : int
        Seeds the input draws (numpy's PCG64); batches draw from one stream in turn.
    steps : sequence of int, optional
        Presentation lengths at which output counts are kept (default: every step).
    batch : int
        Images simulated together (bounds memory: about 3 x batch x width x 8 bytes).
    record : bool
        Keep every spike (for small runs and tests).

    Returns
    -------
    BatchedRun

    Raises
    ------
    ValueError
        Neither or both of ``images`` and ``input_spikes``, shapes that do not chain,
        an unknown reset, ``window`` or ``batch`` < 1, steps outside 1..window.
    """
    import torch

    ws = _check_layers(weights, alphas, thresholds)
    if (images is None) == (input_spikes is None):
        raise ValueError("give exactly one of images and input_spikes")
    if reset not in ("zero", "subtraction"):
        raise ValueError(f"reset must be 'zero' or 'subtraction', got {reset!r}")
    if not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window must be a positive number of steps, got {window!r}")
    if not isinstance(batch, int | np.integer) or batch < 1:
        raise ValueError(f"batch must be a positive number of images, got {batch!r}")
    source = np.asarray(images if images is not None else input_spikes)
    n = len(source)
    if images is not None and (source.ndim != 2 or source.shape[1] != ws[0].shape[1]):
        raise ValueError(f"images must be (n, {ws[0].shape[1]}), got {source.shape}")
    if input_spikes is not None and source.shape[1:] != (window, ws[0].shape[1]):
        raise ValueError(
            f"input_spikes must be (n, {window}, {ws[0].shape[1]}), got {source.shape}"
        )
    steps = tuple(range(1, window + 1)) if steps is None else tuple(sorted(set(steps)))
    if not steps or steps[0] < 1 or steps[-1] > window:
        raise ValueError(f"steps must lie in 1..{window}, got {steps}")
    keep = {s: k for k, s in enumerate(steps)}
    n_out = ws[-1].shape[0]
    # (alpha * w) per synapse, as Brian2's on_pre multiplies them, transposed for s @ W
    scaled = [
        torch.from_numpy(np.ascontiguousarray((a * w).T)) for a, w in zip(alphas, ws, strict=True)
    ]
    thr = [float(t) for t in thresholds]
    rescale = 1 / (dt * max_rate)
    rng = np.random.Generator(np.random.PCG64(seed))
    counts_out = np.zeros((len(steps), n, n_out), dtype=np.int32)
    layer_spikes = np.zeros(len(ws) + 1, dtype=np.int64)
    recorded = []
    for lo in range(0, n, batch):
        hi = min(lo + batch, n)
        if images is not None:
            # u * rescale / 2 <= x, solved for u once per image (x > 0 only: else never)
            x = np.asarray(source[lo:hi], dtype=np.float64)
            bound = np.where(x > 0, x * 2 / rescale, -1.0)
        else:
            x = torch.from_numpy(np.asarray(source[lo:hi], dtype=bool))
        v = [torch.zeros((hi - lo, w.shape[0]), dtype=torch.float64) for w in ws]
        counts = torch.zeros((hi - lo, n_out), dtype=torch.int32)
        for t in range(window):
            if decay != 1.0:  # v = decay * v (exact, and skipped, when decay is 1)
                for vl in v:
                    vl.mul_(decay)
            if images is not None:
                s = torch.from_numpy(rng.random(x.shape) <= bound)
            else:
                s = x[:, t, :]
            layer_spikes[0] += int(s.sum())
            if record:
                recorded.append(_spike_rows(s, lo, t, 0))
            for k, (wk, vl) in enumerate(zip(scaled, v, strict=True), start=1):
                vl.add_(_impulse(s, wk))
                s = vl >= thr[k - 1]
                if reset == "zero":
                    vl.masked_fill_(s, 0.0)
                else:
                    vl.sub_(s.to(torch.float64) * thr[k - 1])
                layer_spikes[k] += int(s.sum())
                if record:
                    recorded.append(_spike_rows(s, lo, t, k))
            counts += s.to(torch.int32)
            if t + 1 in keep:
                counts_out[keep[t + 1], lo:hi] = counts.numpy()
    spikes = None
    if record:
        spikes = np.concatenate(recorded) if recorded else np.zeros((0, 4), dtype=np.int64)
        spikes = spikes[np.lexsort(spikes.T[::-1])]
    return BatchedRun(counts_out, steps, layer_spikes, spikes)


#: Spike density below which a layer's input is summed row by row (``embedding_bag``)
#: instead of as a dense product: a gathered row costs about ten dense entries, so the
#: two break even near a tenth (measured on 1200 x 1200 float64, one core: 2.8 s against
#: 8.5 s per 1000 images and 100 steps at 4 %, equal at 10 %). Hidden layers of a
#: converted network spike in a few percent of their neuron-steps.
SPARSE_BELOW = 0.08


def _impulse(s, w_scaled):
    """``s @ w_scaled`` for boolean spikes ``s`` (images, n_pre): every image's sum of the
    rows of its presynaptic spikes, dense or (when few spiked) gathered row by row."""
    import torch

    counts = s.sum(dim=1)
    if int(counts.sum()) >= SPARSE_BELOW * s.numel():
        return s.to(w_scaled.dtype) @ w_scaled
    offsets = torch.cumsum(counts, 0) - counts
    return torch.nn.functional.embedding_bag(s.nonzero()[:, 1], w_scaled, offsets, mode="sum")


def _spike_rows(s, lo: int, t: int, layer: int) -> np.ndarray:
    """(image, step, layer, neuron) of the spikes in boolean array ``s`` (images, n)."""
    img, neuron = np.nonzero(s.numpy())
    rows = np.empty((len(img), 4), dtype=np.int64)
    rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3] = img + lo, t, layer, neuron
    return rows
