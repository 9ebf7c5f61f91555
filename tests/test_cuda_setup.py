"""brainsleep.sleep.cuda_setup: finding nvcc / cuRAND, GPU detection, brian2cuda prefs,
and (marked ``cuda_build``, opt-in) a real cuda_standalone build without GPU."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from brainsleep.sleep import cuda_setup
from brainsleep.sleep.cuda_setup import (
    CurandPaths,
    configure_cuda_prefs,
    find_curand,
    find_nvcc,
    gpu_available,
)

# ----------------------------------------------------------------------------- helpers


def make_executable(path: Path, body: str = "exit 0") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def fake_curand_root(root: Path, lib_subdir: str = "lib", unversioned: bool = False) -> Path:
    (root / "include").mkdir(parents=True)
    (root / "include" / "curand.h").write_text("/* fake */\n")
    lib_dir = root / lib_subdir
    lib_dir.mkdir(parents=True)
    (lib_dir / "libcurand.so.10").write_bytes(b"\x7fELF fake")
    if unversioned:
        (lib_dir / "libcurand.so").symlink_to("libcurand.so.10")
    return lib_dir


@pytest.fixture
def no_cuda_anywhere(monkeypatch, tmp_path):
    """An environment without nvcc on PATH, without CUDA_PATH and no toolkit dirs."""
    empty_bin = tmp_path / "empty_bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setattr(cuda_setup, "CUDA_ROOT_GLOBS", (str(tmp_path / "no-cuda-*"),))
    return empty_bin


# ----------------------------------------------------------------------------- cuRAND


def test_find_curand_wheel_layout_creates_symlink_in_cache(tmp_path):
    root = tmp_path / "site-packages" / "nvidia" / "cu13"
    lib_dir = fake_curand_root(root)
    cache = tmp_path / "cache"

    paths = find_curand(roots=[root], cache_dir=cache)

    assert isinstance(paths, CurandPaths)
    assert paths.include_dir == root / "include"
    assert paths.lib_dir == lib_dir
    assert paths.source == "wheel"
    link = paths.link_dir / "libcurand.so"
    assert paths.link_dir.parent == cache
    assert link.is_symlink()
    assert Path(os.readlink(link)) == lib_dir / "libcurand.so.10"
    # the wheel directory itself is left untouched
    assert not (lib_dir / "libcurand.so").exists()
    # idempotent, and the same directory again
    assert find_curand(roots=[root], cache_dir=cache) == paths


def test_find_curand_replaces_stale_symlink(tmp_path):
    root = tmp_path / "nvidia" / "curand"  # CUDA 12 wheel layout
    lib_dir = fake_curand_root(root)
    cache = tmp_path / "cache"
    paths = find_curand(roots=[root], cache_dir=cache)
    link = paths.link_dir / "libcurand.so"
    link.unlink()
    link.symlink_to(tmp_path / "gone.so")

    again = find_curand(roots=[root], cache_dir=cache)

    assert Path(os.readlink(again.link_dir / "libcurand.so")) == lib_dir / "libcurand.so.10"


def test_find_curand_toolkit_with_unversioned_lib_needs_no_symlink(tmp_path):
    root = tmp_path / "cuda-12.4"
    lib_dir = fake_curand_root(root, lib_subdir="lib64", unversioned=True)
    cache = tmp_path / "cache"

    paths = find_curand(roots=[root], cache_dir=cache)

    assert paths.source == "toolkit"
    assert paths.lib_dir == lib_dir
    assert paths.link_dir == lib_dir
    assert not cache.exists()


def test_find_curand_skips_roots_without_library(tmp_path):
    headers_only = tmp_path / "cuda"
    (headers_only / "include").mkdir(parents=True)
    (headers_only / "include" / "curand.h").write_text("")
    wheel = tmp_path / "nvidia" / "cu13"
    fake_curand_root(wheel)

    paths = find_curand(roots=[headers_only, wheel], cache_dir=tmp_path / "cache")

    assert paths.include_dir == wheel / "include"


def test_find_curand_missing_says_what_to_install(tmp_path):
    with pytest.raises(RuntimeError) as info:
        find_curand(roots=[tmp_path / "nothing"], cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "pip install nvidia-curand" in message
    assert "\n" not in message


def test_find_curand_default_search_finds_installed_wheel_or_toolkit():
    try:
        paths = find_curand()
    except RuntimeError:
        pytest.skip("no cuRAND installed here")
    assert (paths.include_dir / "curand.h").is_file()
    assert (paths.link_dir / "libcurand.so").exists()
    assert any(paths.lib_dir.glob("libcurand.so*"))


# ----------------------------------------------------------------------------- link dirs


@pytest.fixture
def wheel_root(tmp_path):
    root = tmp_path / "site-packages" / "nvidia" / "cu13"
    fake_curand_root(root)
    return root


@pytest.fixture
def shared_tmp(tmp_path, monkeypatch):
    """The user cache is unusable (a file), the shared temp dir is tmp_path/tmp."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setattr(cuda_setup, "_default_cache_dir", lambda: blocker / "curand")
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setattr(cuda_setup.tempfile, "gettempdir", lambda: str(shared))
    return shared


