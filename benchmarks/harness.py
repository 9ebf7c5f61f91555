"""Measuring one sleep run: a worker subprocess per measurement, its time and memory.

Every measurement runs in a SEPARATE subprocess (``bench_sleep.py --worker SPEC``), so
each peak-memory number belongs to one measurement only. Peak memory is VmHWM from
``/proc/<pid>/status``, not ``getrusage().ru_maxrss``: on Linux a process started with
fork+exec inherits its parent's high-water RSS into ru_maxrss, whereas VmHWM belongs to
the new address space. The standalone binary's VmHWM is polled (every 20 ms).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from workloads import CACHE, RERUN_WEIGHT_SCALE, SLEEP_SEED, load_net, make_params

from brainsleep.sleep.devices import DEVICES

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCRIPT = HERE / "bench_sleep.py"


def log(msg: str) -> None:
    """Progress message on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / 1024.0, 1)


# ============================================================================ memory


class ChildPeak(threading.Thread):
    """Poll /proc for descendants of this process; keep the peak VmHWM per command name."""

    def __init__(self, interval: float = 0.02):
        super().__init__(daemon=True)
        self.interval = interval
        self.peaks_kb: dict[str, int] = {}
        self._halt = threading.Event()

    @staticmethod
    def _children(pid: int) -> list[int]:
        out = []
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return out
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
        return out

    def _sample(self) -> None:
        todo, seen = self._children(os.getpid()), set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            status = _status(pid)
            name, hwm = status.get("Name"), status.get("VmHWM")
            if name and hwm:
                self.peaks_kb[name] = max(self.peaks_kb.get(name, 0), int(hwm.split()[0]))
            todo += self._children(pid)

    def run(self) -> None:
        while not self._halt.is_set():
            self._sample()
            self._halt.wait(self.interval)

    def stop(self) -> dict[str, int]:
        self._halt.set()
        self.join(timeout=2)
        return dict(self.peaks_kb)


