"""The experiment's configuration: one typed record, validated before anything is written.

Why one file of this length: one typed record and its validation, every check before
anything is written; the checks read best next to each other.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path

from brainsleep.config_fields import GRID_FIELDS, NON_SEMANTIC, ConfigRecord
from brainsleep.data import KNOWN_DATASETS
from brainsleep.names import unknown_name
from brainsleep.sleep import get_device, preset_names
from brainsleep.sleep.model import read_declarations, resolve_model_path
from brainsleep.sleep.parameters import is_number
from brainsleep.sleep.params import MAX_SEED
from brainsleep.subsets import (
    format_imbalance,
    format_task,
    make_subset,
    parse_imbalance,
    parse_tasks,
    task_split,
)

# Spike steps are stored as int32 (docs/formats.md); Brian2 indexes synapses with int32.
MAX_SLEEP_STEPS = 2**31 - 1
MAX_SYNAPSES_PER_LAYER = 2**31 - 1
# Brian2 preferences naming a code generation target (validated only when first used).
TARGET_PREFS = ("codegen.target", "codegen.string_expression_target")
N_PIXELS, N_CLASSES = 784, 10  # MNIST and Fashion-MNIST: 28 x 28 images, 10 classes

# --protocol: "limited" (a fraction of the data, one training, one sleep; the default)
# or "class-incremental" (the original SRC protocol, brainsleep/experiment/incremental.py).
PROTOCOLS = ("limited", "class-incremental")
# Defaults of the class-incremental protocol, from the reference's
# MNIST/run_class_task_summary.m (and FashionMNIST/...): five tasks of two classes, the
# first 5000 training images of each, 2 epochs of SGD at learning rate 0.1 per task,
# sleep after every task for 15000 steps plus a third of that per task already learned.
INCREMENTAL_TASKS = ("0-1", "2-3", "4-5", "6-7", "8-9")
INCREMENTAL_TASK_SIZE = 5000
INCREMENTAL_EPOCHS = 2
INCREMENTAL_SLEEP_STEPS = 15_000
# The reference's class-incremental parameter sets (models/presets.py), per data set:
# the preset when --sleep-preset is not given.
INCREMENTAL_PRESETS = {
    "mnist": "mnist_class_incremental",
    "fashion-mnist": "fashion_class_incremental",
}


#: The fields of SNN evaluation's settings (``--snn-protocol`` ... ``--snn-evaluator``).
SNN_FIELDS = ("snn_protocol", "snn_reset", "snn_percentile", "snn_evaluator")


class ConfigError(ValueError):
    """Bad command-line input: one line, exit code 2, nothing written."""


class UnavailableError(ConfigError):
    """A device the configuration names cannot work here (no C++ compiler, no GPU for
    cuda_standalone or for ``--train-device cuda``): one line saying what to do, exit
    code 3 (unavailable), nothing written."""


#: :func:`brainsleep.sleep.model.model_content_digest` of the model files shipped in
#: ``models/`` (src, src_additive) as of engine version 8. A model whose content is one
#: of these keeps the fingerprint it had before the field existed. Changing a shipped
#: model's equations is changing the science: bump ENGINE_VERSION and update this table
#: (tests/test_experiment.py says so when they differ).
SHIPPED_MODEL_CONTENT = frozenset(
    {
        "eaf6a30feb69a891ab422aef9aa368b774c5a909dc9c6118c17279edacb09122",  # src
        "bfa040f8e72a3e1e5c08df8fa9f2a89d58a5c7e0aa12342addb9402e731bd795",  # src_additive
    }
)
#: The same for the input kinds of ``models/inputs.py`` (SHA-256 of each kind's entry).
SHIPPED_INPUT_KINDS = {
    "array": "6ef8815d7bd6f9e87697756d01196c25ea70c5bab6276c4e34c8ad47ed96e959",
    "masked-mean": "40c7616c5268f7085fc24e72d8a399fd2aa181f12f38d0970d1fcefffbc0ef1c",
    "mean": "3203f4aa61a68f311134505109880b2bccddc73830c507b59fa8c4c96efb4dec",
    "samples": "2cd8a025b2cdc5f0fca6d5a05dab58e89240b2c879dacbbf63fb95a6ee0f5883",
    "class-means": "2cd8a025b2cdc5f0fca6d5a05dab58e89240b2c879dacbbf63fb95a6ee0f5883",
    "noise": "6bd25fe6e3eb9296252ecd30f5c68e9da4c188586859dce0f3aa29726f0c5cdf",
    "images": "bfbf235d3e73928c6d28d44338c0489df6c09161216f2d23fbad61eb9b8c01e9",
}


@dataclass
class ExperimentConfig(ConfigRecord):
    """Everything that defines an experiment run (see ``--help`` for each field): the
    record of :mod:`brainsleep.config_fields` with the fingerprint that guards a results
    directory."""

    def fingerprint(self) -> str:
        """Hash of every field that changes results, and of the engine version: a
        results directory is never resumed with a different sleep engine.

        The grid axes (:data:`GRID_FIELDS`) are left out: each cell's id names its own
        dataset, fraction, imbalance and seed, so a directory can grow by any of them and
        every existing cell stays valid.
        """
        from brainsleep.sleep.standalone import ENGINE_VERSION

        d = {
            k: v
            for k, v in self.to_dict().items()
            if k not in NON_SEMANTIC and k not in GRID_FIELDS
        }
        if not d.get("remedies"):
            # No remedy trains exactly as before the field existed: the same fingerprint,
            # so results directories made earlier stay valid.
            d.pop("remedies", None)
        if d.get("sleep_input", "masked-mean") == "masked-mean" and not d.get(
            "sleep_input_options"
        ):
            # Likewise the reference's input with its default options.
            d.pop("sleep_input", None)
            d.pop("sleep_input_options", None)
        if d.get("snn_eval") is None:
            # Without SNN evaluation its settings change nothing (and runs made before
            # they existed keep their fingerprint).
            for name in SNN_FIELDS:
                d.pop(name, None)
        if d.get("protocol", "limited") == "limited":
            # Likewise the default protocol (its tasks and task_size are always None).
            for name in ("protocol", "tasks", "task_size", "search_val"):
                d.pop(name, None)
        if not d.get("search_ranges"):
            d.pop("search_ranges", None)  # the declared ranges: as before the field existed
        if not d.get("search"):
            d.pop("search_val", None)  # what a search scores on changes nothing without one
        if resolved_train_device(self.train_device) == "cpu":
            # CPU training is bit-reproducible and is how every run trained before the
            # field existed: those directories keep their fingerprint. A GPU's float32
            # arithmetic gives other weights, so a run trained there is another result.
            d.pop("train_device", None)
        else:
            d["train_device"] = resolved_train_device(self.train_device)
        d["engine_version"] = ENGINE_VERSION
        # Contents, not names or paths: an edited model file or other IDX files in the
        # same --data-dir are another configuration (never resumed as the old one), and
        # the same model in another checkout (another absolute path) is the same one.
        # config.json keeps the path, as information.
        d.pop("model", None)
        d["model_sha256"] = _model_hash(self.model)
        # And what the model defines once executed (a model file may import its blocks:
        # src_additive.py takes INPUT and NEURON from src.py), and the sleep input kind's
        # equations (models/inputs.py). Each is left out when it is what this version
        # ships, so results directories made before these fields existed stay valid.
        if (content := _model_content_hash(self.model)) not in SHIPPED_MODEL_CONTENT:
            d["model_content_sha256"] = content
        kind = _input_kind_hash(self.sleep_input)
        if kind != SHIPPED_INPUT_KINDS.get(self.sleep_input):
            d["input_kind_sha256"] = kind
        if self.data_dir:
            d["data_sha256"] = data_hashes(tuple(self.datasets), self.data_dir)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def resolved_train_device(name: str) -> str:
    """``name`` resolved (``auto`` -> ``cpu`` or ``cuda``, as training here would), or
    ``name`` itself when it names no device here (validate() reports it)."""
    if name == "cpu":
        return "cpu"  # no torch import for the common case
    from brainsleep.ann.training import TrainDeviceUnavailableError, resolve_train_device

    try:
        return resolve_train_device(name)
    except (ValueError, TrainDeviceUnavailableError):
        return name


def _check_train_device(cfg: ExperimentConfig) -> None:
    """``--train-device``, resolved: ``auto`` becomes ``cpu`` or ``cuda`` (what
    config.json then records); ``cuda`` without a GPU torch can use is refused."""
    from brainsleep.names import TRAIN_DEVICES

    if cfg.train_device not in TRAIN_DEVICES:
        raise ConfigError(
            "--train-device: " + unknown_name("training device", cfg.train_device, TRAIN_DEVICES)
        )
    if cfg.train_device == "cpu":
        return
    from brainsleep.ann.training import TrainDeviceUnavailableError, resolve_train_device

    try:
        cfg.train_device = resolve_train_device(cfg.train_device)
    except TrainDeviceUnavailableError as exc:
        raise UnavailableError(f"--train-device cuda: {exc}") from exc


def _model_hash(model: str) -> str | None:
    from brainsleep.sleep.model import resolve_model_path

    try:
        path = resolve_model_path(model)
    except ValueError:
        return None  # validate() reports it
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model_content_hash(model: str) -> str | None:
    from brainsleep.sleep.model import model_content_digest

    try:
        return model_content_digest(model)
    except ValueError:
        return None  # validate() reports it


def _input_kind_hash(kind: str) -> str | None:
    from brainsleep.models.inputs import INPUT_KINDS

    if kind not in INPUT_KINDS:
        return None  # validate() reports it
    text = json.dumps(INPUT_KINDS[kind], sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()


def data_hashes(datasets: tuple[str, ...], data_dir: str | None) -> dict[str, str | None]:
    """sha256 of each data set's files in ``data_dir`` (None: unreadable there, which
    load_data reports), as the fingerprint records them; a Dask task checks its worker's
    files against the driver's (brainsleep.experiment.scheduler). Empty without a
    ``data_dir``: the registry cache verifies its own files."""
    from brainsleep.data import DataUnavailableError, data_dir_digest

    out: dict[str, str | None] = {}
    if not data_dir:
        return out
    for name in datasets:
        try:
            out[name] = data_dir_digest(name, data_dir)
        except (DataUnavailableError, KeyError, OSError):
            out[name] = None  # load_data reports it
    return out


def _parse_pref(text: str):
    if "=" not in text:
        raise ConfigError(f"--pref {text!r}: expected KEY=VALUE with Brian's dotted name")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def parse_input_options(items: list[str] | None) -> dict:
    """``["every=5", "level=0.1"]`` (``--sleep-input-option``) -> dict, values as JSON."""
    return _key_values(items, "--sleep-input-option", "KEY=VALUE, e.g. every=5")


def _key_values(items: list[str] | None, flag: str, form: str) -> dict:
    """Repeated ``KEY=VALUE`` items of ``flag`` -> dict (values as JSON when they parse);
    one-line ConfigError for an item without ``=`` or a key given twice."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{flag} {item!r}: expected {form}")
        key, value = _parse_pref(item)
        if key in out:
            raise ConfigError(f"{flag}: {key} is given twice")
        out[key] = value
    return out


