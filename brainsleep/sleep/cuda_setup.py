"""Find the CUDA pieces that brian2cuda's ``cuda_standalone`` device needs and set its prefs.

Why one file of this length: every workaround for one pinned brian2cuda release (nvcc,
cuRAND, GPU detection, prefs) lives together so it can be removed together.

brian2cuda 1.0a7 (the newest release for Python 3.11, pinned to brian2 2.8.0) generates a
CUDA project, compiles it with ``nvcc`` and links it against cuRAND (``-lcurand``). On the
machines this project runs on, three things need help:

* **cuRAND** is not always part of the CUDA toolkit (``/usr/local/cuda-13.0`` here has none).
  The PyPI wheel ``nvidia-curand`` ships headers and ``libcurand.so.10`` under
  ``site-packages/nvidia/cu13`` (CUDA 13 wheels) or ``site-packages/nvidia/curand`` (CUDA 12
  wheels), but no unversioned ``libcurand.so``, which the linker needs for ``-lcurand``.
  :func:`find_curand` creates that symlink in a user cache directory (the wheel itself may
  be read-only) and returns the include, library and link directories.
* **No GPU** (code generation and compilation still work): GPU detection with
  ``nvidia-smi`` must be switched off and the GPU id and compute capability given by hand
  (:func:`configure_cuda_prefs`).
* **CUDA 13** ships CCCL/Thrust 3, which needs C++17, while brian2cuda's makefile passes
  ``-std=c++11`` to nvcc and brian2's default gcc flags pass ``-std=c++11`` to the host
  compiler. A later ``-std=c++17`` wins for nvcc (it only warns "incompatible redefinition
  for option 'std'"); the host flags are replaced.

Typical use::

    from brainsleep.sleep.cuda_setup import configure_cuda_prefs
    from brian2 import set_device
    record = configure_cuda_prefs()          # before building; returns the prefs it set
    set_device("cuda_standalone", build_on_run=False, directory=build_dir)
    ...
    device.build(directory=build_dir, compile=True, run=gpu_available())

A fresh build of even a tiny network takes about 4 min on 2 cores (nvcc, ~35 files); the
size of the network hardly matters.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_COMPUTE_CAPABILITY",
    "CurandPaths",
    "configure_cuda_prefs",
    "find_curand",
    "find_nvcc",
    "gpu_available",
    "gpu_problem",
    "gpu_target",
    "nvcc_version",
]

#: Compute capability compiled for when no GPU can be asked: 9.0 is the Hopper class
#: (H100/H200), the GPUs this project's CUDA runs are expected on. Code compiled for
#: ``sm_90`` runs only on compute capability 9.x devices, so pass the right value when
#: building for another GPU (e.g. 8.0 for A100, 8.6/8.9 for RTX 30/40 series).
DEFAULT_COMPUTE_CAPABILITY = 9.0

#: brian2cuda refuses compute capabilities below this value.
MIN_COMPUTE_CAPABILITY = 5.0

#: Where CUDA toolkits are looked for after ``CUDA_PATH`` and ``PATH`` (globs, in order;
#: versioned directories newest first).
CUDA_ROOT_GLOBS: tuple[str, ...] = ("/usr/local/cuda", "/usr/local/cuda-*", "/opt/cuda")

_CURAND_MISSING = (
    "cuRAND not found (needed by brian2cuda's cuda_standalone): "
    "`pip install nvidia-curand` (or `pip install -e '.[cuda]'`), "
    "or install the CUDA toolkit's cuRAND (libcurand-dev / cuda-curand)"
)
_NVCC_MISSING = (
    "cuda_standalone needs nvcc (CUDA toolkit); install it or use --device cpp_standalone"
)


@dataclass(frozen=True)
class CurandPaths:
    """Where cuRAND's header and library are.

    Attributes
    ----------
    include_dir : Path
        Directory containing ``curand.h`` (passed as ``-I`` to nvcc and the host compiler).
    lib_dir : Path
        Directory containing the real shared library (``libcurand.so.10``); used as the
        binary's run path (``-rpath``) so that it finds the library when it runs.
    link_dir : Path
        Directory containing an unversioned ``libcurand.so`` for the linker (``-L``). Equal
        to `lib_dir` for a toolkit install; a symlink directory in the user cache for the
        PyPI wheel.
    source : str
        ``"toolkit"`` or ``"wheel"``.
    """

    include_dir: Path
    lib_dir: Path
    link_dir: Path
    source: str


# --------------------------------------------------------------------------- nvcc


def _cuda_roots_from_globs() -> list[Path]:
    roots: list[Path] = []
    for pattern in CUDA_ROOT_GLOBS:
        matches = sorted(glob.glob(pattern), key=_version_key, reverse=True)
        roots.extend(Path(m) for m in matches)
    return roots


def _version_key(path: str) -> tuple[int, ...]:
    """Sort key for ``/usr/local/cuda-12.4`` style names (newest first when reversed)."""
    tail = os.path.basename(path).rpartition("-")[2]
    parts = []
    for piece in tail.split("."):
        parts.append(int(piece) if piece.isdigit() else -1)
    return tuple(parts)


def find_nvcc() -> Path:
    """Locate the ``nvcc`` compiler.

    Looks, in order, at ``$CUDA_PATH/bin/nvcc``, ``nvcc`` on ``PATH``, then the toolkit
    directories in :data:`CUDA_ROOT_GLOBS` (``/usr/local/cuda``, ``/usr/local/cuda-*``
    newest first, ``/opt/cuda``).

    Returns
    -------
    Path
        Path of the ``nvcc`` executable (not resolved: ``/usr/local/bin/nvcc`` may be a
        wrapper script, which brian2cuda handles fine).

    Raises
    ------
    RuntimeError
        If no ``nvcc`` is found; the one-line message says what to do.
    """
    cuda_path = os.environ.get("CUDA_PATH")
    if cuda_path:
        candidate = Path(cuda_path) / "bin" / "nvcc"
        if _is_executable(candidate):
            return candidate
    on_path = shutil.which("nvcc")
    if on_path:
        return Path(on_path)
    for root in _cuda_roots_from_globs():
        candidate = root / "bin" / "nvcc"
        if _is_executable(candidate):
            return candidate
    raise RuntimeError(_NVCC_MISSING)


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _toolkit_roots(nvcc: Path | None = None) -> list[Path]:
    """CUDA toolkit directories worth searching for cuRAND, most specific first."""
    roots: list[Path] = []
    if os.environ.get("CUDA_PATH"):
        roots.append(Path(os.environ["CUDA_PATH"]))
    if nvcc is None:
        try:
            nvcc = find_nvcc()
        except RuntimeError:
            nvcc = None
    if nvcc is not None:
        roots.append(nvcc.resolve().parent.parent)
    roots.extend(_cuda_roots_from_globs())
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


# --------------------------------------------------------------------------- cuRAND


def _wheel_roots() -> list[Path]:
    """``site-packages/nvidia/<name>`` directories of installed NVIDIA wheels."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    roots: list[Path] = []
    for base in spec.submodule_search_locations:
        # nvidia/cu13 (CUDA 13 wheels) and nvidia/curand (CUDA 12 wheels)
        roots.extend(sorted(p for p in Path(base).iterdir() if p.is_dir()))
    return roots


