"""How each Brian2 device builds, caches and runs the sleep network.

- ``runtime``: builds the objects and runs them in this process (numpy target unless a
  ``codegen.target`` preference says otherwise).
- ``cpp_standalone`` / ``cuda_standalone``: generates and compiles a project once per
  structure (model file, layer sizes, T, input kind, recorded layers, compiler flags),
  cached on disk under a content key, and reruns the binary with ``run_args`` for new
  weights, parameters, inputs and seed. Each run writes its results into a directory
  of its own, so parallel runs of one build do not clash; a file lock serialises the
  build itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .model import SleepModel
from .network import (
    SEED_VARIABLE,
    NetworkSpec,
    build_network,
    synapse_order,
    synapses_to_weights,
    timed_values,
    value_assignments,
)

BRIAN_DEVICES = ("runtime", "cpp_standalone", "cuda_standalone")
# Exactness: no -ffast-math (reassociation) and no fused multiply-add contraction, so
# compiled arithmetic equals numpy's float64 step for step.
EXACT_GCC_FLAGS = ["-w", "-O3", "-ffp-contract=off", "-fno-fast-math", "-std=c++17"]
# Long runs print Brian2's progress report this often (simulated seconds).
REPORT_PERIOD_S = 5.0
# Bump when the generated network changes, so cached builds are not reused across it.
ENGINE_VERSION = 3


def default_build_root() -> Path:
    """Where compiled standalone projects are cached (``BRAINSLEEP_BUILD_DIR`` overrides)."""
    env = os.environ.get("BRAINSLEEP_BUILD_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("BRAINSLEEP_CACHE") or Path.home() / ".cache" / "brainsleep"
    return Path(cache) / "builds"


def _set_common_prefs(extra_prefs: dict | None) -> dict:
    """Preferences for exact, single-threaded code; user prefs (dotted names) win."""
    import brian2 as b2

    applied = {
        "codegen.loop_invariant_optimisations": False,
        "codegen.cpp.extra_compile_args_gcc": list(EXACT_GCC_FLAGS),
        "devices.cpp_standalone.openmp_threads": 0,
        # Brian2's default "make -j" starts every compile at once; bound it by the cores.
        "devices.cpp_standalone.extra_make_args_unix": [f"-j{os.cpu_count() or 1}"],
        "core.default_float_dtype": np.float64,
    }
    applied.update(extra_prefs or {})
    for key, value in applied.items():
        try:
            b2.prefs[key] = value
        except KeyError as exc:
            raise ValueError(f"unknown Brian2 preference {key!r}") from exc
    return {
        k: (str(v) if not isinstance(v, int | float | str | list) else v)
        for k, v in applied.items()
    }


def _read_results(bn, spec: NetworkSpec, weights_shapes, order_known: bool = False):
    """Final weights and per-layer spikes from the Brian2 objects after a run.

    The synapses' (i, j) are read back and checked against the presynaptic-major order
    the weights were written in, unless ``order_known`` (a standalone build whose order
    was already checked: the binary creates them the same way every run).
    """
    new_weights = []
    for k, syn in enumerate(bn.synapses):
        n_out, n_in = weights_shapes[k]
        w = np.asarray(syn.w[:], dtype=np.float64)
        if w.size != n_in * n_out:
            raise RuntimeError(f"layer {k + 1}: {w.size} synapses, expected {n_in * n_out}")
        if order_known:
            new_weights.append(w.reshape(n_in, n_out).T.copy())
            continue
        i, j = np.asarray(syn.i[:]), np.asarray(syn.j[:])
        exp_i, exp_j = synapse_order(n_in, n_out)
        if not (np.array_equal(i, exp_i) and np.array_equal(j, exp_j)):
            raise RuntimeError(f"layer {k + 1}: synapses not in presynaptic-major order")
        new_weights.append(synapses_to_weights(w, i, j, (n_out, n_in)))
    spikes = []
    for layer in range(spec.n_layers + 1):
        mon = bn.monitors.get(layer)
        if mon is None:
            spikes.append(None)
            continue
        t = np.asarray(mon.t_[:], dtype=np.float64)
        steps = np.round(t / spec.dt).astype(np.int32)
        spikes.append((steps, np.asarray(mon.i[:], dtype=np.int32)))
    return new_weights, spikes


def run_runtime(
    model: SleepModel, spec: NetworkSpec, weights, inputs, params, seed: int, prefs=None
):
    """Run on Brian2's runtime device in this process; returns (weights, spikes, info)."""
    import brian2 as b2

    b2.set_device("runtime")
    applied = _set_common_prefs({"codegen.target": "numpy", **(prefs or {})})
    b2.seed(seed)
    bn = build_network(model, spec, timed_contents=timed_values(inputs, seed))
    for owner, name, value in value_assignments(bn, weights, params, seed, inputs):
        setattr(owner, name, value)
    bn.net.run(spec.n_steps * spec.dt * b2.second, report=_report(spec))
    new_w, spikes = _read_results(bn, spec, [w.shape for w in weights])
    return new_w, spikes, {"prefs": applied, "compiled": False}


