"""The public engine: :func:`load_model`, :class:`SleepEngine` and :func:`run_sleep`.

Each takes a model name, path or loaded model. :func:`load_model` reads a file
(:mod:`~brainsleep.sleep.model`) and checks it, once per process and content: the static
name check (:mod:`~brainsleep.sleep.model_check`), then :func:`trial_run`, the model
built and run on a tiny network on Brian2's runtime device (any error becomes one line).
The engine and :func:`run_sleep` (its one-shot form) load with it and run on the core
(:class:`~brainsleep.sleep.core.ModelEngine`, which takes a loaded model). Checking a
model runs the core, so the trial run and the loader sit here, above it.
"""

from __future__ import annotations

import gc
import hashlib
import re
import warnings
from pathlib import Path

import numpy as np

from .core import ModelEngine, SleepResult
from .devices import SleepDevice, get_device
from .inputs import MaskedMeanImage, SleepInput
from .model import SleepModel, read_model, resolve_model_path
from .model_check import check_names
from .model_source import _one_line
from .params import SleepParams

# The trial run: layer sizes (input first) and number of steps.
TRIAL_SIZES = (4, 3, 2)
TRIAL_STEPS = 3

# Brian2 object names of the sleep network (brainsleep/sleep/network.py) -> block, key.
_OBJECT_KEYS = (
    (r"layer0_\w*thresholder\w*", 'INPUT["threshold"]'),
    (r"layer0_\w*resetter\w*", 'INPUT["reset"]'),
    (r"layer0\w*", 'INPUT["equations"]'),
    (r"layer\d+_\w*thresholder\w*", 'NEURON["threshold"]'),
    (r"layer\d+_\w*resetter\w*", 'NEURON["reset"]'),
    (r"decay\d+\w*", 'NEURON["decay_step"]'),
    (r"layer\d+\w*", 'NEURON["equations"]'),
    (r"syn\d+_pre\w*", 'SYNAPSE["on_pre"]'),
    (r"syn\d+_post\w*", 'SYNAPSE["on_post"]'),
    (r"syn\d+\w*", 'SYNAPSE["equations"]'),
)


def _summary(exc: BaseException) -> str:
    """One line for an exception out of Brian2: the innermost message, and the block and
    key of the Brian2 object it came from."""
    obj, inner, seen = None, exc, set()
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        obj = getattr(inner, "_brian_objname", None) or obj
        nxt = inner.__cause__ or inner.__context__
        if nxt is None:
            break
        inner = nxt
    where = ""
    if obj:
        label = next((k for pat, k in _OBJECT_KEYS if re.fullmatch(pat, obj)), None)
        where = f" in {label} (Brian2 object {obj!r})" if label else f" in Brian2 object {obj!r}"
    return f"{type(inner).__name__}{where}: {_one_line(inner)}"


def trial_run(model: SleepModel, values: dict | None = None, weights: list | None = None) -> list:
    """Build and run the model on a tiny network on the runtime device (numpy target).

    ``values`` replace the declared defaults (e.g. the ``inference`` values) and
    ``weights`` (shaped by :data:`TRIAL_SIZES`) the random ones; returns
    the weights before the run and after each of its two runs (masked-mean image, input
    array). Brian2's device, preferences and numpy's global random state are restored
    after the run, and Brian2's log output is held back, so the check leaves no trace.
    """
    import brian2 as b2
    from brian2.devices.device import previous_devices, reset_device
    from brian2.utils.logger import catch_logs

    rng = np.random.default_rng(0)
    sizes = TRIAL_SIZES
    if weights is None:
        weights = [
            rng.uniform(0.2, 1.0, (n_out, n_in))
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        ]
    n_layers = len(weights)
    # The declared defaults (a per-layer tuple's first value for every layer), a 1 s step
    # and large layer scales: lit pixels fire at any sensible rate, so every layer fires
    # too and every string (threshold, reset, on_pre, on_post, decay) runs on real events.
    values = {
        **{
            name: p.default[0] if isinstance(p.default, tuple) else p.default
            for name, p in model.parameters.items()
        },
        **(values or {}),
    }
    params = SleepParams(values, alphas=[1000.0] * n_layers, dt=1.0)
    after = []
    side = int(round(sizes[0] ** 0.5))
    trials = [
        ("masked mean image", MaskedMeanImage(np.full((side, side), 0.5), TRIAL_STEPS, side)),
        ("input array", np.full((TRIAL_STEPS, sizes[0]), 0.5)),
    ]
    saved_prefs = dict(b2.prefs)
    # The runtime device calls brian2.seed, which reseeds numpy's global RNG.
    saved_rng = np.random.get_state()  # noqa: NPY002
    n_devices = len(previous_devices)  # set_device pushes, reset_device pops
    failure = None
    with catch_logs(), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            for label, inputs in trials:
                try:
                    with ModelEngine("runtime", model, {"codegen.target": "numpy"}) as engine:
                        res = engine.run(weights, inputs, params, seed=0, record_layers="none")
                    after.append(res.weights)
                except Exception as exc:  # any error of a user's model: one line
                    failure = (label, _summary(exc))
                    break
        finally:
            while len(previous_devices) > n_devices:
                reset_device()
            for k, v in saved_prefs.items():
                if b2.prefs[k] is not v:
                    b2.prefs[k] = v
            np.random.set_state(saved_rng)  # noqa: NPY002
            gc.collect()  # Brian2 objects of a failed build warn when collected: now, muted
    if failure is not None:
        label, summary = failure
        raise ValueError(
            f"model file {model.path} fails a {TRIAL_STEPS}-step trial run "
            f"({'-'.join(map(str, sizes))} network, {label}) on Brian2's runtime device: "
            f"{summary}"
        )
    return [weights, *after]