def _curand_libs(lib_dir: Path) -> list[Path]:
    """Shared cuRAND libraries in `lib_dir`, the plain soname (``.so.10``) first."""
    libs = [p for p in lib_dir.glob("libcurand.so*") if p.is_file()]
    return sorted(libs, key=lambda p: (p.name.count("."), p.name))


def _default_cache_dir() -> Path:
    """``<cache root>/curand``, the cache root as for the rest of brainsleep.

    The root is :func:`brainsleep.paths.cache_root`, as for the data and the builds.
    """
    from brainsleep.paths import cache_root

    return cache_root() / "curand"


def _private_dir_problem(path: Path) -> str | None:
    """Why `path` is not a private directory of this user, or ``None`` when it is.

    Private: a real directory (not a symlink), owned by the current (effective) uid, that
    neither the group nor others may write to.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "it does not exist"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    uid = os.geteuid()  # the owner of what this process creates
    if st.st_uid != uid:
        return f"it is owned by uid {st.st_uid}, not by this user (uid {uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"its group or others may write to it (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _private_dir(path: Path) -> Path:
    """Create `path` with mode 0o700, or check that the existing one is private.

    Raises
    ------
    RuntimeError
        If `path` exists but is a symlink, not a directory, owned by another user or
        writable by group or others (see :func:`_private_dir_problem`).
    OSError
        If it cannot be created.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    problem = _private_dir_problem(path)
    if problem is not None:
        raise RuntimeError(
            f"refusing to put the libcurand.so link in {path}: {problem}; "
            "remove it (or, if it is yours, `chmod go-w` it)"
        )
    return path


