"""Read a sleep model file from ``models/`` (equations as data): :class:`SleepModel`.

A model file is Python: reading it executes it, so it must be trusted like any other
code. Each file is executed once per process (memoised by resolved path and content
hash) and its contract with the engine (blocks, keys, shared variables, ``v`` and ``w``)
is checked here. This module runs nothing and sits below the name check
(:mod:`~brainsleep.sleep.model_check`) and the checked loader, which also runs the model
on a tiny network (:func:`brainsleep.sleep.engine.load_model`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import numbers
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import brainsleep.models as models

from .model_source import _equations, _one_line
from .parameters import ENGINE_PARAMETERS, Parameter

MODELS_DIR = Path(models.__file__).resolve().parent
DEFAULT_MODEL = "src"

# Shared variables the engine sets itself (the conversion's layer scale); every other
# shared variable of a block must be a parameter declared in PARAMETERS (or a shared
# subexpression), so nothing is left unset.
ENGINE_SHARED = {"INPUT": (), "NEURON": (), "SYNAPSE": ("alpha",)}
REQUIRED_KEYS = {
    "INPUT": ("equations", "threshold"),
    "NEURON": ("equations", "decay_step", "threshold", "reset"),
    "SYNAPSE": ("equations", "on_pre", "on_post"),
}
# Every string key the engine reads: "expression" (a condition) or "statements".
CODE_KEYS = {
    "INPUT": {"threshold": "expression", "reset": "statements"},
    "NEURON": {
        "decay_step": "statements",
        "threshold": "expression",
        "reset": "statements",
        "rest": "statements",  # optional: back to rest between images (SNN evaluation)
    },
    "SYNAPSE": {"on_pre": "statements", "on_post": "statements"},
}

# Names the engine (through Brian2) provides in every NeuronGroup, ``lastspike`` (the time
# of the neuron's last spike) among them (brainsleep/sleep/network.py keeps it).
GROUP_NAMES = frozenset({"t", "dt", "t_in_timesteps", "i", "N", "lastspike"})
# The input group also reads the engine-defined intensity of the current step.
INPUT_NAMES = frozenset({"x"})
# Names of a Synapses object besides its own equations and the pre/post variables
# (``delay`` of the pathway, ``lastupdate`` with event-driven equations).
SYNAPSE_NAMES = frozenset(
    {
        "t",
        "dt",
        "t_in_timesteps",
        "i",
        "j",
        "N",
        "N_incoming",
        "N_outgoing",
        "N_pre",
        "N_post",
        "delay",
        "lastupdate",
    }
)

# Per process: (resolved path, sha256 of the content) -> the module or the error.
_EXECUTED: dict[tuple[str, str], object] = {}


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
    parameters: dict = field(default_factory=dict)  # name -> Parameter (PARAMETERS)
    parameter_blocks: dict = field(default_factory=dict)  # name -> "INPUT"/"NEURON"/"SYNAPSE"
    # Digest of what the file defines once executed (model_content_digest): unlike
    # source_hash it follows what the file imports (src_additive.py takes INPUT and NEURON
    # from src.py), so an edit there is another model too.
    content_hash: str = ""

    def describe(self) -> str:
        """Short label: model name and the first characters of its content hash."""
        return f"{self.name}@{self.source_hash[:10]}"

    def block(self, name: str) -> dict:
        """The dict of block ``"INPUT"``, ``"NEURON"`` or ``"SYNAPSE"``."""
        return {"INPUT": self.input, "NEURON": self.neuron, "SYNAPSE": self.synapse}[name]


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


@dataclass(frozen=True)
class Declarations:
    """What a model file declares for the rest of brainsleep, read without Brian2."""

    name: str
    path: Path
    parameters: dict  # name -> Parameter


def read_declarations(model: str | Path | SleepModel | None = None) -> Declarations:
    """A model file's ``PARAMETERS``, cheaply: the file is executed, not checked.

    For validating ``--sleep-params``, presets and search spaces before anything is
    built; :func:`brainsleep.sleep.load_model` checks the file fully.

    Raises
    ------
    ValueError
        One line: the file is missing, does not execute, or declares malformed
        parameters.
    """
    if isinstance(model, SleepModel):
        return Declarations(model.name, model.path, model.parameters)
    path = resolve_model_path(model)
    source = path.read_bytes()
    module = _execute(path, source)
    return Declarations(path.stem, path, _parameters(path, module))


#: The module-level names of a model file that define the model.
MODEL_BLOCKS = ("INPUT", "NEURON", "SYNAPSE", "CONSTANTS", "PARAMETERS")


def model_content_digest(model: str | Path | None = None) -> str:
    """SHA-256 of what a model file defines once executed: its blocks, constants and
    parameter declarations, wherever they come from (the file or what it imports).

    Executes the file (once per process and content; light: no Brian2 or torch).

    Raises
    ------
    ValueError
        The file is missing or does not execute.
    """
    import json

    path = resolve_model_path(model)
    module = _execute(path, path.read_bytes())
    content = {name: getattr(module, name, None) for name in MODEL_BLOCKS}
    text = json.dumps(content, sort_keys=True, default=partial(_stable_repr, path))
    return hashlib.sha256(text.encode()).hexdigest()


def _finite_scalar(value: object) -> bool:
    """A finite real number (Python or numpy, not a bool) or a scalar Brian2 quantity."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):  # numpy's scalars register here too
        try:
            return math.isfinite(value)
        except OverflowError:  # an int beyond float range
            return False
    if hasattr(value, "dim") and getattr(value, "shape", None) == ():  # 10 * ms
        import numpy as np

        return bool(np.isfinite(np.asarray(value, dtype=float)))
    return False


