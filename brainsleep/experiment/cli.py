"""The experiment's command line: the argument parser and the configuration it gives.

Imports are cheap (no torch, Brian2, xarray): ``--help`` and argument errors return at
once. :mod:`brainsleep.experiment.__main__` runs what this parses, and study specs
(:mod:`brainsleep.experiment.study`) check their keys against the same parser.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from brainsleep.cli import HelpFormatter, add_options, environment_epilog, one_of

from .config import (
    INCREMENTAL_EPOCHS,
    INCREMENTAL_SLEEP_STEPS,
    INCREMENTAL_TASK_SIZE,
    INCREMENTAL_TASKS,
    PROTOCOLS,
    SEARCH_VAL,
    ExperimentConfig,
    load_sleep_params_file,
    parse_input_options,
    parse_prefs,
    parse_search_ranges,
    parse_sleep_param_overrides,
    validate,
)

__all__ = ["build_parser", "config_from_args"]

D = ExperimentConfig()
#: Options whose value is the configuration field of the same name, as parsed.
_SAME_NAMES = (
    "subset imbalance val_fraction recipe epochs train_device model sleep_input search "
    "finetune_epochs strong snn_eval snn_window snn_protocol snn_reset snn_percentile "
    "snn_evaluator record_spikes protocol task_size search_val out data_dir build_root "
    "workers scheduler"
).split()


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m brainsleep.experiment`` argument parser.

    Builds without importing torch or Brian2: the names it lists (devices, presets,
    recipes, data sets) come from torch-free declarations.

    Returns
    -------
    argparse.ArgumentParser
        The parser; its ``--help`` lists the accepted names, each default once, the
        environment variables read and the exit statuses.
    """
    from brainsleep.data import KNOWN_DATASETS
    from brainsleep.models.presets import PRESETS
    from brainsleep.names import RECIPE_NAMES, REMEDY_NAMES, TRAIN_DEVICES
    from brainsleep.sleep import DEVICE_NAMES
    from brainsleep.sleep.inputs import SLEEP_INPUTS

    p = argparse.ArgumentParser(
        prog="python -m brainsleep.experiment",
        description=(
            "Train an ANN on a small or unbalanced part of MNIST / Fashion-MNIST, sleep it "
            "in Brian2 (Sleep Replay Consolidation), evaluate it against controls. With no "
            "flags: MNIST 1 %, one seed, cpp_standalone (runtime without a C++ compiler)."
        ),
        epilog=(
            f"{environment_epilog()}\n\n"
            "exit status: 0 done, 1 a cell failed (finished stages are kept: rerun to "
            "resume), 2 bad input (nothing written), 3 data, device or disk unavailable, "
            "130 interrupted."
        ),
        formatter_class=HelpFormatter,
    )
    opts = {
        "simulation": [
            (
                "--device",
                dict(choices=DEVICE_NAMES),
                "where the sleep phase runs (default: cpp_standalone if g++ is present, else "
                "runtime)",
            ),
            (
                "--pref",
                dict(action="append", default=[], metavar="KEY=VALUE"),
                "Brian2 preference with its dotted name, repeatable (e.g. codegen.target=cython)",
            ),
            (
                "--model",
                dict(default=D.model, metavar="NAME|PATH"),
                "sleep model: a name in models/ or a path to a model file; a model file is "
                "Python code, executed when loaded: use only files you trust like code",
            ),
            (
                "--sleep-preset",
                dict(metavar="NAME"),
                f"named reference parameter set (models/presets.py), {one_of(PRESETS)} "
                f"(default: {D.sleep_preset}; class-incremental: the data set's "
                "*_class_incremental set)",
            ),
            (
                "--sleep-params",
                dict(metavar="FILE"),
                "JSON object of sleep parameters by the names the model declares (e.g. "
                '{"max_rate": 50, "v_thresh": [30, 7, 30], "alpha_scale": 10}); overrides the '
                "preset name by name",
            ),
            (
                "--sleep-param",
                dict(action="append", default=[], metavar="NAME=VALUE"),
                "one sleep parameter, repeatable (e.g. max_rate=30, v_thresh=[30,7,30]); "
                "overrides --sleep-params and the preset name by name: sweeps in study specs",
            ),
            (
                "--sleep-steps",
                dict(type=int, metavar="T"),
                f"sleep length T in steps of dt = 1 ms (default: {D.sleep_steps}; "
                f"class-incremental: {INCREMENTAL_SLEEP_STEPS} after the first task, a third "
                "of it longer after each further task, as the reference)",
            ),
            (
                "--sleep-input",
                dict(default=D.sleep_input, metavar="NAME"),
                f"what the network sleeps on, {one_of(SLEEP_INPUTS)}: masked-mean is the "
                "reference's (a patch of the mean training image at a random place each step), "
                "mean the whole mean image, samples a random training image per window, "
                "class-means the mean image of a random class per window, noise a uniform "
                "intensity (no data)",
            ),
            (
                "--sleep-input-option",
                dict(action="append", default=[], metavar="KEY=VALUE"),
                "an option of the sleep input, repeatable: patch (masked-mean), every and "
                "pool_size (samples), every and classes (class-means), level (noise)",
            ),
            (
                "--search",
                dict(type=int, default=D.search, metavar="N"),
                "sleep-parameter search trials on the validation split (0: use the preset)",
            ),
            (
                "--search-range",
                dict(action="append", default=[], metavar="NAME=[LO,HI]"),
                "the search's range of one parameter as factors of its start value, "
                "repeatable (e.g. dec=[1e-5,10] for a broad search); default: the model file's "
                "search= ranges",
            ),
            (
                "--record-spikes",
                dict(choices=["none", "hidden", "all"], default=D.record_spikes),
                "which layers' spikes to save (the input layer holds ~90 %% of them)",
            ),
        ],
        "data": [
            (
                "--dataset",
                dict(nargs="+", default=D.datasets, metavar="NAME"),
                f"data sets, {one_of(KNOWN_DATASETS, many=True)}",
            ),
            (
                "--fractions",
                dict(nargs="+", type=float, metavar="F"),
                f"fractions of the training set in (0, 1] (default: "
                f"{' '.join(map(str, D.fractions))}; class-incremental: 1, see --task-size)",
            ),
            (
                "--subset",
                dict(choices=["stratified", "random", "first"], default=D.subset),
                "how the subset is drawn (first = the reference scripts' first N images)",
            ),
            (
                "--imbalance",
                dict(default=D.imbalance, metavar="SPEC"),
                'class imbalance, e.g. "5-9:0.1" (classes 5-9 at 10 %% of the others)',
            ),
            (
                "--val-fraction",
                dict(type=float, default=D.val_fraction, metavar="F"),
                "share of the labelled budget held out for validation (--search, early stopping)",
            ),
            (
                "--seeds",
                dict(nargs="+", type=int, default=D.seeds, metavar="SEED"),
                "seeds; every result is repeated per seed",
            ),
            (
                "--data-dir",
                dict(metavar="DIR"),
                "directory with the four IDX files (gz or plain) instead of the registry sources",
            ),
        ],
        "network and training": [
            (
                "--hidden",
                dict(nargs="+", type=int, default=D.hidden, metavar="WIDTH"),
                "hidden layer widths",
            ),
            (
                "--recipe",
                dict(default=D.recipe, metavar="NAME"),
                f"training recipe, {one_of(RECIPE_NAMES)}",
            ),
            (
                "--remedy",
                dict(nargs="+", default=list(D.remedies), metavar="NAME"),
                "remedies for little or imbalanced data added to the recipe, "
                f"{one_of(REMEDY_NAMES, many=True)} (default: none): random affine shifts and "
                "rotations of the images (kornia), mixup of example pairs "
                "(alpha 0.2), loss weighted by inverse class frequency, class-balanced "
                "oversampled epochs, logit-adjusted loss (tau 1). They apply to the baseline, "
                "the fine-tuning after sleep and the step-matched control alike; the --strong "
                "recipe stays plain, the fixed conventional bar every run is compared with",
            ),
            (
                "--epochs",
                dict(type=int, metavar="N"),
                "training epochs (default: the recipe's; class-incremental: "
                f"{INCREMENTAL_EPOCHS} per task, as the reference)",
            ),
            (
                "--train-device",
                dict(choices=TRAIN_DEVICES, default=D.train_device),
                "where torch trains and fine-tunes the ANN: auto = the GPU where torch sees one, "
                "else the CPU (exactly cpu's results); cpu is bit-reproducible; a GPU's weights "
                "differ from the CPU's in float rounding, so a GPU-trained run is another "
                "configuration (its own fingerprint and cached baselines)",
            ),
            (
                "--finetune-epochs",
                dict(type=int, default=D.finetune_epochs, metavar="N"),
                "fine-tuning epochs after sleep (and for the step-matched control; "
                "class-incremental: the sleep_finetune variant's, per task; 0 leaves it out)",
            ),
            (
                "--strong",
                dict(action="store_true"),
                "also train the strong recipe on the same subset (the bar to beat)",
            ),
            (
                "--snn-eval",
                dict(type=int, metavar="N"),
                "also classify the first N test images with the converted spiking network "
                "(plasticity off), for the baseline and the slept network: conversion fidelity",
            ),
            (
                "--snn-window",
                dict(type=int, default=D.snn_window, metavar="STEPS"),
                "steps each image is shown in SNN evaluation; the network rests between images",
            ),
            (
                "--snn-protocol",
                dict(default=D.snn_protocol, metavar="NAME"),
                "how the ANN becomes the spiking network (models/conversion.py): sleep = the "
                "sleep phase's own alphas, thresholds and input rate; diehl2015 = Diehl et al. "
                "2015: data-based normalisation, unit thresholds, no decay, reset to zero, "
                "P(spike) = pixel intensity per 1 ms step; diehl2015_textbook = the same with "
                "layer-wise normalisation lambda_l / lambda_(l-1) (no prev = f quirk)",
            ),
            (
                "--snn-reset",
                dict(default=D.snn_reset, metavar="NAME"),
                "diehl2015*: zero (the model's reset) or subtraction (Rueckauer et al. 2017)",
            ),
            (
                "--snn-percentile",
                dict(type=float, metavar="P"),
                "diehl2015*: normalise by the P-th percentile of the positive activations "
                "(Rueckauer et al. 2017: 99.9) instead of the maximum",
            ),
            (
                "--snn-evaluator",
                dict(default=D.snn_evaluator, metavar="NAME"),
                "batched = every image at once in torch (fast; the model's inference "
                "statements must be models/src.py's); device = the sleep's Brian2 device (any "
                "model)",
            ),
        ],
        "protocol": [
            (
                "--protocol",
                dict(default=D.protocol, metavar="NAME"),
                f"{one_of(PROTOCOLS)}: limited = one training on a fraction of the data, then "
                "sleep, with controls; class-incremental = the original SRC protocol (Tadros "
                "et al. 2022): tasks of a few classes learnt in sequence, variants sequential, "
                "sleep, sleep_finetune and joint, accuracy on every task after each task "
                "(incremental.csv)",
            ),
            (
                "--tasks",
                dict(nargs="+", metavar="CLASSES"),
                "class-incremental: the tasks in training order, the classes of each as a "
                f"range or list, e.g. 0-1 or 0,5 (default: {' '.join(INCREMENTAL_TASKS)}; "
                "fewer tasks make a short run)",
            ),
            (
                "--task-size",
                dict(type=int, metavar="N"),
                "class-incremental: each task trains on its first N training images in file "
                f"order, as the reference (default: {INCREMENTAL_TASK_SIZE}; all when fewer)",
            ),
            (
                "--search-val",
                dict(choices=SEARCH_VAL),
                "class-incremental --search scores each trial on: task, the current task's "
                "validation split (default: all the protocol has); seen, every task seen so "
                "far (an upper bound: it uses earlier tasks' labels)",
            ),
        ],
        "output": [
            (
                "--out",
                dict(default=D.out, metavar="DIR"),
                "results directory (rerun with the same arguments to resume)",
            ),
            (
                "--build-root",
                dict(metavar="DIR"),
                "cache of compiled standalone projects "
                "(default: $BRAINSLEEP_BUILD_DIR, else <cache root>/builds)",
            ),
            ("--no-progress", dict(action="store_true"), "no progress bars"),
        ],
        "study": [
            (
                "--study",
                dict(metavar="FILE"),
                "run a study: a TOML file of runs, each a set of these options by their long "
                "names (studies/*.toml); every run is checked before the first starts, then "
                "they run in order, each into <--out>/<name>, --out being results/<file stem> "
                "unless given; other options given here override the file for every run",
            ),
            (
                "--runs",
                dict(nargs="+", action="extend", metavar="NAME"),
                "with --study: run only these runs of the spec, by name, in the file's order "
                "(e.g. the runs still to do, into a new --out)",
            ),
        ],
        "parallel": [
            (
                "--workers",
                dict(type=int, default=D.workers, metavar="N"),
                "run cells on a local Dask cluster of N processes, one cell at a time each "
                "(0: in this process)",
            ),
            (
                "--scheduler",
                dict(default=D.scheduler, metavar="ADDRESS"),
                "run cells on an existing Dask cluster, e.g. tcp://host:8786 (its workers "
                "must see --out and the data cache on a shared filesystem)",
            ),
        ],
    }
    for title, options in opts.items():
        add_options(p.add_argument_group(title), options)
    return p


