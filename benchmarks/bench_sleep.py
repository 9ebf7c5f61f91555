#!/usr/bin/env python
"""Benchmark of the brainsleep sleep engine: numpy reference vs Brian2 devices.

Usage (from the repository root)::

    python benchmarks/bench_sleep.py --quick              # smoke run, T=500, width 1
    python benchmarks/bench_sleep.py                      # full run -> benchmarks/sleep_engine.md
    python benchmarks/bench_sleep.py --widths 1 --devices reference cpp_standalone

Every device measurement runs in a SEPARATE subprocess of this script (``--worker``), so
that each peak-memory number belongs to one measurement only. Peak memory is read as
VmHWM from ``/proc/<pid>/status``, not from ``getrusage(...).ru_maxrss``: on Linux a
process started with (v)fork+exec inherits its parent's high-water RSS into ru_maxrss
(RUSAGE_SELF of the worker starts at the parent's RSS, RUSAGE_CHILDREN of the worker
at least the worker's RSS when it spawned the binary), whereas VmHWM belongs to the new
address space. The compiled standalone binary's VmHWM is read by a polling thread
(every 20 ms) in the worker. The raw ru_maxrss values are kept in the raw JSON.

See benchmarks/README.md for what is measured and how to read the table.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
DEFAULT_OUT = HERE / "sleep_engine.md"
QUICK_OUT = CACHE / "sleep_engine_quick.md"

PRESET = "reduced_mnist_10ep"
BASE_HIDDEN = 1200
N_TRAIN = 5000  # the reference's limited-data scripts: the FIRST 5000 training images
EPOCHS = 10
TRAIN_SEED = 0
SLEEP_SEED = 0
RERUN_WEIGHT_SCALE = 1.01
# "Active" workload: the preset with thresholds x0.5 and dec x0.001. Scaling the
# thresholds alone does not keep the network spiking (the depression silences every
# neuron after a few spikes; see the threshold probe in the table), so dec is reduced too.
ACTIVE_THRESHOLD_SCALE = 0.5
ACTIVE_DEC_SCALE = 1e-3
PROBE_THRESHOLD_SCALES = (1.0, 0.1, 0.01)

sys.path.insert(0, str(REPO))  # run from a checkout without installing


def log(msg: str) -> None:
    """Progress message on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / 1024.0, 1)


# ============================================================================ worker side


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
            try:
                with open(f"/proc/{pid}/status") as f:
                    status = f.read()
            except OSError:
                continue
            name, hwm = None, None
            for line in status.splitlines():
                if line.startswith("Name:"):
                    name = line.split(None, 1)[1].strip()
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
            if name and hwm:
                self.peaks_kb[name] = max(self.peaks_kb.get(name, 0), hwm)
            todo += self._children(pid)

    def run(self) -> None:
        while not self._halt.is_set():
            self._sample()
            self._halt.wait(self.interval)

    def stop(self) -> dict[str, int]:
        self._halt.set()
        self.join(timeout=2)
        return dict(self.peaks_kb)