def _place_link(link_dir: Path, lib: Path) -> Path:
    """Make ``link_dir/libcurand.so`` point at `lib` (atomically); return `link_dir`."""
    link = link_dir / "libcurand.so"
    if link.is_symlink() and os.readlink(link) == str(lib):
        return link_dir
    tmp = link_dir / f".libcurand.so.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(lib)
    os.replace(tmp, link)
    return link_dir


def _ensure_link_dir(lib: Path, cache_dir: Path | None) -> Path:
    """Create ``<cache>/<hash of lib dir>/libcurand.so -> lib`` and return its directory.

    The hash keeps several virtual environments (different wheels) apart; the symlink is
    created under a temporary name and renamed over the old one, so concurrent processes
    never see a missing or half-made link.

    Without `cache_dir`, the user cache (:func:`_default_cache_dir`) is tried first, then
    ``<tmp>/brainsleep-curand-<uid>``, then a fresh :func:`tempfile.mkdtemp` directory.
    Because the linker follows the link, every directory that holds it must be this
    user's alone: the per-hash directory, and in the shared temporary directory also
    ``brainsleep-curand-<uid>`` (a name anyone can predict and pre-create), are created
    with mode 0o700, and an existing one is used only when it is a real directory (not a
    symlink) owned by the current uid that neither group nor others may write to. One
    that fails this check is not used (a warning says why); with an explicit `cache_dir`
    it is an error.

    Raises
    ------
    RuntimeError
        If no directory could be used (with `cache_dir`: if it cannot be used).
    """
    digest = hashlib.sha256(str(lib.parent.resolve()).encode()).hexdigest()[:12]
    if cache_dir is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            return _place_link(_private_dir(cache_dir / digest), lib)
        except OSError as err:
            raise RuntimeError(f"cannot create a libcurand.so symlink: {err}") from err
    tmp_base = Path(tempfile.gettempdir()) / f"brainsleep-curand-{os.getuid()}"
    candidates: list[tuple[Path, bool]] = [(_default_cache_dir(), False), (tmp_base, True)]
    problems: list[str] = []
    refused: list[str] = []
    for base, shared in candidates:
        try:
            if shared:
                _private_dir(base)
            else:
                base.mkdir(parents=True, exist_ok=True)
            link_dir = _place_link(_private_dir(base / digest), lib)
        except RuntimeError as err:  # an unsafe directory: never used
            refused.append(str(err))
            problems.append(str(err))
            continue
        except OSError as err:  # read-only home etc.: try the next one
            problems.append(f"{base}: {err}")
            continue
        if refused:
            warnings.warn("; ".join(refused), RuntimeWarning, stacklevel=3)
        return link_dir
    try:
        fresh = Path(tempfile.mkdtemp(prefix=f"brainsleep-curand-{os.getuid()}-"))
        link_dir = _place_link(_private_dir(fresh / digest), lib)
    except (OSError, RuntimeError) as err:
        problems.append(str(err))
        raise RuntimeError("cannot create a libcurand.so symlink: " + "; ".join(problems)) from err
    if refused:
        warnings.warn(
            "; ".join(refused) + f"; using {link_dir} instead", RuntimeWarning, stacklevel=3
        )
    return link_dir


