"""The memory-traffic floor of one sleep run, and this machine's memory bandwidth.

Not part of the ``brainsleep`` package: a benchmark helper. The floor is the time a sleep
run needs at least if it only moved the weights it must touch, at the machine's memory
bandwidth: "each post spike reads and writes its weight row; each pre spike adds its
fan-out" (:func:`traffic_bytes`, :func:`floor_seconds`). An engine's measured time over
this floor says how far it is from being memory bound.

Run ``python benchmarks/floor.py`` to print the measured bandwidth.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

#: Bytes of one weight (float64) and of one "fired this step" flag.
WEIGHT_BYTES = 8
FLAG_BYTES = 1


def measure_bandwidth(n_bytes: int = 256 * 2**20, repeats: int = 5) -> dict:
    """Single-thread memory bandwidth of this machine, best of ``repeats``.

    Two float64 arrays of ``n_bytes`` each (default 256 MiB, far larger than any cache,
    so every pass goes to memory) are timed with numpy, whose ``sum`` and ``copyto`` run
    on one thread whatever the BLAS settings:

    - read: ``a.sum()`` streams ``n_bytes`` in;
    - copy: ``np.copyto(b, a)`` reads ``n_bytes`` and writes ``n_bytes``; counted as
      ``2 * n_bytes`` moved (the destination's write-allocate read, if the CPU does one,
      is not counted: it is a cost of writing, included in the rate).

    Parameters
    ----------
    n_bytes : int
        Size of each array in bytes (rounded down to whole float64 values, at least one).
    repeats : int
        Timed passes of each kind; the fastest counts (the least disturbed by other jobs).

    Returns
    -------
    dict
        ``read_Bps`` (bytes read per second), ``copy_Bps`` (bytes read plus written per
        second) and ``bytes`` (the array size actually used).
    """
    n = max(1, int(n_bytes) // 8)
    # ones/empty+fill touch every page first, so page faults are not timed.
    a = np.ones(n)
    b = np.empty(n)
    b.fill(0.0)
    size = n * 8
    best_read = best_copy = math.inf
    for _ in range(max(1, int(repeats))):
        t0 = time.perf_counter()
        a.sum()
        t1 = time.perf_counter()
        np.copyto(b, a)
        t2 = time.perf_counter()
        best_read = min(best_read, t1 - t0)
        best_copy = min(best_copy, t2 - t1)
    # A clock tick of 0 on a tiny array would give inf: floor the time at 1 ns.
    return {
        "read_Bps": size / max(best_read, 1e-9),
        "copy_Bps": 2 * size / max(best_copy, 1e-9),
        "bytes": size,
    }


def traffic_bytes(sizes: Sequence[int], spike_counts: Sequence[int], n_steps: int) -> dict:
    """Minimum memory traffic of one sleep run (the "memory-traffic floor").

    The model, for weight layer ``l`` (1-based) between layer ``l-1`` of ``n_{l-1}``
    neurons and layer ``l`` of ``n_l`` neurons, weights float64:

    - each presynaptic spike (a spike of layer ``l-1``) reads its fan-out, the ``n_l``
      weights from it, once: ``pre_l * n_l * 8`` bytes, read only (transmission);
    - each postsynaptic spike (a spike of layer ``l``) reads and writes its weight row, the
      ``n_{l-1}`` weights into it (the Hebbian update): ``post_l * 2 * n_{l-1} * 8``
      bytes, plus the presynaptic "fired this step" flags the update reads, one byte per
      presynaptic neuron: ``post_l * n_{l-1}`` bytes, read only.

    Not counted: the potentials (a few kB per layer, cache-resident), the input
    intensities (generated each step, never stored as a (T, n_in) array) and the random
    numbers. Every weight touched is counted as moved, i.e. no reuse of a row across
    spikes through the cache: the floor of a net too large for the cache. ``n_steps``
    is recorded only (nothing is counted per step).

    Parameters
    ----------
    sizes : sequence of int
        Neurons per layer, input first, e.g. ``(784, 1200, 1200, 10)``.
    spike_counts : sequence of int
        Spikes of the whole run per layer, input first (same length as ``sizes``).
    n_steps : int
        Steps of the run.

    Returns
    -------
    dict
        ``layers``: one dict per weight layer (``layer``, 1-based; ``pre_read_bytes``,
        ``post_rw_bytes``, ``flag_bytes``, ``events``); ``read_bytes`` (read-only part:
        fan-outs and flags), ``rw_bytes`` (read-and-write part: rows),
        ``total_bytes`` (their sum), ``events`` (synaptic events: presynaptic spikes x
        fan-out plus postsynaptic spikes x fan-in, summed over layers), ``n_steps``.

    Raises
    ------
    ValueError
        ``spike_counts`` and ``sizes`` of different lengths, fewer than two layers, or a
        negative count or size.
    """
    sizes = [int(s) for s in sizes]
    counts = [int(c) for c in spike_counts]
    if len(sizes) < 2 or len(counts) != len(sizes):
        raise ValueError(
            f"need one spike count per layer and at least two layers; got sizes {sizes} "
            f"and spike_counts {counts}"
        )
    if min(sizes) < 0 or min(counts) < 0 or n_steps < 0:
        raise ValueError("sizes, spike counts and n_steps must be >= 0")
    layers = []
    for l in range(1, len(sizes)):
        n_pre, n_post = sizes[l - 1], sizes[l]
        pre, post = counts[l - 1], counts[l]
        layers.append(
            {
                "layer": l,
                "pre_read_bytes": pre * n_post * WEIGHT_BYTES,
                "post_rw_bytes": post * 2 * n_pre * WEIGHT_BYTES,
                "flag_bytes": post * n_pre * FLAG_BYTES,
                "events": pre * n_post + post * n_pre,
            }
        )
    read = sum(t["pre_read_bytes"] + t["flag_bytes"] for t in layers)
    rw = sum(t["post_rw_bytes"] for t in layers)
    return {
        "layers": layers,
        "read_bytes": read,
        "rw_bytes": rw,
        "total_bytes": read + rw,
        "events": sum(t["events"] for t in layers),
        "n_steps": int(n_steps),
    }


def floor_seconds(traffic: dict, bandwidth: dict) -> float:
    """The floor time of a run: its traffic at this machine's bandwidth.

    The read-only part (fan-outs and flags, ``traffic["read_bytes"]``) moves at the read
    bandwidth, the read-and-write part (rows, ``traffic["rw_bytes"]``, which counts the
    bytes read plus the bytes written) at the copy bandwidth (also read plus written per
    second), so ``read_bytes / read_Bps + rw_bytes / copy_Bps``.

    Parameters
    ----------
    traffic : dict
        From :func:`traffic_bytes`.
    bandwidth : dict
        From :func:`measure_bandwidth` (``read_Bps``, ``copy_Bps``).
    """
    return traffic["read_bytes"] / bandwidth["read_Bps"] + (
        traffic["rw_bytes"] / bandwidth["copy_Bps"]
    )


if __name__ == "__main__":
    bw = measure_bandwidth()
    print(
        f"single-thread bandwidth over {bw['bytes'] / 2**20:.0f} MiB arrays: "
        f"read {bw['read_Bps'] / 1e9:.2f} GB/s, copy (read + write) {bw['copy_Bps'] / 1e9:.2f} GB/s"
    )
