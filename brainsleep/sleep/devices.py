"""Devices: one class each, behind one interface, in one registry (:data:`DEVICES`).

A device prepares a sleep network of one structure (:meth:`SleepDevice.prepare`) and
returns a :class:`PreparedNetwork`, which runs it as often as the caller likes with new
weights, parameters, inputs and seed. As in Brian2's own ``all_devices`` registry, code
elsewhere asks the device object, never compares device names.

- ``reference``: the numpy oracle (:mod:`brainsleep.sleep.reference`), the reference rule
  only;
- ``runtime``: Brian2's runtime device in this process (numpy target unless a
  ``codegen.target`` preference says otherwise); builds the objects on every run;
- ``cpp_standalone`` / ``cuda_standalone``: a compiled project per structure, published
  once in a cache and rerun with run arguments (:mod:`brainsleep.sleep.standalone`
  explains why no run can disturb another). cuda compiles without a GPU (the engine can
  fill a build cache ahead), runs only with one; an experiment without a GPU is refused
  at start (:meth:`SleepDevice.check_available`).
"""

from __future__ import annotations

import os
import shutil
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from brainsleep.names import unknown_name

from . import cuda_setup
from .inputs import SleepInput
from .model import SleepModel
from .network import (
    NetworkSpec,
    assign_values,
    build_network,
    run_values,
    synapse_order,
    synapses_to_weights,
)
from .params import SleepParams
from .standalone import (
    BuildServer,
    DeviceUnavailableError,
    StandaloneBuild,
    get_standalone_build,
    host_compiler_id,
    report_mode,
    set_common_prefs,
)

#: Per layer (0 = input): (steps, neurons) int32 arrays, or None when not recorded.
Spikes = list


class PreparedNetwork(ABC):
    """A sleep network of one structure, ready on a device: run it many times."""

    spec: NetworkSpec
    model: SleepModel

    @abstractmethod
    def run(
        self,
        weights: list[np.ndarray],
        inputs: SleepInput,
        params: SleepParams,
        seed: int,
        progress: bool = False,
    ) -> tuple[list[np.ndarray], Spikes, dict]:
        """One sleep phase: (weights after sleep, spikes per layer, info dict).

        ``weights`` are checked float64 (n_out, n_in) arrays matching ``spec.sizes``;
        ``inputs`` has the structure of ``spec``.
        """

    def close(self) -> None:
        """Release what the prepared network holds (a running binary); it stays usable."""
        return None


class SleepDevice(ABC):
    """Interface of a device; subclasses set :attr:`name` and implement :meth:`prepare`."""

    name: ClassVar[str]
    #: Whether the device compiles a project (and so caches builds on disk).
    compiled: ClassVar[bool] = False
    #: Whether it runs only on a machine with a GPU.
    needs_gpu: ClassVar[bool] = False
    #: Whether it runs Brian2 (so Brian2 preferences and Brian2's int32 limits apply).
    brian2: ClassVar[bool] = True

    def check_toolchain(self) -> None:
        """Raise DeviceUnavailableError naming what to install if this machine cannot
        build for the device (generate and compile); before anything is built."""
        return None  # nothing to build with

    def check_available(self) -> None:
        """Raise DeviceUnavailableError, one line saying what to do, if this machine cannot
        run the device: what an experiment checks at start, before any work.

        Everything :meth:`check_toolchain` needs, and the hardware the runs need.
        """
        self.check_toolchain()

    def check_model(self, model: SleepModel, explicit: bool) -> None:
        """Raise ValueError if this device cannot run ``model``."""
        return None  # Brian2 devices run any model that loads

    def build_spec(self, spec: NetworkSpec) -> NetworkSpec:
        """The structure to build for a run that records ``spec.record_layers``."""
        return spec

    @abstractmethod
    def prepare(
        self,
        model: SleepModel,
        spec: NetworkSpec,
        prefs: dict | None = None,
        build_root: str | Path | None = None,
        progress: bool = False,
    ) -> PreparedNetwork:
        """Make the network of ``spec`` ready to run (compile it if need be)."""


# ------------------------------------------------------------------------ reference


@dataclass
class _ReferenceNetwork(PreparedNetwork):
    model: SleepModel
    spec: NetworkSpec
    exact_exp: bool = True

    def run(self, weights, inputs, params, seed, progress=False):
        from .reference import simulate_reference

        new_w, spikes = simulate_reference(
            weights,
            inputs,
            params,
            seed,
            self.spec.record_layers,
            exact_exp=self.exact_exp,
            progress=progress,
            rest_every=self.spec.rest_every,
        )
        return new_w, spikes, {}