def vm_hwm_kb() -> int | None:
    """Peak RSS of THIS process (VmHWM); exec resets it, unlike ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _rusage():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "self_cpu": s.ru_utime + s.ru_stime,
        "child_cpu": c.ru_utime + c.ru_stime,
        "self_maxrss_kb": s.ru_maxrss,
        "self_hwm_kb": vm_hwm_kb(),
        "child_maxrss_kb": c.ru_maxrss,
    }


def synaptic_events(counts: dict[int, int], sizes) -> int | None:
    """Sum over layers of pre spikes x fan-out (transmission) + post spikes x fan-in (Hebbian).

    Summed over steps this equals the per-step definition, since fan-in/out are fixed.
    """
    total = 0
    for layer in range(1, len(sizes)):
        if layer - 1 not in counts or layer not in counts:
            return None
        total += counts[layer - 1] * sizes[layer] + counts[layer] * sizes[layer - 1]
    return int(total)


def _make_params(spec: dict, base_alphas):
    from brainsleep.sleep import SleepParams, from_preset

    p = from_preset(PRESET, list(base_alphas))
    ts, ds = spec.get("threshold_scale", 1.0), spec.get("dec_scale", 1.0)
    if ts != 1.0 or ds != 1.0:
        d = p.to_dict()
        d["thresholds"] = [t * ts for t in p.thresholds]
        d["dec"] = p.dec * ds
        p = SleepParams.from_dict(d)
    return p


def _counts(ds) -> dict[int, int]:
    from brainsleep.sleep import spike_counts

    return {int(k): int(v) for k, v in spike_counts(ds).items()}


def _cold_build_dir(spec: dict, sizes, inputs, device: str) -> Path | None:
    """The build directory run_sleep will use (to delete it for a cold compile)."""
    try:
        from brainsleep.sleep.devices import build_key
        from brainsleep.sleep.model import load_model
        from brainsleep.sleep.network import NetworkSpec

        n_layers = len(sizes) - 1
        rec = (
            tuple(range(n_layers + 1)) if spec["record"] == "all" else tuple(range(1, n_layers + 1))
        )
        nspec = NetworkSpec(
            sizes=tuple(sizes),
            n_steps=inputs.n_steps,
            dt=0.001,
            input_kind="masked",
            image_shape=inputs.mean_image.shape,
            patch=inputs.patch,
            record_layers=rec,
        )
        key = build_key(load_model(None), nspec, device, None)
        return Path(spec["build_root"]) / f"{device}-{key}"
    except Exception as exc:  # the engine changed: the phase reports binary_reused instead
        log(f"  (could not compute the build key: {exc})")
        return None


def _enable_profiling(sink: list) -> None:
    """Diagnostics only: build with Brian2's per-code-object profiling and keep its report.

    The engine runs ``net.run`` without ``profile``; this worker patches ``Network.run`` to
    pass ``profile=True`` and copies ``profiling_info.txt`` from the run's private results
    directory before the engine deletes it. It uses a separate build root, so the profiled
    binary never replaces the normal one in the cache.
    """
    import brian2

    from brainsleep.sleep.standalone import StandaloneBuild

    orig_net_run = brian2.Network.run
    orig_read = StandaloneBuild._read_results

    def net_run(self, *args, **kwargs):
        kwargs["profile"] = True
        return orig_net_run(self, *args, **kwargs)

    def read_results(self, results, spec, output):
        fname = os.path.join(results, "profiling_info.txt")
        if os.path.exists(fname):
            with open(fname) as f:
                sink.append(f.read())
        return orig_read(self, results, spec, output)

    brian2.Network.run = net_run
    StandaloneBuild._read_results = read_results


def worker(spec: dict) -> dict:
    """One measurement in this (fresh) process; returns a JSON-able dict."""
    import warnings

    warnings.filterwarnings("ignore")
    from brainsleep.sleep import MaskedMeanImage, run_sleep

    net = np.load(spec["net"])
    weights = [net[f"w{k}"] for k in range(3)]
    base_alphas = [float(a) for a in net["base_alphas"]]
    sizes = (weights[0].shape[1], *(w.shape[0] for w in weights))
    inputs = MaskedMeanImage(net["mean_image"], n_steps=int(spec["steps"]))
    params = _make_params(spec, base_alphas)
    device = spec["device"]
    record = spec.get("record", "all")
    res: dict = {
        "device": device,
        "steps": int(spec["steps"]),
        "sizes": list(sizes),
        "params": params.to_dict(),
        "load_start": load1(),
    }
    import gc

    gc.collect()
    base = _rusage()
    res["rss_base_mb"] = mb(base["self_hwm_kb"])
    res["ru_maxrss_base_mb"] = mb(base["self_maxrss_kb"])

    if device in ("reference", "runtime"):
        kw = {"exact_exp": bool(spec.get("exact_exp", False))} if device == "reference" else {}
        t0 = time.perf_counter()
        r = run_sleep(
            weights, inputs, params, device=device, seed=SLEEP_SEED, record_layers=record, **kw
        )
        wall = time.perf_counter() - t0
        after = _rusage()
        counts = _counts(r.spikes)
        res.update(
            wall_s=wall,
            cpu_s=after["self_cpu"] - base["self_cpu"],
            counts=counts,
            events=synaptic_events(counts, sizes),
            rss_peak_mb=mb(after["self_hwm_kb"]),
            ru_maxrss_mb=mb(after["self_maxrss_kb"]),
            exact_exp=kw.get("exact_exp"),
        )
    else:
        from brainsleep.sleep import devices as sdev

        if spec.get("phase") in ("first", "profile") and spec.get("cold"):
            d = _cold_build_dir(spec, sizes, inputs, device)
            if d is not None and d.exists():
                log(f"  cold compile: removing cached build {d.name}")
                shutil.rmtree(d, ignore_errors=True)
        import brian2

        profile_txt: list[str] = []
        if spec.get("phase") == "profile":
            _enable_profiling(profile_txt)
        poll = ChildPeak()
        poll.start()
        n_codegen0 = sdev.BUILD_COUNT["codegen"]
        t0 = time.perf_counter()
        r = run_sleep(
            weights,
            inputs,
            params,
            device=device,
            seed=SLEEP_SEED,
            record_layers=record,
            build_root=spec["build_root"],
        )
        wall = time.perf_counter() - t0
        after = _rusage()
        peaks = poll.stop()
        info = r.info
        counts = _counts(r.spikes)
        res.update(
            wall_s=wall,
            compile_s=info["compile_seconds"],
            run_s=info["run_seconds"],
            binary_s=brian2.device.timers.get("run_binary"),
            loop_s=getattr(brian2.device, "_last_run_time", None),
            binary_reused=bool(info["binary_reused"]),
            build_key=info["build_key"],
            codegen_count=sdev.BUILD_COUNT["codegen"] - n_codegen0,
            cpu_self_s=after["self_cpu"] - base["self_cpu"],
            cpu_children_s=after["child_cpu"] - base["child_cpu"],
            counts=counts,
            events=synaptic_events(counts, sizes),
            rss_peak_mb=mb(after["self_hwm_kb"]),
            ru_maxrss_mb=mb(after["self_maxrss_kb"]),
            children_maxrss_mb=mb(after["child_maxrss_kb"]),
            binary_peak_mb=mb(peaks.get("main")),
            compiler_peak_mb=mb(
                max([v for k, v in peaks.items() if k.startswith("cc1")] or [0]) or None
            ),
        )
        if profile_txt:
            prof = {}
            for line in profile_txt[0].splitlines():
                parts = line.split()
                if len(parts) == 2:
                    prof[parts[0]] = float(parts[1])
            res["profile"] = prof
        if spec.get("phase") == "first" and spec.get("rerun", True):
            # Second call, same process, NEW weights: must reuse the binary (run_args).
            w2 = [w * RERUN_WEIGHT_SCALE for w in weights]
            n0 = sdev.BUILD_COUNT["codegen"]
            b0 = _rusage()
            poll = ChildPeak()
            poll.start()
            t0 = time.perf_counter()
            r2 = run_sleep(
                w2,
                inputs,
                params,
                device=device,
                seed=SLEEP_SEED,
                record_layers=record,
                build_root=spec["build_root"],
            )
            wall2 = time.perf_counter() - t0
            a2 = _rusage()
            peaks2 = poll.stop()
            c2 = _counts(r2.spikes)
            # Evidence that the new weights were used: rows of neurons that never spiked
            # keep their input weights, so they must equal w * 1.01, not w.
            ds = r2.spikes
            lay, neu = ds["layer"].values, ds["neuron"].values
            used_new = True
            for k in range(3):
                spiked = np.zeros(sizes[k + 1], bool)
                spiked[neu[lay == k + 1]] = True
                if (~spiked).any():
                    used_new &= bool(np.array_equal(r2.weights[k][~spiked], w2[k][~spiked]))
            res["rerun"] = dict(
                wall_s=wall2,
                run_s=r2.info["run_seconds"],
                binary_s=brian2.device.timers.get("run_binary"),
                loop_s=getattr(brian2.device, "_last_run_time", None),
                codegen_count=sdev.BUILD_COUNT["codegen"] - n0,
                same_build_key=r2.info["build_key"] == info["build_key"],
                new_weights_used=used_new,
                cpu_self_s=a2["self_cpu"] - b0["self_cpu"],
                cpu_children_s=a2["child_cpu"] - b0["child_cpu"],
                counts=c2,
                events=synaptic_events(c2, sizes),
                binary_peak_mb=mb(peaks2.get("main")),
                rss_peak_mb=mb(a2["self_hwm_kb"]),
            )
    res["load_end"] = load1()
    return res


# ============================================================================ parent side


def run_worker(spec: dict, timeout: float | None = None) -> dict:
    """Run one measurement in a subprocess of this script; never raises."""
    fd, out = tempfile.mkstemp(prefix="bench_", suffix=".json", dir=CACHE)
    os.close(fd)
    spec = {**spec, "out": out}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
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


def _fmt_counts(c: dict | None) -> str:
    if not c:
        return "-"
    return "/".join(str(c.get(str(k), c.get(k, "-"))) for k in range(4))


def _norm_counts(c):
    return None if c is None else {int(k): int(v) for k, v in c.items()}


# ---------------------------------------------------------------- nets (weights + alphas)


def _load_data():
    from brainsleep.data import as_float, load_dataset

    ds = load_dataset("mnist")
    x = as_float(ds.train_images[:N_TRAIN])
    y = np.asarray(ds.train_labels[:N_TRAIN])
    xt = as_float(ds.test_images)
    yt = np.asarray(ds.test_labels)
    return x, y, xt, yt


def _alphas(weights, x) -> tuple[list[float], str]:
    try:
        from brainsleep.normalize import normalization_alphas

        n = normalization_alphas(weights, x, hidden_scale=0.75)
        return list(
            n.alphas
        ), "brainsleep.normalize.normalization_alphas (hidden_scale 0.75, quirk)"
    except ImportError:
        # Tiny numpy forward pass, test mode (hidden x 0.75), the reference's prev = f quirk.
        a, prev, alphas = np.asarray(x, np.float64), 1.0, []
        for k, w in enumerate(weights):
            a = np.maximum(a @ w.T, 0.0)
            if k < len(weights) - 1:
                a = a * 0.75
            s = max(float(w.max()), float(a.max()), 0.0)
            f = s / prev
            alphas.append(1.0 / f)
            prev = f
        return alphas, "numpy forward pass in bench_sleep.py (brainsleep.normalize missing)"


def _substitute_weights(sizes, rng) -> list[np.ndarray]:
    """Shapes of the net, values like a reference-trained net's (measured on a 10-epoch,
    5000-image reference net: hidden layers ~U(-0.01, 0.01) + small drift, output layer
    shifted positive, mean ~0.002, std ~0.007)."""
    ws = []
    for k in range(len(sizes) - 1):
        w = rng.uniform(-0.01, 0.01, size=(sizes[k + 1], sizes[k]))
        w += rng.normal(0.0, 0.001, size=w.shape)
        if k == len(sizes) - 2:
            w += rng.normal(0.002, 0.003, size=w.shape)
        ws.append(w)
    return ws


def prepare_net(width: int, data) -> Path:
    """Weights, base alphas and the mean image for one width, cached as .npz."""
    hidden = BASE_HIDDEN * width
    sizes = (784, hidden, hidden, 10)
    x, y, xt, yt = data
    from brainsleep.sleep import MaskedMeanImage

    mean_image = MaskedMeanImage.from_images(x, n_steps=1).mean_image
    path = CACHE / f"net_w{width}_reference_e{EPOCHS}_n{N_TRAIN}_s{TRAIN_SEED}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        if "meta" in z:
            return path
    meta = {"sizes": sizes}
    try:
        from brainsleep import ann

        rec = ann.get_recipe("reference", epochs=EPOCHS)
        model = ann.build_model(rec, sizes=sizes, seed=TRAIN_SEED)
        log(
            f"training {'-'.join(map(str, sizes))} (reference recipe, {EPOCHS} epochs, "
            f"first {N_TRAIN} MNIST images)"
        )
        t0 = time.perf_counter()
        ann.train(model, x, y, rec, seed=TRAIN_SEED, progress=False, threads=os.cpu_count())
        meta["train_s"] = round(time.perf_counter() - t0, 1)
        weights = ann.get_weights(model)
        try:
            ev = ann.evaluate(model, xt, yt)
            meta["test_accuracy"] = float(ev.accuracy)
        except Exception as exc:  # noqa: BLE001
            meta["test_accuracy"] = f"n/a ({exc})"
        meta["source"] = "trained"
        meta["how"] = (
            f"brainsleep.ann reference recipe, {EPOCHS} epochs, first {N_TRAIN} "
            f"MNIST training images, seed {TRAIN_SEED}"
        )
    except Exception as exc:  # noqa: BLE001 - ann missing or broken: labelled substitute
        log(f"brainsleep.ann unusable ({type(exc).__name__}: {exc}); using SUBSTITUTE weights")
        weights = _substitute_weights(sizes, np.random.default_rng(1000 + width))
        meta["source"] = "substitute"
        meta["how"] = (
            f"SUBSTITUTE (brainsleep.ann unusable: {type(exc).__name__}: {exc}): "
            "U(-0.01,0.01)+N(0,0.001) hidden, output shifted +0.002"
        )
    alphas, how = _alphas(weights, x)
    meta["alphas_how"] = how
    meta["weight_stats"] = [
        {
            "mean": float(w.mean()),
            "std": float(w.std()),
            "min": float(w.min()),
            "max": float(w.max()),
        }
        for w in weights
    ]
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        w0=weights[0],
        w1=weights[1],
        w2=weights[2],
        base_alphas=np.asarray(alphas),
        mean_image=mean_image,
        meta=np.asarray(json.dumps(meta)),
    )
    os.replace(tmp, path)
    return path


def net_meta(path: Path) -> dict:
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    meta["base_alphas"] = [float(a) for a in z["base_alphas"]]
    return meta


# ---------------------------------------------------------------- measurements


def timed_steps(base_spec: dict, T: int, budget: float, rows: list, label: str) -> dict:
    """Reference / runtime: full T if a probe says it fits `budget`, else fewer steps and
    a linear extrapolation t(n) = a + b n fitted on two lengths."""
    n_probe = min(T, max(100, T // 40))
    probe = run_worker({**base_spec, "steps": n_probe})
    if "error" in probe:
        return probe
    projected = probe["wall_s"] * T / n_probe
    log(f"  {label}: probe {n_probe} steps {probe['wall_s']:.2f} s -> ~{projected:.0f} s at T={T}")
    if n_probe == T:
        probe["extrapolated"] = None
        return probe
    if projected <= budget:
        full = run_worker({**base_spec, "steps": T})
        if "error" not in full:
            full["extrapolated"] = None
        return full
    per_step = probe["wall_s"] / n_probe
    n_short = int(min(T, max(2 * n_probe, 0.5 * budget / per_step)))
    short = run_worker({**base_spec, "steps": n_short})
    if "error" in short:
        return short
    b = max((short["wall_s"] - probe["wall_s"]) / (n_short - n_probe), 0.0)
    a = max(short["wall_s"] - b * n_short, 0.0)
    bc = max((short["cpu_s"] - probe["cpu_s"]) / (n_short - n_probe), 0.0)
    ac = max(short["cpu_s"] - bc * n_short, 0.0)
    short["measured_steps"] = n_short
    short["measured_wall_s"] = short["wall_s"]
    short["wall_s"] = a + b * T
    short["cpu_s"] = ac + bc * T
    short["extrapolated"] = (
        f"EXTRAPOLATED to T={T} from {n_probe} and {n_short} steps "
        f"(fit {a:.2f} s + {b * 1e3:.3f} ms/step); spikes/events are of the "
        f"first {n_short} steps"
    )
    short["event_rate_override"] = (
        short["events"] / short["measured_wall_s"] if short.get("events") else None
    )
    return short


def cpu_info() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def mem_total_gb() -> str:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return f"{int(line.split()[1]) / 1024**2:.0f} GiB"
    except OSError:
        pass
    return "?"


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("brian2", "numpy", "torch", "xarray", "brian2cuda"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        out["g++"] = subprocess.run(
            ["g++", "-dumpfullversion"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except Exception:  # noqa: BLE001
        out["g++"] = "?"
    return out


def gpu_present() -> bool:
    try:
        from brainsleep.sleep.cuda_setup import gpu_available

        return bool(gpu_available())
    except Exception:  # noqa: BLE001
        return False


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows: list[dict] = []
        self.raw: list[dict] = []
        self.notes: list[str] = []
        self.ref_time: dict = {}  # (width, workload, T) -> (wall, cpu)
        self.ref_counts: dict = {}
        self.t_start = time.perf_counter()
        self.profiles: dict[str, dict] = {}

    # ---- helpers
    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def add(self, width, workload, device, phase, res, **extra):
        row = {
            "width": width,
            "workload": workload,
            "device": device,
            "phase": phase,
            "res": res,
            **extra,
        }
        self.rows.append(row)
        self.raw.append({k: v for k, v in row.items()})
        if "error" in res:
            log(f"  !! {device} {phase}: {res['error']}")
        return row

    def spec(self, net, device, T, workload, **kw):
        s = {
            "net": str(net),
            "device": device,
            "steps": T,
            "record": "all",
            "build_root": str(self.args.build_root),
        }
        if workload == "active":
            s.update(threshold_scale=ACTIVE_THRESHOLD_SCALE, dec_scale=ACTIVE_DEC_SCALE)
        s.update(kw)
        return s

    # ---- one width / workload
    def measure(self, width: int, net: Path, T: int, workload: str, extras: bool):
        a = self.args
        devs = a.devices
        wl = f"{workload} T={T}"
        if "reference" in devs:
            budget = a.ref_budget
            log(f"[w{width} {wl}] reference (numpy, exact_exp=False)")
            r = timed_steps(
                self.spec(net, "reference", T, workload), T, budget, self.rows, "reference"
            )
            self.add(width, wl, "reference", "run (exact_exp=False)", r)
            if "error" not in r:
                self.ref_time[(width, wl)] = (r["wall_s"], r["cpu_s"])
                self.ref_counts[(width, wl)] = _norm_counts(r.get("counts"))
            if extras and a.exact_exp:
                log(f"[w{width} {wl}] reference (numpy, exact_exp=True)")
                r = timed_steps(
                    self.spec(net, "reference", T, workload, exact_exp=True),
                    T,
                    budget,
                    self.rows,
                    "reference exact",
                )
                self.add(width, wl, "reference", "run (exact_exp=True, bit-exact oracle)", r)
        if "runtime" in devs:
            log(f"[w{width} {wl}] runtime (Brian2 numpy target)")
            r = timed_steps(
                self.spec(net, "runtime", T, workload), T, a.runtime_budget, self.rows, "runtime"
            )
            self.add(width, wl, "runtime", "run (numpy target, in-process)", r)
        for device in ("cpp_standalone", "cuda_standalone"):
            if device not in devs:
                continue
            if device == "cuda_standalone" and not self.gpu:
                self.add(
                    width,
                    wl,
                    device,
                    "not run",
                    {"skip": "no GPU here (brainsleep.sleep.cuda_setup.gpu_available() is False)"},
                )
                continue
            log(
                f"[w{width} {wl}] {device}: compile + run, then rerun with weights x"
                f"{RERUN_WEIGHT_SCALE} in the same process"
            )
            r = run_worker(self.spec(net, device, T, workload, phase="first", cold=self.cold))
            self.add(width, wl, device, "first call: compile + run", r)
            if "error" in r:
                continue
            self.add(
                width,
                wl,
                device,
                f"rerun, new weights (x{RERUN_WEIGHT_SCALE}), same process",
                r["rerun"],
                parent=r,
            )
            log(
                f"    compile {r['compile_s']:.1f} s, run {r['run_s']:.2f} s, rerun "
                f"{r['rerun']['run_s']:.2f} s (call {r['rerun']['wall_s']:.2f} s), "
                f"codegen during rerun: {r['rerun']['codegen_count']}"
            )
            log(f"[w{width} {wl}] {device}: fresh process, cached binary")
            r = run_worker(self.spec(net, device, T, workload, phase="fresh"))
            self.add(width, wl, device, "fresh process, cached binary (record all)", r)
            if extras and workload == "preset":
                log(f"[w{width} {wl}] {device}: input layer NOT recorded (compile, then fresh)")
                r = run_worker(
                    self.spec(
                        net,
                        device,
                        T,
                        workload,
                        phase="first",
                        cold=self.cold,
                        record="hidden",
                        rerun=False,
                    )
                )
                self.add(width, wl, device, "compile + run, input layer not recorded", r)
                r = run_worker(self.spec(net, device, T, workload, phase="fresh", record="hidden"))
                self.add(
                    width, wl, device, "fresh process, cached binary, input layer not recorded", r
                )

    def threshold_probe(self, net: Path, T: int):
        """Does the preset net spike? Reference runs with scaled thresholds (spike counts)."""
        out = []
        for s in PROBE_THRESHOLD_SCALES:
            r = run_worker(
                {
                    "net": str(net),
                    "device": "reference",
                    "steps": T,
                    "record": "all",
                    "threshold_scale": s,
                    "build_root": "",
                }
            )
            out.append((s, 1.0, r))
        if self.args.active_steps:
            r = run_worker(
                {
                    "net": str(net),
                    "device": "reference",
                    "steps": min(T, self.args.active_steps),
                    "record": "all",
                    "threshold_scale": ACTIVE_THRESHOLD_SCALE,
                    "dec_scale": ACTIVE_DEC_SCALE,
                    "build_root": "",
                }
            )
            out.append((ACTIVE_THRESHOLD_SCALE, ACTIVE_DEC_SCALE, r))
        return out

    # ---- the whole run
    def run(self):
        a = self.args
        CACHE.mkdir(parents=True, exist_ok=True)
        gi = HERE / ".gitignore"
        if not gi.exists():
            gi.write_text(".cache/\n")
        self.load_start = os.getloadavg()
        self.date = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        self.gpu = gpu_present()
        self.cold = (
            Path(a.build_root).resolve() == (CACHE / "builds").resolve() and not a.keep_builds
        )
        log(
            f"start: load {self.load_start}, nproc {os.cpu_count()}, GPU: {self.gpu}, "
            f"T={a.steps}, widths {a.widths}, devices {a.devices}"
        )
        data = _load_data()
        self.nets = {}
        for w in a.widths:
            self.nets[w] = prepare_net(w, data)
        del data
        T = a.steps
        w1 = a.widths[0]
        # 1. does the preset net spike?
        if a.probe_steps:
            log(f"threshold probe on width {w1} (reference, T={min(a.probe_steps, T)})")
            self.probe = self.threshold_probe(self.nets[w1], min(a.probe_steps, T))
        else:
            self.probe = []
        # 2. width 1 (the priority), preset, all devices and extras
        self.measure(w1, self.nets[w1], T, "preset", extras=True)
        self.write()
        if a.profile and "cpp_standalone" in a.devices:
            log(f"[w{w1} preset T={T}] cpp_standalone with Brian2 profiling (diagnostic build)")
            r = run_worker(
                {
                    **self.spec(
                        self.nets[w1], "cpp_standalone", T, "preset", phase="profile", cold=True
                    ),
                    "build_root": str(CACHE / "builds-profile"),
                }
            )
            self.profiles[f"preset T={T}"] = r
            self.write()
        # 3. active workload on width 1 (also gives a second T for the memory check)
        if a.active_steps:
            Ta = min(a.active_steps, T)
            self.measure(w1, self.nets[w1], Ta, "active", extras=False)
            if a.profile and "cpp_standalone" in a.devices:
                log(f"[w{w1} active T={Ta}] cpp_standalone with Brian2 profiling (diagnostic)")
                r = run_worker(
                    {
                        **self.spec(
                            self.nets[w1],
                            "cpp_standalone",
                            Ta,
                            "active",
                            phase="profile",
                            cold=True,
                        ),
                        "build_root": str(CACHE / "builds-profile"),
                    }
                )
                self.profiles[f"active T={Ta}"] = r
            if "cpp_standalone" in a.devices and Ta != T:
                log(
                    f"[w{w1}] cpp_standalone fresh process, preset params on the T={Ta} build "
                    "(memory vs T)"
                )
                r = run_worker(
                    self.spec(self.nets[w1], "cpp_standalone", Ta, "preset", phase="fresh")
                )
                self.add(
                    w1,
                    f"preset T={Ta}",
                    "cpp_standalone",
                    "fresh process, cached binary (record all)",
                    r,
                )
            self.write()
        # 4. wider nets
        for w in a.widths[1:]:
            if self.elapsed() > a.max_minutes * 60:
                self.notes.append(f"width {w}x skipped: time budget ({a.max_minutes} min) spent")
                log(self.notes[-1])
                continue
            self.measure(w, self.nets[w], T, "preset", extras=False)
            self.write()
        self.load_end = os.getloadavg()
        self.write(final=True)
        log(f"done in {self.elapsed() / 60:.1f} min; load {self.load_end}; wrote {a.out}")

    # ---- output
    def write(self, final: bool = False):
        a = self.args
        if not final:
            self.load_end = os.getloadavg()
        text = render(self, final)
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)
        raw = CACHE / (out.stem + "_raw.json")
        fd, tmp = tempfile.mkstemp(prefix=raw.name + ".", suffix=".tmp", dir=CACHE)
        with os.fdopen(fd, "w") as f:
            json.dump(
                {"rows": self.raw, "probe": [(s, d, r) for s, d, r in self.probe]},
                f,
                indent=1,
                default=str,
            )
        os.replace(tmp, raw)


# ============================================================================ rendering


def _f(x, nd=2, unit=""):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, int | float):
        if abs(x) >= 100:
            return f"{x:.0f}{unit}"
        return f"{x:.{nd}f}{unit}"
    return str(x)


def _events_rate(ev, t):
    if not ev or not t:
        return "-"
    return f"{ev / t / 1e6:.1f} M"


def _sizes_label(width: int) -> str:
    h = BASE_HIDDEN * width
    return f"784-{h}-{h}-10"


def render(b: Bench, final: bool) -> str:
    a = b.args
    v = versions() if not hasattr(b, "_versions") else b._versions
    b._versions = v
    L = []
    L.append("# Sleep engine benchmark")
    L.append("")
    L.append(
        f"Written by `benchmarks/bench_sleep.py` ({'quick smoke run' if a.quick else 'full run'}"
        f"{'' if final else ', IN PROGRESS: partial results'}). How to run and what is "
        "measured: `benchmarks/README.md`."
    )
    L.append("")
    L.append(f"- **Date**: {b.date}; wall time of the benchmark: {b.elapsed() / 60:.1f} min")
    L.append(
        f"- **Machine**: {cpu_info()}, nproc = {os.cpu_count()}, {mem_total_gb()} RAM, "
        f"GPU: {'yes' if b.gpu else 'none'}"
    )
    ls, le = b.load_start, b.load_end
    L.append(
        f"- **Load average** (1/5/15 min) at start: {ls[0]:.2f} / {ls[1]:.2f} / {ls[2]:.2f}; "
        f"at end: {le[0]:.2f} / {le[1]:.2f} / {le[2]:.2f}. "
        f"**The {os.cpu_count()} cores are shared with other jobs: every wall time below is "
        "noisy** (load > nproc means runnable work waiting for a core); CPU seconds are "
        "given beside wall seconds because they suffer less from the sharing."
    )
    L.append("- **Versions**: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    L.append(
        f"- **Build cache**: `{a.build_root}`"
        + (
            " (private to the benchmark; each first compile is cold: its build directory "
            "is deleted before)"
            if b.cold
            else " (not cleared: a 'first call' may reuse a cached binary, see the notes column)"
        )
    )
    L.append("")
    L.append("## Parameters")
    L.append("")
    m1 = net_meta(b.nets[a.widths[0]])
    L.append(
        f'- Sleep: preset `{PRESET}` (`from_preset("{PRESET}", base_alphas)`), '
        f"T = {a.steps} steps, dt = 1 ms, seed {SLEEP_SEED}, input "
        f"`MaskedMeanImage.from_images(first {N_TRAIN} MNIST training images, n_steps=T)` "
        "(11x11 window of the mean image, new position every step)."
    )
    L.append(f"- Network weights: {m1['how']}.")
    for w in a.widths:
        m = net_meta(b.nets[w])
        acc = m.get("test_accuracy")
        acc_s = f"{acc:.4f}" if isinstance(acc, float) else str(acc)
        L.append(
            f"  - {_sizes_label(w)}: {m['source']}"
            + (
                f", trained in {m.get('train_s')} s, test accuracy {acc_s}"
                if m["source"] == "trained"
                else ""
            )
            + f"; base alphas {', '.join(f'{x:.4g}' for x in m['base_alphas'])}"
            + f" (x alpha_scale {_alpha_scale()} in the preset)"
        )
    L.append(f"- Alphas: {m1['alphas_how']}.")
    L.append(
        '- Reference = `device="reference"` with `exact_exp=False` (vectorised np.exp: '
        "the fair speed reference); the bit-exact oracle mode `exact_exp=True` is timed "
        "at width 1 as an extra row."
    )
    L.append(
        f"- Standalone rerun: weights x{RERUN_WEIGHT_SCALE} (new values, same structure) "
        "through the cached binary, same process."
    )
    if a.active_steps:
        L.append(
            f"- 'active' workload: the preset with thresholds x{ACTIVE_THRESHOLD_SCALE} and "
            f"dec x{ACTIVE_DEC_SCALE:g}, T = {min(a.active_steps, a.steps)} (own build), so that "
            "the hidden layers keep spiking and the timing reflects synaptic work."
        )
    L.append("")

    # --- spiking check
    if b.probe:
        L.append("## Does the network spike? (reference, width 1)")
        L.append("")
        L.append(
            "Spike counts per layer (input / hidden 1 / hidden 2 / output) of the reference "
            "run, and the hidden-layer rate per step."
        )
        L.append("")
        L.append(
            "| thresholds x | dec x | steps | spikes L0/L1/L2/L3 | hidden spikes / step "
            "| synaptic events |"
        )
        L.append("|---|---|---|---|---|---|")
        for s, d, r in b.probe:
            if "error" in r:
                L.append(f"| {s:g} | {d:g} | - | error: {r['error'][:80]} | - | - |")
                continue
            c = _norm_counts(r["counts"])
            L.append(
                f"| {s:g} | {d:g} | {r['steps']} | {_fmt_counts(c)} | "
                f"{(c[1] + c[2]) / r['steps']:.3f} | {r['events'] / 1e6:.1f} M |"
            )
        L.append("")
        L.append(b.probe_text if hasattr(b, "probe_text") else _probe_text(b))
        L.append("")

    # --- main table
    L.append("## Results")
    L.append("")
    L.append(
        "Times in seconds. *compile*: C++ code generation is in the notes, compile = "
        "`info['compile_seconds']` (write project + make). *run* (wall): reference and "
        "runtime = the whole `run_sleep` call; standalone = `info['run_seconds']` (write "
        "run_args, run binary, Brian2's NaN check), and the notes split it into binary "
        "process / simulation loop; *call*: the whole `run_sleep` call. *ratio* = run / "
        "reference run at the same size and T (wall; CPU in brackets). *events/s*: synaptic "
        "events (pre spikes x fan-out + post spikes x fan-in, summed over layers and steps) "
        "per wall second of *run*. *peak RSS*: VmHWM (peak resident memory) of the "
        "measuring subprocess, one per measurement (its baseline after imports and data, "
        "before the run, in brackets); *binary RSS*: VmHWM of the standalone binary "
        "(polled). `ru_maxrss` is not used: a child inherits its parent's value across "
        "fork+exec on Linux, which made every worker read the parent's 580 MB. *load*: "
        "1-min load average when the measurement started. Brian2 devices draw the input "
        "uniforms from Brian2's RNG and the reference from numpy's, so their spike "
        "counts differ by chance (Brian2 devices agree with each other exactly)."
    )
    L.append("")
    L.append(
        "| net | workload | device | phase | compile | run (wall) | CPU s | call "
        "| ratio vs ref | events/s | spikes L0/L1/L2/L3 | peak RSS MB | binary RSS MB "
        "| load | notes |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in b.rows:
        L.append(_row(b, row))
    L.append("")
    if b.notes:
        L += [f"- {n}" for n in b.notes]
        L.append("")
    L += _profile_section(b)
    L.append("## Targets")
    L.append("")
    L += _targets(b)
    L.append("")
    L.append("## Observations")
    L.append("")
    L += _observations(b)
    L.append("")
    return "\n".join(L)


def _alpha_scale() -> float:
    from brainsleep.models.presets import PRESETS

    return PRESETS[PRESET]["alpha_scale"]


def _probe_text(b: Bench) -> str:
    parts = []
    for s, d, r in b.probe:
        if "error" in r or d != 1.0:
            continue
        c = _norm_counts(r["counts"])
        parts.append((s, c, r["steps"]))
    if not parts:
        return ""
    s0, c0, T0 = parts[0]
    rate = (c0[1] + c0[2]) / T0
    silent = rate < 1.0
    txt = (
        f"With the preset the hidden layers emit {c0[1]} + {c0[2]} spikes in {T0} steps "
        f"({rate:.3f} per step for 2 x {b.args.widths[0] * BASE_HIDDEN} neurons) and the "
        f"output layer {c0[3]}: "
    )
    if silent:
        txt += (
            "**nearly silent**. Almost all synaptic work is the input layer's transmission. "
            "Scaling the thresholds down hardly helps (table above): a neuron that fires "
            "has every synapse from a silent input depressed by dec*g(w) ~ 0.077, ten "
            "times a typical weight, so it goes quiet after a few spikes. The 'active' "
            f"workload (thresholds x{ACTIVE_THRESHOLD_SCALE}, dec x{ACTIVE_DEC_SCALE:g}) "
            "keeps the hidden layers firing and is timed separately below."
        )
    else:
        txt += "the hidden layers are active."
    return txt


def _ratio(b: Bench, row: dict, t_wall, t_cpu) -> str:
    ref = b.ref_time.get((row["width"], row["workload"]))
    if not ref or not t_wall:
        return "-"
    s = f"{t_wall / ref[0]:.2f}"
    if t_cpu and ref[1]:
        s += f" ({t_cpu / ref[1]:.2f})"
    return s


def _row(b: Bench, row: dict) -> str:
    r = row["res"]
    net = _sizes_label(row["width"])
    head = f"| {net} | {row['workload']} | {row['device']} | {row['phase']} "
    if "skip" in r:
        return head + f"| - | - | - | - | - | - | - | - | - | - | {r['skip']} |"
    if "error" in r:
        return head + f"| - | - | - | - | - | - | - | - | - | - | ERROR: {r['error'][:160]} |"
    notes = []
    counts = _norm_counts(r.get("counts"))
    events = r.get("events")
    if events is None and counts is not None:
        # Input not recorded: same seed and device give the same spikes, so take the input
        # count of the record-all run if the hidden counts agree.
        for other in b.rows:
            oc = _norm_counts(other["res"].get("counts")) if "res" in other else None
            if (
                other is not row
                and other["device"] == row["device"]
                and other["width"] == row["width"]
                and other["workload"] == row["workload"]
                and oc
                and 0 in oc
                and all(oc.get(k) == counts.get(k) for k in counts)
            ):
                c2 = {**counts, 0: oc[0]}
                events = synaptic_events(c2, r["sizes"])
                notes.append(
                    "events use the input count of the record-all run (hidden counts identical)"
                )
                break
    dev = row["device"]
    if dev in ("reference", "runtime"):
        run_w, cpu = r.get("wall_s"), r.get("cpu_s")
        compile_s, call = "-", _f(run_w)
        rate = (
            _events_rate(events, r.get("measured_wall_s"))
            if r.get("extrapolated")
            else _events_rate(events, run_w)
        )
        if r.get("extrapolated"):
            notes.append(r["extrapolated"])
            notes.append(f"measured {r['measured_steps']} steps in {r['measured_wall_s']:.2f} s")
        binary = "-"
        peak = f"{_f(r.get('rss_peak_mb'), 0)} ({_f(r.get('rss_base_mb'), 0)})"
    else:
        is_rerun = "rerun" in row["phase"]
        run_w = r.get("run_s")
        cpu = r.get("cpu_children_s")
        if row["phase"].startswith(("first", "compile")):
            notes.append(f"children CPU incl. compiler {cpu:.1f} s" if cpu else "")
            cpu = None  # mixes the compiler's CPU with the binary's
        elif cpu is not None:
            notes.append(
                "CPU s = binary's CPU (RUSAGE_CHILDREN" + (")" if is_rerun else ", + make no-op)")
            )
        if is_rerun:
            compile_s = "none"
            notes.append(
                f"codegen runs during this call: {r['codegen_count']} "
                f"(BUILD_COUNT['codegen'] {'unchanged' if r['codegen_count'] == 0 else 'CHANGED'})"
                f", same build key: {r['same_build_key']}, "
                f"new weights used: {r['new_weights_used']}"
            )
            peak = f"{_f(r.get('rss_peak_mb'), 0)} (process, cumulative)"
        else:
            cold = "cold" if not r.get("binary_reused") else "cached binary, make no-op"
            compile_s = f"{_f(r.get('compile_s'))} ({cold})"
            other = r["wall_s"] - r["run_s"] - r["compile_s"]
            notes.append(f"network build + codegen + result reading {other:.1f} s")
            if r.get("compiler_peak_mb") and not r.get("binary_reused"):
                notes.append(f"compiler (cc1plus) peak {r['compiler_peak_mb']:.0f} MB")
            peak = f"{_f(r.get('rss_peak_mb'), 0)} ({_f(r.get('rss_base_mb'), 0)})"
        call = _f(r.get("wall_s"))
        if r.get("binary_s") is not None and r.get("loop_s") is not None:
            notes.append(
                f"binary process {r['binary_s']:.2f} s, of which simulation loop "
                f"{r['loop_s']:.2f} s"
            )
        rate = _events_rate(events, run_w)
        binary = _f(r.get("binary_peak_mb"), 0)
    ratio = _ratio(b, row, run_w, cpu)
    spikes = _fmt_counts(counts)
    if r.get("extrapolated"):
        spikes += f" (first {r['measured_steps']} steps)"
    load = (
        f"{r.get('load_start', '-')}"
        if "load_start" in r
        else (f"{row.get('parent', {}).get('load_end', '-')}")
    )
    notes = "; ".join(n for n in notes if n)
    return (
        head + f"| {compile_s} | {_f(run_w)} | {_f(cpu)} | {call} | {ratio} | "
        f"{rate} | {spikes} | {peak} | {binary} | {load} | {notes} |"
    )


def _profile_section(b: Bench) -> list[str]:
    if not b.profiles:
        return []
    L = ["## Where cpp_standalone spends its time (Brian2 profiling, diagnostic build)", ""]
    good = {k: r for k, r in b.profiles.items() if "error" not in r and r.get("profile")}
    for k, r in b.profiles.items():
        if k not in good:
            L.append(
                f"- {k}: profiling run failed or gave nothing: "
                f"{r.get('error', 'no profiling_info.txt')}"
            )
    if not good:
        return L + [""]
    L.append(
        f"{_sizes_label(b.args.widths[0])}, a separate build with Brian2's `profile=True` "
        "(timers around every code object, so a little slower than the rows above):"
    )
    L.append("")
    for k, r in good.items():
        total = sum(r["profile"].values())
        L.append(
            f"- {k}: binary process {r['binary_s']:.2f} s, simulation loop "
            f"{r['loop_s']:.2f} s, sum of code objects {total:.2f} s (the rest of the loop: "
            "spike queues, clock, monitors' bookkeeping, the timers themselves)"
        )
    L.append("")
    keys = list(good)
    L.append("| code object | " + " | ".join(f"{k}: s (share of loop)" for k in keys) + " |")
    L.append("|---|" + "---|" * len(keys))
    names = set()
    for r in good.values():
        names |= {n for n, _ in sorted(r["profile"].items(), key=lambda kv: -kv[1])[:10]}
    first = good[keys[0]]["profile"]
    for name in sorted(
        names, key=lambda n: -max(good[k]["profile"].get(n, 0) / good[k]["loop_s"] for k in keys)
    ):
        cells = []
        for k in keys:
            t = good[k]["profile"].get(name)
            cells.append("-" if t is None else f"{t:.3f} ({100 * t / good[k]['loop_s']:.0f} %)")
        L.append(f"| `{name}` | " + " | ".join(cells) + " |")
    del first
    L.append("")
    L.append(
        "Names: `layer0_spike_thresholder` = input spikes (one `rand()` per pixel per step "
        "plus the window test); `synN_pre` = transmission into layer N (`v_post += alpha*w`) "
        "and `synN_pre_push_spikes` its spike queue; `synN_post` = the Hebbian update of "
        "layer N's incoming synapses (with `exp` in g(w)); `layerN_stateupdater`, `decayN`: "
        "per-neuron bookkeeping (Brian2's refractoriness machinery, which the engine enables "
        "with refractory=0 to get `lastspike`) and the decay."
    )
    L.append("")
    return L


def _find(b: Bench, width, workload_prefix, device, phase_prefix):
    for row in b.rows:
        if (
            row["width"] == width
            and row["workload"].startswith(workload_prefix)
            and row["device"] == device
            and row["phase"].startswith(phase_prefix)
            and "error" not in row["res"]
            and "skip" not in row["res"]
        ):
            return row
    return None


def _targets(b: Bench) -> list[str]:
    a = b.args
    w1 = a.widths[0]
    T = a.steps
    wl = f"preset T={T}"
    out = []
    ref = b.ref_time.get((w1, wl))
    first = _find(b, w1, wl, "cpp_standalone", "first call")
    rerun = _find(b, w1, wl, "cpp_standalone", "rerun")
    fresh = _find(b, w1, wl, "cpp_standalone", "fresh process, cached binary (record all)")
    # 1. speed
    if ref and rerun:
        rr = rerun["res"]
        ratio = rr["run_s"] / ref[0]
        call_ratio = rr["wall_s"] / ref[0]
        loop = rr.get("loop_s")
        ok = ratio <= 0.5
        s = (
            f"1. **cpp_standalone run time <= 0.5 x reference** ({_sizes_label(w1)}, T={T}): "
            f"{'MET' if ok else 'NOT MET'}. Cached-binary run {rr['run_s']:.2f} s vs reference "
            f"{ref[0]:.2f} s = **{ratio:.2f}x** (CPU: binary {rr['cpu_children_s']:.2f} s vs "
            f"{ref[1]:.2f} s = {rr['cpu_children_s'] / ref[1]:.2f}x); the whole rerun call "
            f"(run_args, binary, reading results) {rr['wall_s']:.2f} s = {call_ratio:.2f}x"
        )
        if loop is not None:
            s += f"; the simulation loop alone {loop:.2f} s = {loop / ref[0]:.2f}x"
        if first:
            s += (
                f". First call: compile {first['res']['compile_s']:.1f} s + run "
                f"{first['res']['run_s']:.2f} s."
            )
        out.append(s)
        for other_w in a.widths[1:]:
            owl = f"preset T={T}"
            oref = b.ref_time.get((other_w, owl))
            orr = _find(b, other_w, owl, "cpp_standalone", "rerun")
            if oref and orr:
                out.append(
                    f"   - {_sizes_label(other_w)}: cached-binary run {orr['res']['run_s']:.2f} s "
                    f"vs reference {oref[0]:.2f} s = {orr['res']['run_s'] / oref[0]:.2f}x."
                )
        if a.active_steps:
            Ta = min(a.active_steps, T)
            aref = b.ref_time.get((w1, f"active T={Ta}"))
            arr = _find(b, w1, f"active T={Ta}", "cpp_standalone", "rerun")
            if aref and arr:
                out.append(
                    f"   - active workload (T={Ta}): cached-binary run {arr['res']['run_s']:.2f} s "
                    f"vs reference {aref[0]:.2f} s = {arr['res']['run_s'] / aref[0]:.2f}x."
                )
    else:
        out.append("1. cpp_standalone <= 0.5 x reference: not measured (missing rows).")
    # 2. rerun
    if rerun:
        rr = rerun["res"]
        ok = rr["wall_s"] < 3.0 and rr["codegen_count"] == 0 and rr["same_build_key"]
        out.append(
            "2. **Rerun with new weights < 3 s without recompiling**: "
            f"{'MET' if ok else 'NOT MET'}. "
            f"Whole `run_sleep` call {rr['wall_s']:.2f} s (binary run {rr['run_s']:.2f} s), "
            f"BUILD_COUNT['codegen'] {'unchanged' if rr['codegen_count'] == 0 else 'changed'}, "
            f"same build key {rr['same_build_key']}, new weights verifiably used "
            f"{rr['new_weights_used']}."
        )
        if fresh:
            fr = fresh["res"]
            out.append(
                f"   - From a NEW process (cached binary on disk, code generation and "
                f"make no-op run again): {fr['wall_s']:.2f} s for the call, of which "
                f"make {fr['compile_s']:.2f} s and binary run {fr['run_s']:.2f} s."
            )
    else:
        out.append("2. Rerun target: not measured.")
    # 3. memory
    hid = _find(
        b, w1, wl, "cpp_standalone", "fresh process, cached binary, input layer not recorded"
    )
    if fresh and hid and fresh["res"].get("binary_peak_mb") and hid["res"].get("binary_peak_mb"):
        fa, fh = fresh["res"], hid["res"]
        c = _norm_counts(fa["counts"])
        n_in = fa["sizes"][0]
        dense = T * n_in * 8 / 2**20
        delta = (fa["binary_peak_mb"] or 0) - (fh["binary_peak_mb"] or 0)
        spikes_mb = c[0] * 12 / 2**20
        lines = [
            f"3. **Memory grows with recorded spikes, not with T x n**: binary peak RSS "
            f"{fa['binary_peak_mb']:.0f} MB recording all layers vs {fh['binary_peak_mb']:.0f} MB "
            f"without the input layer (difference {delta:+.1f} MB for {c[0]} input spikes = "
            f"{spikes_mb:.2f} MB at 12 bytes/spike, Brian2's i + t; vectors grow by doubling). "
            f"A dense T x n input would be {dense:.0f} MB (float64) for the input layer alone."
        ]
        tm = None
        for row in b.rows:
            if (
                row["device"] == "cpp_standalone"
                and row["width"] == w1
                and row["workload"].startswith("preset T=")
                and row["workload"] != wl
                and row["phase"].startswith("fresh")
                and "error" not in row["res"]
            ):
                tm = row
        if tm and tm["res"].get("binary_peak_mb"):
            tr = tm["res"]
            lines.append(
                f"   - Same net at {tm['workload']}: binary peak {tr['binary_peak_mb']:.0f} MB vs "
                f"{fa['binary_peak_mb']:.0f} MB at T={T} ({T // tr['steps']}x the steps): the "
                "memory does not scale with T."
            )
        ok = abs(delta) < max(0.25 * dense, 5 * spikes_mb + 2) and (
            tm is None
            or not tm["res"].get("binary_peak_mb")
            or abs(tm["res"]["binary_peak_mb"] - fa["binary_peak_mb"]) < 0.25 * dense
        )
        lines[0] = lines[0].replace("**: binary", f"**: {'MET' if ok else 'NOT MET'}. Binary", 1)
        lines.append(
            "   - What the binary's memory IS proportional to: the synapses (n_in x n_out per "
            "layer, several arrays each); see the binary RSS column across widths. "
            "The recorded spikes are a small part at these rates, so the on/off difference "
            "is within the noise of RSS measurement (page-granular, allocator)."
        )
        out += lines
    else:
        out.append("3. Memory target: not measured (missing rows).")
    return out


def _observations(b: Bench) -> list[str]:
    out = []
    ext = [r for r in b.rows if r["res"].get("extrapolated")]
    if ext:
        out.append(
            "- EXTRAPOLATED cells: "
            + "; ".join(
                f"{_sizes_label(r['width'])} {r['workload']} {r['device']}: "
                f"{r['res']['extrapolated']}"
                for r in ext
            )
        )
    else:
        out.append("- Nothing was extrapolated: every cell ran its full number of steps.")
    for row in b.rows:
        if row["device"] == "cpp_standalone" and row["phase"].startswith("rerun"):
            r = row["res"]
            if r.get("loop_s") is not None and r.get("binary_s") and r.get("run_s"):
                out.append(
                    f"- {_sizes_label(row['width'])} {row['workload']}, cpp rerun: call "
                    f"{r['wall_s']:.2f} s = run {r['run_s']:.2f} s (binary process "
                    f"{r['binary_s']:.2f} s, of which the simulation loop {r['loop_s']:.2f} s and "
                    f"{r['binary_s'] - r['loop_s']:.2f} s creating synapses, loading arrays and "
                    f"writing results; {r['run_s'] - r['binary_s']:.2f} s writing run_args and "
                    f"Brian2's checks) + {r['wall_s'] - r['run_s']:.2f} s reading the results "
                    "into numpy/xarray."
                )
    # memory per synapse
    per = []
    for row in b.rows:
        r = row["res"]
        if (
            row["device"] == "cpp_standalone"
            and row["phase"].startswith("fresh process, cached binary (record all)")
            and r.get("binary_peak_mb")
            and row["workload"] == f"preset T={b.args.steps}"
        ):
            sz = r["sizes"]
            n_syn = sum(sz[k] * sz[k + 1] for k in range(len(sz) - 1))
            per.append(
                f"{_sizes_label(row['width'])}: {r['binary_peak_mb']:.0f} MB for "
                f"{n_syn / 1e6:.1f} M synapses = {r['binary_peak_mb'] * 2**20 / n_syn:.0f} "
                "B/synapse"
            )
    if per:
        out.append("- Binary memory is set by the synapses: " + "; ".join(per) + ".")
    # runtime and exact_exp
    w1, T = b.args.widths[0], b.args.steps
    ref = b.ref_time.get((w1, f"preset T={T}"))
    rt = _find(b, w1, f"preset T={T}", "runtime", "run")
    ex = _find(b, w1, f"preset T={T}", "reference", "run (exact_exp=True")
    if ref and rt:
        out.append(
            f"- Brian2 runtime (numpy target) takes {rt['res']['wall_s']:.1f} s for T={T} "
            f"({rt['res']['wall_s'] / ref[0]:.1f}x the reference, "
            f"{1e3 * rt['res']['wall_s'] / T:.2f} ms/step), far less than feared: with so few "
            "spikes per step it pays mostly Brian2's per-step overhead (a few dozen vectorised "
            "code objects per step), not synaptic work."
        )
    if ref and ex:
        out.append(
            f"- exact_exp=True costs {100 * (ex['res']['wall_s'] / ref[0] - 1):.0f} % over "
            "exact_exp=False here, because g(w) is evaluated only on the rows of neurons "
            "that spike, and they are few."
        )
    # active workload
    if b.args.active_steps:
        Ta = min(b.args.active_steps, T)
        aref = b.ref_time.get((w1, f"active T={Ta}"))
        arr = _find(b, w1, f"active T={Ta}", "cpp_standalone", "rerun")
        prof = b.profiles.get(f"active T={Ta}", {}).get("profile")
        if aref and arr and arr["res"]["run_s"] > aref[0]:
            txt = (
                f"- With the hidden layers active (T={Ta}), cpp_standalone is SLOWER than the "
                f"numpy reference: binary run {arr['res']['run_s']:.2f} s vs {aref[0]:.2f} s. "
                "The reference updates the spiking rows with vectorised numpy (np.exp on whole "
                "rows); the generated C++ Hebbian update (`synN_post`) walks the spiking "
                "neuron's synapses one by one through an index list, gathers lastspike_pre "
                "and calls libm exp per synapse, built with -fno-fast-math -ffp-contract=off "
                "for bit exactness (no vectorised exp)."
            )
            if prof:
                top = sorted(prof.items(), key=lambda kv: -kv[1])[:2]
                loop = b.profiles[f"active T={Ta}"]["loop_s"]
                txt += (
                    " Profile: "
                    + ", ".join(
                        f"`{n}` {t:.2f} s ({100 * t / loop:.0f} % of the loop)" for n, t in top
                    )
                    + "."
                )
            out.append(txt)
    pp = b.profiles.get(f"preset T={T}", {})
    if pp.get("profile") and pp.get("loop_s"):
        n, t = max(pp["profile"].items(), key=lambda kv: kv[1])
        why = (
            " (784 `rand()` calls per step for the input layer, whether or not the pixel is in "
            "the window)"
            if n.startswith("layer0_spike_thresholder")
            else ""
        )
        out.append(
            "- With the preset (nearly silent hidden layers) the biggest single item of the "
            f"cpp loop is `{n}`: {t:.2f} s = {100 * t / pp['loop_s']:.0f} % of the loop{why}; "
            "the loop itself is only part of a rerun call (see the breakdowns above)."
        )
    return out


# ============================================================================ main


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20000, help="sleep steps T (default 20000)")
    p.add_argument(
        "--widths",
        type=int,
        nargs="+",
        default=[1, 2, 4],
        help="hidden width multiples of 1200 (default 1 2 4)",
    )
    p.add_argument(
        "--devices",
        nargs="+",
        default=["reference", "runtime", "cpp_standalone", "cuda_standalone"],
        choices=["reference", "runtime", "cpp_standalone", "cuda_standalone"],
    )
    p.add_argument(
        "--out", type=Path, default=None, help=f"markdown output (default {DEFAULT_OUT})"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: T=500, width 1")
    p.add_argument(
        "--build-root",
        type=Path,
        default=None,
        help="standalone build cache (default $BRAINSLEEP_BUILD_DIR, else "
        "benchmarks/.cache/builds, which is private and compiled cold)",
    )
    p.add_argument(
        "--keep-builds",
        action="store_true",
        help="do not delete a cached build before a 'first call' (warm compile)",
    )
    p.add_argument(
        "--active-steps", type=int, default=2000, help="T of the 'active' workload (0 = skip it)"
    )
    p.add_argument(
        "--probe-steps",
        type=int,
        default=20000,
        help="T of the spiking probe with scaled thresholds (0 = skip it)",
    )
    p.add_argument(
        "--ref-budget",
        type=float,
        default=300.0,
        help="seconds a reference cell may take before steps are cut and extrapolated",
    )
    p.add_argument(
        "--runtime-budget",
        type=float,
        default=240.0,
        help="seconds a runtime cell may take before steps are cut and extrapolated",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=30.0,
        help="skip further widths once the benchmark has run this long",
    )
    p.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="skip the diagnostic cpp_standalone build with Brian2 profiling",
    )
    p.add_argument(
        "--no-exact-exp",
        dest="exact_exp",
        action="store_false",
        help="skip the exact_exp=True reference row",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.steps = 500
        args.widths = [1]
        args.active_steps = min(args.active_steps, 500) if args.active_steps else 0
        args.probe_steps = min(args.probe_steps, 500) if args.probe_steps else 0
    if args.out is None:
        args.out = QUICK_OUT if args.quick else DEFAULT_OUT
    if args.build_root is None:
        env = os.environ.get("BRAINSLEEP_BUILD_DIR")
        args.build_root = Path(env) if env else CACHE / "builds"
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        spec = json.loads(args.worker)
        res = worker(spec)
        tmp = spec["out"] + ".part"
        with open(tmp, "w") as f:
            json.dump(res, f, default=float)
        os.replace(tmp, spec["out"])
        return 0
    Bench(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
