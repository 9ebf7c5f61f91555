"""The sleep engine's core: :class:`ModelEngine` (build once, run many) on a loaded model.

An engine is one device, one model and one set of build options. The first run of
a structure (layer sizes, input kind and shape, T, dt, recorded layers) prepares it on
the device (on a compiled device: compiles it, or opens the cached build); every later
run of that structure reuses it with new weights, parameters, inputs and seed. It loads
no model file: checking one runs this core, so the checked loader and the public engine
(:mod:`~brainsleep.sleep.engine`) sit above it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
import xarray as xr

from .devices import PreparedNetwork, SleepDevice, get_device
from .inputs import SleepInput, as_input
from .model import SleepModel
from .network import NetworkSpec
from .params import MAX_SEED, SleepParams
from .spikes import make_spike_dataset


@dataclass
class SleepResult:
    """Outcome of one sleep phase.

    Attributes
    ----------
    weights : list of ndarray
        Weights after sleep, float64, shaped like the input weights (n_out, n_in).
    spikes : xarray.Dataset
        One row per spike: ``layer`` (0 = input), ``neuron``, ``step``; attrs record dt,
        device, seed, layer sizes, parameters and model.
    info : dict
        Timings and build details (compile and run seconds, build directory, reuse).
    """

    weights: list
    spikes: xr.Dataset
    info: dict = field(default_factory=dict)


class ModelNumericsError(ValueError):
    """The sleep model produced NaN or inf weights (the message names the layer)."""


def weights_changed(before, after) -> float:
    """Fraction of synapses whose weight differs (bitwise) between two networks.

    A sleep with 0.0 changed nothing: it is not sleep (a no-op), whatever its
    parameters; tables record it beside the spike counts (``sleep_weights_changed``).
    """
    changed = total = 0
    for a, b in zip(before, after, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        changed += int(np.count_nonzero(a != b))
        total += a.size
    return changed / total if total else 0.0


def check_weights(weights) -> list[np.ndarray]:
    """``weights`` as float64 (n_out, n_in) arrays that chain, or a one-line ValueError."""
    if not isinstance(weights, list | tuple) or not weights:
        raise ValueError("weights must be a non-empty list of (n_out, n_in) arrays")
    out = []
    for k, w in enumerate(weights):
        a = np.asarray(w, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"weights[{k}] must be 2-D (n_out, n_in), got shape {a.shape}")
        if a.size == 0:
            raise ValueError(f"weights[{k}] is empty (shape {a.shape})")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"weights[{k}] contains NaN or inf")
        if k and a.shape[1] != out[-1].shape[0]:
            raise ValueError(
                f"weights[{k}] has {a.shape[1]} inputs but weights[{k - 1}] has "
                f"{out[-1].shape[0]} outputs"
            )
        out.append(a)
    return out


def _check_result_weights(new_w, ws, model: SleepModel) -> None:
    """The weights a device returned: one finite (n_out, n_in) array per layer."""
    if len(new_w) != len(ws):
        raise RuntimeError(f"the device returned {len(new_w)} weight layers, expected {len(ws)}")
    for k, (w, w0) in enumerate(zip(new_w, ws, strict=True), start=1):
        if w.shape != w0.shape:
            raise RuntimeError(f"layer {k}: the device returned weights {w.shape}, not {w0.shape}")
        bad = int(np.count_nonzero(~np.isfinite(w)))
        if bad:
            raise ModelNumericsError(
                f"model {model.name} ({model.path}) produced NaN/inf weights in layer {k} "
                f"({bad} of {w.size} synapses) during sleep; check its update rule"
            )


def _check_params(params: SleepParams, model: SleepModel, n_layers: int) -> None:
    if not isinstance(params, SleepParams):
        raise ValueError(f"params must be a SleepParams, got {type(params).__name__}")
    if params.n_layers != n_layers:
        raise ValueError(f"{n_layers} weight layers but {params.n_layers} alphas in SleepParams")
    declared, given = set(model.parameters), set(params.values)
    if declared != given:
        raise ValueError(
            f"SleepParams holds {sorted(given)} but model {model.name} declares "
            f"{sorted(declared)}; build them with SleepParams.for_model or params_from_set"
        )


def resolve_record_layers(record_layers, n_layers: int) -> tuple[int, ...]:
    """``"all"``, ``"hidden"``, ``"none"`` or layer indices -> sorted layer indices."""
    if record_layers is None or record_layers == "all":
        return tuple(range(n_layers + 1))
    if record_layers == "hidden":
        return tuple(range(1, n_layers + 1))
    if record_layers == "none":
        return ()
    layers = tuple(sorted({int(x) for x in record_layers}))
    bad = [x for x in layers if not 0 <= x <= n_layers]
    if bad:
        raise ValueError(f"record_layers {bad} out of range 0..{n_layers}")
    return layers


class ModelEngine:
    """Sleep phases on one device with one loaded model: each structure prepared once.

    Parameters
    ----------
    device, prefs, build_root, exact_exp, synapse_orders
        As for :class:`~brainsleep.sleep.engine.SleepEngine`.
    model : SleepModel
        Used as it is (:func:`~brainsleep.sleep.engine.load_model` checks a file).
    explicit : bool
        Whether the caller chose the model (passed to the device's ``check_model``).

    Raises
    ------
    ValueError
        An unknown device, or a model the device cannot run.
    """

    def __init__(
        self,
        device: str | SleepDevice,
        model: SleepModel,
        prefs: dict | None = None,
        build_root: str | Path | None = None,
        exact_exp: bool = True,
        synapse_orders: tuple[str, ...] | None = None,
        explicit: bool = True,
    ) -> None:
        self.device = get_device(device, exact_exp=exact_exp)
        self.synapse_orders = tuple(synapse_orders or ())
        self.model = model
        self.device.check_model(self.model, explicit=explicit)
        self.prefs = dict(prefs or {})
        self.build_root = build_root
        self._prepared: dict[NetworkSpec, PreparedNetwork] = {}
        self._prepare_lock = threading.Lock()

    def close(self) -> None:
        """Stop the binaries this engine keeps running (it stays usable: a later run
        starts them again)."""
        errors = []
        for network in list(self._prepared.values()):
            try:
                network.close()
            except Exception as exc:  # close the others, then report
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def prepare(self, spec: NetworkSpec, progress: bool = False) -> PreparedNetwork:
        """The network of ``spec`` on this engine's device (compiled at most once)."""
        build_spec = self.device.build_spec(spec)
        with self._prepare_lock:  # threads sharing the engine share one prepared network
            if build_spec not in self._prepared:
                self._prepared[build_spec] = self.device.prepare(
                    self.model, build_spec, self.prefs, self.build_root, progress
                )
            return self._prepared[build_spec]

    def run(
        self,
        weights,
        inputs: SleepInput | np.ndarray,
        params: SleepParams,
        seed: int = 0,
        record_layers="all",
        progress: bool = False,
    ) -> SleepResult:
        """Run one sleep phase; see :func:`~brainsleep.sleep.engine.run_sleep` for the
        parameters."""
        if not isinstance(seed, int | np.integer) or not 0 <= seed <= MAX_SEED:
            raise ValueError(
                f"seed must be an integer in 0..{MAX_SEED} on every device, got {seed!r}"
            )
        seed = int(seed)
        ws = check_weights(weights)
        _check_params(params, self.model, len(ws))
        inp = as_input(inputs, ws[0].shape[1])
        record = resolve_record_layers(record_layers, len(ws))
        sizes = (ws[0].shape[1], *(w.shape[0] for w in ws))
        spec = NetworkSpec.for_inputs(sizes, inp, params.dt, record, self.synapse_orders)
        start = time.perf_counter()
        network = self.prepare(spec, progress)
        new_w, spikes, info = network.run(ws, inp, params, seed, progress)
        spikes = [s if layer in record else None for layer, s in enumerate(spikes)]
        info["run_seconds_total"] = time.perf_counter() - start
        _check_result_weights(new_w, ws, self.model)
        attrs = {
            "dt": params.dt,
            "n_steps": inp.n_steps,
            "device": self.device.name,
            "seed": seed,
            "layer_sizes": np.asarray(sizes, dtype=np.int64),
            "params": params.to_json(),
            "model": self.model.describe(),
            "input": inp.kind,
        }
        return SleepResult(new_w, make_spike_dataset(spikes, attrs), info)
