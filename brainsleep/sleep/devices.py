"""How each Brian2 device runs the sleep network.

- ``runtime``: builds the objects and runs them in this process (numpy target unless a
  ``codegen.target`` preference says otherwise).
- ``cpp_standalone`` / ``cuda_standalone``: a compiled project per structure, published
  once in a cache and rerun with new weights, parameters, inputs and seed
  (:mod:`brainsleep.sleep.standalone` explains why no run can disturb another).
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from .model import SleepModel
from .network import (
    NetworkSpec,
    assign_values,
    build_network,
    run_values,
    synapse_order,
    synapses_to_weights,
    timed_values,
)
from .standalone import (
    BUILD_COUNT,
    ENGINE_VERSION,
    EXACT_GCC_FLAGS,
    BuildError,
    CompiledRunError,
    DeviceUnavailableError,
    StandaloneBuild,
    build_key,
    default_build_root,
    get_standalone_build,
    report_mode,
    set_common_prefs,
)

BRIAN_DEVICES = ("runtime", "cpp_standalone", "cuda_standalone")

__all__ = [
    "BRIAN_DEVICES",
    "BUILD_COUNT",
    "ENGINE_VERSION",
    "EXACT_GCC_FLAGS",
    "BuildError",
    "CompiledRunError",
    "DeviceUnavailableError",
    "StandaloneBuild",
    "build_key",
    "check_toolchain",
    "default_build_root",
    "get_standalone_build",
    "run_runtime",
    "run_standalone",
]


def _read_runtime_results(bn, spec: NetworkSpec, weights_shapes):
    """Final weights and per-layer spikes from the runtime objects after a run."""
    new_weights = []
    for k, syn in enumerate(bn.synapses):
        n_out, n_in = weights_shapes[k]
        w = np.asarray(syn.w[:], dtype=np.float64)
        if w.size != n_in * n_out:
            raise RuntimeError(f"layer {k + 1}: {w.size} synapses, expected {n_in * n_out}")
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
    applied = set_common_prefs({"codegen.target": "numpy", **(prefs or {})})
    b2.seed(seed)
    bn = build_network(model, spec, timed_contents=timed_values(inputs, seed))
    assign_values(bn, run_values(spec.n_layers, weights, params, seed, inputs))
    bn.net.run(spec.n_steps * spec.dt * b2.second, report=report_mode(spec))
    new_w, spikes = _read_runtime_results(bn, spec, [w.shape for w in weights])
    return new_w, spikes, {"prefs": applied, "compiled": False}


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
    check_toolchain(device)
    build = get_standalone_build(model, spec, device, prefs, build_root, progress=with_output)
    if device == "cuda_standalone":
        from .cuda_setup import gpu_available

        if not gpu_available():
            raise DeviceUnavailableError(
                f"cuda_standalone: the project was generated and compiled in {build.directory} "
                "but this machine has no GPU to run it; run it on a GPU machine or use "
                "--device cpp_standalone"
            )
    new_w, spikes, run_info = build.run(
        run_values(spec.n_layers, weights, params, seed, inputs),
        timed_values(inputs, seed),
        spec,
        with_output=with_output,
    )
    info = {
        "build_dir": str(build.directory),
        "build_key": build.key,
        "compile_seconds": build.compile_seconds,
        "binary_reused": build.reused,
        **run_info,
    }
    return new_w, spikes, info
