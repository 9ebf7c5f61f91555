"""Cost of SNN evaluation (conversion fidelity) per 1000 test images.

    python benchmarks/bench_snn.py                 # 784-1200-1200-10, 200 images, window 300
    python benchmarks/bench_snn.py --images 40 --window 100 --devices cpp_standalone

Measures :func:`brainsleep.sleep.inference.evaluate_snn` on the reference-trained net of
the sleep benchmark (``benchmarks/workloads.py``, cached), per device: the first call
(compiling where the device compiles) and a second call on the same held engine (the
cached build), both scaled to 1000 images. Also the ANN's accuracy on the same images,
so the SNN's accuracy reads against it. Writes ``benchmarks/snn_eval.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import workloads  # noqa: E402

from brainsleep.atomic import atomic_write_bytes  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=200, help="test images per call")
    p.add_argument("--window", type=int, default=300, help="steps per image")
    p.add_argument("--batch", type=int, default=100, help="images per binary run")
    p.add_argument("--width", type=int, default=1, help="hidden width multiple of 1200")
    p.add_argument("--devices", nargs="+", default=["cpp_standalone"])
    p.add_argument("--build-root", default=str(workloads.CACHE / "builds"))
    p.add_argument("--out", default=str(HERE / "snn_eval.md"))
    a = p.parse_args(argv)

    from brainsleep.sleep import SleepEngine
    from brainsleep.sleep.inference import evaluate_snn
    from brainsleep.sleep.params import params_from_set, preset

    data = workloads.load_data()
    net = workloads.prepare_net(a.width, data, log=harness.log)
    weights, base_alphas, _, sizes = workloads.load_net(net)
    _, _, xt, yt = data
    x, y = xt[: a.images], yt[: a.images]
    h = np.maximum(x @ weights[0].T, 0)
    for w in weights[1:-1]:
        h = np.maximum(h @ w.T, 0)
    ann_pred = np.argmax(h @ weights[-1].T, axis=1)
    params = params_from_set(preset(workloads.PRESET), base_alphas)
    rows = []
    for device in a.devices:
        engine = SleepEngine(device, build_root=a.build_root)
        for call in ("first", "second"):
            t0 = time.perf_counter()
            ev = evaluate_snn(
                weights, x, y, params, engine, window=a.window, batch=a.batch,
                ann_predictions=ann_pred,
            )  # fmt: skip
            seconds = time.perf_counter() - t0
            rows.append(
                {
                    "device": device,
                    "call": call,
                    "seconds": seconds,
                    "per_1000": seconds * 1000 / a.images,
                    "snn_accuracy": ev.accuracy,
                    "agreement": ev.agreement,
                    "silent": ev.silent,
                    "ties": ev.ties,
                }
            )
            harness.log(f"{device} {call}: {seconds:.1f} s, SNN accuracy {ev.accuracy:.3f}")
    info = harness.machine_info()
    lines = [
        "# SNN evaluation cost",
        "",
        f"Written by `benchmarks/bench_snn.py {' '.join(argv or sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d')}: {'-'.join(map(str, sizes))}, {a.images} MNIST test "
        f"images, window {a.window} steps, {a.batch} images per binary run, preset "
        f"`{workloads.PRESET}` (plasticity off), machine {info['cpu']} ({info['nproc']} "
        f"cores). ANN accuracy on the same images: {np.mean(ann_pred == y):.3f}.",
        "",
        "| device | call | seconds | s per 1000 images | SNN accuracy | agreement | silent | ties |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['device']} | {r['call']} | {r['seconds']:.1f} | {r['per_1000']:.1f} | "
            f"{r['snn_accuracy']:.3f} | {r['agreement']:.3f} | {r['silent']:.3f} | "
            f"{r['ties']:.3f} |"
        )
    lines += [
        "",
        "The first call compiles on a compiled device (once per structure: batch size, "
        "window, layer sizes); the second reuses the build. Silent images and ties count "
        "as errors.",
    ]
    atomic_write_bytes(Path(a.out), ("\n".join(lines) + "\n").encode())
    harness.log(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
