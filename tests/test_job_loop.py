"""A compiled binary that runs many jobs gives each the result a fresh process gives.

cpp_standalone builds are set up once and rerun per job in one running binary
(``brainsleep/sleep/job_loop.py``): every job must start from a fresh process's state,
whatever the jobs before it did, and a failed job must not leave a binary in an unknown
state behind.
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from brainsleep.sleep import SleepEngine, SleepParams, run_sleep
from brainsleep.sleep.job_loop import job_line

HAVE_CXX = shutil.which("g++") is not None or shutil.which("c++") is not None
SIZES = (40, 30, 20, 10)


def _case(seed: int, n_steps: int, scale: float = 1.0, **params):
    rng = np.random.default_rng(seed)
    weights = [
        scale * rng.uniform(-0.2, 0.5, (SIZES[k + 1], SIZES[k])) for k in range(len(SIZES) - 1)
    ]
    inputs = rng.random((n_steps, SIZES[0])) * 0.8
    values = dict(max_rate=200.0, inc=0.01, dec=0.005, v_thresh=[1.0] * 3, alphas=[1.0] * 3)
    values.update(params)
    return weights, inputs, SleepParams.for_model(**values)


# Jobs that differ in everything a job sets: weights, parameters, T, seed. The first
# leaves the hidden layers' potentials, last spike times and queues far from a fresh
# process's; the last repeats the first.
JOBS = [
    (_case(7, 300), 3),
    (_case(8, 120, scale=1.3, inc=0.05, dec=0.001, v_thresh=[0.6, 0.8, 0.7]), 11),
    (_case(9, 260, max_rate=90.0, decay=0.99), 0),
    (_case(7, 300), 3),
]


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights, strict=True)) and bool(
        a.spikes.equals(b.spikes)
    )


def test_job_line_refuses_what_would_split_a_job():
    assert job_line("/r/", ["a=/x", "b=/y"]) == "/r/\ta=/x\tb=/y\n"
    with pytest.raises(ValueError, match="tab or line break"):
        job_line("/r/", ["a=/x\ty"])
    with pytest.raises(ValueError, match="tab or line break"):
        job_line("/r\n/", [])


@pytest.mark.standalone
@pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler")
def test_jobs_in_one_binary_equal_fresh_processes(build_root):
    """Four different jobs in one binary: each equals the same job run alone."""
    with SleepEngine("cpp_standalone", build_root=build_root) as engine:
        held = [engine.run(w, x, p, seed=s) for (w, x, p), s in JOBS]
        starts = [r.info["binary_starts"] for r in held]
    alone = [
        run_sleep(w, x, p, "cpp_standalone", s, build_root=build_root) for (w, x, p), s in JOBS
    ]
    assert starts == [1, 1, 1, 1]  # one binary, set up once
    for k, (h, a) in enumerate(zip(held, alone, strict=True)):
        assert _same(h, a), f"job {k} in a running binary differs from the same job alone"
    assert not _same(held[0], held[1])  # the jobs do differ
    assert _same(held[0], held[3])
    counts = np.bincount(held[0].spikes["layer"].values, minlength=4)
    assert (counts[1:3] > 0).all(), counts  # the first job leaves state behind to restore
    # What is copied back before each job: the state, not the connection or the weights
    # (Brian2 names one array several ways: i, _presynaptic_idx, _synaptic_pre).
    main = (Path(held[0].info["build_dir"]) / "main.cpp").read_text()
    restored = re.findall(r"else (?:std::copy\(\S+ \S+ (\S+)\)|(\S+) = _bs_state)", main)
    restored = {a or b for a, b in restored}
    assert "brian::_array_layer1_v" in restored and "brian::_array_layer2_lastspike" in restored
    assert not [n for n in restored if "_synaptic_" in n or n.endswith("_w")], restored


@pytest.mark.standalone
@pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler")
def test_threads_sharing_an_engine_get_a_binary_each(build_root):
    """Trials on a worker's threads share one engine: jobs that run at the same time go
    to binaries of their own, each exact."""
    from concurrent.futures import ThreadPoolExecutor

    alone = [
        run_sleep(w, x, p, "cpp_standalone", s, build_root=build_root) for (w, x, p), s in JOBS
    ]
    barrier = threading.Barrier(2)

    def job(k):
        (w, x, p), s = JOBS[k % len(JOBS)]
        if k < 2:
            barrier.wait()  # the first two start together
        return engine.run(w, x, p, seed=s)

    with SleepEngine("cpp_standalone", build_root=build_root) as engine:
        with ThreadPoolExecutor(2) as pool:
            got = list(pool.map(job, range(8)))
        starts = max(r.info["binary_starts"] for r in got)
    # never more binaries than threads (the two first jobs may or may not overlap in
    # the binary: the first can end before the second takes one)
    assert 1 <= starts <= 2
    for k, r in enumerate(got):
        assert _same(r, alone[k % len(JOBS)]), f"job {k}"


ON_PRE_COUNTING = '"on_pre": "v_post += alpha * w\\narrivals += 1",'


@pytest.mark.standalone
@pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler")
def test_a_state_variable_added_to_a_model_is_restored(build_root, tmp_path):
    """A model file's own per-synapse state (here a count of presynaptic spikes that
    scales potentiation) starts every job from its initial value, as in a fresh process:
    the engine restores every state variable, not a list it knows."""
    from brainsleep.sleep.model import MODELS_DIR

    text = (MODELS_DIR / "src.py").read_text()
    edited = (
        text.replace(
            "w : 1                   # weight, copied from and back to the ANN",
            "w : 1                   # weight, copied from and back to the ANN\n"
            "        arrivals : 1            # presynaptic spikes so far",
        )
        .replace('"on_pre": "v_post += alpha * w",', ON_PRE_COUNTING)
        .replace(
            "w += pre_fired * inc * g - (1 - pre_fired) * dec * g",
            "w += pre_fired * inc * g * (1 + arrivals) - (1 - pre_fired) * dec * g",
        )
    )
    assert edited.count("arrivals") == 3
    model = tmp_path / "counting.py"
    model.write_text(edited)
    (w, x, p), seed = JOBS[0]
    with SleepEngine("cpp_standalone", model=model, build_root=build_root) as engine:
        first = engine.run(w, x, p, seed=seed)
        second = engine.run(w, x, p, seed=seed)
        assert second.info["binary_starts"] == 1
    assert _same(first, second)
    plain = run_sleep(w, x, p, "cpp_standalone", seed, build_root=build_root)
    assert not _same(first, plain)  # the count does change the result


@pytest.mark.standalone
@pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler")
def test_a_failed_job_stops_the_binary_and_the_next_starts_fresh(build_root, monkeypatch):
    """A job whose input file is damaged fails loudly; the binary that read it is
    stopped (its state is unknown) and the next job, in a new binary, is exact."""
    from brainsleep.sleep import standalone

    (w, x, p), seed = JOBS[1]
    with SleepEngine("cpp_standalone", build_root=build_root) as engine:
        good = engine.run(w, x, p, seed=seed)
        original = standalone.StandaloneBuild._write_args

        def truncate_weights(self, values, timed, args_dir):
            args = original(self, values, timed, args_dir)
            victim = args_dir / "syn2.w.dat"
            victim.write_bytes(victim.read_bytes()[:-8])
            return args

        monkeypatch.setattr(standalone.StandaloneBuild, "_write_args", truncate_weights)
        with pytest.raises(standalone.CompiledRunError, match="failed in a job"):
            engine.run(w, x, p, seed=seed)
        monkeypatch.undo()
        again = engine.run(w, x, p, seed=seed)
        assert again.info["binary_starts"] == 2
    assert _same(good, again)


# A process holding an engine whose binary is stuck in a job (blocked opening a run
# argument that is a FIFO nobody writes: mid-job, it reads no standard input, so only its
# tie ends it); the test kills that process.
HOLDER = """
import os, sys, threading, time
sys.path.insert(0, {tests!r})
from test_job_loop import JOBS
from brainsleep.sleep import SleepEngine, standalone
engine = SleepEngine("cpp_standalone", build_root={root!r})
(w, x, p), seed = JOBS[0]
engine.run(w, x, p, seed=seed)
original = standalone.StandaloneBuild._write_args
def fifo_weights(self, values, timed, args_dir):
    args = original(self, values, timed, args_dir)
    victim = args_dir / "syn1.w.dat"
    victim.unlink()
    os.mkfifo(victim)
    return args