def _check_sleep_input(cfg: ExperimentConfig) -> None:
    """``--sleep-input`` and its options, checked by building the input on stand-in data
    (ten grey images, one per class): the same errors as the real data would give."""
    import numpy as np

    from brainsleep.sleep.inputs import SLEEP_INPUTS, make_sleep_input

    if cfg.sleep_input not in SLEEP_INPUTS:
        raise ConfigError(
            "--sleep-input: " + unknown_name("sleep input", cfg.sleep_input, SLEEP_INPUTS)
        )
    try:
        make_sleep_input(
            cfg.sleep_input,
            np.full((N_CLASSES, N_PIXELS), 0.5),
            np.arange(N_CLASSES),
            cfg.sleep_steps,
            **cfg.sleep_input_options,
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--sleep-input {cfg.sleep_input}: {exc}") from exc


def parse_prefs(items: list[str] | None) -> dict:
    """``["codegen.target=cython", ...]`` -> dict; values parsed as JSON when possible."""
    out = {}
    for item in items or []:
        key, value = _parse_pref(item)
        out[key] = value
    return out


def _non_finite(value, where: str = "") -> list[tuple[str, float]]:
    """(place, value) of every NaN or infinite number inside parsed JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(where, value)]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _non_finite(v, f"{where}.{k}".lstrip("."))]
    if isinstance(value, list):
        return [x for k, v in enumerate(value) for x in _non_finite(v, f"{where}[{k}]")]
    return []


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def load_sleep_params_file(path: str) -> dict:
    """Read ``--sleep-params FILE``: a JSON object of sleep parameters by name.

    Names are those the model declares (``PARAMETERS`` in ``models/src.py``: max_rate,
    decay, v_thresh, inc, dec) and the engine's ``alpha_scale`` and ``dt``; the file
    overrides the preset (``--sleep-preset``) name by name. Names and bounds are checked
    against the model in :func:`validate`.

    Parameters
    ----------
    path : str
        The JSON file.

    Returns
    -------
    dict
        The parameter set, as in ``models/presets.py``.

    Raises
    ------
    ConfigError
        Missing file, bad JSON, not an object, NaN or infinity anywhere (Python's json
        reads ``NaN``), or a value that is neither a number nor a list of numbers.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--sleep-params {path}: no such file")
    try:
        d = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--sleep-params {path}: not valid JSON ({exc})") from exc
    if not isinstance(d, dict) or not d:
        raise ConfigError(f"--sleep-params {path}: give a JSON object of parameters by name")
    _check_param_values(d, f"--sleep-params {path}")
    return d


def _check_param_values(d: dict, where_: str) -> None:
    """Every value finite and a number or a list of numbers (one per weight layer)."""
    bad = _non_finite(d)
    if bad:
        where, value = bad[0]
        raise ConfigError(f"{where_}: {where} is {value}; give finite numbers")
    for key, value in d.items():
        numbers_ = value if isinstance(value, list) else [value]
        if not numbers_ or not all(is_number(v) for v in numbers_):
            raise ConfigError(
                f"{where_}: {key} must be a number or a list of numbers "
                f"(one per weight layer), got {value!r}"
            )


def parse_search_ranges(items: list[str] | None) -> dict:
    """``--search-range NAME=[LO,HI]`` items -> ``{name: [lo, hi]}`` (factors of the start
    value, as a model file's ``search=``); names are checked against the model in
    :func:`validate`.

    Raises
    ------
    ConfigError
        Not ``NAME=[LO,HI]`` with finite ``0 < LO <= HI``, or a name given twice.
    """
    out = _key_values(items, "--search-range", "NAME=[LO,HI], e.g. dec=[1e-5,10]")
    for name, value in out.items():
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(is_number(v) and math.isfinite(v) for v in value)
            and 0 < value[0] <= value[1]
        )
        if not ok:
            raise ConfigError(
                f"--search-range {name}={value!r}: give factors of the start value as "
                "[LO,HI] with 0 < LO <= HI, e.g. dec=[1e-5,10]"
            )
        out[name] = [float(v) for v in value]
    return out


