"""GPU check: cuda_standalone against cpp_standalone, exactness and speed, in one table.

    bash benchmarks/gpu_check.sh            # at most 5 minutes on a machine with a GPU

1. Exactness: a 784-1200-1200-10 network on deterministic input (every firing
   probability exactly 0 or 1, every layer spiking), run on cpp_standalone and
   cuda_standalone with the same seed: spike trains must be identical in every layer and
   step, final weights equal to within float64 rounding of a different summation order
   (the GPU adds a step's synaptic inputs in another order; the test suite's CPU devices
   are bit-exact).
2. Speed: the QUIET workload (the reduced_mnist_10ep preset, T = 20 000, masked-mean input;
   hidden layers nearly silent) at 784-1200-1200-10 and WIDE (784-2400-2400-10), each
   timed on both devices with a cached build (the first call compiles and is not timed).
   Random weights stand in for trained ones (no training on the GPU box); the table gives
   each run's spike counts so the workloads can be compared with benchmarks/sleep_engine.md.

Without an NVIDIA GPU it stops at once with exit status 2 and one line saying so (it never
waits for a device). Exit status 1: a mismatch or a failed run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EXIT_MISMATCH = 1
EXIT_NO_GPU = 2


def _net(sizes, seed, low=-0.02, high=0.03):
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, (sizes[k + 1], sizes[k])) for k in range(len(sizes) - 1)]


def _counts(result) -> str:
    layers = result.spikes["layer"].values
    return "/".join(str(int((layers == k).sum())) for k in range(4))


def exactness(build_root: Path) -> list[str]:
    """Row of the exactness check; raises SystemExit(1) on a mismatch."""
    from brainsleep.sleep import SleepParams, run_sleep

    sizes = (784, 1200, 1200, 10)
    weights = _net(sizes, seed=11)
    x = (np.random.default_rng(4).random((25, 784)) < 0.3).astype(float)
    params = SleepParams.for_model(
        max_rate=1000.0, inc=0.01, dec=0.005, v_thresh=[0.8] * 3, alphas=[1.0] * 3
    )
    runs = {
        dev: run_sleep(weights, x, params, device=dev, seed=5, build_root=build_root)
        for dev in ("cpp_standalone", "cuda_standalone")
    }
    cpu, gpu = runs["cpp_standalone"], runs["cuda_standalone"]
    same = cpu.spikes.sizes["spike"] == gpu.spikes.sizes["spike"] and all(
        np.array_equal(cpu.spikes[v].values, gpu.spikes[v].values)
        for v in ("layer", "neuron", "step")
    )
    dw = max(float(np.abs(a - b).max()) for a, b in zip(cpu.weights, gpu.weights, strict=True))
    row = [
        "exactness 784-1200-1200-10, T=25",
        _counts(cpu),
        _counts(gpu),
        "identical" if same else "DIFFERENT",
        f"max |dW| {dw:.1e}",
    ]
    if not same or dw > 1e-9:
        print(" | ".join(row), file=sys.stderr)
        raise SystemExit(EXIT_MISMATCH)
    return row


def speed(hidden: int, build_root: Path) -> list[str]:
    """Row of one workload: seconds per cached run on each device and their ratio."""
    from brainsleep.sleep import MaskedMeanImage, SleepEngine
    from brainsleep.sleep.params import from_preset

    sizes = (784, hidden, hidden, 10)
    weights = _net(sizes, seed=1, low=-0.01, high=0.012)
    image = np.random.default_rng(2).random((28, 28)) * 0.5
    inputs = MaskedMeanImage(image, n_steps=20_000)
    params = from_preset("reduced_mnist_10ep", [1.5, 3.3, 1.2])
    secs, counts = {}, {}
    for dev in ("cpp_standalone", "cuda_standalone"):
        engine = SleepEngine(dev, build_root=build_root)
        engine.run(weights, inputs, params, seed=0, record_layers="all")  # compiles
        t0 = time.perf_counter()
        r = engine.run(weights, inputs, params, seed=1, record_layers="all")
        secs[dev] = time.perf_counter() - t0
        counts[dev] = _counts(r)
    return [
        f"QUIET 784-{hidden}-{hidden}-10, T=20000" + (" (WIDE)" if hidden > 1200 else ""),
        f"{secs['cpp_standalone']:.2f} s, spikes {counts['cpp_standalone']}",
        f"{secs['cuda_standalone']:.2f} s, spikes {counts['cuda_standalone']}",
        f"cuda / cpp = {secs['cuda_standalone'] / secs['cpp_standalone']:.2f}",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-root", help="build cache (default: a fresh temporary directory)")
    a = p.parse_args(argv)
    from brainsleep.sleep.cuda_setup import gpu_available

    if not gpu_available():
        print(
            "gpu_check: no NVIDIA GPU here (nvidia-smi -L lists none); run it on a GPU machine",
            file=sys.stderr,
        )
        return EXIT_NO_GPU
    root = Path(a.build_root or tempfile.mkdtemp(prefix="gpu_check_"))
    rows = [exactness(root), speed(1200, root), speed(2400, root)]
    print("| check | cpp_standalone | cuda_standalone | result | |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