def _status(pid: int | str = "self") -> dict[str, str]:
    """``/proc/<pid>/status`` as a dict (empty if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    return {k: v.strip() for k, v in (ln.split(":", 1) for ln in lines if ":" in ln)}


def _rusage() -> dict:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    hwm = _status().get("VmHWM")
    return {
        "self_cpu": s.ru_utime + s.ru_stime,
        "child_cpu": c.ru_utime + c.ru_stime,
        "self_hwm_kb": int(hwm.split()[0]) if hwm else None,
    }


def synaptic_events(counts: dict[int, int], sizes) -> int | None:
    """Sum over layers of pre spikes x fan-out (transmission) + post spikes x fan-in
    (Hebbian); None if a layer was not recorded."""
    total = 0
    for layer in range(1, len(sizes)):
        if layer - 1 not in counts or layer not in counts:
            return None
        total += counts[layer - 1] * sizes[layer] + counts[layer] * sizes[layer - 1]
    return int(total)


# ============================================================================ worker side


def observe_binary_runs(sink: dict, profile: bool = False) -> None:
    """Kept: the engine deletes each run's results directory, and the binary's own loop
    time (last_run_info.txt) and Brian2's per-code-object profile are only there.

    Wraps the private ``StandaloneBuild._read_results`` to copy those two files first
    (read-only); with ``profile`` also makes code generation call ``Network.run`` with
    ``profile=True`` (the engine's prefs cannot: ``set_device`` resets the option), so
    use it only with a build root of its own.
    """
    from brainsleep.sleep.standalone import StandaloneBuild

    orig_read = StandaloneBuild._read_results

    def read_results(self, results, spec, output, *rest):
        info = Path(results) / "last_run_info.txt"
        if info.exists():
            sink["loop_s"] = float(info.read_text().split()[0])
        prof = Path(results) / "profiling_info.txt"
        if prof.exists():
            parts = (ln.split() for ln in prof.read_text().splitlines())
            sink["profile"] = {p[0]: float(p[1]) for p in parts if len(p) == 2}
        return orig_read(self, results, spec, output, *rest)

    StandaloneBuild._read_results = read_results
    if profile:
        import brian2

        orig_run = brian2.Network.run

        def net_run(self, *args, **kwargs):
            return orig_run(self, *args, **{**kwargs, "profile": True})

        brian2.Network.run = net_run


def _build_dir(spec: dict, sizes, inputs, record) -> Path:
    """The published build ``<build_root>/<device>-<key>/`` this run will use."""
    from brainsleep.sleep import get_device, load_model
    from brainsleep.sleep.network import NetworkSpec
    from brainsleep.sleep.params import DT
    from brainsleep.sleep.standalone import build_key

    device = get_device(spec["device"])
    nspec = device.build_spec(NetworkSpec.for_inputs(sizes, inputs, DT, record))
    key = build_key(load_model(None), nspec, device, None)
    return Path(spec["build_root"]) / f"{spec['device']}-{key}"


def _counts(r) -> dict[int, int]:
    from brainsleep.sleep import spike_counts

    return {int(k): int(v) for k, v in spike_counts(r.spikes).items()}


def _timed_call(fn, sink: dict | None = None) -> tuple[object, dict]:
    """Run ``fn()``; its wall, CPU (self, children) and peak memory (self, binary, cc1)."""
    gc.collect()
    base = _rusage()
    poll = ChildPeak()
    poll.start()
    if sink is not None:
        sink.clear()
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    after = _rusage()
    peaks = poll.stop()
    cc1 = max([v for k, v in peaks.items() if k.startswith("cc1")] or [0])
    return out, {
        "wall_s": wall,
        "cpu_s": after["self_cpu"] - base["self_cpu"],
        "cpu_children_s": after["child_cpu"] - base["child_cpu"],
        "rss_base_mb": mb(base["self_hwm_kb"]),
        "rss_peak_mb": mb(after["self_hwm_kb"]),
        "binary_peak_mb": mb(peaks.get("main")),
        "compiler_peak_mb": mb(cc1 or None),
        **(dict(sink) if sink else {}),
    }


def _weights_used(r, w2, sizes) -> bool:
    """Rows of neurons that never spiked keep their input weights: they must equal w2."""
    lay, neu = r.spikes["layer"].values, r.spikes["neuron"].values
    ok = True
    for k in range(len(w2)):
        spiked = np.zeros(sizes[k + 1], bool)
        spiked[neu[lay == k + 1]] = True
        if (~spiked).any():
            ok &= bool(np.array_equal(r.weights[k][~spiked], w2[k][~spiked]))
    return ok


def worker(spec: dict) -> dict:
    """One measurement in this (fresh) process; returns a JSON-able record."""
    import warnings

    warnings.filterwarnings("ignore")
    from brainsleep.sleep import MaskedMeanImage, run_sleep

    weights, base_alphas, mean_image, sizes = load_net(spec["net"])
    inputs = MaskedMeanImage(mean_image, n_steps=int(spec["steps"]))
    params = make_params(spec, base_alphas)
    device, record = spec["device"], spec.get("record", "all")
    rec: dict = {"device": device, "steps": int(spec["steps"]), "sizes": list(sizes)}
    rec["params"], rec["load_start"] = params.to_dict(), load1()
    compiled = DEVICES[device].compiled
    sink: dict = {}
    if compiled:
        observe_binary_runs(sink, profile=spec.get("phase") == "profile")
        if spec.get("cold"):
            from brainsleep.sleep.core import resolve_record_layers

            d = _build_dir(spec, sizes, inputs, resolve_record_layers(record, len(weights)))
            if d.exists():
                log(f"  cold compile: removing cached build {d.name}")
                shutil.rmtree(d, ignore_errors=True)

    def call(ws):
        kw = {"build_root": spec["build_root"]} if compiled else {}
        return lambda: run_sleep(
            ws, inputs, params, device=device, seed=SLEEP_SEED, record_layers=record,
            exact_exp=bool(spec.get("exact_exp", False)), **kw,
        )  # fmt: skip

    r, m = _timed_call(call(weights), sink)
    rec.update(m, counts=_counts(r), exact_exp=spec.get("exact_exp", False))
    if compiled:
        rec.update(
            compile_s=r.info["compile_seconds"],
            binary_s=r.info["run_seconds"],
            engine_s=r.info["run_seconds_total"],
            binary_reused=bool(r.info["binary_reused"]),
            build_key=r.info["build_key"],
        )
    if spec.get("rerun"):
        # Second call, same process, NEW weights: must reuse the published binary.
        w2 = [w * RERUN_WEIGHT_SCALE for w in weights]
        r2, m2 = _timed_call(call(w2), sink)
        rec["rerun"] = dict(
            m2,
            counts=_counts(r2),
            compile_s=r2.info["compile_seconds"],
            binary_s=r2.info["run_seconds"],
            engine_s=r2.info["run_seconds_total"],
            binary_reused=bool(r2.info["binary_reused"]),
            same_build_key=r2.info["build_key"] == r.info["build_key"],
            new_weights_used=_weights_used(r2, w2, sizes),
            sizes=list(sizes),
            steps=int(spec["steps"]),
        )
    rec["load_end"] = load1()
    return rec


# ============================================================================ parent side


def run_worker(spec: dict, timeout: float | None = None) -> dict:
    """Run one measurement in a subprocess of bench_sleep.py; never raises."""
    CACHE.mkdir(parents=True, exist_ok=True)
    fd, out = tempfile.mkstemp(prefix="bench_", suffix=".json", dir=CACHE)
    os.close(fd)
    cmd = [sys.executable, str(SCRIPT), "--worker", json.dumps({**spec, "out": out})]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            tail = (p.stderr or "").strip().splitlines()[-8:]
            return {"error": f"worker exit {p.returncode}: " + " | ".join(tail)}
        with open(out) as f:
            res = json.load(f)
        res["subprocess_s"] = time.perf_counter() - t0
        return res
    except subprocess.TimeoutExpired:
        return {"error": f"worker timed out after {timeout:.0f} s"}
    except Exception as exc:  # noqa: BLE001 - report, keep benchmarking
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        try:
            os.unlink(out)
        except OSError:
            pass


def timed_steps(spec: dict, T: int, budget: float, label: str) -> dict:
    """Reference / runtime: full T if a probe says it fits ``budget``, else fewer steps
    and a linear extrapolation t(n) = a + b n fitted on two lengths."""
    n_probe = min(T, max(100, T // 40))
    probe = run_worker({**spec, "steps": n_probe})
    if "error" in probe or n_probe == T:
        return probe
    projected = probe["wall_s"] * T / n_probe
    log(f"  {label}: probe {n_probe} steps {probe['wall_s']:.2f} s -> ~{projected:.0f} s at T={T}")
    if projected <= budget:
        return run_worker({**spec, "steps": T})
    per_step = probe["wall_s"] / n_probe
    n_short = int(min(T, max(2 * n_probe, 0.5 * budget / per_step)))
    short = run_worker({**spec, "steps": n_short})
    if "error" in short:
        return short
    fit = {}
    for key in ("wall_s", "cpu_s"):
        b = max((short[key] - probe[key]) / (n_short - n_probe), 0.0)
        fit[key] = (max(short[key] - b * n_short, 0.0), b)
    short["measured_steps"], short["measured_wall_s"] = n_short, short["wall_s"]
    for key, (a, b) in fit.items():
        short[key] = a + b * T
    a, b = fit["wall_s"]
    short["extrapolated"] = (
        f"EXTRAPOLATED to T={T} from {n_probe} and {n_short} steps (fit {a:.2f} s + "
        f"{b * 1e3:.3f} ms/step); spikes/events are of the first {n_short} steps"
    )
    return short


# ============================================================================ machine


def machine_info() -> dict:
    """CPU, memory, GPU and versions of what the benchmark depends on."""
    from importlib.metadata import PackageNotFoundError, version

    info = {"cpu": platform.processor() or "?", "nproc": os.cpu_count(), "mem": "?"}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(
                ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")
            )
        with open("/proc/meminfo") as f:
            kb = next(int(ln.split()[1]) for ln in f if ln.startswith("MemTotal"))
            info["mem"] = f"{kb / 1024**2:.0f} GiB"
    except (OSError, StopIteration):
        pass
    try:
        from brainsleep.sleep.cuda_setup import gpu_available

        info["gpu"] = bool(gpu_available())
    except Exception:  # noqa: BLE001
        info["gpu"] = False
    v = {"python": platform.python_version()}
    for pkg in ("brian2", "numpy", "torch", "xarray", "brian2cuda"):
        try:
            v[pkg] = version(pkg)
        except PackageNotFoundError:
            v[pkg] = "not installed"
    try:
        v["g++"] = subprocess.run(
            ["g++", "-dumpfullversion"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except Exception:  # noqa: BLE001
        v["g++"] = "?"
    info["versions"] = v
    return info


# ============================================================================ the run


def run_plan(steps: list[dict], nets: dict, a, write) -> list[dict]:
    """Run every step of ``workloads.plan`` and return the records (one per table row).

    A record is the step's ``section, width, workload, steps, device, phase`` plus the
    worker's measurement; a first standalone call also yields its rerun's record.
    ``write(records)`` is called after each step, so a stopped run leaves a report.
    """
    t_start, records = time.perf_counter(), []
    gpu = machine_info()["gpu"] if any(DEVICES[d].needs_gpu for d in a.devices) else False
    for st in steps:
        head = {k: st[k] for k in ("section", "width", "steps", "device", "phase")}
        head["workload"] = st["spec"]["workload"]
        if st.get("skippable") and time.perf_counter() - t_start > a.max_minutes * 60:
            records.append({**head, "skip": f"time budget ({a.max_minutes} min) spent"})
            continue
        if DEVICES[st["device"]].needs_gpu and not gpu:
            records.append({**head, "skip": "no GPU here (cuda_setup.gpu_available() is False)"})
            continue
        spec = {**st["spec"], "net": str(nets[st["width"]]), "build_root": str(a.build_root)}
        spec["cold"] = spec.get("cold", False) and a.cold
        if st["section"] == "profile":
            spec["build_root"] = str(CACHE / "builds-profile")
        log(f"[w{st['width']} {head['workload']} T={st['steps']}] {st['device']}: {st['phase']}")
        timed = spec.pop("timed", None)
        if timed:
            budget = a.ref_budget if timed == "ref" else a.runtime_budget
            res = timed_steps(spec, st["steps"], budget, st["device"])
        else:
            res = run_worker(spec)
        if "error" in res:
            log(f"  !! {res['error']}")
        rerun = res.pop("rerun", None)
        records.append({**head, **res})
        if rerun is not None:
            phase = f"rerun, new weights (x{RERUN_WEIGHT_SCALE}), same process"
            records.append({**head, "phase": phase, "load_start": res.get("load_end"), **rerun})
            log(
                f"  compile {res['compile_s']:.1f} s, binary {res['binary_s']:.2f} s; rerun "
                f"call {rerun['wall_s']:.2f} s, binary reused: {rerun['binary_reused']}"
            )
        write(records)
    return records
