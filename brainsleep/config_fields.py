"""The configuration record of a run (``config.json``'s ``config``) and its fields' roles.

The record and its defaults (:class:`ConfigRecord`); which fields are grid axes (a
directory grows by them, directories merge across them), which change no result (left out
of the fingerprint), and how two configurations differ in words. Imports neither xarray nor
pandas: ``--help`` and one-line refusals stay light.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

__all__ = ["GRID_FIELDS", "NON_SEMANTIC", "ConfigRecord", "config_differences"]

#: Fields of ``config.json``'s ``config`` that change no result: left out of the
#: fingerprint that guards a results directory.
NON_SEMANTIC = ("out", "progress", "data_dir", "build_root", "workers", "scheduler")
#: The grid axes: a cell's id carries its dataset, fraction, imbalance and seed, so runs
#: that differ only in these share a results directory, which grows (config.json keeps
#: the union), and directories that differ only in these merge in the analysis.
GRID_FIELDS = ("datasets", "fractions", "seeds", "imbalance")


@dataclass
class ConfigRecord:
    """The configuration record of a run, as ``config.json``'s ``config`` stores it.

    Declared here, below the experiment, so that readers of results directories (the
    analysis) take a field's default from the one declaration without importing the
    experiment: a ``config.json`` written before a field existed ran with its default.
    :class:`brainsleep.experiment.config.ExperimentConfig` adds the checks and the
    fingerprint; ``--help`` explains each field.
    """

    datasets: list[str] = field(default_factory=lambda: ["mnist"])
    fractions: list[float] = field(default_factory=lambda: [0.01])
    subset: str = "stratified"
    imbalance: str = "none"
    seeds: list[int] = field(default_factory=lambda: [0])
    val_fraction: float = 0.1
    hidden: list[int] = field(default_factory=lambda: [1200, 1200])
    recipe: str = "reference"
    # remedies for little or imbalanced data (--remedy), canonical order after validate()
    remedies: tuple[str, ...] = ()
    epochs: int | None = None
    # where the ANN trains (--train-device): "auto" until validate() resolves it to "cpu"
    # or "cuda" (brainsleep.ann.training.resolve_train_device), which config.json records
    train_device: str = "auto"
    device: str = "cpp_standalone"
    prefs: dict = field(default_factory=dict)
    model: str = "src"
    # None: the data set's class-incremental preset (INCREMENTAL_PRESETS; that protocol only)
    sleep_preset: str | None = "reduced_mnist_10ep"
    sleep_params: dict | None = None  # from --sleep-params FILE
    sleep_steps: int = 20_000
    # what the network sleeps on (brainsleep.sleep.inputs.SLEEP_INPUTS) and its options
    sleep_input: str = "masked-mean"
    sleep_input_options: dict = field(default_factory=dict)
    search: int = 0
    # --search-range NAME=[LO,HI]: factor ranges replacing the model's declared ones
    search_ranges: dict | None = None
    finetune_epochs: int = 2
    strong: bool = False
    snn_eval: int | None = None  # test images classified by the spiking network (None: off)
    snn_window: int = 300  # steps each image is shown in SNN evaluation
    # how the network is converted and simulated (brainsleep.sleep.snn_protocol.SNNSettings)
    snn_protocol: str = "sleep"  # models/conversion.py PROTOCOLS: sleep, diehl2015, ...
    snn_reset: str = "zero"  # or "subtraction" (Rueckauer et al. 2017)
    snn_percentile: float | None = None  # normalisation percentile (None: the maximum)
    snn_evaluator: str = "batched"  # or "device" (the sleep's Brian2 device)
    record_spikes: str = "hidden"
    # "limited" or "class-incremental" (PROTOCOLS); the next two are the latter's only
    protocol: str = "limited"
    tasks: list[str] | None = None  # class specs in training order (None: INCREMENTAL_TASKS)
    task_size: int | None = None  # training images per task (None: INCREMENTAL_TASK_SIZE)
    # class-incremental --search scores on: "task" (the current task's validation split,
    # all the protocol has) or "seen" (every task seen so far: an upper bound that uses
    # earlier tasks' labels, which sequential training never sees). None: "task".
    search_val: str | None = None
    out: str = "results/default"
    data_dir: str | None = None
    build_root: str | None = None
    progress: bool = True
    workers: int = 0  # > 0: run cells on a local Dask cluster of that many processes
    scheduler: str | None = None  # address of an existing Dask scheduler

    def to_dict(self) -> dict:
        return asdict(self)


def config_differences(old: Mapping | None, new: Mapping | None) -> str:
    """What differs between two ``config.json`` configurations (their ``config``), as
    ``name: old -> new; ...`` with the grid axes and the fields that change no result
    left out; a sentence naming what else can differ when no argument does."""
    from brainsleep.atomic import json_default

    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return "a config.json records no comparable configuration"
    skip = set(GRID_FIELDS) | set(NON_SEMANTIC)
    # Compare in the stored (JSON) form: a tuple field reads back as a list.
    old, new = (json.loads(json.dumps(dict(c), default=json_default)) for c in (old, new))
    diffs = [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if k not in skip and old.get(k) != new.get(k)
    ]
    if diffs:
        return "; ".join(diffs)
    return (
        "same arguments, but another engine version, other model or input-kind equations, "
        "or other data file contents"
    )