def mode(path: Path) -> int:
    return path.lstat().st_mode & 0o777


def test_fallback_dir_is_created_private(wheel_root, shared_tmp):
    paths = find_curand(roots=[wheel_root])

    base = shared_tmp / f"brainsleep-curand-{os.getuid()}"
    assert paths.link_dir.parent == base
    assert mode(base) == 0o700
    assert mode(paths.link_dir) == 0o700
    assert (paths.link_dir / "libcurand.so").is_symlink()


def test_fallback_dir_that_is_a_symlink_is_not_used(wheel_root, shared_tmp, tmp_path):
    planted = tmp_path / "attacker"
    planted.mkdir()
    (shared_tmp / f"brainsleep-curand-{os.getuid()}").symlink_to(planted)

    with pytest.warns(RuntimeWarning, match="symlink"):
        paths = find_curand(roots=[wheel_root])

    assert list(planted.iterdir()) == []
    assert planted not in paths.link_dir.resolve().parents
    assert mode(paths.link_dir.parent) == 0o700
    assert (paths.link_dir / "libcurand.so").is_symlink()


def test_fallback_dir_writable_by_others_is_not_used(wheel_root, shared_tmp):
    base = shared_tmp / f"brainsleep-curand-{os.getuid()}"
    base.mkdir()
    base.chmod(0o777)

    with pytest.warns(RuntimeWarning, match="may write"):
        paths = find_curand(roots=[wheel_root])

    assert list(base.iterdir()) == []
    assert paths.link_dir.parent != base


def owned_by_another_user(monkeypatch, *paths: Path) -> None:
    """Make `paths` look owned by another uid (this process is root here)."""
    real_lstat = os.lstat
    other = os.geteuid() + 4242

    def lstat(path, *args, **kwargs):
        result = real_lstat(path, *args, **kwargs)
        if Path(path) in paths:
            fields = list(result[:10])
            fields[4] = other  # st_uid
            return os.stat_result(fields)
        return result

    monkeypatch.setattr(cuda_setup.os, "lstat", lstat)


def test_fallback_dir_owned_by_another_user_is_not_used(wheel_root, shared_tmp, monkeypatch):
    base = shared_tmp / f"brainsleep-curand-{os.getuid()}"
    base.mkdir(mode=0o700)
    owned_by_another_user(monkeypatch, base)

    with pytest.warns(RuntimeWarning, match="owned by uid"):
        paths = find_curand(roots=[wheel_root])

    assert list(base.iterdir()) == []
    assert paths.link_dir.parent != base
    assert mode(paths.link_dir.parent) == 0o700


def test_per_hash_dir_that_is_a_symlink_is_refused(wheel_root, tmp_path):
    cache = tmp_path / "cache"
    link_dir = find_curand(roots=[wheel_root], cache_dir=cache).link_dir
    for child in link_dir.iterdir():
        child.unlink()
    link_dir.rmdir()
    planted = tmp_path / "attacker"
    planted.mkdir()
    link_dir.symlink_to(planted)

    with pytest.raises(RuntimeError, match="symlink"):
        find_curand(roots=[wheel_root], cache_dir=cache)
    assert list(planted.iterdir()) == []


