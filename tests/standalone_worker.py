"""Worker process for the standalone integrity tests: M reruns of one compiled build.

Usage: python -m tests.standalone_worker CASE.npz BUILD_ROOT OUT_PREFIX M
Reads weights, input and parameters from CASE.npz, runs ``run_sleep`` M times on
cpp_standalone and saves every result as OUT_PREFIX-<k>.npz (weights and spikes), or
the error text as OUT_PREFIX-<k>.err.
"""

from __future__ import annotations

import sys
import traceback

import numpy as np


def load_case(path):
    from brainsleep.sleep import SleepParams

    z = np.load(path)
    n_layers = int(z["n_layers"])
    weights = [z[f"w{k}"] for k in range(n_layers)]
    params = SleepParams.for_model(
        max_rate=float(z["max_rate"]),
        inc=float(z["inc"]),
        dec=float(z["dec"]),
        v_thresh=list(z["thresholds"]),
        alphas=list(z["alphas"]),
    )
    return weights, z["inputs"], params, int(z["seed"])


def save_result(path, res) -> None:
    np.savez(
        path,
        **{f"w{k}": w for k, w in enumerate(res.weights)},
        layer=res.spikes["layer"].values,
        neuron=res.spikes["neuron"].values,
        step=res.spikes["step"].values,
    )


def main(argv) -> int:
    from brainsleep.sleep import run_sleep

    case, build_root, prefix, m = argv[0], argv[1], argv[2], int(argv[3])
    weights, inputs, params, seed = load_case(case)
    for k in range(m):
        try:
            res = run_sleep(
                weights, inputs, params, device="cpp_standalone", seed=seed,
                build_root=build_root,
            )  # fmt: skip
        except Exception:  # the test checks that failures are loud, never silent
            with open(f"{prefix}-{k}.err", "w") as f:
                f.write(traceback.format_exc())
            continue
        save_result(f"{prefix}-{k}.npz", res)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
