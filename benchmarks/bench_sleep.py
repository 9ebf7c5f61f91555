#!/usr/bin/env python
"""Benchmark of the brainsleep sleep engine: numpy reference vs Brian2 devices.

Usage (from the repository root)::

    python benchmarks/bench_sleep.py --tiny               # end-to-end check, T=200
    python benchmarks/bench_sleep.py --quick              # smoke run, T=500, width 1
    python benchmarks/bench_sleep.py                      # full run -> benchmarks/sleep_engine.md
    python benchmarks/bench_sleep.py --widths 1 --devices reference cpp_standalone

The CLI only: what is run is ``workloads.py`` (``plan``), how one measurement is taken
``harness.py`` (one subprocess per measurement, ``--worker``), the markdown ``report.py``,
rendered from the JSON records. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
sys.path.insert(0, str(HERE))

from harness import log, machine_info, run_plan, worker  # noqa: E402
from workloads import CACHE, load_data, net_meta, plan, prepare_net  # noqa: E402

DEFAULT_OUT = HERE / "sleep_engine.md"
QUICK_OUT = CACHE / "sleep_engine_quick.md"


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
        "--tiny",
        action="store_true",
        help="end-to-end check: T=200, width 1, reference + cpp_standalone, no extras",
    )
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
    if args.tiny:
        args.quick, args.steps, args.widths = True, 200, [1]
        args.devices = [d for d in args.devices if d in ("reference", "cpp_standalone")]
        args.active_steps = args.probe_steps = 0
        args.profile = args.exact_exp = False
    if args.out is None:
        args.out = QUICK_OUT if args.quick else DEFAULT_OUT
    if args.build_root is None:
        env = os.environ.get("BRAINSLEEP_BUILD_DIR")
        args.build_root = Path(env) if env else CACHE / "builds"
    args.cold = (
        Path(args.build_root).resolve() == (CACHE / "builds").resolve() and not args.keep_builds
    )
    return args


def main(argv=None) -> int:
    from brainsleep.atomic import atomic_write_bytes, atomic_write_json

    args = parse(argv)
    if args.worker:
        spec = json.loads(args.worker)
        atomic_write_json(spec["out"], worker(spec))
        return 0
    from report import render

    t0 = time.perf_counter()
    CACHE.mkdir(parents=True, exist_ok=True)
    raw = CACHE / (Path(args.out).stem + "_raw.json")
    meta = {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_info(),
        "load_start": os.getloadavg(),
        "quick": args.quick,
        "steps": args.steps,
        "widths": args.widths,
        "build_root": str(args.build_root),
        "cold": args.cold,
        "raw": os.path.relpath(raw, HERE.parent),
    }
    log(f"start: T={args.steps}, widths {args.widths}, devices {args.devices}")
    data = load_data()
    nets = {w: prepare_net(w, data, log) for w in args.widths}
    del data
    meta["nets"] = {w: net_meta(p) for w, p in nets.items()}

    def write(records, final=False):
        meta.update(final=final, load_end=os.getloadavg(), minutes=(time.perf_counter() - t0) / 60)
        atomic_write_json(raw, {"meta": meta, "records": records})
        atomic_write_bytes(args.out, render(records, meta).encode())

    records = run_plan(plan(args), nets, args, write)
    write(records, final=True)
    log(f"done in {(time.perf_counter() - t0) / 60:.1f} min; wrote {args.out} and {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