def test_per_hash_dir_owned_by_another_user_is_refused(wheel_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    link_dir = find_curand(roots=[wheel_root], cache_dir=cache).link_dir
    owned_by_another_user(monkeypatch, link_dir)

    with pytest.raises(RuntimeError, match="owned by uid"):
        find_curand(roots=[wheel_root], cache_dir=cache)


def test_unsafe_per_hash_dir_in_user_cache_falls_back(wheel_root, tmp_path, monkeypatch):
    user_cache = tmp_path / "user-cache" / "curand"
    monkeypatch.setattr(cuda_setup, "_default_cache_dir", lambda: user_cache)
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(cuda_setup.tempfile, "gettempdir", lambda: str(shared))
    first = find_curand(roots=[wheel_root]).link_dir
    assert first.parent == user_cache
    first.chmod(0o777)

    with pytest.warns(RuntimeWarning, match="may write"):
        second = find_curand(roots=[wheel_root]).link_dir

    assert second.parent == shared / f"brainsleep-curand-{os.getuid()}"


def test_curand_cache_follows_brainsleep_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAINSLEEP_CACHE", str(tmp_path / "bc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cuda_setup._default_cache_dir() == tmp_path / "bc" / "curand"
    monkeypatch.delenv("BRAINSLEEP_CACHE")
    assert cuda_setup._default_cache_dir() == tmp_path / "xdg" / "brainsleep" / "curand"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cuda_setup._default_cache_dir() == tmp_path / "home" / ".cache" / "brainsleep" / "curand"


def test_find_curand_default_link_dir_is_under_brainsleep_cache(wheel_root, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSLEEP_CACHE", str(tmp_path / "bc"))
    paths = find_curand(roots=[wheel_root])
    assert paths.link_dir.parent == tmp_path / "bc" / "curand"
    assert mode(paths.link_dir) == 0o700


# ----------------------------------------------------------------------------- nvcc


def test_find_nvcc_missing_raises_one_line(no_cuda_anywhere):
    with pytest.raises(RuntimeError) as info:
        find_nvcc()
    assert str(info.value) == (
        "cuda_standalone needs nvcc (CUDA toolkit); install it or use --device cpp_standalone"
    )


def test_find_nvcc_on_path(no_cuda_anywhere):
    nvcc = make_executable(no_cuda_anywhere / "nvcc")
    assert find_nvcc() == nvcc


def test_find_nvcc_prefers_cuda_path(no_cuda_anywhere, tmp_path, monkeypatch):
    make_executable(no_cuda_anywhere / "nvcc")
    toolkit_nvcc = make_executable(tmp_path / "toolkit" / "bin" / "nvcc")
    monkeypatch.setenv("CUDA_PATH", str(tmp_path / "toolkit"))
    assert find_nvcc() == toolkit_nvcc


def test_find_nvcc_newest_versioned_toolkit(no_cuda_anywhere, tmp_path, monkeypatch):
    for version in ("cuda-9.2", "cuda-12.4", "cuda-11.8"):
        make_executable(tmp_path / "opt" / version / "bin" / "nvcc")
    monkeypatch.setattr(cuda_setup, "CUDA_ROOT_GLOBS", (str(tmp_path / "opt" / "cuda-*"),))
    assert find_nvcc() == tmp_path / "opt" / "cuda-12.4" / "bin" / "nvcc"


# ----------------------------------------------------------------------------- GPU


def test_gpu_available_without_nvidia_smi(no_cuda_anywhere):
    assert gpu_available() is False


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('echo "GPU 0: NVIDIA H200 (UUID: GPU-1234)"', True),
        ('echo "No devices were found"', False),
        ('echo "NVIDIA-SMI has failed"; exit 9', False),
    ],
)
def test_gpu_available_reads_nvidia_smi(no_cuda_anywhere, body, expected):
    make_executable(no_cuda_anywhere / "nvidia-smi", body)
    assert gpu_available() is expected


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (None, "no NVIDIA driver here (nvidia-smi not found)"),
        ('echo "No devices were found"', "nvidia-smi lists no GPU"),
        ('echo "NVIDIA-SMI has failed"; exit 9', "nvidia-smi failed (NVIDIA-SMI has failed)"),
        ("exit 3", "nvidia-smi failed (exit status 3)"),
        ('echo "GPU 0: NVIDIA H200 (UUID: GPU-1234)"', None),
    ],
)
def test_gpu_problem_says_why_in_a_few_words(no_cuda_anywhere, body, problem):
    if body is not None:
        make_executable(no_cuda_anywhere / "nvidia-smi", body)
    assert cuda_setup.gpu_problem() == problem


def test_cuda_device_is_available_only_with_a_gpu_and_nvcc(no_cuda_anywhere, monkeypatch):
    """What an experiment checks at start: the GPU first (a CPU machine hears about the
    GPU, not about nvcc), then nvcc and cuRAND; one line each, saying what to do. The
    engine alone still builds without a GPU (check_toolchain)."""
    from brainsleep.sleep import get_device
    from brainsleep.sleep.devices import DeviceUnavailableError

    cuda = get_device("cuda_standalone")
    with pytest.raises(DeviceUnavailableError) as info:
        cuda.check_available()
    message = str(info.value)
    assert "\n" not in message and "needs an NVIDIA GPU" in message
    assert "nvidia-smi not found" in message and "--device cpp_standalone" in message
    make_executable(no_cuda_anywhere / "nvidia-smi", 'echo "GPU 0: NVIDIA H100 (UUID: x)"')
    with pytest.raises(DeviceUnavailableError, match="needs nvcc"):
        cuda.check_available()
    monkeypatch.setattr(cuda_setup, "find_nvcc", lambda: Path("/fake/nvcc"))
    monkeypatch.setattr(cuda_setup, "find_curand", lambda: None)
    cuda.check_available()  # a GPU, nvcc and cuRAND: available
    (no_cuda_anywhere / "nvidia-smi").unlink()
    cuda.check_toolchain()  # no GPU: the engine may still build


