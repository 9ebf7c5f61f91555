"""The exact-arithmetic floor of a sleep run: its Hebbian updates, nothing else, in C++.

Not part of the ``brainsleep`` package: a benchmark helper. When the hidden layers fire
(ACTIVE), a run is dominated by the Hebbian rule of ``models/src.py``: every
postsynaptic spike updates each synapse onto the neuron once, evaluating
``g(w) = 2 * (1 - 1 / (1 + exp(-w / w_sharpness)))`` (a division, libm's ``exp``, a
second division). The memory-traffic floor (``floor.py``) ignores that arithmetic; this
one measures it: a tight C++ loop doing exactly that update, in the generated code's
order of operations, over contiguous rows of weights (no spike queue, no index
indirection beyond the presynaptic ``lastspike`` lookup, data in cache), compiled with
the engine's exactness flags (:data:`brainsleep.sleep.standalone.EXACT_GCC_FLAGS`: no
FMA contraction, no fast-math, so ``exp`` stays libm's scalar function and cannot be
vectorised). It is the floor for a single-threaded engine built on libm's scalar
``exp``, whatever its storage order: the best ratio such an exact engine can reach
against a vectorised (inexact ``exp``) reference. A SIMD ``exp`` bit-identical to
glibc's, or several threads, could go below it.

The loop hard-codes the SRC rule (``models/src.py``, ``SYNAPSE["on_post"]``); a model
with another rule needs its own floor.

Run ``python benchmarks/arith_floor.py N`` to time N updates.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from brainsleep.sleep.standalone import EXACT_GCC_FLAGS  # noqa: E402

CACHE = HERE / ".cache" / "arith_floor"

# The update of models/src.py's on_post with the generated code's arithmetic
# (Brian2 writes 1 / x as 1.0f*1/x and -w / s as 1.0f*(-w)/s; both are exact here).
SOURCE = r"""
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

int main(int argc, char** argv) {
    const long n_updates = std::atol(argv[1]);
    const int repeats = std::atoi(argv[2]);
    const int fan_in = 1200, n_rows = 256;  // 2.4 MB of weights: cache-resident rows
    std::mt19937_64 gen(0);
    std::normal_distribution<double> normal(0.0, 0.006);  // a trained layer's spread
    std::vector<double> w0((size_t)fan_in * n_rows);
    for (auto& x : w0) x = normal(gen);
    std::vector<double> w = w0;
    std::vector<int32_t> pre((size_t)fan_in * n_rows);
    for (size_t k = 0; k < pre.size(); k++) pre[k] = (int32_t)(k % fan_in);
    std::vector<double> lastspike(fan_in);
    for (int i = 0; i < fan_in; i++) lastspike[i] = (i % 7 == 0) ? 1.0 : 0.0;
    const double t = 1.0, inc = 0.02, dec = 7.7e-5, w_sharpness = 0.001;
    double best = 1e300, checksum = 0.0;
    for (int r = 0; r < repeats; r++) {
        long done = 0;
        auto t0 = std::chrono::steady_clock::now();
        while (done < n_updates) {
            if (done % (long)w.size() == 0) w = w0;  // same work every pass: no drift
            for (size_t k = 0; k < w.size() && done < n_updates; k++, done++) {
                const double lastspike_pre = lastspike[pre[k]];
                const int64_t pre_fired = (lastspike_pre == t);
                const double g = 2 * (1 - (1.0f * 1 / (1 + exp(1.0f * (-w[k]) / w_sharpness))));
                w[k] += ((pre_fired * inc) * g) - (((1 - pre_fired) * dec) * g);
            }
        }
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (s < best) best = s;
    }
    for (double x : w) checksum += x;  // keeps the loop from being optimised away
    std::printf("%.9f %.17g\n", best, checksum);
    return 0;
}
"""


def _binary() -> Path:
    """The floor program, compiled once per source and flags (cached)."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++ or c++) on PATH")
    flags = [f for f in EXACT_GCC_FLAGS if f != "-w"]
    key = hashlib.sha256((SOURCE + " ".join(flags) + cxx).encode()).hexdigest()[:16]
    exe = CACHE / f"arith_floor-{key}"
    if not exe.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        src = CACHE / f"arith_floor-{key}.cpp"
        src.write_text(SOURCE)
        tmp = exe.with_suffix(".tmp")
        subprocess.run([cxx, *flags, str(src), "-o", str(tmp)], check=True)
        tmp.replace(exe)
    return exe


def hebbian_updates(sizes, spike_counts) -> int:
    """Synapse updates of the Hebbian rule in a run: each spike of layer ``l >= 1``
    updates its ``sizes[l - 1]`` incoming synapses once."""
    return int(sum(int(spike_counts[k]) * int(sizes[k - 1]) for k in range(1, len(sizes))))


def arithmetic_floor_seconds(n_updates: int, repeats: int = 3) -> float:
    """Best of ``repeats`` wall times of ``n_updates`` exact SRC updates in a tight loop.

    Parameters
    ----------
    n_updates : int
        Number of synapse updates (:func:`hebbian_updates` of a run).
    repeats : int
        Timed passes; the fastest counts.

    Returns
    -------
    float
        Seconds (0.0 for no update).

    Raises
    ------
    RuntimeError
        No C++ compiler.
    subprocess.CalledProcessError
        The program failed to compile or run.
    """
    if n_updates <= 0:
        return 0.0
    out = subprocess.run(
        [str(_binary()), str(int(n_updates)), str(int(repeats))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0])


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000_000
    s = arithmetic_floor_seconds(n)
    print(f"{n} exact SRC updates: {s:.3f} s ({s / n * 1e9:.2f} ns per update)")
