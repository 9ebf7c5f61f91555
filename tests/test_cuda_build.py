"""cuda_standalone without a GPU: the engine's own project is generated and compiled by
nvcc, then a clear message replaces the run. Its own file: at minutes on 2 cores, the
suite's longest test gets a worker of its own under pytest-xdist."""

from __future__ import annotations

import shutil

import pytest

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
