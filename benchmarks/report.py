"""The benchmark's markdown report, generated from its JSON records.

Tables are lists of records rendered through column specs (header, cell function); the
prose is one short template. What the columns mean is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from harness import synaptic_events
from workloads import ACTIVE, N_TRAIN, PRESET, RERUN_WEIGHT_SCALE, SLEEP_SEED, sizes_label

from brainsleep.sleep.devices import DEVICES

Column = tuple[str, Callable[[dict], object]]


def fmt(x, nd: int = 2) -> str:
    """A number for a table cell: '-' for None/NaN, no decimals from 100 up."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.{nd}f}"


def table(rows: Sequence[dict], columns: Sequence[Column]) -> list[str]:
    """Markdown table lines: one row per record, one cell per column spec."""
    out = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for _, cell in columns:
            v = cell(r)
            cells.append(str(v).replace("|", "/").replace("\n", " ") if v is not None else "-")
        out.append("| " + " | ".join(cells) + " |")
    return out


def counts(r: dict) -> dict[int, int] | None:
    c = r.get("counts")
    return None if c is None else {int(k): int(v) for k, v in c.items()}


def spikes_cell(r: dict) -> str:
    c = counts(r)
    if not c:
        return "-"
    s = "/".join(str(c.get(k, "-")) for k in range(len(r["sizes"])))
    return s + (f" (first {r['measured_steps']} steps)" if r.get("extrapolated") else "")


def compiled(r: dict) -> bool:
    return DEVICES[r["device"]].compiled


def is_rerun(r: dict) -> bool:
    return r["phase"].startswith("rerun")


def _same_run(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in ("width", "workload", "steps"))