def _check_search_ranges(cfg: ExperimentConfig) -> None:
    if not cfg.search_ranges:
        return
    if not cfg.search:
        raise ConfigError("--search-range needs --search N (N >= 1)")
    from brainsleep.sleep.params import search_space

    searched = search_space(resolve_model_path(cfg.model))
    for name in cfg.search_ranges:
        if name not in searched:
            raise ConfigError(
                f"--search-range {name}: not a searched parameter of the model; searched: "
                f"{', '.join(searched)}"
            )


def parse_sleep_param_overrides(items: list[str] | None) -> dict:
    """``--sleep-param NAME=VALUE`` items -> dict (``max_rate=30``, ``v_thresh=[30,7,30]``).

    They override ``--sleep-params FILE`` and the preset name by name; names and bounds are
    checked against the model in :func:`validate`.

    Raises
    ------
    ConfigError
        Not ``NAME=VALUE``, a name given twice, or a value that is not a finite number or
        a JSON list of numbers.
    """
    out = _key_values(items, "--sleep-param", "NAME=VALUE, e.g. max_rate=30")
    _check_param_values(out, "--sleep-param")
    return out


def preset_name(cfg: ExperimentConfig, dataset: str | None = None) -> str:
    """The name of the preset a cell starts from: ``--sleep-preset``, or without it (the
    class-incremental protocol) the data set's :data:`INCREMENTAL_PRESETS` entry."""
    if cfg.sleep_preset is not None:
        return cfg.sleep_preset
    name = dataset or cfg.datasets[0]
    if name not in INCREMENTAL_PRESETS:
        raise ConfigError(f"{name} has no class-incremental preset; give --sleep-preset NAME")
    return INCREMENTAL_PRESETS[name]


