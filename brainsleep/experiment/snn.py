"""SNN evaluation of one network inside a protocol: convert, simulate, classify.

Both protocols call :func:`evaluate_network` for the networks they compare (limited: the
baseline and the slept network; class-incremental: each sleeping step's network before
and after its sleep), with the cell's ``--snn-*`` settings, so a setting means the same
in every protocol.
"""

from __future__ import annotations

import numpy as np

from brainsleep import ann

from .config import ExperimentConfig, snn_settings


def evaluate_network(
    cfg: ExperimentConfig,
    engine,
    net: ann.MLP,
    x_norm: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    sleep_params,
    seed: int,
):
    """Classify ``x`` with the spiking network of ``net`` (plasticity off).

    Parameters
    ----------
    cfg : ExperimentConfig
        Its ``snn_*`` settings (protocol, reset, percentile, evaluator, window).
    engine : SleepEngine
        The sleep's engine (its model; and its device for ``--snn-evaluator device``).
    net : MLP
    x_norm : ndarray (n, 784)
        Images of the data-based normalisation (the network's training images).
    x, y : ndarray (n_test, 784), (n_test,)
        Test images and labels.
    sleep_params : SleepParams
        The sleep's parameters (``--snn-protocol sleep`` converts with them).
    seed : int
        Seeds the Poisson input.

    Returns
    -------
    evaluation : SNNEvaluation
    alphas : tuple of float
        The layer scales the network was simulated with.
    """
    from brainsleep.sleep.inference import evaluate_snn, evaluate_snn_batched
    from brainsleep.sleep.snn_protocol import conversion_params

    settings = snn_settings(cfg)
    weights = ann.get_weights(net)
    params, _ = conversion_params(
        settings, engine.model, weights, x_norm, net.eval_hidden_scale, sleep_params
    )
    common = {
        "window": cfg.snn_window,
        "seed": seed,
        "ann_predictions": ann.evaluate(net, x, y).predictions,
    }
    if settings.evaluator == "batched":
        ev = evaluate_snn_batched(
            weights, x, y, params, engine.model, reset=settings.reset, **common
        )
    else:
        ev = evaluate_snn(weights, x, y, params, engine, progress=cfg.progress, **common)
    return ev, params.alphas


def curve_rows(ev, **keys) -> list[dict]:
    """The accuracy curve of ``ev`` as rows of ``snn_curve.csv`` (``keys`` first)."""
    return [
        {
            **keys,
            "step": step,
            "accuracy": a,
            "accuracy_lowest_index": lo,
            "silent": si,
            "ties": ti,
        }
        for step, (a, lo, si, ti) in ev.curve.items()
    ]