def check_plasticity_off(model: SleepModel) -> None:
    """Refuse a model whose ``inference`` declarations do not switch its plasticity off.

    SNN evaluation runs the model's own equations with every declared ``inference``
    value applied (``models/src.py``: ``inc = dec = 0``); the trial network (see
    :func:`trial_run`) is run with them, and any weight it changes means the spiking
    network would learn while it is being evaluated. Its weights are a probe: each
    neuron's first input at 1 (every neuron fires on the first steps) and the others at
    0, where a weight-dependent rule moves most (src's g(0) = 1; its g(w) is exactly 0
    for the trial's usual weights of 0.2-1). Checked when the model is loaded, before
    anything is trained; a rule this probe cannot move is caught after the run (the
    device evaluator compares the weights).

    Raises
    ------
    ValueError
        One line naming the model file, the layers whose weights changed and what to
        declare.
    """
    values = {n: p.inference for n, p in model.parameters.items() if p.inference is not None}
    probe = []
    for n_in, n_out in zip(TRIAL_SIZES[:-1], TRIAL_SIZES[1:], strict=True):
        w = np.zeros((n_out, n_in))
        w[:, 0] = 1.0
        probe.append(w)
    before, *after = trial_run(model, values, probe)

    changed = sorted(
        {k + 1 for run in after for k, (a, b) in enumerate(zip(before, run, strict=True))
         if not np.array_equal(a, b)}
    )  # fmt: skip
    if changed:
        declared = ", ".join(f"{n} = {v}" for n, v in values.items()) or "none"
        raise ValueError(
            f"model file {model.path}: its inference values ({declared}) leave plasticity "
            f"on (weights of layer(s) {', '.join(map(str, changed))} change in a trial "
            "run); SNN evaluation needs them off: declare inference=... on the learning "
            "rates' Parameter(...) (models/src.py: inc and dec, inference=0.0)"
        )


# Per process: (resolved path, sha256 of the content) -> the read model or the error
# message of a file that does not read; and -> None (checked) or the check's error.
_LOADED: dict[tuple[str, str], SleepModel | str] = {}
_CHECKED: dict[tuple[str, str], str | None] = {}


def load_model(model: str | Path | SleepModel | None = None) -> SleepModel:
    """Load a model file and check it (once per process and file content).

    A model file is Python code: it is executed when loaded, so load only files you
    trust. The file is executed once per process; the static check and the trial run
    (see the module docstring) also run once, and a failure is remembered.

    Parameters
    ----------
    model : str or Path or SleepModel, optional
        A name of a file in ``models/`` (``"src"``, the default; ``"src_additive"``), a
        path to a copied and edited model file, or an already loaded model (returned
        as it is).

    Returns
    -------
    SleepModel
        The loaded model; the same object for every call with the same file content.

    Raises
    ------
    ValueError
        One line: the file is missing or does not execute, breaks the engine's contract
        (a missing block, key or shared variable), uses a name it does not declare (the
        message names it, the block and key, and the line), or fails the trial run.
    """
    if isinstance(model, SleepModel):
        return model
    path = resolve_model_path(model)
    source = path.read_bytes()
    key = (str(path), hashlib.sha256(source).hexdigest())
    if key not in _LOADED:
        try:
            _LOADED[key] = read_model(path, source, key[1])
        except ValueError as exc:
            _LOADED[key] = str(exc)
    loaded = _LOADED[key]
    if isinstance(loaded, str):
        raise ValueError(loaded)
    if key not in _CHECKED:
        try:
            check_names(loaded, source.decode("utf-8", errors="replace"))
            trial_run(loaded)
        except ValueError as exc:
            _CHECKED[key] = str(exc)
        else:
            _CHECKED[key] = None
    if _CHECKED[key] is not None:
        raise ValueError(_CHECKED[key])
    return loaded


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
