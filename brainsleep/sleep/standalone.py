"""Compiled standalone builds (cpp_standalone, cuda_standalone): compile once, run many.

Why one file of this length: a build's whole life cycle (key, generate, compile, publish
atomically, run in a private directory, read back and check) shares one manifest format
and one set of invariants; split, each half would have to restate them.

A build is Brian2's generated project for one network structure, compiled once and then
rerun with new weights, parameters, input and seed. Nothing a run depends on can be
changed or removed by another run, and nothing the binary gets wrong comes back as a
result:

- **Publish once.** A build is generated and compiled in a private directory
  (``.building-<device>-<key>-<random>``) while holding the key's lock, then published by
  one atomic rename to ``<device>-<key>``. A published build is never written again.
  Its manifest (``brainsleep-build.json``) records the interface every run is checked
  against: the run-argument names, dtypes and sizes, and the output files.
- **Private runs.** Every run writes its inputs and gets its results in a run directory
  of its own (``runs/<host>-<pid>-<random>``, locked while it runs), passed to the
  binary as absolute paths. Brian2's shared, content-named ``static_arrays/init_*``
  files, which one run could delete or truncate under another, are never used.
- **Set up once per engine.** A cpp_standalone binary runs jobs in a loop
  (:mod:`~.job_loop`): a :class:`BuildServer` keeps one running for a held engine, each
  job starting from a fresh process's state, so a search's trials skip the process
  start, synapse creation and spike-queue set-up. A job that fails stops its binary.
- **Loud failures.** A non-zero exit, a run that did not complete, or any line in which
  the binary reports an error (Brian2's binary prints ``Error reading ...`` for a
  missing or wrong-sized input file and still exits 0) fails the call with
  :class:`CompiledRunError`. What comes back is checked before it is used: every output
  file present with the right size (the connection indices on a process's first run of
  a build only), spikes in range, weights finite.

The on-disk layout is :mod:`brainsleep.build_layout`, shared with ``python -m
brainsleep.cache`` (list and prune).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from brainsleep.build_layout import (
    LAST_USED,
    MANIFEST,
    RUNS,
    building_dir,
    lock_file,
    move_to_trash,
    read_manifest,
)
from brainsleep.digests import files_digest
from brainsleep.paths import default_build_root

from .children import self_tie_code, spawn_tied
from .job_loop import JOB_DONE, SERVE_FLAG, job_line, job_loop_code
from .model import SleepModel
from .network import (
    SEED_VARIABLE,
    STEPS_VARIABLE,
    WRITE_ORDER_VARIABLE,
    NetworkSpec,
    assign_values,
    build_network,
    input_name,
    run_values,
    synapse_order,
    synapses_to_matrix,
)

log = logging.getLogger("brainsleep.sleep")

# Bump when the generated network or the build/run protocol changes, so cached builds
# are never reused across it (and results directories record it). The build key also
# covers the engine's source itself (engine_source_digest), so a forgotten bump, or a
# user's edit of an input kind in models/inputs.py, can never reuse a stale binary.
ENGINE_VERSION = 8
# Exactness: no -ffast-math (reassociation) and no fused multiply-add contraction, so
# compiled arithmetic equals numpy's float64 step for step.
EXACT_GCC_FLAGS = ["-w", "-O3", "-ffp-contract=off", "-fno-fast-math", "-std=c++17"]
# Long runs print Brian2's progress report this often (simulated seconds).
REPORT_PERIOD_S = 5.0
# What Brian2's generated binaries print when loading or saving goes wrong (objects.cpp:
# "Error reading", "Could not read", "Error writing output file", "Cannot set unknown
# variable"), and brian2cuda's CUDA error reports.
BINARY_ERROR = re.compile(r"\b(error|could not|cannot|failed|abort)", re.IGNORECASE)


class DeviceUnavailableError(RuntimeError):
    """The device cannot run here (no compiler, no GPU); the message says what to do."""


class CompiledRunError(RuntimeError):
    """The compiled binary failed, reported an error, or returned impossible results."""


class BuildError(RuntimeError):
    """Generating or compiling a standalone project failed."""


def _version_line(cmd: list[str]) -> str:
    """The first non-empty line ``cmd`` prints, or ``"?"``."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    return lines[0] if lines else "?"


