#!/usr/bin/env python
"""Engine speed: QUIET, ACTIVE and WIDE on every CPU engine, side by side in one run.

Usage (from the repository root)::

    python benchmarks/bench_engine.py                  # full run -> benchmarks/engine_speed.md
    python benchmarks/bench_engine.py --quick          # short T, no runtime, no "before"
    python benchmarks/bench_engine.py --before e0b41b7 # also the engine of that commit

Workloads (issue 11; the trained 784-1200-1200-10 / 784-2400-2400-10 nets of
``workloads.py``, masked mean-image input, seed 0):

- QUIET: the ``reduced_mnist_10ep`` preset, T = 20000: hidden layers nearly silent;
- ACTIVE: thresholds x0.3, dec x0.001, T = 1000: the hidden layers keep firing;
- WIDE: 784-2400-2400-10 with the preset, T = 20000.

Rows per workload: the numpy reference (``exact_exp=False``, the fair speed reference:
ratio 1), the vectorised torch float64 peer (``torch_peer.py``, one thread), Brian2
runtime (numpy target), cpp_standalone's first call in a cold build cache (compile + run)
and its whole ``run_sleep`` call with the cached binary, the same call at T = 100 (the
fixed cost of a call: process start, synapse creation, Brian2's spike-queue set-up,
reading and writing the arrays), the same two calls in a held ``SleepEngine`` whose
binary keeps running between calls (set up once; what a search or a study's cells use),
and with ``--before REF`` the
same two for the engine at git commit REF (run from an exported copy of that commit).
Timed calls are the best of ``--repeats`` (wall; CPU seconds beside them). The
memory-traffic floor (``floor.py``) comes from the cached run's own spike counts and
this machine's bandwidth, measured at the start; the exact-arithmetic floor
(``arith_floor.py``) is the time of the run's Hebbian updates alone in a tight C++ loop
with the engine's exactness flags (libm's scalar ``exp``): the floor for a
single-threaded exact engine built on that ``exp``. Every ratio is against the reference
measured in the same run. Tests never assert these times.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from arith_floor import arithmetic_floor_seconds, hebbian_updates  # noqa: E402
from floor import floor_seconds, measure_bandwidth, traffic_bytes  # noqa: E402
from harness import log, machine_info  # noqa: E402
from workloads import CACHE, QUIET, Workload, load_data, load_net, make_params, prepare_net  # noqa: E402

DEFAULT_OUT = HERE / "engine_speed.md"
ACTIVE = Workload("active", 0.3, 1e-3, doc="thresholds x0.3, dec x0.001")
# name -> (workload, hidden width multiple, T)
WORKLOADS = {"QUIET": (QUIET, 1, 20000), "ACTIVE": (ACTIVE, 1, 1000), "WIDE": (QUIET, 2, 20000)}

# Runs one workload on the engine of an exported commit; prints one JSON line. Only the
# public run_sleep API is used, which that engine shares with this one.
BEFORE_WORKER = r"""
import json, resource, sys, time
import numpy as np
from brainsleep.sleep import MaskedMeanImage, run_sleep
from brainsleep.sleep.params import params_from_set, preset
a = json.loads(sys.argv[1])
z = np.load(a["net"], allow_pickle=False)
n = sum(1 for k in z.files if k.startswith("w") and k[1:].isdigit())
w = [z[f"w{k}"] for k in range(n)]
p = preset(a["preset"])
p["v_thresh"] = [t * a["thresh_scale"] for t in p["v_thresh"]]
p["dec"] = p["dec"] * a["dec_scale"]
params = params_from_set(p, [float(x) for x in z["base_alphas"]])
inp = MaskedMeanImage(z["mean_image"], n_steps=a["steps"])
out = {}
for phase in ["first"] + ["cached"] * a["repeats"]:
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = run_sleep(w, inp, params, device="cpp_standalone", record_layers="hidden",
                  build_root=a["build_root"])
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
    if phase == "first":
        out["first"] = {"wall": wall, "compile": r.info.get("compile_seconds", 0.0)}
    elif wall < out.get("cached", {}).get("wall", 1e9):
        out["cached"] = {"wall": wall, "cpu": cpu}