class ReferenceDevice(SleepDevice):
    """The numpy oracle; ``exact_exp`` uses the C library's exp (bit-exact, slower)."""

    name = "reference"
    brian2 = False

    def __init__(self, exact_exp: bool = True) -> None:
        self.exact_exp = exact_exp

    def check_model(self, model: SleepModel, explicit: bool) -> None:
        """Refuse every model but the one the oracle implements, by its content (a copy
        of src.py named src.py with one more declared parameter is another model)."""
        from .model import model_content_digest
        from .reference import ORACLE_MODEL_CONTENT

        digest = getattr(model, "content_hash", "") or model_content_digest(model.path)
        if digest != ORACLE_MODEL_CONTENT:
            raise ValueError(
                "device 'reference' implements only the reference rule as models/src.py "
                f"ships it, and model {model.name!r} ({model.path}) differs from it in its "
                "equations or declarations; use runtime, cpp_standalone or cuda_standalone, "
                "which run any model"
            )

    def prepare(self, model, spec, prefs=None, build_root=None, progress=False):
        return _ReferenceNetwork(model, spec, self.exact_exp)


# -------------------------------------------------------------------------- runtime


def _owned(values, dtype: type | None) -> np.ndarray:
    """A copy of a Brian2 variable's values that numpy owns.

    Brian2 >= 2.10 keeps dynamic arrays (synapse indices, spike monitors) in C++ and hands
    out views of that memory: a view outlives its network as freed memory, read later as
    garbage (Python 3.12 stack, 2026-12-07). ``np.asarray`` returns such a view whenever
    the dtype already matches; every read from a network therefore copies.
    """
    return np.array(values, dtype=dtype, copy=True)


def _read_runtime_results(bn, spec: NetworkSpec, weights_shapes):
    """Final weights and per-layer spikes from the runtime objects after a run (copies:
    see :func:`_owned`)."""
    new_weights = []
    for k, syn in enumerate(bn.synapses):
        n_out, n_in = weights_shapes[k]
        w = _owned(syn.w[:], np.float64)
        if w.size != n_in * n_out:
            raise RuntimeError(f"layer {k + 1}: {w.size} synapses, expected {n_in * n_out}")
        i, j = _owned(syn.i[:], None), _owned(syn.j[:], None)
        order = spec.synapse_orders[k]
        exp_i, exp_j = synapse_order(n_in, n_out, order)
        if not (np.array_equal(i, exp_i) and np.array_equal(j, exp_j)):
            raise RuntimeError(f"layer {k + 1}: synapses not in {order}synaptic-major order")
        new_weights.append(synapses_to_weights(w, i, j, (n_out, n_in)))
    spikes = []
    for layer in range(spec.n_layers + 1):
        mon = bn.monitors.get(layer)
        if mon is None:
            spikes.append(None)
            continue
        t = _owned(mon.t_[:], np.float64)
        steps = np.round(t / spec.dt).astype(np.int32)
        spikes.append((steps, _owned(mon.i[:], np.int32)))
    return new_weights, spikes


@dataclass
class _RuntimeNetwork(PreparedNetwork):
    model: SleepModel
    spec: NetworkSpec
    prefs: dict | None = None

    def run(self, weights, inputs, params, seed, progress=False):
        import brian2 as b2

        b2.set_device("runtime")
        applied = set_common_prefs({"codegen.target": "numpy", **(self.prefs or {})})
        b2.seed(seed)
        # Runtime cannot change TimedArray contents after building: build per run.
        bn = build_network(self.model, self.spec, inputs, seed)
        assign_values(
            bn,
            run_values(self.model, weights, params, seed, inputs, self.spec.synapse_orders),
        )
        bn.net.run(self.spec.n_steps * self.spec.dt * b2.second, report=report_mode(self.spec))
        new_w, spikes = _read_runtime_results(bn, self.spec, [w.shape for w in weights])
        return new_w, spikes, {"prefs": applied, "compiled": False}


class RuntimeDevice(SleepDevice):
    """Brian2's runtime device in this process."""

    name = "runtime"

    def prepare(self, model, spec, prefs=None, build_root=None, progress=False):
        return _RuntimeNetwork(model, spec, prefs)


# ----------------------------------------------------------------------- standalone