@functools.cache
def host_compiler_id() -> str:
    """The C++ compiler's version line (``$CXX``, else ``g++``): every build's toolchain.

    A device's :meth:`~BuildDevice.toolchain_id` starts with it; cpp_standalone's is
    exactly this line (so its build keys are those of earlier versions).
    """
    return _version_line([os.environ.get("CXX", "g++"), "--version"])


class BuildDevice(Protocol):
    """What a build needs of its device (:class:`~brainsleep.sleep.devices.SleepDevice`
    subclasses that compile): its name, what its binaries depend on besides the code, and
    how its generated code differs."""

    name: str
    #: Whether one binary runs many jobs in a loop (:mod:`~.job_loop`).
    serves_jobs: bool

    def toolchain_id(self) -> str:
        """Compiler versions and target hardware a build depends on (in the build key)."""
        ...

    def activate(self) -> None:
        """Register and configure the Brian2 device before a build is generated."""
        ...

    def reseed_code(self, seed_array: str) -> str:
        """C++ that reseeds the RNG from the run-argument array ``seed_array``."""
        ...


def engine_sources() -> list[Path]:
    """The files whose code decides what a build generates: the engine's modules
    (``brainsleep/sleep/*.py``) and the input kinds' equations (``models/inputs.py``)."""
    from brainsleep.models import inputs as input_kinds

    return sorted(Path(__file__).parent.glob("*.py")) + [Path(input_kinds.__file__)]


def _read_engine_digest() -> str:
    return files_digest(engine_sources())


@functools.cache
def engine_source_digest() -> str:
    """SHA-256 of the names and contents of :func:`engine_sources`.

    Cached: read when this module is imported, so it describes the code this process
    runs; a build is not published if the files changed since.
    """
    return _read_engine_digest()


engine_source_digest()  # now, while the imported modules and the files agree