def test_gpu_target_of_an_old_driver_names_the_gpus(no_cuda_anywhere):
    """A driver without the compute_cap query: the GPUs' names stand for the architecture."""
    make_executable(
        no_cuda_anywhere / "nvidia-smi",
        'case "$1" in -L) echo "GPU 0: Tesla V100 (UUID: x)";; '
        '--query-gpu=compute_cap*) echo "Field compute_cap is not a valid field"; exit 2;; '
        '*) echo "Tesla V100-SXM2-16GB, 470.57.02";; esac',
    )
    assert cuda_setup.gpu_target() == ("gpu Tesla V100-SXM2-16GB", "driver 470.57.02")


# ----------------------------------------------------------------------------- prefs


@pytest.fixture
def restore_prefs():
    import brian2cuda  # noqa: F401  (registers the prefs that get backed up)
    from brian2 import prefs

    prefs._backup()
    yield prefs
    prefs._restore()


@pytest.fixture
def fake_toolchain(monkeypatch, tmp_path):
    curand = CurandPaths(
        include_dir=tmp_path / "inc",
        lib_dir=tmp_path / "lib",
        link_dir=tmp_path / "link",
        source="wheel",
    )
    nvcc = tmp_path / "cuda" / "bin" / "nvcc"
    monkeypatch.setattr(cuda_setup, "find_curand", lambda: curand)
    monkeypatch.setattr(cuda_setup, "find_nvcc", lambda: nvcc)
    monkeypatch.setattr(cuda_setup, "gpu_available", lambda: False)
    return curand, nvcc


CB = "devices.cuda_standalone.cuda_backend."


def test_configure_cuda_prefs_without_gpu(restore_prefs, fake_toolchain):
    prefs = restore_prefs
    curand, nvcc = fake_toolchain

    record = configure_cuda_prefs(make_jobs=3)

    assert prefs[CB + "detect_gpus"] is False
    assert prefs[CB + "gpu_id"] == 0
    assert prefs[CB + "compute_capability"] == 9.0
    assert prefs[CB + "cuda_path"] == str(nvcc.parent.parent)
    nvcc_args = prefs[CB + "extra_compile_args_nvcc"]
    assert "-std=c++17" in nvcc_args
    assert f"-I{curand.include_dir}" in nvcc_args
    assert "--fmad=false" in nvcc_args and "-use_fast_math" not in nvcc_args
    host_args = prefs["codegen.cpp.extra_compile_args_gcc"]
    assert "-std=c++17" in host_args and "-std=c++11" not in host_args
    assert "-ffp-contract=off" in host_args
    assert "-march=native" not in host_args
    assert str(curand.include_dir) in prefs["codegen.cpp.include_dirs"]
    assert str(curand.link_dir) in prefs["codegen.cpp.library_dirs"]
    assert str(curand.lib_dir) in prefs["codegen.cpp.runtime_library_dirs"]
    assert prefs["devices.cpp_standalone.extra_make_args_unix"] == ["-j3"]

    expected_keys = {
        CB + "cuda_path",
        CB + "detect_gpus",
        CB + "gpu_id",
        CB + "compute_capability",
        CB + "extra_compile_args_nvcc",
        "codegen.cpp.extra_compile_args_gcc",
        "codegen.cpp.include_dirs",
        "codegen.cpp.library_dirs",
        "codegen.cpp.runtime_library_dirs",
        "devices.cpp_standalone.extra_make_args_unix",
        "cuda_setup.gpu_available",
        "cuda_setup.nvcc",
        "cuda_setup.curand_source",
    }
    assert set(record) == expected_keys
    for key in expected_keys - {k for k in expected_keys if k.startswith("cuda_setup.")}:
        assert record[key] == prefs[key], key
    # the record is a copy: brian2cuda mutating the pref list does not change it
    prefs[CB + "extra_compile_args_nvcc"].append("-NDEBUG")
    assert "-NDEBUG" not in record[CB + "extra_compile_args_nvcc"]
    assert record["cuda_setup.gpu_available"] is False


