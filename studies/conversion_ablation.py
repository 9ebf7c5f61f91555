"""Why the sleep's own conversion does not classify: one factor at a time (issue 31).

    python studies/conversion_ablation.py results/conversion/mnist_f0.1_reference \
        results/conversion/mnist_f0.1_strong --images 2000 --window 300 \
        --out docs/results/conversion/ablation.csv

For every finished cell of the given runs, the baseline network (its recorded weights,
its own training subset for the normalisation) is converted in each way of
:data:`VARIANTS` and classified on the first ``--images`` test images with the batched
evaluator (plasticity off). The variants walk from the sleep's conversion (the reference
preset: input rate 42 Hz, thresholds 37/7/33 with alpha_scale 14, decay 0.999) to
Diehl et al.'s one change at a time, then take each factor of Diehl's back out again:
what a factor costs is measured both ways. Writes one row per (cell, variant): accuracy
at each quarter of the window, lowest-index accuracy, silent and tied images, spikes per
image and layer, the alphas; and the command, versions and wall time beside it (.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# name -> (description, changes from the start: "sleep" = the preset, "diehl" = Diehl's)
#   rate: max_rate (Hz in models/src.py's convention, P = 2 dt max_rate x)
#   thresholds: v_thresh per layer and alpha_scale
VARIANTS = {
    "sleep": ("the sleep's conversion (reference preset)", "sleep", {}),
    "unit": ("+ unit thresholds, alpha_scale 1", "sleep", {"unit": True}),
    "unit_rate": ("+ input P(spike) = x (= Diehl's with decay 0.999)", "sleep",
                  {"unit": True, "max_rate": 500.0}),
    "diehl2015": ("+ no decay: Diehl et al. 2015", "diehl", {}),
    "diehl_slow_input": ("Diehl, input rate of the preset (42 Hz)", "diehl",
                         {"max_rate": None}),
    "diehl_sleep_thresholds": ("Diehl, thresholds and alpha_scale of the preset", "diehl",
                               {"unit": False}),
    "diehl_textbook": ("Diehl, normalisation without the prev = f quirk", "diehl",
                       {"quirk": False}),
    "diehl_subtract": ("Diehl, reset by subtraction", "diehl", {"reset": "subtraction"}),
    "diehl_p99.9": ("Diehl, 99.9th percentile normalisation", "diehl", {"percentile": 99.9}),
    "diehl_textbook_subtract_p99.9": (
        "Diehl, textbook normalisation, subtraction, 99.9th percentile", "diehl",
        {"quirk": False, "reset": "subtraction", "percentile": 99.9}),
}  # fmt: skip


def variant_params(name: str, preset: dict, weights, x, hidden_scale: float, model):
    """(SleepParams with plasticity off, reset) of variant ``name`` for one network."""
    from brainsleep.normalize import normalization_alphas
    from brainsleep.sleep.inference import inference_params
    from brainsleep.sleep.params import params_from_set

    _, start, change = VARIANTS[name]
    diehl = start == "diehl"
    quirk = change.get("quirk", True)
    norm = normalization_alphas(
        weights, x, hidden_scale=hidden_scale, quirk=quirk, percentile=change.get("percentile")
    )
    unit = change.get("unit", diehl)
    p = {
        "max_rate": 500.0 if diehl else preset["max_rate"],
        "decay": 1.0 if diehl else 0.999,
        "v_thresh": 1.0 if unit else preset["v_thresh"],
        "alpha_scale": 1.0 if unit else preset["alpha_scale"],
    }
    if "max_rate" in change:
        p["max_rate"] = change["max_rate"] or preset["max_rate"]
    params = inference_params(params_from_set(p, norm.alphas, model), model)
    return params, change.get("reset", "zero")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="results directories (limited protocol)")
    ap.add_argument("--images", type=int, default=2000, help="first N test images")
    ap.add_argument("--window", type=int, default=300, help="steps per image")
    ap.add_argument("--seeds", type=int, nargs="+", help="only the cells of these seeds")
    ap.add_argument("--out", required=True, help="CSV to write (a .md beside it)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if out.suffix != ".csv":
        ap.error(f"--out {out}: give a .csv path")
    import torch

    from brainsleep import ann
    from brainsleep.atomic import atomic_write_bytes, atomic_write_with
    from brainsleep.experiment.config import ExperimentConfig, start_params
    from brainsleep.experiment.pipeline import Cell, CellRunner, load_data
    from brainsleep.formats import CELLS_DIR, CONFIG_FILE, DONE_MARKER, parse_cell_id
    from brainsleep.sleep import load_model
    from brainsleep.sleep.inference import evaluate_snn_batched

    torch.set_num_threads(1)
    t0 = time.time()
    model = load_model("src")
    rows = []
    for run in map(Path, a.runs):
        stored = json.loads((run / CONFIG_FILE).read_text())["config"]
        cfg = ExperimentConfig(**{**stored, "progress": False})
        data = load_data(cfg)
        for cell_dir in sorted((run / CELLS_DIR).iterdir()):
            if not (cell_dir / DONE_MARKER).is_file():
                continue
            c = parse_cell_id(cell_dir.name)
            if a.seeds is not None and c.seed not in a.seeds:
                continue
            cell = Cell(c.dataset, c.fraction, c.imbalance, c.seed)
            runner = CellRunner(cfg, cell, data[cell.dataset], run)
            net = runner.baseline_model()
            weights = ann.get_weights(net)
            x, y = np.asarray(runner.x_test[: a.images]), np.asarray(runner.y_test[: a.images])
            ann_pred = ann.evaluate(net, x, y).predictions
            preset = start_params(cfg, c.dataset)
            for name, (description, _, _) in VARIANTS.items():
                params, reset = variant_params(
                    name, preset, weights, runner.x, net.eval_hidden_scale, model
                )
                ev = evaluate_snn_batched(
                    weights, x, y, params, model, window=a.window, reset=reset,
                    seed=c.seed, ann_predictions=ann_pred, curve_steps=[],
                )  # fmt: skip
                rows.append(
                    {
                        "run": run.name,
                        "recipe": cfg.recipe,
                        "cell": cell_dir.name,
                        "seed": c.seed,
                        "variant": name,
                        "description": description,
                        "ann_accuracy": float(np.mean(ann_pred == y)),
                        **{k: v for k, v in ev.metrics("").items() if k != "images"},
                        **{f"alpha{k}": v for k, v in enumerate(params.alphas, start=1)},
                        "images": len(y),
                    }
                )
                print(f"{cell_dir.name} {cfg.recipe} {name}: {ev.accuracy:.3f}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(out, lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))
    import brian2

    args = " ".join(sys.argv[1:] if argv is None else argv)
    note = (
        f"# Conversion ablation\n\nWritten by `python studies/conversion_ablation.py {args}` "
        f"on {time.strftime('%Y-%m-%d')}: {len(rows)} rows, {time.time() - t0:.0f} s wall "
        f"time on {platform.machine()} (one thread); numpy {np.__version__}, torch "
        f"{torch.__version__}, brian2 {brian2.__version__}, python "
        f"{platform.python_version()}.\n"
    )
    atomic_write_bytes(out.with_suffix(".md"), note.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
