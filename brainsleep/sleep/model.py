"""Load a sleep model file from ``models/`` (equations as data) and check its contract."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import models

MODELS_DIR = Path(models.__file__).resolve().parent
DEFAULT_MODEL = "src"

# Shared variables the engine sets from SleepParams on every run.
REQUIRED_SHARED = {
    "INPUT": ("rescale",),
    "NEURON": ("v_thresh", "decay"),
    "SYNAPSE": ("alpha", "inc", "dec"),
}
REQUIRED_KEYS = {
    "INPUT": ("equations", "threshold"),
    "NEURON": ("equations", "decay_step", "threshold", "reset"),
    "SYNAPSE": ("equations", "on_pre", "on_post"),
}


@dataclass(frozen=True)
class SleepModel:
    """A model file's content: Brian2 strings plus named constants."""

    name: str
    path: Path
    input: dict
    neuron: dict
    synapse: dict
    constants: dict
    source_hash: str

    def describe(self) -> str:
        """Short label: model name and the first characters of its content hash."""
        return f"{self.name}@{self.source_hash[:10]}"


def resolve_model_path(model: str | Path | None) -> Path:
    """Map a model name (``"src"``) or a path to a model file, or raise ValueError."""
    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, SleepModel):
        return model.path
    text = str(model)
    candidates = [Path(text)]
    if not text.endswith(".py"):
        candidates.append(MODELS_DIR / f"{text}.py")
    for c in candidates:
        if c.is_file():
            return c.resolve()
    known = sorted(p.stem for p in MODELS_DIR.glob("*.py") if not p.stem.startswith("_"))
    known = [k for k in known if k != "presets"]
    raise ValueError(
        f"unknown sleep model {text!r}: not a file, nor one of {', '.join(known)} in {MODELS_DIR}"
    )


def _declared_names(equations: str) -> set[str]:
    """Names declared on the left of ``name : unit`` or ``name = expr : unit`` lines."""
    names = set()
    for line in equations.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^(d)?([A-Za-z_]\w*)(/dt)?\s*[:=]", line)
        if m:
            names.add(m.group(2))
    return names


def _shared_names(equations: str) -> set[str]:
    names = set()
    for line in equations.splitlines():
        line = line.split("#", 1)[0]
        if "(shared" in line.replace(" ", "") or "shared)" in line or ",shared" in line:
            m = re.match(r"^\s*([A-Za-z_]\w*)\s*:", line)
            if m:
                names.add(m.group(1))
    return names


def load_model(model: str | Path | SleepModel | None = None) -> SleepModel:
    """Load and check a model file.

    Parameters
    ----------
    model : str or Path or SleepModel, optional
        A name of a file in ``models/`` (``"src"``, the default; ``"src_additive"``), a
        path to a copied and edited model file, or an already loaded model.

    Raises
    ------
    ValueError
        The file is missing, does not execute, or breaks the engine's contract (a
        missing block, key or shared variable).
    """
    if isinstance(model, SleepModel):
        return model
    path = resolve_model_path(model)
    source = path.read_bytes()
    spec = importlib.util.spec_from_file_location(f"_brainsleep_model_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user-edited file: report, do not crash deep inside
        raise ValueError(f"model file {path} does not load: {type(exc).__name__}: {exc}") from exc
    blocks = {}
    for block, keys in REQUIRED_KEYS.items():
        value = getattr(module, block, None)
        if not isinstance(value, dict):
            raise ValueError(f"model file {path} lacks the {block} dict (see models/src.py)")
        missing = [k for k in keys if not isinstance(value.get(k), str)]
        if missing:
            raise ValueError(f"model file {path}: {block} lacks string key(s) {missing}")
        shared = _shared_names(value["equations"])
        lacking = [n for n in REQUIRED_SHARED[block] if n not in shared]
        if lacking:
            raise ValueError(
                f"model file {path}: {block} equations must declare shared variable(s) "
                f"{lacking} (the engine sets them from SleepParams)"
            )
        blocks[block] = dict(value)
    if "v" not in _declared_names(blocks["NEURON"]["equations"]):
        raise ValueError(f"model file {path}: NEURON equations must declare the potential v")
    if "w" not in _declared_names(blocks["SYNAPSE"]["equations"]):
        raise ValueError(f"model file {path}: SYNAPSE equations must declare the weight w")
    constants = getattr(module, "CONSTANTS", {})
    if not isinstance(constants, dict):
        raise ValueError(f"model file {path}: CONSTANTS must be a dict of name -> number")
    return SleepModel(
        name=path.stem,
        path=path,
        input=blocks["INPUT"],
        neuron=blocks["NEURON"],
        synapse=blocks["SYNAPSE"],
        constants=dict(constants),
        source_hash=hashlib.sha256(source).hexdigest(),
    )