def test_configure_cuda_prefs_is_idempotent(restore_prefs, fake_toolchain):
    prefs = restore_prefs
    first = configure_cuda_prefs()
    second = configure_cuda_prefs()
    assert first == second
    assert prefs["codegen.cpp.library_dirs"].count(str(fake_toolchain[0].link_dir)) == 1


def test_configure_cuda_prefs_compute_capability(restore_prefs, fake_toolchain):
    prefs = restore_prefs
    configure_cuda_prefs(8)
    assert prefs[CB + "compute_capability"] == 8.0
    assert isinstance(prefs[CB + "compute_capability"], float)
    with pytest.raises(ValueError):
        configure_cuda_prefs(3.5)


def test_configure_cuda_prefs_with_gpu_detects(restore_prefs, fake_toolchain, monkeypatch):
    prefs = restore_prefs
    monkeypatch.setattr(cuda_setup, "gpu_available", lambda: True)
    record = configure_cuda_prefs(fast_math=True)
    assert prefs[CB + "detect_gpus"] is True
    assert prefs[CB + "gpu_id"] is None
    assert prefs[CB + "compute_capability"] is None
    assert "-use_fast_math" in prefs[CB + "extra_compile_args_nvcc"]
    assert record["cuda_setup.gpu_available"] is True


def test_configure_cuda_prefs_missing_nvcc(restore_prefs, no_cuda_anywhere):
    with pytest.raises(RuntimeError, match="needs nvcc"):
        configure_cuda_prefs()


# ----------------------------------------------------------------------------- real build


# ------------------------------------------------- the engine's own project, compiled by nvcc
# Here, beside the setup tests: pytest-xdist (make test, --dist loadfile) starts files with
# more tests first, so this minutes-long build starts early instead of last.

CUDA_SCRIPT = """
import sys
import numpy as np
from brainsleep.sleep import SleepParams, run_sleep
from brainsleep.sleep.devices import DeviceUnavailableError
from brainsleep.sleep.cuda_setup import gpu_available
rng = np.random.default_rng(0)
w = [rng.uniform(-0.3, 0.6, (10, 20)), rng.uniform(-0.3, 0.6, (5, 10))]
p = SleepParams.for_model(max_rate=300, inc=0.01, dec=0.005, v_thresh=[0.8, 0.8], alphas=[1, 1])
try:
    r = run_sleep(w, np.full((30, 20), 0.5), p, device="cuda_standalone", build_root=sys.argv[1])
    print("RAN", r.spikes.sizes["spike"])
except DeviceUnavailableError as exc:
    print("UNAVAILABLE", exc)
"""


def run_cuda_script(text: str, tmp_path, timeout: int):
    """Run ``text`` as a script with the build root ``tmp_path/builds`` as its argument, in
    a separate process (Brian2's device and the CUDA prefs are process-global); it must
    exit 0."""
    import subprocess
    import sys

    script = tmp_path / "cuda_script.py"
    script.write_text(text)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "builds")],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


@pytest.mark.cuda_build
@pytest.mark.slow
def test_cuda_standalone_generates_and_compiles(tmp_path):
    """The engine's own cuda_standalone path: code generation and nvcc compilation work
    without a GPU; then a clear message instead of a run (minutes on 2 cores)."""
    import subprocess

    from brainsleep.sleep.cuda_setup import find_curand, find_nvcc, gpu_available

    try:
        find_nvcc()
        find_curand()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    proc = run_cuda_script(CUDA_SCRIPT, tmp_path, timeout=2400)
    if gpu_available():
        assert "RAN" in proc.stdout
        return
    assert "UNAVAILABLE cuda_standalone: the project was generated and compiled" in proc.stdout
    (out,) = [p for p in (tmp_path / "builds").glob("cuda_standalone-*") if p.is_dir()]
    assert (out / "main").is_file()
    post = (out / "code_objects" / "syn1_post_codeobject.cu").read_text()
    assert "_brian_exp(" in post and "lastspike_pre == t" in post
    main = (out / "main.cu").read_text()
    applied = main.index("set_from_command_line(args);")
    assert main.index("random_number_buffer.set_seed(") > applied  # seed is a run argument
    objects = (out / "objects.cu").read_text()
    for name in (
        "layer0.brainsleep_seed",
        "layer1.v_thresh",
        "syn1.w",
        "syn2.alpha",
        "x_in.values",
    ):
        assert f'name == "{name}"' in objects, name
    if shutil.which("ldd"):
        ldd = subprocess.run(["ldd", str(out / "main")], capture_output=True, text=True)
        assert "libcurand.so" in ldd.stdout and "not found" not in ldd.stdout