@dataclass
class _CompiledNetwork(PreparedNetwork):
    model: SleepModel
    spec: NetworkSpec
    build: StandaloneBuild
    device: SleepDevice
    # A build that serves runs the jobs of this network in binaries set up once and kept
    # running: one per thread running jobs at the same time (trials on a worker's threads).
    servers: list[BuildServer] = field(default_factory=list)
    idle: list[BuildServer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _take_server(self) -> BuildServer | None:
        if not self.build.serves:
            return None
        with self.lock:
            if self.idle:
                return self.idle.pop()
            server = BuildServer(self.build)
            self.servers.append(server)
            return server

    def run(self, weights, inputs, params, seed, progress=False):
        self.device.check_runnable(self.build)
        server = self._take_server()
        try:
            # The build holds self.spec.n_steps >= T steps; the run lasts T (STEPS_VARIABLE).
            new_w, spikes, run_info = self.build.run(
                run_values(self.model, weights, params, seed, inputs, self.spec.synapse_orders),
                inputs.padded_timed_values(seed, self.spec.n_steps),
                replace(self.spec, n_steps=inputs.n_steps),
                with_output=progress,
                server=server,
            )
        finally:
            if server is not None:
                with self.lock:
                    self.idle.append(server)
        info = {
            "build_dir": str(self.build.directory),
            "build_key": self.build.key,
            "compile_seconds": self.build.compile_seconds,
            "binary_reused": self.build.reused,
            # binaries started by this network so far (1 per call when it does not serve)
            "binary_starts": sum(s.starts for s in self.servers) if server else 1,
            **run_info,
        }
        return new_w, spikes, info

    def close(self) -> None:
        with self.lock:
            servers = list(self.servers)
        for server in servers:
            server.close()


class CppStandaloneDevice(SleepDevice):
    """Brian2's C++ standalone device: compiled once per structure, rerun many times."""

    name = "cpp_standalone"
    compiled = True
    serves_jobs = True

    def check_toolchain(self) -> None:
        if not (shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")):
            raise DeviceUnavailableError(
                "cpp_standalone needs a C++ compiler (g++) and make: install them "
                "(e.g. apt-get install g++ make) or use --device runtime"
            )

    def toolchain_id(self) -> str:
        """What a build depends on besides its code (in the build key): the C++
        compiler's version line."""
        return host_compiler_id()

    def check_runnable(self, build: StandaloneBuild) -> None:
        """Raise DeviceUnavailableError if this machine cannot run the compiled binary."""

    def activate(self) -> None:
        """Register and configure the Brian2 device before a build is generated."""

    def reseed_code(self, seed_array: str) -> str:
        """C++ that reseeds the RNG from the run-argument array ``seed_array``."""
        return (
            "for (int _i=0; _i<1; _i++) "
            f"brian::_random_generators[_i].seed((unsigned long) brian::{seed_array}[0] + _i);"
        )

    def build_spec(self, spec: NetworkSpec) -> NetworkSpec:
        # One build serves "none" and "hidden" (search trials and the final sleep):
        # hidden layers are always recorded in the binary, kept only when asked for; and
        # every T up to the build's step capacity (the run sets its own T).
        hidden = set(range(1, spec.n_layers + 1))
        recorded = tuple(sorted(hidden | set(spec.record_layers)))
        return replace(spec, record_layers=recorded).with_step_capacity()

    def prepare(self, model, spec, prefs=None, build_root=None, progress=False):
        self.check_toolchain()
        build = get_standalone_build(model, spec, self, prefs, build_root, progress)
        return _CompiledNetwork(model, spec, build, self)


class CudaStandaloneDevice(CppStandaloneDevice):
    """brian2cuda's device: generates and compiles without a GPU, runs only with one.

    An experiment needs the GPU (:meth:`check_available`, at start); the engine alone
    compiles without one (:meth:`check_toolchain`) and says so when asked to run.
    """

    name = "cuda_standalone"
    serves_jobs = False  # one job per process, Brian2's own ending
    needs_gpu = True

    def check_toolchain(self) -> None:
        try:
            cuda_setup.find_nvcc()
            cuda_setup.find_curand()
        except RuntimeError as exc:
            raise DeviceUnavailableError(str(exc)) from exc

    def check_available(self) -> None:
        problem = cuda_setup.gpu_problem()
        if problem is not None:
            raise DeviceUnavailableError(
                f"cuda_standalone needs an NVIDIA GPU, and {problem}: run on a machine with "
                "one (and nvcc), or use --device cpp_standalone"
            )
        self.check_toolchain()

    def toolchain_id(self) -> str:
        """The C++ compiler's version line, then nvcc's release, the GPU architecture
        compiled for (``sm_90``) and the driver version: a build cache shared by machines
        never hands one GPU's binary to another."""
        return " | ".join([host_compiler_id(), cuda_setup.nvcc_version(), *cuda_setup.gpu_target()])

    def activate(self) -> None:
        import brian2cuda  # noqa: F401  registers the device

        cuda_setup.configure_cuda_prefs()

    def reseed_code(self, seed_array: str) -> str:
        # cuRAND buffers are filled after this, at the first step
        return f"random_number_buffer.set_seed((unsigned long long) {seed_array}[0]);"

    def check_runnable(self, build: StandaloneBuild) -> None:
        if not cuda_setup.gpu_available():
            raise DeviceUnavailableError(
                f"cuda_standalone: the project was generated and compiled in {build.directory} "
                "but this machine has no GPU to run it; run it on a GPU machine or use "
                "--device cpp_standalone"
            )


#: Every device by name.
DEVICES: dict[str, type[SleepDevice]] = {
    c.name: c for c in (ReferenceDevice, RuntimeDevice, CppStandaloneDevice, CudaStandaloneDevice)
}
DEVICE_NAMES: tuple[str, ...] = tuple(DEVICES)


def get_device(device: str | SleepDevice, **options) -> SleepDevice:
    """The device object for a name (``options`` go to its constructor), or ``device``.

    Raises
    ------
    ValueError
        An unknown name; the message lists the known ones.
    """
    if isinstance(device, SleepDevice):
        return device
    if device not in DEVICES:
        raise ValueError(unknown_name("device", device, DEVICE_NAMES))
    cls = DEVICES[device]
    return cls(**options) if cls is ReferenceDevice else cls()