def _report(spec: NetworkSpec):
    return "text" if spec.n_steps * spec.dt >= 2 * REPORT_PERIOD_S else None


@dataclass
class StandaloneBuild:
    """A compiled standalone project that this process can rerun with run_args."""

    key: str
    device: str
    directory: Path
    spec: NetworkSpec
    model: SleepModel
    bn: object
    compile_seconds: float
    reused_binary: bool
    order_checked: bool = False


class DeviceUnavailableError(RuntimeError):
    """The device cannot run here (no compiler, no GPU); the message says what to do."""


def check_toolchain(device: str) -> None:
    """Raise DeviceUnavailableError naming what to install, before any code generation."""
    if device == "cpp_standalone":
        if not (shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")):
            raise DeviceUnavailableError(
                "cpp_standalone needs a C++ compiler (g++) and make: install them "
                "(e.g. apt-get install g++ make) or use --device runtime"
            )
    elif device == "cuda_standalone":
        from .cuda_setup import find_curand, find_nvcc

        try:
            find_nvcc()
            find_curand()
        except RuntimeError as exc:
            raise DeviceUnavailableError(str(exc)) from exc


# One live build per process: Brian2's standalone device is a process-wide singleton.
_LIVE: StandaloneBuild | None = None
BUILD_COUNT = {"codegen": 0}  # how often this process generated code (tests read it)


def build_key(model: SleepModel, spec: NetworkSpec, device: str, prefs: dict | None) -> str:
    """Content key of a standalone build."""
    import brian2

    payload = {
        "model": model.source_hash,
        "spec": asdict(spec),
        "device": device,
        "prefs": sorted((k, repr(v)) for k, v in (prefs or {}).items()),
        "flags": EXACT_GCC_FLAGS,
        "brian2": brian2.__version__,
        "engine": ENGINE_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :20
    ]


def _reseed_code(bn, cuda: bool) -> str:
    """Code that reseeds the RNG from the run_arg seed variable, right after run_args.

    Brian2 compiles a seed in; re-seeding from a variable set on the command line makes
    the seed a run argument, so one binary serves every seed.
    """
    from brian2 import device

    var = bn.input_group.variables[SEED_VARIABLE]
    name = device.get_array_name(var)
    if cuda:  # brian2cuda: cuRAND buffers are filled after this, at the first step
        return f"random_number_buffer.set_seed((unsigned long long) {name}[0]);"
    return (
        "for (int _i=0; _i<1; _i++) "
        f"brian::_random_generators[_i].seed((unsigned long) brian::{name}[0] + _i);"
    )


def get_standalone_build(
    model: SleepModel,
    spec: NetworkSpec,
    device: str,
    prefs: dict | None = None,
    build_root: Path | None = None,
) -> StandaloneBuild:
    """Return the live build for this structure, generating/compiling only when needed."""
    global _LIVE
    import time

    import brian2 as b2
    from brian2 import device as b2device
    from filelock import FileLock

    cuda = device == "cuda_standalone"
    key = build_key(model, spec, device, prefs)
    if _LIVE is not None and _LIVE.key == key:
        # Another device (runtime) may have been activated since: switch back, no reinit.
        b2.set_device(device, build_on_run=False)
        return _LIVE
    root = Path(build_root) if build_root else default_build_root()
    directory = root / f"{device}-{key}"
    root.mkdir(parents=True, exist_ok=True)
    if cuda:
        import brian2cuda  # noqa: F401  registers the device

        from .cuda_setup import configure_cuda_prefs

        configure_cuda_prefs()
    b2.set_device(device, build_on_run=False)
    b2device.reinit()
    b2device.activate(build_on_run=False)
    _set_common_prefs(prefs)
    bn = build_network(model, spec)
    for owner, name, value in _initial_values(bn):
        setattr(owner, name, value)
    b2device.apply_run_args()
    b2device.insert_code("main", _reseed_code(bn, cuda))
    bn.net.run(
        spec.n_steps * spec.dt * b2.second,
        report=_report(spec),
        report_period=REPORT_PERIOD_S * b2.second,
    )
    binary = directory / "main"
    reused = binary.exists()
    start = time.perf_counter()
    with FileLock(str(directory) + ".lock"):
        b2device.build(directory=str(directory), compile=True, run=False, with_output=False)
    BUILD_COUNT["codegen"] += 1
    _LIVE = StandaloneBuild(
        key, device, directory, spec, model, bn, time.perf_counter() - start, reused
    )
    return _LIVE


def _initial_values(bn):
    """Placeholder values so every per-run variable exists in the generated code."""
    out = [(bn.input_group, "rescale", 1.0), (bn.input_group, SEED_VARIABLE, 0)]
    for grp, syn in zip(bn.layers, bn.synapses, strict=True):
        out += [(grp, "v_thresh", 1.0), (grp, "decay", 1.0)]
        out += [(syn, "alpha", 1.0), (syn, "inc", 0.0), (syn, "dec", 0.0), (syn, "w", 0.0)]
    if "mean_px" in bn.input_group.variables:
        out.append((bn.input_group, "mean_px", 0.0))
    return out


def run_standalone(
    model: SleepModel,
    spec: NetworkSpec,
    device: str,
    weights,
    inputs,
    params,
    seed: int,
    prefs=None,
    build_root=None,
    with_output: bool = False,
):
    """Run on a (cached) compiled standalone build; returns (weights, spikes, info)."""
    import time

    from brian2 import device as b2device

    check_toolchain(device)
    build = get_standalone_build(model, spec, device, prefs, build_root)
    if device == "cuda_standalone":
        from .cuda_setup import gpu_available

        if not gpu_available():
            raise DeviceUnavailableError(
                f"cuda_standalone: the project was generated and compiled in {build.directory} "
                "but this machine has no GPU to run it; run it on a GPU machine or use "
                "--device cpp_standalone"
            )
    bn = build.bn
    run_args = {
        getattr(owner, name): value
        for owner, name, value in value_assignments(bn, weights, params, seed, inputs)
    }
    run_args.update({bn.timed_arrays[k]: v for k, v in timed_values(inputs, seed).items()})
    results = f"results/{os.getpid()}-{uuid.uuid4().hex[:12]}"
    start = time.perf_counter()
    try:
        b2device.run(
            directory=str(build.directory),
            results_directory=results,
            with_output=with_output,
            run_args=run_args,
        )
        run_seconds = time.perf_counter() - start
        new_w, spikes = _read_results(bn, spec, [w.shape for w in weights], build.order_checked)
        build.order_checked = True
    finally:
        shutil.rmtree(build.directory / results, ignore_errors=True)
        for name in list(b2device.run_args_arrays):
            for suffix in ("", ".lock"):
                try:
                    os.unlink(build.directory / "static_arrays" / (name + suffix))
                except OSError:
                    pass
    info = {
        "build_dir": str(build.directory),
        "build_key": build.key,
        "compile_seconds": build.compile_seconds,
        "run_seconds": run_seconds,
        "binary_reused": build.reused_binary,
    }
    return new_w, spikes, info
