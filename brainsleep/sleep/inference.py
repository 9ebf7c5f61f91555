"""SNN evaluation: does the converted spiking network classify like the ANN it came from?

The same network as the sleep phase, from the same model file, with plasticity switched
off through the declared parameters (each parameter's ``inference`` value, e.g.
``inc = dec = 0`` in ``models/src.py``), driven by each test image as Poisson input for a
presentation window of ``window`` steps (:class:`~brainsleep.sleep.inputs.ImageSequence`).
Every layer is brought back to rest (the model's ``NEURON["rest"]``) at the start of each
window. The class is the output neuron with the most spikes in the window; images with
no output spike (silent) or several equally most active outputs (ties) are counted and
reported, and count as errors. This is the check ANN-to-SNN conversion tools report
(snn_toolbox; BindsNET's ``ann_to_snn``): the converted network's accuracy against the
ANN's, and how often the two agree.

Images go to the simulation as run-time data, ``batch`` images per run, so one compiled
build serves every batch of every network of a structure (the last batch is padded with
blank images, whose results are dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .core import check_weights
from .engine import SleepEngine
from .inputs import ImageSequence
from .params import SleepParams

#: Random stream of the evaluation, apart from the sleep's own.
INFERENCE_STREAM = 11


@dataclass
class SNNEvaluation:
    """Outcome of :func:`evaluate_snn`.

    Attributes
    ----------
    accuracy : float
        Fraction of images whose unique most active output is the label.
    agreement : float or None
        Fraction whose SNN class (unique, not silent) equals the ANN's prediction; None
        without ANN predictions.
    silent, ties : float
        Fractions of images with no output spike, and with a tie for the most spikes.
    accuracy_lowest_index : float
        Accuracy when the first most active output wins every tie and a silent image
        is class 0, as ``max`` does in the reference code (Diehl et al. 2015,
        ``nnlifsim.m``): comparable with published numbers.
    predictions : ndarray of int, shape (n_images,)
        SNN class per image; -1 for silent, -2 for a tie.
    spikes_per_image : dict of int to float
        Mean spikes per image of each layer (0 = input).
    accuracy_by_window : dict of int to float
        Accuracy when only the first ``w`` steps of each window count, for a few ``w``.
    n_images, window : int
    max_rate : float
        Input rate scale used (Hz).
    """

    accuracy: float
    agreement: float | None
    silent: float
    ties: float
    predictions: np.ndarray
    spikes_per_image: dict
    accuracy_by_window: dict
    n_images: int
    window: int
    max_rate: float
    info: dict = field(default_factory=dict)
    accuracy_lowest_index: float = float("nan")
    curve: dict | None = None  # step -> (accuracy, lowest-index accuracy, silent, ties)

    def metrics(self, prefix: str = "snn_") -> dict[str, float]:
        """Flat scalars for a metrics table (keys start with ``prefix``)."""
        out = {
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}silent": self.silent,
            f"{prefix}ties": self.ties,
            f"{prefix}accuracy_lowest_index": self.accuracy_lowest_index,
            f"{prefix}images": self.n_images,
            f"{prefix}window": self.window,
        }
        if self.agreement is not None:
            out[f"{prefix}agreement"] = self.agreement
        out.update({f"{prefix}spikes_layer{k}": v for k, v in self.spikes_per_image.items()})
        out.update({f"{prefix}accuracy_w{w}": a for w, a in self.accuracy_by_window.items()})
        return out


def classify(counts: np.ndarray) -> np.ndarray:
    """Class per row of output spike counts (n_images, n_classes); -1 silent, -2 tie."""
    counts = np.asarray(counts)
    top = counts.max(axis=1)
    winners = (counts == top[:, None]).sum(axis=1)
    pred = counts.argmax(axis=1)
    pred[winners > 1] = -2
    pred[top == 0] = -1
    return pred


def prefix_windows(window: int) -> list[int]:
    """Presentation lengths reported besides the full window: quarters of it."""
    return sorted({max(1, window * k // 4) for k in (1, 2, 3, 4)})


def inference_params(params: SleepParams, model, max_rate: float | None = None) -> SleepParams:
    """``params`` with plasticity off: every declared parameter with an ``inference``
    value takes it (and ``max_rate``, when given, replaces the input rate)."""
    values = dict(params.values)
    for name, p in model.parameters.items():
        if p.inference is not None:
            values[name] = p.inference
    if max_rate is not None:
        if "max_rate" not in values:
            raise ValueError(f"model {model.name} declares no max_rate to override")
        values["max_rate"] = float(max_rate)
    return SleepParams(values, params.alphas, params.dt)


def evaluate_snn(
    weights,
    images: np.ndarray,
    labels: np.ndarray,
    params: SleepParams,
    engine: SleepEngine,
    *,
    window: int = 300,
    batch: int = 100,
    seed: int = 0,
    ann_predictions: np.ndarray | None = None,
    max_rate: float | None = None,
    progress: bool = False,
) -> SNNEvaluation:
    """Classify ``images`` with the spiking network of ``weights``.

    Parameters
    ----------
    weights : list of ndarray
        ANN weights (n_out, n_in) per layer; the spiking network uses them unchanged.
    images : ndarray, shape (n_images, n_in)
        Intensities in [0, 1] (flattened images).
    labels : ndarray of int, shape (n_images,)
    params : SleepParams
        The conversion (alphas) and the model's parameters (thresholds, rate); plasticity
        is switched off here (:func:`inference_params`).
    engine : SleepEngine
        Device and model; a held engine compiles the structure once for every call.
    window : int
        Steps each image is shown (>= 1); every layer rests at its start.
    batch : int
        Images per simulation run (>= 1): part of the compiled structure.
    seed : int
        Seeds the Poisson input (each batch its own stream).
    ann_predictions : ndarray of int, optional
        The ANN's classes for ``images``, for the agreement.
    max_rate : float, optional
        Input rate scale (Hz) instead of the sleep's.
    progress : bool
        tqdm bar over batches.

    Returns
    -------
    SNNEvaluation

    Raises
    ------
    ValueError
        ``window`` or ``batch`` < 1, no images, shapes that do not match, a model
        without ``NEURON["rest"]``, or weights changed by the run (plasticity not off).
    """
    from tqdm.auto import tqdm

    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive number of images, got {batch!r}")
    x = np.asarray(images, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or len(x) == 0 or len(y) != len(x):
        raise ValueError(f"images must be (n, n_in) with n labels, got {x.shape} and {y.shape}")
    ws = check_weights(weights)
    model = engine.model
    if not model.neuron.get("rest"):
        raise ValueError(
            f"model {model.name} has no NEURON['rest'] (the statements that bring a neuron "
            "to rest between images); SNN evaluation needs it"
        )
    p = inference_params(params, model, max_rate)
    n_layers, n_out = len(ws), ws[-1].shape[0]
    n = len(x)
    bounds = [(b, min(b + batch, n)) for b in range(0, n, batch)]
    seeds = np.random.SeedSequence([seed, INFERENCE_STREAM]).generate_state(len(bounds))
    prefixes = prefix_windows(window)
    counts = {w: np.zeros((n, n_out), dtype=np.int64) for w in prefixes}
    layer_spikes = np.zeros(n_layers + 1, dtype=np.int64)
    for (lo, hi), s in tqdm(
        list(zip(bounds, seeds, strict=True)), desc="SNN evaluation", disable=not progress
    ):
        shown = np.zeros((batch, x.shape[1]))
        shown[: hi - lo] = x[lo:hi]
        res = engine.run(
            ws, ImageSequence(shown, window), p, seed=int(s) % 2**31, record_layers="all"
        )
        for k, (w_new, w_old) in enumerate(zip(res.weights, ws, strict=True), start=1):
            if not np.array_equal(w_new, w_old):
                raise ValueError(
                    f"SNN evaluation changed the weights of layer {k}: the model's plasticity "
                    "is not switched off by its parameters' inference values"
                )
        layer = res.spikes["layer"].values
        step = res.spikes["step"].values
        neuron = res.spikes["neuron"].values
        image = step // window
        real = image < hi - lo
        layer_spikes += np.bincount(layer[real], minlength=n_layers + 1)[: n_layers + 1]
        out = (layer == n_layers) & real
        for w in prefixes:
            keep = out & (step % window < w)
            np.add.at(counts[w], (lo + image[keep], neuron[keep]), 1)
    return _evaluation(counts, y, layer_spikes, window, p, ann_predictions)


def _evaluation(
    counts: dict, y: np.ndarray, layer_spikes, window: int, p: SleepParams, ann_predictions
) -> SNNEvaluation:
    """The :class:`SNNEvaluation` of output counts per presentation length (``counts``:
    steps -> (n_images, n_out)); every length is a point of the curve, the quarters of
    the window its ``accuracy_by_window``."""
    preds = {w: classify(c) for w, c in counts.items()}
    lowest = {w: np.argmax(c, axis=1) for w, c in counts.items()}
    pred = preds[window]
    n = len(y)
    agreement = None
    if ann_predictions is not None:
        agreement = float(np.mean(pred == np.asarray(ann_predictions)))
    curve = {
        w: (
            float(np.mean(preds[w] == y)),
            float(np.mean(lowest[w] == y)),
            float(np.mean(preds[w] == -1)),
            float(np.mean(preds[w] == -2)),
        )
        for w in sorted(counts)
    }
    return SNNEvaluation(
        accuracy=float(np.mean(pred == y)),
        agreement=agreement,
        silent=float(np.mean(pred == -1)),
        ties=float(np.mean(pred == -2)),
        predictions=pred,
        spikes_per_image={k: float(v) / n for k, v in enumerate(layer_spikes)},
        accuracy_by_window={w: curve[w][0] for w in prefix_windows(window)},
        n_images=n,
        window=window,
        max_rate=float(p["max_rate"]) if "max_rate" in p.values else float("nan"),
        accuracy_lowest_index=float(np.mean(lowest[window] == y)),
        curve=curve,
    )


def evaluate_snn_batched(
    weights,
    images: np.ndarray,
    labels: np.ndarray,
    params: SleepParams,
    model,
    *,
    window: int = 300,
    reset: str = "zero",
    batch: int = 1000,
    seed: int = 0,
    ann_predictions: np.ndarray | None = None,
    curve_steps=None,
) -> SNNEvaluation:
    """:func:`evaluate_snn` on the batched simulator (:mod:`brainsleep.sleep.batched`):
    every image at once, one step for all; the same network, parameters and outcome.

    Parameters
    ----------
    weights, images, labels, params, window, seed, ann_predictions
        As for :func:`evaluate_snn` (``params`` with plasticity off already, e.g. from
        :func:`~brainsleep.sleep.snn_protocol.conversion_params`).
    model : SleepModel
        Checked to have the inference dynamics the simulator implements.
    reset : {"zero", "subtraction"}
    batch : int
        Images simulated together (memory, not the result).
    curve_steps : sequence of int, optional
        Presentation lengths of the accuracy curve (default: every step up to 500,
        beyond that the quarters of the window).

    Raises
    ------
    ValueError
        A model the simulator does not implement, bad shapes or arguments, learning
        rates left on (plasticity must be off: ``inference_params``).
    """
    from .batched import check_batched_model, simulate_batched

    check_batched_model(model)
    x = np.asarray(images, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or len(x) == 0 or len(y) != len(x):
        raise ValueError(f"images must be (n, n_in) with n labels, got {x.shape} and {y.shape}")
    ws = check_weights(weights)
    for name, p in model.parameters.items():
        if p.inference is not None and params.values.get(name) != p.inference:
            raise ValueError(
                f"SNN evaluation needs plasticity off: {name} = {params.values.get(name)}, "
                f"not its inference value {p.inference} (use inference_params)"
            )
    if not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window must be a positive number of steps, got {window!r}")
    if curve_steps is None:
        curve_steps = range(1, window + 1) if window <= 500 else []
    steps = sorted({*curve_steps, *prefix_windows(window)})
    n_layers = len(ws)
    run = simulate_batched(
        ws,
        params.alphas,
        [params.layer_value("v_thresh", k) for k in range(n_layers)],
        window=window,
        images=x,
        max_rate=float(params["max_rate"]),
        dt=params.dt,
        decay=float(params["decay"]),
        reset=reset,
        seed=int(np.random.SeedSequence([seed, INFERENCE_STREAM]).generate_state(1)[0]),
        steps=steps,
        batch=batch,
    )
    counts = {s: run.output_counts[k] for k, s in enumerate(run.steps)}
    return _evaluation(counts, y, run.layer_spikes, window, params, ann_predictions)