def start_params(cfg: ExperimentConfig, dataset: str | None = None) -> dict:
    """The sleep parameter set before any search: preset, then ``--sleep-params`` on top.

    A partial override by name (see :func:`brainsleep.sleep.params.params_from_set`);
    what neither sets keeps the model's declared default. ``dataset`` picks the preset
    when ``cfg.sleep_preset`` is None (:func:`preset_name`).
    """
    from brainsleep.sleep.params import preset

    p = preset(preset_name(cfg, dataset))
    p.update(cfg.sleep_params or {})
    return {k: list(v) if isinstance(v, tuple | list) else v for k, v in p.items()}


def _physical_memory() -> int | None:
    """Bytes of RAM of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def _check_sizes(cfg: ExperimentConfig) -> None:
    """Refuse networks, sleep lengths and searches that the engine cannot hold."""
    import sys

    sizes = (N_PIXELS, *cfg.hidden, N_CLASSES)
    synapses = [a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    if get_device(cfg.device).brian2 and max(synapses) > MAX_SYNAPSES_PER_LAYER:
        k = synapses.index(max(synapses))
        raise ConfigError(
            f"--hidden {' '.join(map(str, cfg.hidden))}: weight layer {k + 1} has "
            f"{synapses[k]} synapses, more than Brian2's int32 limit {MAX_SYNAPSES_PER_LAYER}"
        )
    if cfg.sleep_steps > MAX_SLEEP_STEPS:
        raise ConfigError(
            f"--sleep-steps {cfg.sleep_steps} is above {MAX_SLEEP_STEPS}, the most the engine "
            "records (spike steps are int32)"
        )
    # Lower bounds only: float64 sleep + float32 torch weights, two int32 window offsets
    # per sleep step, one object per search trial.
    candidate = sys.getsizeof({}) + 100 * (len(cfg.hidden) + 6)  # one trial's values
    needs = {
        "--hidden": 12 * sum(synapses),
        "--sleep-steps": 8 * cfg.sleep_steps,
        "--search": candidate * cfg.search,
    }
    memory = _physical_memory()
    if memory and sum(needs.values()) > memory:
        flag = max(needs, key=needs.get)
        value = {"--hidden": " ".join(map(str, cfg.hidden))}.get(flag)
        value = value or str(cfg.sleep_steps if flag == "--sleep-steps" else cfg.search)
        raise ConfigError(
            f"{flag} {value}: needs at least {_gib(sum(needs.values()))} of memory, "
            f"this machine has {_gib(memory)}"
        )


def _check_writable_dir(path: Path, flag: str) -> None:
    """``path`` is a writable directory, or can be created as one."""
    p = path.expanduser()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise ConfigError(f"{flag} {path}: {p} is not a directory")
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {p} is not writable")


def _check_prefs(cfg: ExperimentConfig) -> None:
    """Every ``--pref`` names a Brian2 preference and has a value Brian2 accepts."""
    if not cfg.prefs:
        return
    if not get_device(cfg.device).brian2:
        key = next(iter(cfg.prefs))
        raise ConfigError(
            f"--pref {key}: Brian2 preferences have no effect on the reference device "
            "(a numpy oracle); drop --pref or pick a Brian2 device"
        )
    import brian2
    from brian2.core.preferences import PreferenceError

    for key, value in cfg.prefs.items():
        if key.startswith("devices.cuda_standalone") and key not in brian2.prefs:
            try:
                import brian2cuda  # noqa: F401  registers its preferences
            except ImportError:
                pass
        if key not in brian2.prefs:
            close = difflib.get_close_matches(key, list(brian2.prefs), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"--pref {key}: unknown Brian2 preference{hint}")
        old = brian2.prefs[key]
        try:
            brian2.prefs[key] = value  # Brian2's own validator; restored at once
            if key in TARGET_PREFS and value != "auto":
                # Brian2 accepts any string here and fails at the first run: ask the
                # runtime device to resolve it now, as it will then.
                from brian2.devices.device import runtime_device

                runtime_device.code_object_class(fallback_pref=key)
        except (PreferenceError, TypeError, ValueError) as exc:
            raise ConfigError(f"--pref {key}={json.dumps(value, default=str)}: {exc}") from None
        finally:
            brian2.prefs[key] = old


def _training_labels(name: str, data_dir: str | None):
    """``(labels, exact)``: the training labels of a data set, read (labels only) from
    ``data_dir`` or the cache (exact); else labels of the official size with equal
    classes (not exact); ``(None, False)`` when unknown."""
    import numpy as np

    from brainsleep import data

    try:
        spec = data._SPECS[name]
        if data_dir is not None:
            _, paths = data._find_in_dir(Path(data_dir).expanduser(), spec)
            candidates = [paths["train_labels"]]
        else:
            root = data.default_cache_dir() / spec.name
            candidates = data._cache_candidates(root, "train_labels")
        for path in candidates:
            if path.is_file():
                labels = data.read_idx(path)
                return (labels, True) if labels.ndim == 1 and labels.size else (None, False)
        if data_dir is not None:
            return None, False
        return np.arange(spec.n_train) % N_CLASSES, False
    except (AttributeError, KeyError, OSError, ValueError, data.DataUnavailableError):
        return None, False  # missing or malformed files: load_data reports them


def _check_subsets(cfg: ExperimentConfig) -> None:
    """Draw every cell's subset on the labels alone: a fraction, imbalance or validation
    split that gives a class no example is refused now, not after loading the images."""
    for name in cfg.datasets:
        labels, exact = _training_labels(name, cfg.data_dir)
        if labels is None:
            continue
        mode, val_fraction = cfg.subset, cfg.val_fraction
        if not exact and mode != "stratified":
            # Without the real labels only the budget's size can be checked (a random or
            # first-N draw depends on their order); stratified counts depend on it alone.
            mode, val_fraction = "stratified", 0.0
        # Only a random draw depends on the seed.
        seeds = cfg.seeds if mode == "random" else cfg.seeds[:1]
        for f in cfg.fractions:
            for seed in seeds:
                try:
                    make_subset(
                        labels,
                        f,
                        mode=mode,
                        imbalance=None if cfg.imbalance == "none" else cfg.imbalance,
                        val_fraction=val_fraction,
                        seed=seed,
                    )
                except ValueError as exc:
                    raise ConfigError(
                        f"--fractions {f} on {name} ({len(labels)} training images, "
                        f"--subset {cfg.subset}, seed {seed}): {exc}"
                    ) from None


def _check_unique(flag: str, values, key=lambda v: v) -> None:
    seen: dict = {}
    for v in values:
        if key(v) in seen:
            same = (
                "is given twice" if seen[key(v)] == v else f"and {seen[key(v)]} name the same cell"
            )
            raise ConfigError(f"{flag}: {v} {same}")
        seen[key(v)] = v


_SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss)://[^\s/]+:\d{1,5}/?$")


def _check_parallel(cfg: ExperimentConfig) -> None:
    """``--workers`` and ``--scheduler``: a count >= 0, an address, not both."""
    if not isinstance(cfg.workers, int) or isinstance(cfg.workers, bool) or cfg.workers < 0:
        raise ConfigError(f"--workers must be an integer >= 0, got {cfg.workers!r}")
    if cfg.scheduler is not None:
        if cfg.workers:
            raise ConfigError(
                "--workers starts a local Dask cluster, --scheduler uses an existing one: "
                "give one of them"
            )
        if not isinstance(cfg.scheduler, str) or not _SCHEDULER_ADDRESS.match(cfg.scheduler):
            raise ConfigError(
                f"--scheduler {cfg.scheduler!r}: expected a Dask scheduler address like "
                "tcp://host:8786"
            )


def _check_remedies(cfg: ExperimentConfig) -> None:
    """``--remedy``: known names, each once; stored in the canonical order (the order they
    are given in changes nothing, so it changes neither the fingerprint nor the records)."""
    from brainsleep.names import REMEDY_NAMES

    names = cfg.remedies
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"--remedy {names!r}: give remedy names, {', '.join(REMEDY_NAMES)}")
    for name in names:
        if name not in REMEDY_NAMES:
            raise ConfigError("--remedy: " + unknown_name("remedy", name, REMEDY_NAMES))
    _check_unique("--remedy", names)
    cfg.remedies = tuple(n for n in REMEDY_NAMES if n in names)
    if cfg.remedies:  # the recipe decides which remedies it can take (Recipe's checks)
        from brainsleep.ann.recipes import get_recipe

        try:
            get_recipe(cfg.recipe, remedies=cfg.remedies)
        except ValueError as exc:
            raise ConfigError(f"--remedy with --recipe {cfg.recipe}: {exc}") from None


def snn_settings(cfg: ExperimentConfig):
    """The :class:`~brainsleep.sleep.snn_protocol.SNNSettings` of ``cfg``."""
    from brainsleep.sleep.snn_protocol import SNNSettings

    return SNNSettings(cfg.snn_protocol, cfg.snn_reset, cfg.snn_percentile, cfg.snn_evaluator)


def _check_snn_settings(cfg: ExperimentConfig) -> None:
    """The SNN options alone (the model's part is checked once it is loaded)."""
    defaults = ExperimentConfig()
    if cfg.snn_eval is None:
        given = [
            "--" + name.replace("_", "-")
            for name in SNN_FIELDS
            if getattr(cfg, name) != getattr(defaults, name)
        ]
        if given:
            raise ConfigError(f"{' '.join(given)}: needs --snn-eval N (the images to classify)")
        return
    try:
        snn_settings(cfg).check()
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


#: What the class-incremental search scores on (``--search-val``): ``task``, the current
#: task's validation split (what the protocol has); ``seen``, every task seen so far (an
#: upper bound: it uses earlier tasks' labels).
SEARCH_VAL = ("task", "seen")


def _check_protocol(cfg: ExperimentConfig) -> None:
    """``--protocol`` and the options that go with it; fills the class-incremental
    defaults (tasks, task size, epochs per task) so ``config.json`` records them.

    The class-incremental protocol trains each task on its first ``--task-size`` images,
    so it refuses the options that choose a limited or imbalanced subset (``--fractions``
    other than 1, ``--subset``, ``--imbalance``) and those of the limited protocol's
    comparisons (``--strong``: its bar is the ``joint`` variant).
    """
    if cfg.protocol == "limited":
        for flag, value in (
            ("--tasks", cfg.tasks),
            ("--task-size", cfg.task_size),
            ("--search-val", cfg.search_val),
        ):
            if value is not None:
                raise ConfigError(f"{flag} needs --protocol class-incremental")
        return
    if cfg.search_val is None:
        cfg.search_val = "task"
    if cfg.search_val not in SEARCH_VAL:
        raise ConfigError(f"--search-val {cfg.search_val}: choose one of {', '.join(SEARCH_VAL)}")
    why = "the class-incremental protocol trains each task on its first --task-size images"
    if [float(f) for f in cfg.fractions] != [1.0]:
        fractions = " ".join(f"{f:g}" for f in cfg.fractions)
        raise ConfigError(f"--fractions {fractions}: {why}; drop --fractions")
    if cfg.subset != "stratified":
        raise ConfigError(f"--subset {cfg.subset}: {why}; drop --subset")
    if cfg.imbalance != "none":
        raise ConfigError(f"--imbalance {cfg.imbalance}: {why}; drop --imbalance")
    if cfg.strong:
        raise ConfigError(
            "--strong: the class-incremental protocol's bar is its joint variant (all tasks "
            "seen so far trained together); drop --strong"
        )
    try:
        tasks = parse_tasks(INCREMENTAL_TASKS if cfg.tasks is None else cfg.tasks, N_CLASSES)
    except ValueError as exc:
        raise ConfigError(f"--tasks: {exc}") from None
    cfg.tasks = [format_task(t) for t in tasks]
    if cfg.task_size is None:
        cfg.task_size = INCREMENTAL_TASK_SIZE
    if not _is_int(cfg.task_size) or cfg.task_size < 1:
        raise ConfigError(f"--task-size {cfg.task_size}: give a positive number of images")
    if cfg.epochs is None:
        cfg.epochs = INCREMENTAL_EPOCHS
    longest = incremental_sleep_steps(cfg.sleep_steps, len(tasks))
    if cfg.sleep_steps >= 1 and longest > MAX_SLEEP_STEPS:
        raise ConfigError(
            f"--sleep-steps {cfg.sleep_steps}: the sleep after task {len(tasks)} would last "
            f"{longest} steps, above {MAX_SLEEP_STEPS} (spike steps are int32)"
        )


def incremental_sleep_steps(base: int, task: int) -> int:
    """Sleep length after the ``task``-th task (1-based) of a class-incremental run:
    ``base`` plus a third of it per task learned before, as the reference grows it
    (``sleep_period = numiterations + (ii-1)*numiterations/3``, run_class_task_summary.m).
    """
    return int(base) + (int(task) - 1) * (int(base) // 3)


def _check_tasks(cfg: ExperimentConfig) -> None:
    """Draw every task's training (and, with ``--search``, validation) images on the
    labels alone: a task without images, or an empty validation split, is refused now."""
    tasks = parse_tasks(cfg.tasks, N_CLASSES)
    val_fraction = cfg.val_fraction if cfg.search else 0.0
    for name in cfg.datasets:
        labels, exact = _training_labels(name, cfg.data_dir)
        if labels is None or not exact:
            continue
        for k, classes in enumerate(tasks, start=1):
            try:
                task_split(labels, classes, cfg.task_size, val_fraction, seed=(0, k))
            except ValueError as exc:
                raise ConfigError(f"--tasks on {name}: {exc}") from None


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check every field; raise ConfigError (one line) on the first problem.

    Everything that could fail later is checked here, before data loading, training or
    compiling: cheap checks first, then Brian2 preferences, the model file (loaded once
    and checked with a trial run, see :func:`brainsleep.sleep.load_model`) and the
    subsets, drawn on the training labels alone.
    """
    if not str(cfg.out).strip():
        raise ConfigError("--out is empty; give a results directory")
    if cfg.protocol not in PROTOCOLS:
        raise ConfigError("--protocol: " + unknown_name("protocol", cfg.protocol, PROTOCOLS))
    aliases = {"fashion_mnist": "fashion-mnist", "fmnist": "fashion-mnist"}
    cfg.datasets = [aliases.get(d.lower(), d.lower()) for d in cfg.datasets]
    for d in cfg.datasets:
        if d not in KNOWN_DATASETS:
            raise ConfigError(unknown_name("data set", d, KNOWN_DATASETS))
    _check_unique("--dataset", cfg.datasets)
    if not cfg.fractions:
        raise ConfigError("--fractions: give at least one fraction in (0, 1]")
    for f in cfg.fractions:
        if not (is_number(f) and math.isfinite(f) and 0 < f <= 1):
            raise ConfigError(f"fraction {f} is outside (0, 1]")
    _check_unique("--fractions", cfg.fractions, key=lambda f: f"{f:g}")  # the cell name
    if cfg.subset not in ("stratified", "random", "first"):
        raise ConfigError(f"--subset {cfg.subset!r}: choose stratified, random or first")
    if not isinstance(cfg.imbalance, str) or not cfg.imbalance.strip():
        raise ConfigError(f"--imbalance {cfg.imbalance!r}: give a spec like 5-9:0.1, or none")
    try:
        cfg.imbalance = format_imbalance(parse_imbalance(cfg.imbalance))
    except ValueError as exc:
        raise ConfigError(f"--imbalance: {exc}") from exc
    if cfg.imbalance != "none" and cfg.subset != "stratified":
        raise ConfigError("--imbalance needs --subset stratified")
    if not cfg.seeds:
        raise ConfigError(f"--seeds: give integers in 0..{MAX_SEED}")
    for seed in cfg.seeds:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ConfigError(f"--seeds {seed!r}: seeds are integers in 0..{MAX_SEED}")
        if not 0 <= seed <= MAX_SEED:
            raise ConfigError(
                f"--seeds {seed}: seeds are integers in 0..{MAX_SEED} (the engine's int32 seed)"
            )
    _check_unique("--seeds", cfg.seeds)
    if not (is_number(cfg.val_fraction) and 0 <= cfg.val_fraction < 1):
        raise ConfigError(f"--val-fraction {cfg.val_fraction} must be in [0, 1)")
    if not cfg.hidden or any(
        isinstance(h, bool) or not isinstance(h, numbers.Integral) for h in cfg.hidden
    ):
        raise ConfigError("--hidden: give positive integer layer widths")
    if any(h < 1 for h in cfg.hidden):
        raise ConfigError("--hidden: give positive layer widths")
    from brainsleep.names import RECIPE_NAMES

    if cfg.recipe not in RECIPE_NAMES:
        raise ConfigError(unknown_name("recipe", cfg.recipe, RECIPE_NAMES))
    _check_remedies(cfg)
    _check_sleep_input(cfg)
    if cfg.epochs is not None and cfg.epochs < 1:
        raise ConfigError("--epochs must be >= 1")
    _check_protocol(cfg)
    _check_train_device(cfg)
    try:
        device = get_device(cfg.device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        model_path = resolve_model_path(cfg.model)
        device.check_model(read_declarations(model_path), explicit=True)
    except ValueError as exc:
        raise ConfigError(f"--model: {exc}") from exc
    if cfg.sleep_preset is None and cfg.protocol == "limited":
        cfg.sleep_preset = ExperimentConfig.sleep_preset
    if cfg.sleep_preset is not None and cfg.sleep_preset not in preset_names():
        raise ConfigError(unknown_name("sleep preset", cfg.sleep_preset, preset_names()))
    n_layers = len(cfg.hidden) + 1
    from brainsleep.sleep.params import params_from_set

    for dataset in cfg.datasets:  # one preset per data set without --sleep-preset
        name = preset_name(cfg, dataset)
        try:
            params_from_set(start_params(cfg, dataset), [1.0] * n_layers, model_path)
        except ValueError as exc:
            given = "--sleep-params and " if cfg.sleep_params else ""
            raise ConfigError(
                f"sleep parameters ({given}--sleep-preset {name}) for "
                f"--hidden {' '.join(map(str, cfg.hidden))}: {exc}"
            ) from exc
    if cfg.sleep_steps < 1:
        raise ConfigError("--sleep-steps must be >= 1")
    if cfg.search < 0:
        raise ConfigError("--search must be >= 0")
    if cfg.search and cfg.val_fraction == 0:
        raise ConfigError("--search tunes on the validation split: set --val-fraction > 0")
    _check_search_ranges(cfg)
    if cfg.finetune_epochs < 0:
        raise ConfigError("--finetune-epochs must be >= 0")
    if cfg.snn_eval is not None and (not _is_int(cfg.snn_eval) or cfg.snn_eval < 1):
        raise ConfigError(
            f"--snn-eval {cfg.snn_eval}: give a positive number of test images (leave it out "
            "to skip SNN evaluation)"
        )
    if not _is_int(cfg.snn_window) or cfg.snn_window < 1:
        raise ConfigError(f"--snn-window {cfg.snn_window}: give a positive number of steps")
    if (
        cfg.snn_eval is not None
        and cfg.snn_evaluator == "device"
        and cfg.snn_eval * cfg.snn_window > MAX_SLEEP_STEPS
    ):
        raise ConfigError(
            f"--snn-eval x --snn-window = {cfg.snn_eval * cfg.snn_window} steps, above the "
            f"engine's {MAX_SLEEP_STEPS}"
        )
    _check_snn_settings(cfg)
    if cfg.record_spikes not in ("none", "hidden", "all"):
        raise ConfigError("--record-spikes: choose none, hidden or all")
    _check_sizes(cfg)
    _check_parallel(cfg)
    if device.compiled:
        from brainsleep.paths import default_build_root

        root = Path(cfg.build_root) if cfg.build_root else default_build_root()
        _check_writable_dir(root, "--build-root")
    from brainsleep.sleep.devices import DeviceUnavailableError

    try:  # every device, before any work: cuda_standalone without a GPU stops here
        device.check_available()
    except DeviceUnavailableError as exc:
        raise UnavailableError(str(exc)) from exc
    _check_prefs(cfg)
    # Here, not at the top: the checked loader trial-runs the model on the engine (xarray,
    # Brian2), which --help and an argument error must not import.
    from brainsleep.sleep import load_model

    try:
        model = load_model(model_path)  # executed once, checked, trial-run
    except ValueError as exc:
        raise ConfigError(f"--model: {exc}") from exc
    cfg.model = str(model.path)
    if cfg.snn_eval is not None:
        try:
            snn_settings(cfg).check(model)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    if cfg.protocol == "limited":
        _check_subsets(cfg)
    else:
        _check_tasks(cfg)
    return cfg
