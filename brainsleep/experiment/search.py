"""Sleep-parameter search on the validation split (never the test set).

Random search in log space around the starting parameters (the preset, or the
``--sleep-params`` file). Trial 0 is the starting point itself, so the search can only
match or beat it on validation accuracy. Every trial reuses one compiled standalone
binary through run_args (same structure, new parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# (low, high) multipliers of the starting value, sampled log-uniformly.
SPAN = {
    "max_rate": (0.25, 4.0),
    "inc": (0.01, 10.0),
    "dec": (0.01, 10.0),
    "thresholds": (0.2, 5.0),
    "alpha_scale": (0.2, 5.0),
}
SEARCH_STREAM = 7


@dataclass(frozen=True)
class Candidate:
    max_rate: float
    inc: float
    dec: float
    thresholds: tuple[float, ...]
    alpha_scale: float

    def to_dict(self) -> dict:
        return {
            "max_rate": self.max_rate,
            "inc": self.inc,
            "dec": self.dec,
            "thresholds": list(self.thresholds),
            "alpha_scale": self.alpha_scale,
        }


def _log_uniform(rng, value: float, span: tuple[float, float]) -> float:
    lo, hi = math.log(span[0]), math.log(span[1])
    return float(value * math.exp(rng.uniform(lo, hi)))


def candidates(start: dict, n_trials: int, seed: int) -> list[Candidate]:
    """Trial 0 = ``start``; the others drawn log-uniformly around it, reproducibly."""
    rng = np.random.default_rng([seed, SEARCH_STREAM])
    first = Candidate(
        float(start["max_rate"]),
        float(start["inc"]),
        float(start["dec"]),
        tuple(float(t) for t in start["thresholds"]),
        float(start["alpha_scale"]),
    )
    out = [first]
    for _ in range(n_trials - 1):
        out.append(
            Candidate(
                _log_uniform(rng, first.max_rate, SPAN["max_rate"]),
                _log_uniform(rng, max(first.inc, 1e-6), SPAN["inc"]),
                _log_uniform(rng, max(first.dec, 1e-6), SPAN["dec"]),
                tuple(_log_uniform(rng, t, SPAN["thresholds"]) for t in first.thresholds),
                _log_uniform(rng, first.alpha_scale, SPAN["alpha_scale"]),
            )
        )
    return out


def run_search(start: dict, n_trials: int, seed: int, evaluate_trial, progress: bool = True):
    """Evaluate every candidate with ``evaluate_trial(candidate) -> val_accuracy``.

    Returns
    -------
    best : Candidate
        Highest validation accuracy (the earliest on ties, so the start wins ties).
    history : list of dict
        One row per trial: trial, parameters, val_accuracy.
    """
    from tqdm.auto import tqdm

    history = []
    best, best_acc = None, -1.0
    for k, cand in enumerate(
        tqdm(candidates(start, n_trials, seed), desc="sleep search", disable=not progress)
    ):
        acc = float(evaluate_trial(cand))
        row = {"trial": k, **cand.to_dict(), "val_accuracy": acc}
        row["thresholds"] = " ".join(f"{t:.6g}" for t in cand.thresholds)
        history.append(row)
        if acc > best_acc:
            best, best_acc = cand, acc
    return best, history