def build_key(
    model: SleepModel,
    spec: NetworkSpec,
    device: BuildDevice,
    prefs: dict | None,
    toolchain: str | None = None,
) -> str:
    """Content key of a standalone build: everything the compiled binary depends on.

    The model file's content and what it defines once executed (imports included), the
    structure, device, preferences, compiler flags and the device's toolchain (compiler
    versions; for cuda_standalone also nvcc, the driver and the GPU architecture), Brian2's
    version, the input kind's equations as the engine reads them now, and the engine's own
    source (:func:`engine_source_digest`).

    Parameters
    ----------
    model : SleepModel
    spec : NetworkSpec
        The structure to build.
    device : BuildDevice
        The compiling device (its ``name`` and ``toolchain_id()``).
    prefs : dict or None
        Brian2 preferences with dotted names.
    toolchain : str, optional
        ``device.toolchain_id()`` when the caller has it already.

    Returns
    -------
    str
        20 hex digits.
    """
    import brian2

    from brainsleep.models.inputs import INPUT_KINDS

    kind = spec.input_kind
    payload = {
        "model": model.source_hash,
        "model_content": model.content_hash,
        "input_kind": INPUT_KINDS.get(kind, kind),
        "engine_source": engine_source_digest(),
        "spec": asdict(spec),
        "device": device.name,
        "prefs": sorted((k, repr(v)) for k, v in (prefs or {}).items()),
        "flags": EXACT_GCC_FLAGS,
        "brian2": brian2.__version__,
        "engine": ENGINE_VERSION,
        "compiler": device.toolchain_id() if toolchain is None else toolchain,
        "arch": platform.machine(),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def set_common_prefs(extra_prefs: dict | None) -> dict:
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


def report_mode(spec: NetworkSpec) -> str | None:
    """Brian2's text progress report for long runs only."""
    return "text" if spec.n_steps * spec.dt >= 2 * REPORT_PERIOD_S else None


def _placeholder_values(model: SleepModel, spec: NetworkSpec) -> tuple[dict[str, object], object]:
    """A value for every per-run variable (so each exists in the generated code), and
    placeholder inputs of the structure's kind."""
    from .params import SleepParams

    n = spec.n_layers
    weights = [np.zeros((spec.sizes[k + 1], spec.sizes[k])) for k in range(n)]
    params = SleepParams({name: 1.0 for name in model.parameters}, alphas=[1.0] * n)
    inputs = spec.placeholder_input()
    return {
        name: (0.0 if np.ndim(v) else v)
        for name, v in run_values(model, weights, params, 0, inputs, spec.synapse_orders).items()
    }, inputs


def _reseed_code(bn, device: BuildDevice) -> str:
    """Code that reseeds the RNG from the run_arg seed variable, right after run_args.

    Brian2 compiles a seed in; re-seeding from a variable set on the command line makes
    the seed a run argument, so one binary serves every seed.
    """
    from brian2 import device as b2device

    var = bn.input_group.variables[SEED_VARIABLE]
    return device.reseed_code(b2device.get_array_name(var))


def _run_length_code(bn, spec: NetworkSpec) -> tuple[str, str]:
    """Code around the network's run line that makes its duration a run argument.

    Brian2 writes the duration of ``Network.run`` into main as a number. Inserted in the
    ``before_network_run`` / ``after_network_run`` slots (Brian2's ``insert_code``), a
    function-like macro replaces that number with the run argument :data:`STEPS_VARIABLE`
    times dt, computed as Brian2 computes it (``float(n_steps * dt)``), so one build runs
    any T up to its step capacity. If Brian2's run line ever changes shape, the macro
    fails to compile: loudly, never silently.
    """
    from brian2 import device

    var = bn.input_group.variables[STEPS_VARIABLE]
    steps = f"brian::{device.get_array_name(var)}[0]"
    before = (
        f"#define run(_duration, _report, _period) "
        f"run(((double) {steps}) * {float(spec.dt)!r}, _report, _period)"
    )
    return before, "#undef run"


def _interface(bn, spec: NetworkSpec, placeholders: dict, inputs) -> dict:
    """Run-argument names/dtypes/sizes and output files of a generated project."""
    from brian2 import device as b2device

    objects = {o.name: o for o in (bn.input_group, *bn.layers, *bn.synapses)}
    n_syn = {syn.name: spec.sizes[k] * spec.sizes[k + 1] for k, syn in enumerate(bn.synapses)}
    args = {}
    for full_name in placeholders:
        owner, var = full_name.rsplit(".", 1)
        v = objects[owner].variables[var]
        size = 1 if v.scalar else n_syn.get(owner, int(v.size))
        args[full_name] = {"dtype": np.dtype(v.dtype).str, "size": size}
    for name, contents in inputs.timed_values(0).items():
        ta = bn.timed_arrays[name]
        args[f"{name}.values"] = {
            "dtype": np.dtype(ta.values.dtype).str,
            "size": int(np.asarray(contents).size),
        }
    outputs = {}
    for syn in bn.synapses:
        for var in ("w", "_synaptic_pre", "_synaptic_post"):
            v = syn.variables[var]
            outputs[f"{syn.name}.{var}"] = {
                "file": b2device.get_array_filename(v),
                "dtype": np.dtype(v.dtype).str,
                "size": n_syn[syn.name],
            }
    for layer, mon in bn.monitors.items():
        for var, size in (("t", None), ("i", None), ("N", 1)):
            v = mon.variables[var]
            outputs[f"{mon.name}.{var}"] = {
                "file": b2device.get_array_filename(v),
                "dtype": np.dtype(v.dtype).str,
                "size": size,
                "layer": layer,
            }
    return {"args": args, "outputs": outputs}


def _make(directory: Path, device: str) -> None:
    """Compile the generated project with make; Ctrl-C and failures are reported clearly."""
    from brian2 import prefs

    cmd = [prefs.devices.cpp_standalone.make_cmd_unix]
    cmd += list(prefs.devices.cpp_standalone.extra_make_args_unix)
    proc = spawn_tied(
        cmd, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = proc.communicate()
    except KeyboardInterrupt:
        proc.kill()
        proc.wait()
        raise KeyboardInterrupt(
            f"interrupted while compiling the {device} project; nothing was cached, and "
            "rerunning the same command compiles again and resumes"
        ) from None
    if proc.returncode < 0 or "Interrupt" in out:
        raise KeyboardInterrupt(
            f"the {device} compilation was interrupted (signal); nothing was cached, and "
            "rerunning the same command compiles again and resumes"
        )
    if proc.returncode != 0:
        tail = "\n".join(out.splitlines()[-25:])
        raise BuildError(
            f"compiling the {device} project failed (make exit {proc.returncode}):\n{tail}"
        )


def _published_manifest(directory: Path) -> dict | None:
    """The manifest of a build ready to run (its binary present), else None."""
    return read_manifest(directory) if (directory / "main").is_file() else None


def _remove_tree(path: Path) -> None:
    """Move ``path`` aside under a trash name, then delete it (readers never see half)."""
    if (trash := move_to_trash(path, path.parent)) is not None:
        shutil.rmtree(trash, ignore_errors=True)


@dataclass
class StandaloneBuild:
    """A published, compiled standalone project; :meth:`run` reruns it with new values.

    Attributes
    ----------
    directory : Path
        The published project (never written after publication).
    manifest : dict
        Key, structure, toolchain and the run interface (see module docstring).
    compile_seconds : float
        Time spent generating and compiling in this process (0 when reused).
    reused : bool
        Whether the binary came from the cache.
    """

    directory: Path
    manifest: dict
    compile_seconds: float = 0.0
    reused: bool = True

    @property
    def order_checked(self) -> bool:
        """Whether this process has checked the build's connection order already."""
        return (str(self.directory), self.key) in _ORDER_CHECKED

    @property
    def key(self) -> str:
        return self.manifest["key"]

    @property
    def serves(self) -> bool:
        """Whether the binary can run many jobs in one process (:class:`BuildServer`)."""
        return bool(self.manifest.get("serves", False))

    @property
    def device(self) -> str:
        return self.manifest["device"]

    @property
    def root(self) -> Path:
        return self.directory.parent

    def run(
        self,
        values: dict,
        timed: dict,
        spec: NetworkSpec,
        with_output: bool = False,
        server: BuildServer | None = None,
    ) -> tuple[list[np.ndarray], list, dict]:
        """Run one job in a private run directory: a process of its own, or ``server``.

        Parameters
        ----------
        values : dict
            ``"<object>.<variable>" -> value`` (:func:`~brainsleep.sleep.network.run_values`).
        timed : dict
            TimedArray name -> contents (:meth:`~brainsleep.sleep.inputs.SleepInput.timed_values`).
        spec : NetworkSpec
            The structure (must be the build's).
        with_output : bool
            Echo the binary's output (Brian2's progress report).
        server : BuildServer, optional
            A running binary of this build to send the job to (set up once for many
            jobs); by default a new process runs this job alone.

        Returns
        -------
        weights, spikes, info
            Weights (n_out, n_in) per layer; per layer (steps, neurons) or None.

        Raises
        ------
        CompiledRunError
            The binary failed or reported an error, or its output is incomplete or
            impossible.
        """
        from filelock import FileLock

        runs = self.root / RUNS
        runs.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        lock = FileLock(str(lock_file(runs, name)))
        lock.acquire()
        run_dir = runs / name
        try:
            (run_dir / "args").mkdir(parents=True)
            (run_dir / "results").mkdir()
            order = f"{input_name()}.{WRITE_ORDER_VARIABLE}"
            checked = self.order_checked  # once: the binary's flag and the read agree
            values = {**values, order: 0 if checked else 1}
            args = self._write_args(values, timed, run_dir / "args")
            start = time.perf_counter()
            output = self._execute(args, run_dir / "results", with_output, server)
            run_seconds = time.perf_counter() - start
            weights, spikes = self._read_results(run_dir / "results", spec, output, checked)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
            lock.release()
            Path(lock.lock_file).unlink(missing_ok=True)
        try:
            os.utime(self.directory / LAST_USED)
        except OSError:
            pass
        return weights, spikes, {"run_seconds": run_seconds}

    def _write_args(self, values: dict, timed: dict, args_dir: Path) -> list[str]:
        """Every run argument as a file of this run's own; the command-line list."""
        interface = self.manifest["interface"]["args"]
        given = {**values, **{f"{k}.values": v for k, v in timed.items()}}
        if set(given) != set(interface):
            raise CompiledRunError(
                f"build {self.directory} expects run arguments {sorted(interface)} but got "
                f"{sorted(given)}; remove it (python -m brainsleep.cache prune --all)"
            )
        out = []
        for name, spec in sorted(interface.items()):
            try:
                arr = np.asarray(given[name], dtype=np.dtype(spec["dtype"])).ravel()
            except OverflowError as exc:
                raise ValueError(f"run argument {name}={given[name]!r} out of range") from exc
            if arr.size != spec["size"]:
                raise CompiledRunError(
                    f"run argument {name} has {arr.size} values, the build expects {spec['size']}"
                )
            path = args_dir / f"{name}.dat"
            arr.tofile(path)
            out.append(f"{name}={path}")
        return out

    def _execute(
        self, args: list[str], results: Path, with_output: bool, server: BuildServer | None = None
    ) -> list[str]:
        if server is not None:
            return server.execute(args, results, with_output)
        proc = self._spawn(["--results_dir", f"{results}/", *args])
        lines: list[str] = []
        try:
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if with_output:
                    sys.stdout.write(line)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        failure = self._failure(lines, f"exit status {rc}" if rc != 0 else None)
        if failure is not None:
            raise failure
        return lines

    def _spawn(self, cmd_args: list[str], **kwargs) -> subprocess.Popen:
        """Start the binary with ``cmd_args``, its output (stdout and stderr) piped as text.

        Raises
        ------
        CompiledRunError
            The binary cannot be started (the build removed while in use, ...).
        """
        # The environment the device asked for when it was built (recorded then, since
        # a later process need not have the device active).
        env = {**os.environ, **self.manifest.get("run_env", {})}
        cmd = [str(self.directory / "main"), *cmd_args]
        try:
            return spawn_tied(
                cmd,
                ties_itself=bool(self.manifest.get("ties_itself", False)),
                cwd=self.directory,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                **kwargs,
            )
        except OSError as exc:
            if not (self.directory / "main").is_file():
                raise CompiledRunError(
                    f"the build {self.directory} was removed while in use (pruned?); "
                    "rerun to build it again"
                ) from exc
            raise CompiledRunError(f"cannot start {cmd[0]}: {exc}") from exc

    def _failure(
        self, lines: list[str], problem: str | None, where: str = ""
    ) -> CompiledRunError | None:
        """The error to raise if the run failed (``problem``, e.g. its exit status) or any
        line of its output reports one; None for a clean run."""
        errors = [ln for ln in lines if BINARY_ERROR.search(ln)]
        if problem is None and not errors:
            return None
        shown = "\n".join((errors or lines)[-10:])
        return CompiledRunError(
            f"the compiled sleep network ({self.directory.name}) failed{where} "
            f"({problem or 'exit status 0'}) and reported:\n{shown}"
        )

    def _read_results(
        self, results: Path, spec: NetworkSpec, output: list[str], order_checked: bool
    ):
        def fail(msg: str):
            raise CompiledRunError(f"{self.directory.name}: {msg}")

        info_file = results / "last_run_info.txt"
        try:
            run_time, completed = info_file.read_text().split()
        except (OSError, ValueError):
            free = shutil.disk_usage(results).free / 2**20
            fail(
                "the binary wrote no complete last_run_info.txt: the run did not finish "
                f"({free:.0f} MiB free where it writes its results, {results.parent})"
            )
        if float(completed) != 1.0:
            fail(f"the run stopped at {float(completed):.1%} of the simulated time")
        arrays = {}
        for name, out in self.manifest["interface"]["outputs"].items():
            path = results / out["file"]
            if name.endswith(("._synaptic_pre", "._synaptic_post")) and order_checked:
                continue  # the connection order is the same every run: checked once
            if not path.is_file():
                fail(f"the binary wrote no {name} ({path.name})")
            dtype = np.dtype(out["dtype"])
            n_bytes = path.stat().st_size
            if n_bytes % dtype.itemsize or (
                out["size"] is not None and n_bytes != out["size"] * dtype.itemsize
            ):
                fail(f"{name} has {n_bytes} bytes, expected {out['size']} x {dtype.itemsize}")
            arrays[name] = np.fromfile(path, dtype=dtype)
        weights = []
        for k in range(spec.n_layers):
            syn = f"syn{k + 1}"
            n_in, n_out = spec.sizes[k], spec.sizes[k + 1]
            order = spec.synapse_orders[k]
            if not order_checked:
                exp_i, exp_j = synapse_order(n_in, n_out, order)
                if not (
                    np.array_equal(arrays[f"{syn}._synaptic_pre"], exp_i)
                    and np.array_equal(arrays[f"{syn}._synaptic_post"], exp_j)
                ):
                    fail(f"layer {k + 1}: synapses not in {order}synaptic-major order")
            weights.append(synapses_to_matrix(arrays[f"{syn}.w"], n_in, n_out, order))
        _ORDER_CHECKED.add((str(self.directory), self.key))
        spikes: list = [None] * (spec.n_layers + 1)
        for layer in spec.record_layers:
            mon = f"spikes{layer}"
            if f"{mon}.t" not in arrays:
                fail(f"layer {layer} was not recorded by this build")
            t, i, n = arrays[f"{mon}.t"], arrays[f"{mon}.i"], arrays[f"{mon}.N"]
            if not (len(t) == len(i) == int(n[0])):
                fail(f"layer {layer}: {len(t)} spike times, {len(i)} indices, N = {int(n[0])}")
            steps = np.round(t / spec.dt).astype(np.int64)
            if len(i) and (i.min() < 0 or i.max() >= spec.sizes[layer]):
                fail(f"layer {layer}: neuron index out of range 0..{spec.sizes[layer] - 1}")
            if len(steps) and (steps.min() < 0 or steps.max() >= spec.n_steps):
                fail(f"layer {layer}: spike step out of range 0..{spec.n_steps - 1}")
            spikes[layer] = (steps.astype(np.int32), i.astype(np.int32))
        return weights, spikes


class BuildServer:
    """One running binary of a build that runs many jobs: set up once, rerun per job.

    The binary is started with :data:`~.job_loop.SERVE_FLAG` on the first job and reads
    one job per line from its standard input (:mod:`~.job_loop`); every job still has
    its own run directory (:meth:`StandaloneBuild.run`). A job that fails, or reports an
    error, stops the binary (its state is then unknown): the next job starts a fresh one.
    The binary ends with this object (:meth:`close`, garbage collection) or with this
    process (:func:`~.children.spawn_tied`).

    Parameters
    ----------
    build : StandaloneBuild
        A build whose manifest says it serves (cpp_standalone).

    Attributes
    ----------
    starts : int
        Binaries started so far (1 for any number of successful jobs).
    """

    def __init__(self, build: StandaloneBuild) -> None:
        if not build.serves:
            raise ValueError(f"the build {build.directory.name} runs one job per process")
        self.build = build
        self.starts = 0
        self._proc: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None
        self._lock = threading.RLock()

    def _start(self) -> subprocess.Popen:
        # lasting: it outlives the calling thread (a Dask worker's pool thread)
        proc = self.build._spawn([SERVE_FLAG], lasting=True, stdin=subprocess.PIPE)
        self.starts += 1
        self._finalizer = weakref.finalize(self, _stop_process, proc)
        return proc

    def execute(self, args: list[str], results: Path, with_output: bool) -> list[str]:
        """Run one job; its output lines. Raises CompiledRunError as a one-job run does."""
        line = job_line(f"{results}/", args)
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._stop(kill=True)  # one that ended between jobs: reap it
                self._proc = self._start()
            proc = self._proc
            lines: list[str] = []
            done = False
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
                for out in proc.stdout:
                    out = out.rstrip("\n")
                    if out == JOB_DONE:
                        done = True
                        break
                    lines.append(out)
                    if with_output:
                        print(out)
            except BrokenPipeError:
                pass  # the binary died: reported below with what it printed
            except BaseException:  # interrupted mid-job: its state is unknown
                self._stop(kill=True)
                raise
            if done and not any(BINARY_ERROR.search(ln) for ln in lines):
                return lines
            self._stop(kill=True)
            rc = proc.returncode
            problem = "it stopped" if rc is None else f"exit status {rc}"
            raise self.build._failure(lines, problem, " in a job")

    def close(self) -> None:
        """Stop the binary once its current job, if any, is done (a later job would
        start a new one)."""
        with self._lock:
            self._stop(kill=False)

    def _stop(self, kill: bool) -> None:
        proc, self._proc = self._proc, None
        finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer.detach()
        if proc is not None:
            _stop_process(proc, kill)


def _stop_process(proc: subprocess.Popen, kill: bool = False) -> None:
    """End a serving binary: end of its input (it exits between jobs) or, with ``kill``
    or if it does not exit, SIGKILL; always reaped."""
    try:
        if not kill:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass


# Builds already opened by this process, by directory (published builds never change).
_CLEANED_ROOTS: set[Path] = set()
# Builds (directory, key) whose connection order this process has checked: the order is
# generated code, the same on every run of a published build, so one check per process
# suffices (it reads and compares two index arrays per layer: ~20-50 ms at full size).
_ORDER_CHECKED: set[tuple[str, str]] = set()


def _clean_leftovers_once(root: Path) -> None:
    """Remove what killed builds and runs left under ``root`` (once per process)."""
    if root in _CLEANED_ROOTS:
        return
    _CLEANED_ROOTS.add(root)
    from brainsleep.cache import clean_leftovers

    for path in clean_leftovers(root):
        log.info("removed leftover %s", path)


def get_standalone_build(
    model: SleepModel,
    spec: NetworkSpec,
    device: BuildDevice,
    prefs: dict | None = None,
    build_root: str | Path | None = None,
    progress: bool = False,
) -> StandaloneBuild:
    """The published build for this structure, generating and compiling it if needed.

    Parameters
    ----------
    model : SleepModel
    spec : NetworkSpec
        The structure (as the device's ``build_spec`` gives it).
    device : BuildDevice
        The compiling device: its name names the build, its toolchain is in the key.
    prefs : dict, optional
        Brian2 preferences with dotted names.
    build_root : path, optional
        The build cache (default :func:`brainsleep.paths.default_build_root`).
    progress : bool
        Say on stderr that a build is being compiled.

    Returns
    -------
    StandaloneBuild

    Raises
    ------
    BuildError
        Code generation or compilation failed (the compiler's output is in the message).
    KeyboardInterrupt
        Interrupted while compiling; nothing is published, a rerun compiles again.
    """
    from filelock import FileLock

    root = Path(build_root or default_build_root()).resolve()
    toolchain = device.toolchain_id()
    key = build_key(model, spec, device, prefs, toolchain)
    name = f"{device.name}-{key}"
    directory = root / name
    root.mkdir(parents=True, exist_ok=True)
    _clean_leftovers_once(root)
    manifest = _published_manifest(directory)
    start = time.perf_counter()
    reused = manifest is not None and manifest.get("key") == key
    if not reused:
        with FileLock(str(lock_file(root, name))):
            manifest = _published_manifest(directory)  # another process may have published it
            reused = manifest is not None and manifest.get("key") == key
            if not reused:
                _remove_tree(directory)  # incomplete, or from an older protocol
                manifest = _generate_and_publish(
                    model, spec, device, prefs, root, name, key, toolchain, progress
                )
                _ORDER_CHECKED.discard((str(directory), key))  # a new binary: check again
    (directory / LAST_USED).touch()
    build = StandaloneBuild(
        directory, manifest, 0.0 if reused else time.perf_counter() - start, reused
    )
    return build


def _generate_and_publish(
    model, spec, build_device: BuildDevice, prefs, root, name, key, toolchain, progress
) -> dict:
    """Generate the project in a private directory, compile it, publish it atomically."""
    import brian2 as b2
    from brian2 import device as b2device

    from brainsleep.atomic import atomic_write_json

    device = build_device.name
    msg = (
        f"compiling the {device} sleep network {'-'.join(map(str, spec.sizes))}, "
        f"T = {spec.n_steps} (once per structure; cached in {root})"
    )
    log.info(msg)
    if progress and not log.isEnabledFor(logging.INFO):
        print(msg, file=sys.stderr)
    build_device.activate()
    b2.set_device(device, build_on_run=False)
    b2device.reinit()
    b2device.activate(build_on_run=False)
    set_common_prefs(prefs)
    serves = build_device.serves_jobs
    # The binary ties itself to the process that starts it (spawn_tied) before any work:
    # Brian2's before_start slot, ahead of the network's set-up (Linux; empty elsewhere).
    headers, tie = self_tie_code() if serves else ([], "")
    if tie:
        b2device.headers.extend(headers)
        b2device.insert_code("before_start", tie)
    bn = build_network(model, spec)
    placeholders, inputs = _placeholder_values(model, spec)
    assign_values(bn, placeholders)
    interface = _interface(bn, spec, placeholders, inputs)
    if serves:
        order_flag = f"{input_name()}.{WRITE_ORDER_VARIABLE}"
        opening, closing = job_loop_code(bn, set(placeholders), interface["outputs"], order_flag)
        b2device.insert_code("main", opening)
    b2device.apply_run_args()
    b2device.insert_code("main", _reseed_code(bn, build_device))
    before_run, after_run = _run_length_code(bn, spec)
    b2device.insert_code("before_network_run", before_run)
    b2device.insert_code("after_network_run", after_run)
    # No progress report in a compiled build: Brian2's report reads the process clock
    # before every code object of every step, a fifth of a short sleep's run time, and
    # the run's own length is a run argument, unknown here.
    bn.net.run(spec.n_steps * spec.dt * b2.second)
    if serves:
        b2device.insert_code("main", closing)
    tmp = building_dir(root, name)
    try:
        b2device.build(directory=str(tmp), compile=False, run=False, with_output=False)
        _make(tmp, device)
        if not (tmp / "main").is_file():
            raise BuildError(f"make finished but produced no binary in {tmp}")
        manifest = {
            "key": key,
            "device": device,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "model": model.describe(),
            "spec": asdict(spec),
            "compiler": toolchain,
            "arch": platform.machine(),
            "brian2": b2.__version__,
            "engine": ENGINE_VERSION,
            "interface": interface,
            "serves": serves,
            "ties_itself": bool(tie),
            "run_env": {
                **b2.prefs["devices.cpp_standalone.run_environment_variables"],
                **dict(b2device.run_environment_variables),
            },
        }
        if _read_engine_digest() != engine_source_digest():
            # This process generated code from the modules it imported, but the key
            # would name the files as they are now: publishing would give an old-code
            # binary the new code's key.
            raise BuildError(
                "the engine's source files changed since this process imported them "
                "(brainsleep/sleep/*.py or models/inputs.py); restart the run"
            )
        atomic_write_json(tmp / MANIFEST, manifest)
        (tmp / LAST_USED).touch()
        os.rename(tmp, root / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
