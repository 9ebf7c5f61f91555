"""The experiment's configuration: one typed record, validated before anything is written."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from brainsleep.data import KNOWN_DATASETS
from brainsleep.sleep import DEVICES, SleepParams, load_model, preset_names
from brainsleep.subsets import format_imbalance, parse_imbalance

STAGES = ("baseline", "sleep", "sleep_finetune", "finetune_only", "strong")
# Fields that change no result: left out of the fingerprint that guards a results dir.
NON_SEMANTIC = ("out", "progress", "data_dir", "build_root")


class ConfigError(ValueError):
    """Bad command-line input: one line, exit code 2, nothing written."""


@dataclass
class ExperimentConfig:
    """Everything that defines an experiment run (see ``--help`` for each field)."""

    datasets: list[str] = field(default_factory=lambda: ["mnist"])
    fractions: list[float] = field(default_factory=lambda: [0.01])
    subset: str = "stratified"
    imbalance: str = "none"
    seeds: list[int] = field(default_factory=lambda: [0])
    val_fraction: float = 0.1
    hidden: list[int] = field(default_factory=lambda: [1200, 1200])
    recipe: str = "reference"
    epochs: int | None = None
    device: str = "cpp_standalone"
    prefs: dict = field(default_factory=dict)
    model: str = "src"
    sleep_preset: str = "reduced_mnist_10ep"
    sleep_params: dict | None = None  # from --sleep-params FILE
    sleep_steps: int = 20_000
    search: int = 0
    finetune_epochs: int = 2
    strong: bool = False
    record_spikes: str = "hidden"
    out: str = "results/default"
    data_dir: str | None = None
    build_root: str | None = None
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """Hash of every field that changes results, and of the engine version: a
        results directory is never resumed with a different sleep engine."""
        from brainsleep.sleep.devices import ENGINE_VERSION

        d = {k: v for k, v in self.to_dict().items() if k not in NON_SEMANTIC}
        d["engine_version"] = ENGINE_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _parse_pref(text: str):
    if "=" not in text:
        raise ConfigError(f"--pref {text!r}: expected KEY=VALUE with Brian's dotted name")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def parse_prefs(items: list[str] | None) -> dict:
    """``["codegen.target=cython", ...]`` -> dict; values parsed as JSON when possible."""
    out = {}
    for item in items or []:
        key, value = _parse_pref(item)
        out[key] = value
    return out


def load_sleep_params_file(path: str) -> dict:
    """Read ``--sleep-params FILE`` (JSON: max_rate, inc, dec, thresholds, alpha_scale)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--sleep-params {path}: no such file")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--sleep-params {path}: not valid JSON ({exc})") from exc
    need = {"max_rate", "inc", "dec", "thresholds", "alpha_scale"}
    if not isinstance(d, dict) or not need <= set(d):
        raise ConfigError(f"--sleep-params {path}: needs keys {sorted(need)}")
    extra = set(d) - need - {"decay", "dt"}
    if extra:
        raise ConfigError(f"--sleep-params {path}: unknown keys {sorted(extra)}")
    try:
        SleepParams(
            max_rate=d["max_rate"],
            inc=d["inc"],
            dec=d["dec"],
            thresholds=d["thresholds"],
            alphas=[1.0] * len(d["thresholds"]),
            **{k: d[k] for k in ("decay", "dt") if k in d},
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--sleep-params {path}: {exc}") from exc
    return d


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check every field; raise ConfigError (one line) on the first problem."""
    aliases = {"fashion_mnist": "fashion-mnist", "fmnist": "fashion-mnist"}
    cfg.datasets = [aliases.get(d.lower(), d.lower()) for d in cfg.datasets]
    for d in cfg.datasets:
        if d not in KNOWN_DATASETS:
            raise ConfigError(f"unknown dataset {d!r}; known: {', '.join(KNOWN_DATASETS)}")
    if not cfg.fractions:
        raise ConfigError("--fractions: give at least one fraction in (0, 1]")
    for f in cfg.fractions:
        if not (isinstance(f, int | float) and math.isfinite(f) and 0 < f <= 1):
            raise ConfigError(f"fraction {f} is outside (0, 1]")
    if cfg.subset not in ("stratified", "random", "first"):
        raise ConfigError(f"--subset {cfg.subset!r}: choose stratified, random or first")
    try:
        cfg.imbalance = format_imbalance(parse_imbalance(cfg.imbalance or "none"))
    except ValueError as exc:
        raise ConfigError(f"--imbalance: {exc}") from exc
    if cfg.imbalance != "none" and cfg.subset != "stratified":
        raise ConfigError("--imbalance needs --subset stratified")
    if not cfg.seeds or any(s < 0 for s in cfg.seeds):
        raise ConfigError("--seeds: give non-negative integers")
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError(f"--val-fraction {cfg.val_fraction} must be in [0, 1)")
    if not cfg.hidden or any(h < 1 for h in cfg.hidden):
        raise ConfigError("--hidden: give positive layer widths")
    from brainsleep.ann import RECIPES

    if cfg.recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {cfg.recipe!r}; known: {', '.join(sorted(RECIPES))}")
    if cfg.epochs is not None and cfg.epochs < 1:
        raise ConfigError("--epochs must be >= 1")
    if cfg.device not in DEVICES:
        raise ConfigError(f"unknown device {cfg.device!r}; known: {', '.join(DEVICES)}")
    try:
        cfg.model = str(load_model(cfg.model).path)
    except ValueError as exc:
        raise ConfigError(f"--model: {exc}") from exc
    if cfg.device == "reference" and Path(cfg.model).stem != "src":
        raise ConfigError("--device reference implements only models/src.py; pick a Brian2 device")
    if cfg.sleep_params is None and cfg.sleep_preset not in preset_names():
        raise ConfigError(
            f"unknown sleep preset {cfg.sleep_preset!r}; known: {', '.join(preset_names())}"
        )
    n_layers = len(cfg.hidden) + 1
    thresholds = (cfg.sleep_params or {}).get("thresholds")
    if thresholds is None:
        from models.presets import PRESETS

        thresholds = PRESETS[cfg.sleep_preset]["thresholds"]
    if len(thresholds) != n_layers:
        raise ConfigError(
            f"sleep parameters have {len(thresholds)} thresholds but the network has "
            f"{n_layers} weight layers (--hidden {' '.join(map(str, cfg.hidden))})"
        )
    if cfg.sleep_steps < 1:
        raise ConfigError("--sleep-steps must be >= 1")
    if cfg.search < 0:
        raise ConfigError("--search must be >= 0")
    if cfg.search and cfg.val_fraction == 0:
        raise ConfigError("--search tunes on the validation split: set --val-fraction > 0")
    if cfg.finetune_epochs < 0:
        raise ConfigError("--finetune-epochs must be >= 0")
    if cfg.record_spikes not in ("none", "hidden", "all"):
        raise ConfigError("--record-spikes: choose none, hidden or all")
    if cfg.device == "cpp_standalone":
        from brainsleep.sleep.devices import DeviceUnavailableError, check_toolchain

        try:
            check_toolchain("cpp_standalone")
        except DeviceUnavailableError as exc:
            raise ConfigError(str(exc)) from exc
    return cfg