print("RESULT " + json.dumps(out))
"""


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help=f"markdown (default {DEFAULT_OUT})")
    p.add_argument("--quick", action="store_true", help="T / 10, no runtime, no 'before'")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per row (best kept)")
    p.add_argument("--before", default=None, help="git commit of the engine to compare with")
    p.add_argument("--no-runtime", dest="runtime", action="store_false")
    p.add_argument("--no-trial", dest="trial", action="store_false", help="skip the search trial")
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    a = p.parse_args(argv)
    if a.quick:
        a.runtime, a.before = False, None
    a.out = a.out or (CACHE / "engine_speed_quick.md" if a.quick else DEFAULT_OUT)
    return a


def best_of(fn, repeats: int) -> dict:
    """Best wall time of ``repeats`` calls, with this process's and children's CPU time."""
    best = None
    for _ in range(repeats):
        c0, p0, t0 = (
            resource.getrusage(resource.RUSAGE_CHILDREN),
            time.process_time(),
            time.perf_counter(),
        )
        value = fn()
        wall = time.perf_counter() - t0
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = time.process_time() - p0 + c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
        if best is None or wall < best["wall"]:
            best = {"wall": wall, "cpu": cpu, "value": value}
    return best


def counts_of(spikes) -> list[int]:
    """Spikes per layer of a SleepResult's dataset or an oracle-style spike list."""
    if isinstance(spikes, list):
        return [-1 if s is None else len(s[0]) for s in spikes]
    layer = spikes["layer"].values
    n = int(spikes.attrs["layer_sizes"].size)
    return [int(np.count_nonzero(layer == k)) for k in range(n)]