def find_curand(
    roots: Sequence[Path | str] | None = None, cache_dir: Path | str | None = None
) -> CurandPaths:
    """Locate cuRAND (header and shared library) for linking brian2cuda projects.

    A CUDA toolkit's own cuRAND is preferred (it matches nvcc); otherwise the PyPI wheel
    ``nvidia-curand`` is used. A root qualifies when it has ``include/curand.h`` and a
    ``libcurand.so*`` in ``lib64``, ``lib`` or ``targets/*/lib``. When the root has only a
    versioned library (the wheel ships ``libcurand.so.10``), a ``libcurand.so`` symlink is
    created in a user cache directory (``<cache root>/curand/<hash>``, the cache root being
    ``$BRAINSLEEP_CACHE``, else ``$XDG_CACHE_HOME/brainsleep``, else ``~/.cache/brainsleep``),
    because ``-lcurand`` only finds unversioned names and the wheel's directory may be
    read-only. Directories holding the link must be private to this user (see
    :func:`_ensure_link_dir`).

    Parameters
    ----------
    roots : sequence of path-like, optional
        Directories to search, in order. Default: the CUDA toolkits (``$CUDA_PATH``, the
        one of ``nvcc``, ``/usr/local/cuda*``, ``/opt/cuda``) then the installed
        ``site-packages/nvidia/*`` wheel directories.
    cache_dir : path-like, optional
        Where to create the symlink directory (default: the user cache, falling back to
        a private directory in the temporary directory).

    Returns
    -------
    CurandPaths
        Include, library and link directories and where they came from.

    Raises
    ------
    RuntimeError
        If cuRAND is not found; the one-line message names what to install.
    """
    search = _toolkit_roots() + _wheel_roots() if roots is None else [Path(r) for r in roots]
    cache = Path(cache_dir) if cache_dir is not None else None
    for root in search:
        source = "wheel" if root.parent.name == "nvidia" else "toolkit"
        include_dir = root / "include"
        if not (include_dir / "curand.h").is_file():
            continue
        lib_dirs = [root / "lib64", root / "lib"] + sorted(root.glob("targets/*/lib"))
        for lib_dir in lib_dirs:
            libs = _curand_libs(lib_dir) if lib_dir.is_dir() else []
            if not libs:
                continue
            if (lib_dir / "libcurand.so").exists():
                link_dir = lib_dir
            else:
                link_dir = _ensure_link_dir(libs[0], cache)
            return CurandPaths(
                include_dir=include_dir, lib_dir=lib_dir, link_dir=link_dir, source=source
            )
    raise RuntimeError(_CURAND_MISSING)


# --------------------------------------------------------------------------- GPU