def _sleep_params(args: argparse.Namespace) -> dict | None:
    """``--sleep-params FILE`` with the ``--sleep-param NAME=VALUE`` overrides on top."""
    params = load_sleep_params_file(args.sleep_params) if args.sleep_params else {}
    params.update(parse_sleep_param_overrides(args.sleep_param))
    return params or None


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The validated configuration of parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        From :func:`build_parser`.

    Returns
    -------
    ExperimentConfig
        Checked by :func:`~brainsleep.experiment.config.validate`. Without ``--device``,
        cpp_standalone where a C++ compiler is found, else runtime; which one is said on
        stderr once the configuration is valid (an error stays the only line).

    Raises
    ------
    ConfigError
        Bad input, with a one-line message.
    """
    device = args.device
    incremental = args.protocol == "class-incremental"
    if device is None:
        device = "cpp_standalone" if (shutil.which("g++") or shutil.which("c++")) else "runtime"
    cfg = ExperimentConfig(
        datasets=list(args.dataset),
        fractions=(
            list(args.fractions)
            if args.fractions is not None
            else ([1.0] if incremental else list(D.fractions))
        ),
        seeds=list(args.seeds),
        hidden=list(args.hidden),
        remedies=tuple(args.remedy),
        device=device,
        prefs=parse_prefs(args.pref),
        sleep_preset=(
            args.sleep_preset if args.sleep_preset is not None or incremental else D.sleep_preset
        ),
        sleep_params=_sleep_params(args),
        sleep_steps=(
            args.sleep_steps
            if args.sleep_steps is not None
            else (INCREMENTAL_SLEEP_STEPS if incremental else D.sleep_steps)
        ),
        sleep_input_options=parse_input_options(args.sleep_input_option),
        search_ranges=parse_search_ranges(args.search_range) or None,
        tasks=list(args.tasks) if args.tasks is not None else None,
        progress=not args.no_progress,
        **{name: getattr(args, name) for name in _SAME_NAMES},
    )
    cfg = validate(cfg)
    if args.device is None and device == "runtime":
        print(
            "no C++ compiler found: running the sleep phase on Brian2's runtime device "
            "(slow); install g++ for cpp_standalone",
            file=sys.stderr,
        )
    elif args.device is None:
        print("sleep device: cpp_standalone (C++ compiler found)", file=sys.stderr)
    return cfg
