"""The sleep phase: the trained ANN as a spiking network with a Hebbian rule.

Public API::

    from brainsleep.sleep import SleepParams, run_sleep
    result = run_sleep(weights, inputs, params, device="cpp_standalone", seed=0)
    result.weights  # list of float64 (n_out, n_in) arrays after sleep
    result.spikes   # xarray.Dataset, one row per spike (docs/formats.md)

Devices: ``"reference"`` (the numpy oracle), ``"runtime"`` (Brian2 in-process),
``"cpp_standalone"`` (compiled C++, cached and rerun with run_args) and
``"cuda_standalone"`` (brian2cuda; compiles without a GPU, runs only with one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import xarray as xr

from .inputs import MaskedMeanImage, check_inputs
from .model import SleepModel, load_model
from .params import MAX_SEED, SleepParams, from_preset, preset_names
from .spikes import load_spikes, make_spike_dataset, save_spikes, spike_counts

DEVICES = ("reference", "runtime", "cpp_standalone", "cuda_standalone")

__all__ = [
    "DEVICES",
    "MAX_SEED",
    "MaskedMeanImage",
    "ModelNumericsError",
    "SleepModel",
    "SleepParams",
    "SleepResult",
    "from_preset",
    "load_model",
    "load_spikes",
    "preset_names",
    "resolve_record_layers",
    "run_sleep",
    "save_spikes",
    "spike_counts",
]


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


def _check_weights(weights) -> list[np.ndarray]:
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


class ModelNumericsError(ValueError):
    """The sleep model produced NaN or inf weights (the message names the layer)."""


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


def run_sleep(
    weights,
    inputs,
    params: SleepParams,
    device: str = "cpp_standalone",
    seed: int = 0,
    model: str | Path | SleepModel | None = None,
    record_layers="all",
    prefs: dict | None = None,
    build_root: str | Path | None = None,
    progress: bool = False,
    exact_exp: bool = True,
) -> SleepResult:
    """Run one sleep phase and return the changed weights and every recorded spike.

    Parameters
    ----------
    weights : list of ndarray
        ANN weights, (n_out, n_in) each, like ``nn.Linear.weight``; not modified.
    inputs : ndarray (T, n_in) or MaskedMeanImage
        Input intensities per step (pixel i fires with P = min(1, 2*dt*max_rate*x)), or
        the reference's masked mean image, generated inside the simulation.
    params : SleepParams
        One threshold and one alpha per weight layer.
    device : {"reference", "runtime", "cpp_standalone", "cuda_standalone"}
    seed : int
        Seeds the input's random numbers. Same seed and device give the same result.
    model : str or Path, optional
        Model file (``"src"`` by default, a name in ``models/`` or a path).
    record_layers : "all", "hidden", "none" or iterable of int
        Layers whose spikes are recorded (0 = input, about 90 % of all spikes).
    prefs : dict, optional
        Brian2 preferences with dotted names, e.g. ``{"codegen.target": "cython"}``.
    build_root : path, optional
        Cache directory of compiled standalone projects.
    progress : bool
        Progress bar / Brian2 report during the run.
    exact_exp : bool
        Reference device only: C-library exp for bit-exact agreement (slower).

    Raises
    ------
    ValueError
        Bad shapes, layer-count mismatches, NaN or inf, negative rates or steps, an
        unknown device or model file: checked before anything is compiled.
    """
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if not isinstance(params, SleepParams):
        raise ValueError(f"params must be a SleepParams, got {type(params).__name__}")
    if not isinstance(seed, int | np.integer) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in 0..{MAX_SEED} on every device, got {seed!r}")
    seed = int(seed)
    ws = _check_weights(weights)
    if params.n_layers != len(ws):
        raise ValueError(
            f"{len(ws)} weight layers but {params.n_layers} thresholds/alphas in SleepParams"
        )
    kind, n_steps = check_inputs(inputs, ws[0].shape[1])
    record = resolve_record_layers(record_layers, len(ws))
    sleep_model = load_model(model)
    sizes = (ws[0].shape[1], *(w.shape[0] for w in ws))
    start = time.perf_counter()
    if device == "reference":
        from .reference import simulate_reference

        if sleep_model.name != "src" and model is not None:
            raise ValueError(
                "device 'reference' implements only the reference rule (models/src.py); "
                f"use a Brian2 device for model {sleep_model.name!r}"
            )
        new_w, spikes = simulate_reference(
            ws, inputs, params, seed, record, exact_exp=exact_exp, progress=progress
        )
        info = {"run_seconds": time.perf_counter() - start}
    else:
        from .network import NetworkSpec

        spec = NetworkSpec.for_inputs(sizes, inputs, params.dt, record)
        if device == "runtime":
            from .devices import run_runtime

            new_w, spikes, info = run_runtime(sleep_model, spec, ws, inputs, params, seed, prefs)
        else:
            from .devices import run_standalone

            # One build serves "none" and "hidden" (search trials and the final sleep):
            # hidden layers are always recorded in the binary, kept only when asked for.
            hidden = set(range(1, len(ws) + 1))
            build_spec = replace(spec, record_layers=tuple(sorted(hidden | set(record))))
            new_w, spikes, info = run_standalone(
                sleep_model,
                build_spec,
                device,
                ws,
                inputs,
                params,
                seed,
                prefs,
                build_root,
                with_output=progress,
            )
            spikes = [s if layer in record else None for layer, s in enumerate(spikes)]
        info["run_seconds_total"] = time.perf_counter() - start
    _check_result_weights(new_w, ws, sleep_model)
    attrs = {
        "dt": params.dt,
        "n_steps": n_steps,
        "device": device,
        "seed": seed,
        "layer_sizes": np.asarray(sizes, dtype=np.int64),
        "params": params.to_json(),
        "model": sleep_model.describe(),
        "input": kind,
    }
    return SleepResult(new_w, make_spike_dataset(spikes, attrs), info)