def _nvidia_smi(*args: str) -> tuple[bool, str]:
    """Run ``nvidia-smi args``: ``(True, its output)``, or ``(False, why it gave none)``.

    Never raises: a missing ``nvidia-smi``, a failing driver or a timeout are reasons.
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False, "no NVIDIA driver here (nvidia-smi not found)"
    try:
        out = subprocess.run([smi, *args], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"nvidia-smi did not run ({exc})"
    if out.returncode != 0:
        said = next((ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()), "")
        return False, f"nvidia-smi failed ({said or f'exit status {out.returncode}'})"
    return True, out.stdout


def gpu_problem() -> str | None:
    """Why no NVIDIA GPU is usable here, in a few words; ``None`` when there is one.

    Usable: ``nvidia-smi -L`` runs and prints a ``GPU <n>:`` line. Never raises.

    Returns
    -------
    str or None
        E.g. ``"no NVIDIA driver here (nvidia-smi not found)"``, ``"nvidia-smi failed
        (No devices were found)"`` or ``"nvidia-smi lists no GPU"``; ``None`` with a GPU.
    """
    ok, out = _nvidia_smi("-L")
    if not ok:
        return out
    if not any(line.startswith("GPU ") for line in out.splitlines()):
        return "nvidia-smi lists no GPU"
    return None


def gpu_available() -> bool:
    """Whether an NVIDIA GPU is usable here (``nvidia-smi -L`` lists at least one).

    Never raises: a missing ``nvidia-smi``, a failing driver or a timeout give ``False``.

    Returns
    -------
    bool
        ``True`` if ``nvidia-smi -L`` ran successfully and printed a ``GPU <n>:`` line
        (:func:`gpu_problem` is ``None``).
    """
    return gpu_problem() is None


def gpu_target() -> tuple[str, str]:
    """The GPU architecture a ``cuda_standalone`` build here compiles for, and the driver.

    With a GPU, brian2cuda compiles for the visible GPU of the highest compute capability
    (``brian2cuda.utils.gputools.get_best_gpu``), which ``nvidia-smi --query-gpu=compute_cap``
    reports; without one, for :data:`DEFAULT_COMPUTE_CAPABILITY` (:func:`configure_cuda_prefs`).
    A driver too old to report compute capabilities is identified by its GPUs' names.

    Returns
    -------
    (str, str)
        The architecture, e.g. ``"sm_90"`` (or ``"gpu NVIDIA H100 80GB HBM3"`` on an old
        driver), and the driver version, e.g. ``"driver 580.65.06"`` (``"driver none"``
        without a GPU).
    """
    if not gpu_available():
        return _sm(DEFAULT_COMPUTE_CAPABILITY), "driver none"
    ok, out = _nvidia_smi("--query-gpu=compute_cap,driver_version", "--format=csv,noheader")
    rows = (
        [[c.strip() for c in ln.split(",")] for ln in out.splitlines() if ln.strip()] if ok else []
    )
    try:
        best = max(float(row[0]) for row in rows)
        return _sm(best), f"driver {rows[0][1]}"
    except (ValueError, IndexError):  # an old driver: no compute_cap field
        ok, out = _nvidia_smi("--query-gpu=name,driver_version", "--format=csv,noheader")
        rows = [[c.strip() for c in ln.rsplit(",", 1)] for ln in out.splitlines() if ln.strip()]
        names = sorted({row[0] for row in rows}) if ok and rows else ["unknown"]
        driver = rows[0][-1] if ok and rows else "unknown"
        return "gpu " + " + ".join(names), f"driver {driver}"


def _sm(compute_capability: float) -> str:
    """``9.0`` -> ``"sm_90"``, nvcc's name of the architecture."""
    major, minor = f"{float(compute_capability):.1f}".split(".")
    return f"sm_{major}{minor}"