def measure(name: str, a, bandwidth: dict, build_root: Path) -> list[dict]:
    from torch_peer import simulate_torch

    from brainsleep.sleep import MaskedMeanImage, SleepEngine, run_sleep
    from brainsleep.sleep.reference import simulate_reference

    wl, width, steps = WORKLOADS[name]
    steps = max(100, steps // 10) if a.quick else steps
    w, base, mean_img, sizes = load_net(prepare_net(width, load_data(), log))
    params = make_params(wl.spec(), base)
    inp = MaskedMeanImage(mean_img, n_steps=steps)
    rows = []

    def row(engine, phase, m, counts=None, notes=""):
        rows.append({"workload": name, "sizes": "-".join(map(str, sizes)), "T": steps,
                     "engine": engine, "phase": phase, "wall": m.get("wall"),
                     "cpu": m.get("cpu"), "counts": counts, "notes": notes})  # fmt: skip
        log(f"{name} {engine} {phase}: {m.get('wall', float('nan')):.2f} s {notes}")

    # every path's first call pays its one-time imports outside the timing
    simulate_reference(w, MaskedMeanImage(mean_img, n_steps=2), params, exact_exp=False)
    ref = best_of(lambda: simulate_reference(w, inp, params, exact_exp=False), a.repeats)
    ref_counts = counts_of(ref["value"][1])
    row("numpy reference", "run (exact_exp=False)", ref, ref_counts)
    simulate_torch(w, MaskedMeanImage(mean_img, n_steps=2), params)
    peer = best_of(lambda: simulate_torch(w, inp, params, threads=1), a.repeats)
    row("torch float64 peer", "run, 1 thread", peer, counts_of(peer["value"][1]))
    if a.runtime:
        rt = best_of(lambda: run_sleep(w, inp, params, device="runtime", record_layers="all"), 1)
        row("Brian2 runtime", "run (numpy target)", rt, counts_of(rt["value"].spikes))

    def cpp():
        return run_sleep(w, inp, params, device="cpp_standalone", record_layers="all",
                         build_root=build_root)  # fmt: skip

    first = best_of(cpp, 1)
    compiled = first["value"].info["compile_seconds"]
    note = (
        f"compile {compiled:.1f} s" if compiled else "no compile: the build of another T is reused"
    )
    row("cpp_standalone", "first call, cold cache", first, notes=note)
    cached = best_of(cpp, a.repeats)
    counts = counts_of(cached["value"].spikes)
    traffic = traffic_bytes(sizes, counts, steps)
    floor = floor_seconds(traffic, bandwidth)
    binary = cached["value"].info["run_seconds"]
    updates = hebbian_updates(sizes, counts)
    arith = arithmetic_floor_seconds(updates)
    row("cpp_standalone", "whole run_sleep call, cached binary", cached, counts,
        f"binary {binary:.2f} s; floor {floor * 1e3:.0f} ms "
        f"({traffic['total_bytes'] / 1e6:.0f} MB), call = {cached['wall'] / floor:.0f}x floor; "
        f"exact-arithmetic floor {arith * 1e3:.0f} ms ({updates / 1e6:.1f} M Hebbian updates, "
        f"{arith / ref['wall']:.2f}x numpy), call = {cached['wall'] / max(arith, 1e-9):.1f}x it")  # fmt: skip
    # What a call costs besides its steps: the same build run for 100 steps (process
    # start, synapse creation, Brian2's spike-queue set-up, reading and writing arrays).
    short = MaskedMeanImage(mean_img, n_steps=100)
    fixed = best_of(lambda: run_sleep(w, short, params, device="cpp_standalone",
                                      record_layers="all", build_root=build_root), a.repeats)  # fmt: skip
    row("cpp_standalone", "fixed cost: whole call at T = 100", fixed,
        counts_of(fixed["value"].spikes),
        f"binary {fixed['value'].info['run_seconds']:.2f} s; "
        f"{fixed['wall'] / cached['wall']:.0%} of the cached call above")  # fmt: skip
    # A held engine (what a search and a study's cells use) keeps its binary running,
    # set up once: each call is one job in it (brainsleep/sleep/job_loop.py).
    with SleepEngine("cpp_standalone", build_root=build_root) as engine:
        engine.run(w, short, params, record_layers="all")  # starts and sets up the binary
        # CPU "-": the running binary is not a finished child, so getrusage misses it.
        held = best_of(lambda: engine.run(w, inp, params, record_layers="all"), a.repeats)
        held["cpu"] = None
        row("cpp_standalone", "held engine: call in its running binary", held,
            counts_of(held["value"].spikes),
            f"job {held['value'].info['run_seconds']:.2f} s; binary set up once per engine; "
            f"{held['wall'] / cached['wall']:.0%} of the one-shot call")  # fmt: skip
        held_fixed = best_of(lambda: engine.run(w, short, params, record_layers="all"), a.repeats)
        held_fixed["cpu"] = None
        row("cpp_standalone", "held engine fixed cost: call at T = 100", held_fixed,
            counts_of(held_fixed["value"].spikes),
            f"job {held_fixed['value'].info['run_seconds']:.2f} s")  # fmt: skip
        starts = held_fixed["value"].info["binary_starts"]
        if starts != 1:
            raise RuntimeError(f"the held engine started {starts} binaries, expected 1")
    if a.before:
        rows += measure_before(name, a, wl, width, steps)
    for r in rows:
        r["ratio"] = r["wall"] / ref["wall"]
        own = r["counts"] if r["counts"] and min(r["counts"]) >= 0 else counts
        r["events"] = traffic_bytes(sizes, own, steps)["events"]
    return rows


def measure_before(name: str, a, wl: Workload, width: int, steps: int) -> list[dict]:
    """The cpp_standalone rows for the engine of commit ``a.before``, in a subprocess."""
    tree = Path(tempfile.mkdtemp(prefix="brainsleep-before-"))
    try:
        archive = subprocess.run(
            ["git", "archive", a.before], cwd=REPO, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        spec = {"net": str(prepare_net(width, load_data(), log)), "preset": "reduced_mnist_10ep",
                "thresh_scale": wl.thresh_scale, "dec_scale": wl.dec_scale, "steps": steps,
                "repeats": a.repeats, "build_root": str(tree / "builds")}  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(tree)}
        proc = subprocess.run([sys.executable, "-c", BEFORE_WORKER, json.dumps(spec)], cwd=tree,
                              env=env, capture_output=True, text=True)  # fmt: skip
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            raise RuntimeError(f"the engine of {a.before} failed:\n{proc.stderr[-2000:]}")
        got = json.loads(lines[-1][len("RESULT ") :])
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    sizes = "-".join(map(str, (784, 1200 * width, 1200 * width, 10)))
    base = {"workload": name, "sizes": sizes, "T": steps, "engine": f"cpp_standalone @ {a.before}", "counts": None}  # fmt: skip
    return [
        {**base, "phase": "first call, cold cache", "wall": got["first"]["wall"], "cpu": None,
         "notes": f"compile {got['first']['compile']:.1f} s (before)"},
        {**base, "phase": "whole run_sleep call, cached binary", **got["cached"], "notes": "before"},
    ]  # fmt: skip


def measure_trial(a) -> dict:
    """A search trial end to end vs the sleep run inside it (MNIST 10 %, the default cell).

    The trial is :meth:`CellRunner.trial` (alphas, input, sleep, read-back, validation
    accuracy); the sleep run is the engine call it makes, with the same values.
    """
    from brainsleep import ann
    from brainsleep.experiment.__main__ import build_parser, config_from_args
    from brainsleep.experiment.config import start_params
    from brainsleep.experiment.pipeline import CellRunner, cells
    from brainsleep.experiment.pipeline import load_data as load_cell_data
    from brainsleep.normalize import alphas_for_model
    from brainsleep.sleep.inputs import make_sleep_input
    from brainsleep.sleep.params import params_from_set

    out = Path(tempfile.mkdtemp(prefix="brainsleep-bench-trial-"))
    try:
        argv = ["--fractions", "0.1", "--out", str(out / "run"), "--build-root", str(out / "b")]
        cfg = config_from_args(build_parser().parse_args(argv + ["--no-progress"]))
        cell = cells(cfg)[0]
        runner = CellRunner(cfg, cell, load_cell_data(cfg)[cell.dataset], out / "run")
        model = runner.baseline()
        p = start_params(cfg)
        runner.trial(model, p)  # compiles, outside the timing
        trial = best_of(lambda: runner.trial(model, p), a.repeats)
        norm = alphas_for_model(model, runner.x)
        params = params_from_set(p, norm.alphas, runner.engine.model)
        inputs = make_sleep_input(cfg.sleep_input, runner.x, runner.y, cfg.sleep_steps)
        weights = ann.get_weights(model)
        sleep = best_of(
            lambda: runner.engine.run(weights, inputs, params, seed=0, record_layers="hidden"),
            a.repeats,
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    log(f"trial {trial['wall']:.2f} s, its sleep run {sleep['wall']:.2f} s")
    return {"trial": trial["wall"], "sleep": sleep["wall"], "n_val": len(runner.yv)}


def render(rows: list[dict], meta: dict) -> str:
    m = meta["machine"]
    out = [
        "# Sleep engine speed: QUIET, ACTIVE, WIDE",
        "",
        f"Written by `{meta['command']}` on {meta['date']} in {meta['minutes']:.1f} min. "
        "What each row is: the docstring of `benchmarks/bench_engine.py`.",
        "",
        f"- **Machine**: {m['cpu']}, nproc = {m['nproc']}, {m['mem']} RAM, GPU: "
        f"{'yes' if m.get('gpu') else 'none'}; load average at start {meta['load_start']:.2f}, "
        f"at end {meta['load_end']:.2f} (other jobs share the cores: wall times are noisy; "
        "each timed row is the best of its repeats)",
        f"- **Versions**: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}",
        f"- **Memory bandwidth** (one thread, 256 MiB arrays): read "
        f"{meta['bandwidth']['read_Bps'] / 1e9:.1f} GB/s, copy {meta['bandwidth']['copy_Bps'] / 1e9:.1f} GB/s "
        "(bytes read + written); the floor of a run is its traffic (`benchmarks/floor.py`: "
        "each presynaptic spike reads its fan-out row, each postsynaptic spike reads and "
        "writes its weight row) over these; the **exact-arithmetic floor** "
        "(`benchmarks/arith_floor.py`) is the time of the run's Hebbian updates alone "
        "(each spike of layer l updates its fan-in once: g(w) with libm's scalar exp and "
        "two divisions) in a tight C++ loop compiled with the engine's exactness flags, "
        "the floor for a single-threaded exact engine built on the scalar exp",
        "",
        "| workload | net | T | engine | phase | wall s | CPU s | ratio vs numpy | spikes L0/L1/L2/L3 | synaptic events | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        counts = "/".join(map(str, r["counts"])) if r["counts"] else "-"
        cpu = f"{r['cpu']:.2f}" if r.get("cpu") is not None else "-"
        out.append(
            f"| {r['workload']} | {r['sizes']} | {r['T']} | {r['engine']} | {r['phase']} | "
            f"{r['wall']:.2f} | {cpu} | {r['ratio']:.2f} | {counts} | {r['events'] / 1e6:.1f} M | {r['notes']} |"
        )
    t = meta.get("trial")
    if t:
        out += [
            "",
            "## A search trial end to end",
            "",
            f"MNIST 10 %, reference recipe, the preset, T = 20000, {t['n_val']} validation "
            f"images: one trial (alphas, input, sleep, read-back, validation accuracy) takes "
            f"{t['trial']:.2f} s, the sleep run inside it {t['sleep']:.2f} s: "
            f"**{t['trial'] / t['sleep']:.2f}x** the sleep run.",
        ]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    from brainsleep.atomic import atomic_write_bytes

    a = parse(argv)
    t0 = time.perf_counter()
    meta = {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": "python benchmarks/bench_engine.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "load_start": os.getloadavg()[0],
    }
    log("measuring memory bandwidth")
    meta["bandwidth"] = measure_bandwidth()
    build_root = Path(tempfile.mkdtemp(prefix="brainsleep-bench-builds-"))  # cold
    rows = []
    try:
        for name in a.workloads:
            rows += measure(name, a, meta["bandwidth"], build_root)
            meta.update(minutes=(time.perf_counter() - t0) / 60, load_end=os.getloadavg()[0])
            a.out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(a.out, render(rows, meta).encode())
        if a.trial:
            meta["trial"] = measure_trial(a)
            atomic_write_bytes(a.out, render(rows, meta).encode())
    finally:
        shutil.rmtree(build_root, ignore_errors=True)
    log(f"wrote {a.out} in {(time.perf_counter() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