def _stable_repr(path: Path, value: object) -> object:
    """The description of a non-JSON value in a model's digest: its repr, unless that
    names a memory address (it would differ in every process); a set's members sorted
    (their order follows string hashing, which differs in every process)."""
    if isinstance(value, set | frozenset):
        return sorted(repr(v) for v in value)
    text = repr(value)
    if re.search(r"<[^<>]* at 0x[0-9a-fA-F]+>", text):
        shown = " ".join(text.split())[:60]
        raise ValueError(
            f"model file {path}: {type(value).__name__} {shown} has no stable "
            "description, so results made with this model could never be resumed; use "
            "numbers and strings in the model's blocks"
        )
    return text


def _execute(path: Path, source: bytes):
    """Execute a model file once per process and content; the module."""
    key = (str(path), hashlib.sha256(source).hexdigest())
    if key not in _EXECUTED:
        spec = importlib.util.spec_from_file_location(f"_brainsleep_model_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a user-edited file: report, do not crash deep inside
            _EXECUTED[key] = (
                f"model file {path} does not load: {type(exc).__name__}: {_one_line(exc)}"
            )
        else:
            _EXECUTED[key] = module
    if isinstance(_EXECUTED[key], str):
        raise ValueError(_EXECUTED[key])
    return _EXECUTED[key]


def _parameters(path: Path, module) -> dict:
    """The file's ``PARAMETERS`` dict, checked to hold Parameter declarations."""
    params = getattr(module, "PARAMETERS", None)
    if not isinstance(params, dict):
        raise ValueError(
            f"model file {path} lacks the PARAMETERS dict of name -> Parameter (see models/src.py)"
        )
    for name, p in params.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise ValueError(f"model file {path}: PARAMETERS key {name!r} is not an identifier")
        if not isinstance(p, Parameter):
            raise ValueError(
                f"model file {path}: PARAMETERS[{name!r}] must be a "
                f"brainsleep.sleep.parameters.Parameter, got {type(p).__name__}"
            )
        if name in ENGINE_PARAMETERS or name in ("dt", "alphas", "alpha"):
            raise ValueError(
                f"model file {path}: PARAMETERS[{name!r}] clashes with an engine name "
                "(alpha, alphas, alpha_scale, dt); rename it"
            )
    return dict(params)


def read_model(path: Path, source: bytes, source_hash: str) -> SleepModel:
    """The model the file at ``path`` defines (``source``, its content, with SHA-256
    ``source_hash``): executed once per process and content, and its contract with the
    engine checked (blocks, keys, shared names), nothing more; or a one-line ValueError."""

    module = _execute(path, source)
    parameters = _parameters(path, module)
    parameter_blocks: dict[str, str] = {}
    text = source.decode("utf-8", errors="replace")
    blocks, names = {}, {}
    for block, keys in REQUIRED_KEYS.items():
        value = getattr(module, block, None)
        if not isinstance(value, dict):
            raise ValueError(f"model file {path} lacks the {block} dict (see models/src.py)")
        missing = [k for k in keys if not isinstance(value.get(k), str)]
        if missing:
            raise ValueError(f"model file {path}: {block} lacks string key(s) {missing}")
        for k in CODE_KEYS[block]:
            if value.get(k) is not None and not isinstance(value[k], str):
                raise ValueError(
                    f"model file {path}: {block}[{k!r}] must be a string of Brian2 code"
                )
        eqs = _equations(path, text, block, value["equations"])
        names[block] = set(eqs.names)
        shared = {
            name for name, eq in eqs.items() if "shared" in eq.flags and eq.type != "subexpression"
        }
        lacking = [n for n in ENGINE_SHARED[block] if n not in shared]
        if lacking:
            raise ValueError(
                f"model file {path}: {block} equations must declare shared variable(s) "
                f"{lacking} (the engine sets them)"
            )
        for name in sorted(shared - set(ENGINE_SHARED[block])):
            if name not in parameters:
                raise ValueError(
                    f"model file {path}: {block} shared variable {name!r} is not declared "
                    f"in PARAMETERS, so nothing would set it; declare it there"
                )
            if name in parameter_blocks:
                raise ValueError(
                    f"model file {path}: parameter {name!r} is a shared variable of both "
                    f"{parameter_blocks[name]} and {block}; keep it in one block"
                )
            if block == "INPUT" and parameters[name].per_layer:
                raise ValueError(
                    f"model file {path}: parameter {name!r} is per_layer but INPUT has "
                    "one group; make it a NEURON or SYNAPSE variable or not per_layer"
                )
            _check_unit(path, block, name, eqs[name], parameters[name])
            parameter_blocks[name] = block
        blocks[block] = dict(value)
    unset = sorted(set(parameters) - set(parameter_blocks))
    if unset:
        raise ValueError(
            f"model file {path}: PARAMETERS {unset} are not shared variables of any block "
            "(declare each as 'name : unit (shared)' in the block that uses it)"
        )
    if "v" not in names["NEURON"]:
        raise ValueError(f"model file {path}: NEURON equations must declare the potential v")
    if "w" not in names["SYNAPSE"]:
        raise ValueError(f"model file {path}: SYNAPSE equations must declare the weight w")
    constants = getattr(module, "CONSTANTS", {})
    if not isinstance(constants, dict):
        raise ValueError(f"model file {path}: CONSTANTS must be a dict of name -> number")
    bad = [k for k in constants if not (isinstance(k, str) and k.isidentifier())]
    if bad:
        raise ValueError(f"model file {path}: CONSTANTS keys must be identifiers, got {bad}")
    for k, v in constants.items():
        # Numbers only: the model's digest (results fingerprints, build keys) describes
        # each value, and an object (a Brian2 Function, an array) has no stable
        # description, so a results directory would never resume.
        if not _finite_scalar(v):
            raise ValueError(
                f"model file {path}: CONSTANTS[{k!r}] must be a finite number, got "
                f"{type(v).__name__} {' '.join(repr(v).split())[:60]}; write a formula in the "
                "equations instead"
            )
    return SleepModel(
        name=path.stem,
        path=path,
        input=blocks["INPUT"],
        neuron=blocks["NEURON"],
        synapse=blocks["SYNAPSE"],
        constants=dict(constants),
        source_hash=source_hash,
        content_hash=model_content_digest(path),
        parameters=parameters,
        parameter_blocks=parameter_blocks,
    )


def _check_unit(path: Path, block: str, name: str, eq, parameter) -> None:
    """The declared unit of a parameter is that of its shared variable."""
    from brian2 import Equations

    try:
        declared = Equations(f"{name} : {parameter.unit}")[name].dim
    except Exception as exc:  # a malformed unit string
        raise ValueError(
            f"model file {path}: PARAMETERS[{name!r}] has unit {parameter.unit!r}, which "
            f"Brian2 does not read: {_one_line(exc)}"
        ) from None
    if declared != eq.dim:
        raise ValueError(
            f"model file {path}: PARAMETERS[{name!r}] has unit {parameter.unit!r} but "
            f"{block} declares {name} with dimensions {eq.dim!r}; make them agree"
        )