class Report:
    """The records of one benchmark run and what the tables derive from them."""

    def __init__(self, records: list[dict], meta: dict):
        self.meta = meta
        self.ok = [r for r in records if "error" not in r and "skip" not in r]
        self.records = records
        self.results = [r for r in records if r["section"] == "results"]
        self.refs = {
            (r["width"], r["workload"], r["steps"]): r
            for r in self.ok
            if r["device"] == "reference" and not r.get("exact_exp") and r["section"] == "results"
        }

    def find(self, device, phase_prefix, workload="preset", steps=None, width=None):
        width = width or self.meta["widths"][0]
        steps = steps or self.meta["steps"]
        for r in self.ok:
            if (r["device"], r["workload"], r["steps"], r["width"]) == (
                device, workload, steps, width,
            ) and r["phase"].startswith(phase_prefix):  # fmt: skip
                return r
        return None

    # ---- derived cells
    def ref(self, r):
        return self.refs.get((r["width"], r["workload"], r["steps"]))

    def run_s(self, r):
        return r.get("binary_s") if compiled(r) else r.get("wall_s")

    def cpu(self, r):
        if not compiled(r):
            return r.get("cpu_s")
        return None if r.get("binary_reused") is False else r.get("cpu_children_s")

    def events(self, r):
        c = counts(r)
        if c is None:
            return None
        if 0 not in c:  # input not recorded: same seed and device give the same spikes
            for o in self.ok:
                oc = counts(o)
                if o is not r and o["device"] == r["device"] and _same_run(o, r) and oc:
                    if 0 in oc and all(oc.get(k) == v for k, v in c.items()):
                        c = {**c, 0: oc[0]}
                        break
        return synaptic_events(c, r["sizes"])

    def ratio(self, r):
        ref, t = self.ref(r), self.run_s(r)
        if not ref or not t or r is ref:
            return "-"
        s = f"{t / ref['wall_s']:.2f}"
        cpu = self.cpu(r)
        return s + (f" ({cpu / ref['cpu_s']:.2f})" if cpu and ref.get("cpu_s") else "")

    def rate(self, r):
        ev, t = self.events(r), r.get("measured_wall_s") or self.run_s(r)
        return f"{ev / t / 1e6:.1f} M" if ev and t else "-"

    def compile_cell(self, r):
        if not compiled(r):
            return "-"
        how = "reused" if r.get("binary_reused") else "compiled"
        return f"{fmt(r.get('compile_s'))} ({how})"

    def notes(self, r):
        if "skip" in r or "error" in r:
            return r.get("skip") or f"ERROR: {r['error'][:160]}"
        n = []
        if r.get("extrapolated"):
            n.append(f"{r['extrapolated']}; measured {r['measured_wall_s']:.2f} s")
        if compiled(r):
            if r.get("loop_s") is not None:
                n.append(f"simulation loop {r['loop_s']:.2f} s of the binary's")
            rest = (r.get("engine_s") or 0) - (r.get("binary_s") or 0) - (r.get("compile_s") or 0)
            n.append(f"engine outside the binary {rest:.2f} s")
            if r.get("compiler_peak_mb") and not r.get("binary_reused"):
                n.append(f"compiler (cc1plus) peak {r['compiler_peak_mb']:.0f} MB")
            if is_rerun(r):
                n.append(
                    f"binary reused: {r['binary_reused']}, same build key: "
                    f"{r['same_build_key']}, new weights used: {r['new_weights_used']}"
                )
        return "; ".join(n)

    # ---- tables
    def results_table(self) -> list[str]:
        cols: list[Column] = [
            ("net", lambda r: sizes_label(r["width"])),
            ("workload", lambda r: f"{r['workload']} T={r['steps']}"),
            ("device", lambda r: r["device"]),
            ("phase", lambda r: r["phase"]),
            ("compile", self.compile_cell),
            ("run (wall)", lambda r: fmt(self.run_s(r))),
            ("CPU s", lambda r: fmt(self.cpu(r))),
            ("call", lambda r: fmt(r.get("wall_s"))),
            ("ratio vs ref", self.ratio),
            ("events/s", self.rate),
            ("spikes per layer", spikes_cell),
            ("peak RSS MB", lambda r: f"{fmt(r.get('rss_peak_mb'))} ({fmt(r.get('rss_base_mb'))})"),
            ("binary RSS MB", lambda r: fmt(r.get("binary_peak_mb"))),
            ("load", lambda r: r.get("load_start")),
            ("notes", self.notes),
        ]
        return table(self.results, cols)

    def probe_table(self) -> list[str]:
        rows = [r for r in self.records if r["section"] == "probe"]
        if not rows:
            return []

        def hidden(r):
            c = counts(r)
            return f"{sum(c.get(k, 0) for k in range(1, len(r['sizes']) - 1)) / r['steps']:.3f}"

        cols: list[Column] = [
            ("workload", lambda r: r["workload"]),
            ("thresholds x", lambda r: fmt(r["params"]["v_thresh"][0] / _preset_v(0), 3)),
            ("dec x", lambda r: f"{r['params']['dec'] / _preset_dec():.3g}"),
            ("steps", lambda r: r.get("steps")),
            ("spikes per layer", lambda r: spikes_cell(r) if "error" not in r else r["error"]),
            ("hidden spikes / step", lambda r: hidden(r) if counts(r) else "-"),
            ("synaptic events", lambda r: fmt((self.events(r) or 0) / 1e6, 1) + " M"),
        ]
        return table([r for r in rows if "params" in r or "error" in r], cols)

    def profile_table(self) -> list[str]:
        prof = [r for r in self.ok if r["section"] == "profile" and r.get("profile")]
        if not prof:
            return []
        names: set[str] = set()
        for r in prof:
            names |= {n for n, _ in sorted(r["profile"].items(), key=lambda kv: -kv[1])[:10]}
        rows = [{"name": n} for n in sorted(names, key=lambda n: -prof[0]["profile"].get(n, 0))]

        def share(r):
            def cell(row):
                t = r["profile"].get(row["name"])
                return "-" if t is None else f"{t:.3f} ({100 * t / r['loop_s']:.0f} %)"

            return cell

        cols: list[Column] = [("code object", lambda row: f"`{row['name']}`")]
        cols += [(f"{r['workload']} T={r['steps']}: s (share of loop)", share(r)) for r in prof]
        return table(rows, cols)

    # ---- targets
    def targets(self) -> list[str]:
        out = []
        ref, first = (
            self.find("reference", "run (exact_exp=False"),
            self.find("cpp_standalone", "first"),
        )
        rerun = self.find("cpp_standalone", "rerun")
        if ref and rerun:
            ratio = rerun["binary_s"] / ref["wall_s"]
            out.append(
                f"1. **cpp_standalone run <= 0.5 x reference**: {_met(ratio <= 0.5)}, "
                f"{ratio:.2f}x (binary {rerun['binary_s']:.2f} s vs reference {ref['wall_s']:.2f} s; "
                f"whole rerun call {rerun['wall_s']:.2f} s"
                + (f"; first call compiled in {first['compile_s']:.1f} s)" if first else ")")
            )
            ok = rerun["wall_s"] < 3.0 and rerun["binary_reused"] and rerun["same_build_key"]
            out.append(
                f"2. **Rerun with new weights < 3 s without recompiling**: {_met(ok)}, call "
                f"{rerun['wall_s']:.2f} s, binary reused {rerun['binary_reused']}, new weights "
                f"used {rerun['new_weights_used']}."
            )
        else:
            out.append("1.-2. Speed and rerun targets: not measured (missing rows).")
        fresh = self.find("cpp_standalone", "fresh process, cached binary (record all)")
        hid = self.find("cpp_standalone", "fresh process, cached binary, input layer")
        if fresh and hid and fresh.get("binary_peak_mb") and hid.get("binary_peak_mb"):
            dense = self.meta["steps"] * fresh["sizes"][0] * 8 / 2**20
            delta = fresh["binary_peak_mb"] - hid["binary_peak_mb"]
            out.append(
                f"3. **Memory grows with recorded spikes, not with T x n**: "
                f"{_met(abs(delta) < max(0.25 * dense, 2))}, binary peak "
                f"{fresh['binary_peak_mb']:.0f} MB with the input layer recorded vs "
                f"{hid['binary_peak_mb']:.0f} MB without ({delta:+.1f} MB); a dense T x n input "
                f"would be {dense:.0f} MB."
            )
        else:
            out.append("3. Memory target: not measured (missing rows).")
        return out


