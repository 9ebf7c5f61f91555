"""A compiled build shared by many runs and processes never returns a wrong result.

Every run reads inputs no other run can touch, any error the binary reports fails the
call, and what comes back is checked before it is used (issue 10).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brainsleep.sleep import SleepParams, run_sleep

REPO = Path(__file__).resolve().parents[1]
HAVE_CXX = shutil.which("g++") is not None or shutil.which("c++") is not None
pytestmark = [
    pytest.mark.standalone,
    pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler"),
]
SIZES = (40, 30, 20, 10)
N_STEPS = 300


def make_case():
    rng = np.random.default_rng(7)
    weights = [rng.uniform(-0.2, 0.5, (SIZES[k + 1], SIZES[k])) for k in range(len(SIZES) - 1)]
    inputs = rng.random((N_STEPS, SIZES[0])) * 0.8
    params = SleepParams.for_model(
        max_rate=200.0, inc=0.01, dec=0.005, v_thresh=[1.0] * 3, alphas=[1.0] * 3
    )
    return weights, inputs, params, 3


def save_case(path: Path, weights, inputs, params, seed) -> None:
    np.savez(
        path,
        n_layers=len(weights),
        **{f"w{k}": w for k, w in enumerate(weights)},
        inputs=inputs,
        max_rate=params["max_rate"],
        inc=params["inc"],
        dec=params["dec"],
        thresholds=np.asarray(params["v_thresh"]),
        alphas=np.asarray(params.alphas),
        seed=seed,
    )


@pytest.fixture(scope="module")
def solo(build_root):
    weights, inputs, params, seed = make_case()
    return run_sleep(
        weights, inputs, params, device="cpp_standalone", seed=seed, build_root=build_root
    )


def test_solo_result_is_sane(solo):
    counts = np.bincount(solo.spikes["layer"].values, minlength=len(SIZES))
    assert (counts > 0).all(), counts  # every layer fires: zero spikes would hide a fault


@pytest.mark.slow
def test_parallel_reruns_of_one_build_are_bit_identical(solo, build_root, tmp_path):
    """N processes x M reruns, identical inputs: each result equals the solo run."""
    n_proc, m = 3, 6
    case = tmp_path / "case.npz"
    save_case(case, *make_case())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.standalone_worker",
                str(case),
                str(build_root),
                str(tmp_path / f"p{p}"),
                str(m),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for p in range(n_proc)
    ]
    logs = [proc.communicate(timeout=600)[0].decode(errors="replace") for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), logs
    errors = sorted(tmp_path.glob("*.err"))
    assert not errors, errors[0].read_text()
    results = sorted(tmp_path.glob("p*-*.npz"))
    assert len(results) == n_proc * m
    for path in results:
        with np.load(path) as z:
            for k, w in enumerate(solo.weights):
                np.testing.assert_array_equal(z[f"w{k}"], w, err_msg=path.name)
            for var in ("layer", "neuron", "step"):
                np.testing.assert_array_equal(z[var], solo.spikes[var].values, err_msg=path.name)


def _build_dirs(build_root: Path) -> list[Path]:
    root = Path(build_root).resolve()
    return [p for p in root.iterdir() if p.is_dir() and (p / "main").exists()]


def test_stale_shared_input_file_is_never_read(solo, build_root):
    """A truncated run-argument file left in the build (a run killed while writing it,
    or another run's file) must not be read by a later run with the same inputs."""
    from hashlib import md5

    from brainsleep.sleep.network import weights_to_synapses

    weights, inputs, params, seed = make_case()
    for build in _build_dirs(build_root):
        static = build / "static_arrays"
        static.mkdir(exist_ok=True)
        for k, w in enumerate(weights, start=1):
            data = weights_to_synapses(w)
            name = f"init_syn{k}_w_{md5(data.data).hexdigest()}.dat"
            (static / name).write_bytes(data.tobytes()[:16])  # truncated
        x = np.asarray(inputs, dtype=np.float64)
        (static / f"init_x_in_values_{md5(x.data).hexdigest()}.dat").write_bytes(b"")
    res = run_sleep(
        weights, inputs, params, device="cpp_standalone", seed=seed, build_root=build_root
    )
    for w, w_solo in zip(res.weights, solo.weights, strict=True):
        np.testing.assert_array_equal(w, w_solo)
    np.testing.assert_array_equal(res.spikes["step"].values, solo.spikes["step"].values)


def _damaged_run_fails(monkeypatch, build_root, method, damage, match):
    """``StandaloneBuild.<method>`` runs, then ``damage(its result, its arguments)``: the
    sleep must fail with CompiledRunError."""
    from brainsleep.sleep import standalone

    original = getattr(standalone.StandaloneBuild, method)

    def run_then_damage(self, *args):
        out = original(self, *args)
        damage(out, *args)
        return out

    monkeypatch.setattr(standalone.StandaloneBuild, method, run_then_damage)
    weights, inputs, params, seed = make_case()
    with pytest.raises(standalone.CompiledRunError, match=match):
        run_sleep(
            weights, inputs, params, device="cpp_standalone", seed=seed, build_root=build_root
        )


@pytest.mark.parametrize("damage", ["truncate", "remove"])
def test_damaged_input_file_is_an_error_never_a_result(solo, build_root, monkeypatch, damage):
    """The binary prints "Error reading ..." and exits 0: the call must still fail."""

    def damage_args(args, *_):
        victim = Path(next(a for a in args if a.startswith("syn2.w=")).split("=", 1)[1])
        if damage == "truncate":
            victim.write_bytes(victim.read_bytes()[:100])
        else:
            victim.unlink()

    _damaged_run_fails(monkeypatch, build_root, "_write_args", damage_args, "syn2")


def test_missing_output_file_is_an_error(solo, build_root, monkeypatch):
    """A result file the binary did not write (or a truncated one) is never read as zeros."""

    def damage_results(lines, args, results, *_):
        victim = next(p for p in results.iterdir() if p.name.startswith("_dynamic_array_syn1_w"))
        victim.write_bytes(victim.read_bytes()[:-8])

    _damaged_run_fails(monkeypatch, build_root, "_execute", damage_results, "syn1.w")


def test_published_build_is_complete_and_runs_leave_nothing(solo, build_root):
    """One published directory per structure with its manifest; no run or temp dirs left."""
    from brainsleep.sleep.standalone import MANIFEST

    build = Path(solo.info["build_dir"])  # other tests may add builds to this root
    assert build in _build_dirs(build_root)
    assert (build / MANIFEST).is_file()
    leftovers = [
        p.name for p in Path(build_root).iterdir() if p.name.startswith((".building", ".trash"))
    ]
    assert not leftovers
    assert not list((Path(build_root) / "runs").iterdir())


def test_incomplete_build_directory_is_rebuilt_not_used(build_root, tmp_path):
    """A build directory without its manifest (a killed build of an older version) is
    replaced, never run."""
    from brainsleep.sleep.standalone import MANIFEST

    root = tmp_path / "builds"
    weights, inputs, params, seed = make_case()
    first = run_sleep(weights, inputs, params, device="cpp_standalone", seed=seed, build_root=root)
    (build,) = _build_dirs(root)
    (build / MANIFEST).unlink()
    (build / "main").write_bytes(b"not a binary")

    again = run_sleep(weights, inputs, params, device="cpp_standalone", seed=seed, build_root=root)
    for a, b in zip(first.weights, again.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (build / MANIFEST).is_file()


def test_interrupted_compile_says_so_and_publishes_nothing(tmp_path, monkeypatch):
    """Ctrl-C during the first compile: a KeyboardInterrupt that says what happened and
    that a rerun compiles again; no build, no half-built directory left."""
    from brian2 import prefs

    from brainsleep.sleep import standalone

    class InterruptedPopen:
        def __init__(self, *args, **kwargs):
            self.returncode = None

        def communicate(self):
            raise KeyboardInterrupt

        def kill(self):
            pass

        def wait(self):
            return -2

    started = []

    def spawn(cmd, **kwargs):  # only make is started (and interrupted) before the error
        started.append(cmd[0])
        return InterruptedPopen()

    monkeypatch.setattr(standalone, "spawn_tied", spawn)
    weights, inputs, params, seed = make_case()
    root = tmp_path / "builds"
    with pytest.raises(KeyboardInterrupt, match="interrupted while compiling.*rerunning"):
        run_sleep(weights, inputs[:5], params, device="cpp_standalone", seed=seed, build_root=root)
    assert started == [prefs.devices.cpp_standalone.make_cmd_unix]  # make is tied too
    assert not [p for p in root.iterdir() if p.is_dir() and p.name != "runs"]


def test_leftovers_of_killed_builds_and_runs_are_cleaned(solo, build_root):
    """A half-built directory and a run directory whose owners died are removed by the
    next process that uses the cache; the published build stays."""
    from brainsleep.sleep import standalone

    build = Path(solo.info["build_dir"])
    half = Path(build_root) / f".building-{build.name}-deadbeef"
    (half / "code_objects").mkdir(parents=True)
    dead_run = Path(build_root) / "runs" / "otherhost-1-abcdef"
    (dead_run / "args").mkdir(parents=True)
    standalone._CLEANED_ROOTS.clear()
    weights, inputs, params, seed = make_case()
    res = run_sleep(
        weights, inputs, params, device="cpp_standalone", seed=seed, build_root=build_root
    )
    assert not half.exists() and not dead_run.exists()
    assert build in _build_dirs(build_root)
    np.testing.assert_array_equal(res.weights[0], solo.weights[0])


NAN_MODEL_EDIT = ("w += pre_fired * inc * g - (1 - pre_fired) * dec * g", "w += sqrt(-1 - w * w)")


@pytest.mark.parametrize("device", ["runtime", "cpp_standalone"])
def test_model_producing_nan_weights_names_the_layer(device, build_root, tmp_path):
    """A rule whose update gives NaN: the call says so and in which layer, on every device
    (before: "synapses do not cover every (post, pre) pair; network corrupt")."""
    import hashlib

    from brainsleep.sleep import load_model
    from brainsleep.sleep.model import read_model

    src = (REPO / "models" / "src.py").read_text()
    assert NAN_MODEL_EDIT[0] in src
    path = tmp_path / "nan_rule.py"
    path.write_text(src.replace(*NAN_MODEL_EDIT))
    with pytest.raises(ValueError, match=r"NaN/inf weights in layer 1"):
        load_model(path)  # the model check runs it on a tiny network
    # The engine itself, given the unchecked model, says the same on this device.
    source = path.read_bytes()
    unchecked = read_model(path, source, hashlib.sha256(source).hexdigest())
    weights, inputs, params, seed = make_case()
    with pytest.raises(ValueError, match=r"NaN/inf weights in layer 1"):
        run_sleep(weights, inputs[:20], params, device=device, seed=seed, model=unchecked,
                  build_root=build_root)  # fmt: skip


def test_seed_range_is_the_same_on_every_device():
    weights, inputs, params, _ = make_case()
    for device in ("reference", "runtime", "cpp_standalone"):
        with pytest.raises(ValueError, match="seed must be an integer in 0..2147483647"):
            run_sleep(weights, inputs[:3], params, device=device, seed=2**31)


def test_build_is_compiled_with_the_exact_flags(solo, build_root):
    """The exactness flags reach the compiler (before: Brian2's defaults, -ffast-math and
    -march=native, replaced them and the weights differed from the oracle by 4e-18)."""
    from brainsleep.sleep.standalone import EXACT_GCC_FLAGS

    build = Path(solo.info["build_dir"])
    makefile = (build / "makefile").read_text()
    for flag in EXACT_GCC_FLAGS:
        assert flag in makefile
    for flag in ("-ffast-math", "-march=native"):
        assert flag not in makefile


def test_user_preferences_reach_the_build(tmp_path):
    """A Brian2 preference given by the user changes the build (its own key) and is used."""
    from brainsleep.sleep.standalone import EXACT_GCC_FLAGS

    weights, inputs, params, seed = make_case()
    flags = [*EXACT_GCC_FLAGS, "-DBRAINSLEEP_USER_FLAG"]
    run_sleep(
        weights, inputs[:5], params, device="cpp_standalone", seed=seed,
        build_root=tmp_path, prefs={"codegen.cpp.extra_compile_args_gcc": flags},
    )  # fmt: skip
    (build,) = _build_dirs(tmp_path)
    assert "-DBRAINSLEEP_USER_FLAG" in (build / "makefile").read_text()


def test_binary_is_tied_to_the_process_that_runs_it(solo, build_root, monkeypatch):
    """The binary starts through spawn_tied, so a killed worker leaves no orphan running
    (tests/test_children.py checks the tie itself)."""
    from brainsleep.sleep import standalone

    started = []
    tied = standalone.spawn_tied

    def recording_spawn(cmd, **kwargs):
        started.append(Path(cmd[0]).name)
        return tied(cmd, **kwargs)

    monkeypatch.setattr(standalone, "spawn_tied", recording_spawn)
    weights, inputs, params, seed = make_case()
    run_sleep(weights, inputs, params, device="cpp_standalone", seed=seed, build_root=build_root)
    assert started == ["main"]


def test_connection_order_is_checked_once_per_build_and_process(solo, build_root, monkeypatch):
    """The binary's synapse order is checked against the order the weights were written in
    (a wrong order would scramble every weight): a mismatch fails the call; once a build
    passed, later runs in the process skip the check (the order is generated code)."""
    from brainsleep.sleep import standalone

    weights, inputs, params, seed = make_case()
    real = standalone.synapse_order
    calls = []

    def swapped(n_in, n_out, order="pre"):
        calls.append(order)
        i, j = real(n_in, n_out, order)
        return i[::-1], j[::-1]  # not the build's order

    monkeypatch.setattr(standalone, "_ORDER_CHECKED", set())
    monkeypatch.setattr(standalone, "synapse_order", swapped)
    with pytest.raises(standalone.CompiledRunError, match="synaptic-major order"):
        run_sleep(
            weights, inputs, params, device="cpp_standalone", seed=seed, build_root=build_root
        )
    assert calls and not standalone._ORDER_CHECKED

    monkeypatch.setattr(standalone, "synapse_order", lambda *a: calls.append(a) or real(*a))
    calls.clear()
    for _ in range(2):
        again = run_sleep(
            weights, inputs, params, device="cpp_standalone", seed=seed, build_root=build_root
        )
        for a, b in zip(again.weights, solo.weights, strict=True):
            np.testing.assert_array_equal(a, b)
    assert len(calls) == len(SIZES) - 1  # the first of the two runs checked each layer once


def test_a_build_is_not_published_if_the_engine_changed_while_it_compiled(tmp_path, monkeypatch):
    """The key names the engine's files as the process imported them; if they change before
    the build is published (an edit during a long run), the binary was generated from the
    old modules: publishing it under the new files' key would hand it to later runs."""
    from brainsleep.sleep import standalone

    class DonePopen:  # make "succeeds" at once: the check comes before publishing
        returncode = 0

        def __init__(self, cmd, cwd, **kwargs):
            (Path(cwd) / "main").touch()  # what make leaves

        def communicate(self):
            return "", ""

        def kill(self):
            pass

        def wait(self):
            return 0

    monkeypatch.setattr(standalone, "spawn_tied", DonePopen)
    monkeypatch.setattr(standalone, "_read_engine_digest", lambda: "edited")
    weights, inputs, params, seed = make_case()
    root = tmp_path / "builds"
    with pytest.raises(standalone.BuildError, match="changed since this process imported"):
        run_sleep(weights, inputs[:5], params, device="cpp_standalone", seed=seed, build_root=root)
    assert not [p for p in root.iterdir() if p.is_dir() and p.name != "runs"]


def test_runs_after_the_order_check_write_back_only_what_is_read(solo, build_root, monkeypatch):
    """Brian2's binary writes every array when it ends; a job writes what is read back
    (brainsleep/sleep/job_loop.py): the weights and spike monitors, and the (pre, post)
    indices only until the order is checked. N_incoming and N_outgoing never (a call at
    full size wrote 57 MB, of which it read 19)."""
    from brainsleep.sleep import standalone

    files = []
    real_read = standalone.StandaloneBuild._read_results

    def record(self, results, *a, **k):
        files.append({p.name: p.stat().st_size for p in Path(results).iterdir()})
        return real_read(self, results, *a, **k)

    monkeypatch.setattr(standalone, "_ORDER_CHECKED", set())
    monkeypatch.setattr(standalone.StandaloneBuild, "_read_results", record)
    weights, inputs, params, seed = make_case()
    for _ in range(2):
        run_sleep(
            weights, inputs, params, device="cpp_standalone", seed=seed, build_root=build_root
        )
    first, later = files

    def size(run, part):
        names = [n for n in run if n.startswith(f"_dynamic_array_syn1_{part}_")]
        return run[names[0]] if names else None

    n_syn = SIZES[0] * SIZES[1]
    assert size(first, "w") == size(later, "w") == 8 * n_syn
    assert size(first, "_synaptic_pre") == size(first, "_synaptic_post") == 4 * n_syn
    assert size(later, "_synaptic_pre") is None and size(later, "_synaptic_post") is None
    for run in (first, later):
        assert size(run, "N_incoming") is None and size(run, "N_outgoing") is None
        # nothing else: per layer w (+ indices the first time), per monitor t, i, N
        expected = 3 * (1 + 2 * (run is first)) + 3 * 4 + 1  # + last_run_info.txt
        assert len(run) == expected, sorted(run)