standalone.StandaloneBuild._write_args = fifo_weights
threading.Thread(target=engine.run, args=(w, x, p), kwargs=dict(seed=seed), daemon=True).start()
time.sleep(1.0)
print("ready", flush=True)
time.sleep(120)
"""


def _children_named(parent: int, name: str) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        if comm == name and int(fields[1]) == parent and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.standalone
@pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler")
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_busy_binary_dies_with_the_process_that_holds_it(build_root):
    """The binary ties itself to the process that started it (it is started without
    forking Python: brainsleep/sleep/children.py); killed with SIGKILL, that process
    runs no clean-up, and the binary in the middle of a job must not live on. (One
    waiting for its next job would end anyway, at the end of its input.)"""
    import os
    import signal
    import subprocess
    import sys
    import time

    src = HOLDER.format(tests=str(Path(__file__).parent), root=str(build_root))
    holder = subprocess.Popen([sys.executable, "-c", src], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        (binary,) = _children_named(holder.pid, "main")
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while _running(binary):
        if time.monotonic() > deadline:
            os.kill(binary, signal.SIGKILL)  # no orphan left behind by a failure
            pytest.fail("the binary outlived the process that held it")
        time.sleep(0.05)


def _running(pid: int) -> list[int]:
    """[pid] while it runs (not gone, not a zombie waiting to be reaped), else []."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return [] if stat.rsplit(")", 1)[1].split()[0] == "Z" else [pid]
