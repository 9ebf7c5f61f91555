"""The sleep phase as an object you hold: :class:`SleepEngine` (build once, run many).

The public engine: :class:`SleepEngine` and :func:`run_sleep` (its one-shot form) take a
model name, path or loaded model, load and check it and run on the engine's core
(:class:`~brainsleep.sleep.core.ModelEngine`, which takes a loaded model). A caller that
runs many sleeps (a search, a grid of cells) holds one engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import ModelEngine, SleepResult
from .devices import SleepDevice, get_device
from .inputs import SleepInput
from .model import SleepModel, load_model
from .params import SleepParams


class SleepEngine(ModelEngine):
    """Sleep phases on one device with one model: each structure prepared once.

    Parameters
    ----------
    device : str or SleepDevice
        ``"reference"``, ``"runtime"``, ``"cpp_standalone"`` or ``"cuda_standalone"``
        (:data:`brainsleep.sleep.devices.DEVICES`), or a device object.
    model : str, Path or SleepModel, optional
        Model file (``"src"`` by default, a name in ``models/`` or a path); loaded and
        checked here, before anything is built.
    prefs : dict, optional
        Brian2 preferences with dotted names, e.g. ``{"codegen.target": "cython"}``.
    build_root : path, optional
        Cache directory of compiled standalone projects.
    exact_exp : bool
        Reference device only: C-library exp for bit-exact agreement (slower).
    synapse_orders : tuple of {"pre", "post"}, optional
        Storage order of each weight layer's synapses on Brian2 devices (default:
        :func:`~brainsleep.sleep.network.default_synapse_orders`). Results are identical
        in every order; only speed differs (``benchmarks/sleep_engine.md``).

    Raises
    ------
    ValueError
        An unknown device or a model file that does not load or check.
    """

    def __init__(
        self,
        device: str | SleepDevice = "cpp_standalone",
        model: str | Path | SleepModel | None = None,
        prefs: dict | None = None,
        build_root: str | Path | None = None,
        exact_exp: bool = True,
        synapse_orders: tuple[str, ...] | None = None,
    ) -> None:
        device = get_device(device, exact_exp=exact_exp)  # an unknown device first
        loaded = load_model(model)
        super().__init__(
            device, loaded, prefs, build_root, exact_exp, synapse_orders, model is not None
        )


def run_sleep(
    weights,
    inputs: SleepInput | np.ndarray,
    params: SleepParams,
    device: str | SleepDevice = "cpp_standalone",
    seed: int = 0,
    model: str | Path | SleepModel | None = None,
    record_layers="all",
    prefs: dict | None = None,
    build_root: str | Path | None = None,
    progress: bool = False,
    exact_exp: bool = True,
) -> SleepResult:
    """Run one sleep phase and return the changed weights and every recorded spike.

    The one-shot form of :class:`SleepEngine` (a compiled build is still cached on disk
    and reused by the next call); hold an engine to run many.

    Parameters
    ----------
    weights : list of ndarray
        ANN weights, (n_out, n_in) each, like ``nn.Linear.weight``; not modified.
    inputs : SleepInput or ndarray (T, n_in)
        A sleep input (e.g. :class:`~brainsleep.sleep.inputs.MaskedMeanImage`, the
        reference's masked mean image) or an explicit intensity array; pixel i fires
        with P = min(1, 2*dt*max_rate*x) under the reference rule.
    params : SleepParams
        A value for every parameter the model declares and one alpha per weight layer.
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
        unknown device or model file, parameters that do not match the model's
        declarations: checked before anything is compiled.
    ModelNumericsError
        The model produced NaN or inf weights.
    """
    with SleepEngine(device, model, prefs, build_root, exact_exp) as engine:
        return engine.run(weights, inputs, params, seed, record_layers, progress)
