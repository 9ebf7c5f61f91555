"""The sleep phase: the trained ANN as a spiking network with a Hebbian rule.

Public API::

    from brainsleep.sleep import SleepEngine, SleepParams, MaskedMeanImage, run_sleep
    params = SleepParams.for_model("src", alphas=alphas)       # declared defaults
    result = run_sleep(weights, inputs, params, device="cpp_standalone", seed=0)
    result.weights  # list of float64 (n_out, n_in) arrays after sleep
    result.spikes   # xarray.Dataset, one row per spike (docs/formats.md)

    with SleepEngine("cpp_standalone") as engine:   # hold it to run many: built once,
        for seed in range(5):                       # its binary set up once, kept running
            engine.run(weights, inputs, params, seed=seed)

Devices (:mod:`brainsleep.sleep.devices`): ``"reference"`` (the numpy oracle),
``"runtime"`` (Brian2 in-process), ``"cpp_standalone"`` (compiled C++, cached and rerun
with run_args) and ``"cuda_standalone"`` (brian2cuda; compiles without a GPU, runs only
with one).

Names are imported on first use, so a model file importing
``brainsleep.sleep.parameters`` stays cheap.
"""

from __future__ import annotations

from brainsleep.lazy import lazy_exports

_EXPORTS = {
    "DEVICE_NAMES": "devices",
    "DEVICES": "devices",
    "get_device": "devices",
    "MAX_SEED": "params",
    "SleepParams": "params",
    "params_from_set": "params",
    "from_preset": "params",
    "preset_names": "params",
    "Parameter": "parameters",
    "MaskedMeanImage": "inputs",
    "ArrayInput": "inputs",
    "SleepInput": "inputs",
    "MeanImage": "inputs",
    "SampledImages": "inputs",
    "ClassMeanImages": "inputs",
    "UniformNoise": "inputs",
    "SLEEP_INPUTS": "inputs",
    "make_sleep_input": "inputs",
    "SleepModel": "model",
    "load_model": "engine",
    "ModelNumericsError": "core",
    "SleepEngine": "engine",
    "SleepResult": "core",
    "resolve_record_layers": "core",
    "run_sleep": "engine",
    "load_spikes": "spikes",
    "save_spikes": "spikes",
    "spike_counts": "spikes",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