def _met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def _preset_v(k: int) -> float:
    from brainsleep.sleep.params import preset

    return float(preset(PRESET)["v_thresh"][k])


def _preset_dec() -> float:
    from brainsleep.sleep.params import preset

    return float(preset(PRESET)["dec"])


TEMPLATE = """# Sleep engine benchmark

Written by `benchmarks/bench_sleep.py` ({mode}{partial}); what is measured and what
the columns mean: `benchmarks/README.md`. Raw records: `{raw}`.

- **Date**: {date}; benchmark wall time {minutes:.1f} min
- **Machine**: {cpu}, nproc = {nproc}, {mem} RAM, GPU: {gpu}
- **Load average** (1/5/15 min) at start {load_start}, at end {load_end}: wall times are
  noisy when load > nproc; CPU seconds suffer less.
- **Versions**: {versions}
- **Build cache**: `{build_root}` ({cold})
- **Sleep**: preset `{preset}`, T = {steps} steps, dt = 1 ms, seed {seed}, input
  `MaskedMeanImage.from_images(first {n_train} MNIST training images)`; standalone
  rerun with weights x{rerun}; 'active' workload: thresholds x{a_t:g}, dec x{a_d:g}.
{nets}
"""


def render(records: list[dict], meta: dict) -> str:
    """The whole report from the records and the run's ``meta`` (see bench_sleep.main)."""
    rep = Report(records, meta)
    m = meta["machine"]
    nets = "\n".join(
        f"- **{sizes_label(w)}**: {n['how']}"
        + (f", test accuracy {n['test_accuracy']:.4f}" if "test_accuracy" in n else "")
        + f"; base alphas {', '.join(f'{x:.4g}' for x in n['base_alphas'])} ({n['alphas_how']})"
        for w, n in meta["nets"].items()
    )
    text = TEMPLATE.format(
        mode="quick smoke run" if meta["quick"] else "full run",
        partial="" if meta["final"] else ", IN PROGRESS: partial results",
        raw=meta["raw"],
        date=meta["date"],
        minutes=meta["minutes"],
        cpu=m["cpu"],
        nproc=m["nproc"],
        mem=m["mem"],
        gpu="yes" if m["gpu"] else "none",
        load_start=" / ".join(f"{x:.2f}" for x in meta["load_start"]),
        load_end=" / ".join(f"{x:.2f}" for x in meta["load_end"]),
        versions=", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        build_root=meta["build_root"],
        cold="private; each first call compiles cold" if meta["cold"] else "not cleared",
        preset=PRESET,
        steps=meta["steps"],
        seed=SLEEP_SEED,
        n_train=N_TRAIN,
        rerun=RERUN_WEIGHT_SCALE,
        a_t=ACTIVE.thresh_scale,
        a_d=ACTIVE.dec_scale,
        nets=nets,
    )
    parts = [text]
    if probe := rep.probe_table():
        parts += ["## Does the network spike? (reference)", "", *probe, ""]
    parts += ["## Results", "", *rep.results_table(), ""]
    if prof := rep.profile_table():
        parts += ["## Where cpp_standalone spends its time (Brian2 profiling build)", "", *prof, ""]
    parts += ["## Targets", "", *rep.targets(), ""]
    ext = [r for r in rep.ok if r.get("extrapolated")]
    parts += [
        f"- {len(ext)} cell(s) EXTRAPOLATED (see their notes)."
        if ext
        else "- Nothing was extrapolated.",
        "",
    ]
    return "\n".join(parts)