def nvcc_version() -> str:
    """The release line of the ``nvcc`` a build uses (:func:`find_nvcc`), or ``"nvcc ?"``.

    Returns
    -------
    str
        The last line of ``nvcc --version``, e.g. ``"Build cuda_13.0.r13.0/compiler.36424714_0"``.
    """
    try:
        nvcc = find_nvcc()
        out = subprocess.run(
            [str(nvcc), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return "nvcc ?"
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    return lines[-1] if lines else "nvcc ?"


# --------------------------------------------------------------------------- prefs


def _merged(existing: Sequence[str] | None, extra: Sequence[str]) -> list[str]:
    merged = list(existing or [])
    for item in extra:
        if item not in merged:
            merged.append(item)
    return merged


def configure_cuda_prefs(
    compute_capability: float | None = None,
    *,
    fast_math: bool = False,
    make_jobs: int | None = None,
) -> dict[str, object]:
    """Set the brian2 / brian2cuda preferences a ``cuda_standalone`` build needs here.

    Call it before ``device.build`` (and again before every further build in the same
    process: brian2cuda's makefile generation modifies the nvcc-flags preference list in
    place). brian2cuda is imported lazily, so this module can be imported without it.

    What is set:

    * ``devices.cuda_standalone.cuda_backend.cuda_path``: the toolkit of :func:`find_nvcc`.
    * GPU selection: with a GPU (:func:`gpu_available`), ``detect_gpus=True`` and the given
      compute capability, if any (else brian2cuda asks ``nvidia-smi``). Without a GPU,
      ``detect_gpus=False``, ``gpu_id=0`` and ``compute_capability`` = the given value or
      :data:`DEFAULT_COMPUTE_CAPABILITY` (9.0, the H100/H200 class).
    * ``cuda_backend.extra_compile_args_nvcc``: ``-w -std=c++17 -I<curand include>`` plus
      ``--fmad=false`` (no fused multiply-add: closer to the CPU reference), or
      ``-use_fast_math`` when `fast_math` is true.
    * ``codegen.cpp.extra_compile_args_gcc`` (host compiler, via ``-Xcompiler``):
      ``-w -O3 -std=c++17`` plus ``-ffp-contract=off`` (or ``-ffast-math``); no
      ``-march=native``, so a binary built here also runs on another host CPU.
    * ``codegen.cpp.include_dirs`` / ``library_dirs`` / ``runtime_library_dirs``: cuRAND's
      include directory, the directory with ``libcurand.so`` (``-L``) and the one with the
      real library (run path), added to what is already there.
    * ``devices.cpp_standalone.extra_make_args_unix``: ``-j<make_jobs>`` instead of brian2's
      unbounded ``-j`` (which starts ~35 nvcc processes at once).

    Parameters
    ----------
    compute_capability : float, optional
        Compute capability to compile for (e.g. 9.0 for H100/H200, 8.0 for A100).
    fast_math : bool, optional
        Use ``-use_fast_math`` / ``-ffast-math`` (brian2cuda's default) instead of strict
        IEEE arithmetic without contraction. Default ``False``.
    make_jobs : int, optional
        Parallel make jobs (default: the number of CPUs).

    Returns
    -------
    dict
        Preference name -> value for everything set (copies, for the experiment's record),
        plus ``"cuda_setup.gpu_available"``, ``"cuda_setup.nvcc"`` and
        ``"cuda_setup.curand_source"``.

    Raises
    ------
    RuntimeError
        If nvcc or cuRAND is missing (see :func:`find_nvcc`, :func:`find_curand`).
    ValueError
        If `compute_capability` is below what brian2cuda supports (5.0).
    """
    import brian2cuda  # noqa: F401  (registers the cuda_standalone device and its prefs)
    from brian2 import prefs
    from brian2cuda.utils import gputools

    if compute_capability is not None:
        compute_capability = float(compute_capability)
        if compute_capability < MIN_COMPUTE_CAPABILITY:
            raise ValueError(
                f"compute capability {compute_capability} < {MIN_COMPUTE_CAPABILITY}, "
                "which brian2cuda does not support"
            )
    nvcc = find_nvcc()
    curand = find_curand()
    has_gpu = gpu_available()
    jobs = make_jobs if make_jobs is not None else (os.cpu_count() or 1)

    cb = "devices.cuda_standalone.cuda_backend."
    settings: dict[str, object] = {cb + "cuda_path": str(nvcc.parent.parent)}
    if has_gpu:
        settings[cb + "detect_gpus"] = True
        settings[cb + "gpu_id"] = None
        settings[cb + "compute_capability"] = compute_capability
    else:
        settings[cb + "detect_gpus"] = False
        settings[cb + "gpu_id"] = 0
        settings[cb + "compute_capability"] = (
            compute_capability if compute_capability is not None else DEFAULT_COMPUTE_CAPABILITY
        )
    settings[cb + "extra_compile_args_nvcc"] = [
        "-w",
        "-std=c++17",
        f"-I{curand.include_dir}",
        "-use_fast_math" if fast_math else "--fmad=false",
    ]
    settings["codegen.cpp.extra_compile_args_gcc"] = [
        "-w",
        "-O3",
        "-std=c++17",
        "-ffast-math" if fast_math else "-ffp-contract=off",
    ]
    settings["codegen.cpp.include_dirs"] = _merged(
        prefs["codegen.cpp.include_dirs"], [str(curand.include_dir)]
    )
    settings["codegen.cpp.library_dirs"] = _merged(
        prefs["codegen.cpp.library_dirs"], [str(curand.link_dir)]
    )
    settings["codegen.cpp.runtime_library_dirs"] = _merged(
        prefs["codegen.cpp.runtime_library_dirs"], [str(curand.lib_dir)]
    )
    settings["devices.cpp_standalone.extra_make_args_unix"] = [f"-j{jobs}"]

    for name, value in settings.items():
        prefs[name] = list(value) if isinstance(value, list) else value
    # brian2cuda caches the detected CUDA installation and GPU; forget them so that the
    # prefs just set are used.
    gputools.reset_cuda_installation()
    gputools.reset_gpu_selection()

    record = {k: list(v) if isinstance(v, list) else v for k, v in settings.items()}
    record["cuda_setup.gpu_available"] = has_gpu
    record["cuda_setup.nvcc"] = str(nvcc)
    record["cuda_setup.curand_source"] = curand.source
    return record
