"""How a model file declares a tunable parameter: :class:`Parameter`.

A model file (``models/src.py``) lists its tunable constants in ``PARAMETERS``, each a
:class:`Parameter` next to the equations that read it, in the manner of NESTML's
parameter blocks. Everything else reads the declaration: the engine sets the shared
variable of the same name in every run, ``--sleep-params`` and presets override it by
name, the search explores it within ``search``, and results record it under that name.

This module imports nothing heavy, so model files can import it cheaply.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass


def is_number(value: object) -> bool:
    """A real number (int, float or numpy scalar), not a bool or a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Parameter:
    """A tunable constant of a sleep model, declared once, next to its equations.

    Parameters
    ----------
    default : float or tuple of float
        Value used when no preset, ``--sleep-params`` file or search sets it. For a
        ``per_layer`` parameter: one number for every layer, or one per weight layer.
    unit : str
        Brian2 unit of the shared variable (``"1"`` for dimensionless, ``"Hz"``); values
        are always given in the unit's SI base (Hz, seconds, ...).
    low, high : float
        Inclusive bounds of valid values.
    doc : str
        One line: what the parameter means.
    per_layer : bool
        One value per weight layer (a NEURON or SYNAPSE variable of each layer).
    search : (float, float) or None
        Factors of the starting value between which the sleep-parameter search samples
        log-uniformly; ``None``: not searched.
    search_floor : float
        Smallest centre of the search range, so that a start of 0 is still searched.
    exclusive_low : bool
        The lower bound itself is not allowed (``value > low``).
    inference : float or None
        Value in SNN evaluation (:mod:`brainsleep.sleep.inference`), where plasticity is
        off: e.g. 0 for a learning rate. None: the sleep value is kept.

    Raises
    ------
    ValueError
        Bounds that are not numbers or a default outside them.
    """

    default: float | tuple[float, ...]
    unit: str = "1"
    low: float = 0.0
    high: float = math.inf
    doc: str = ""
    per_layer: bool = False
    search: tuple[float, float] | None = None
    search_floor: float = 0.0
    exclusive_low: bool = False
    inference: float | None = None

    def __post_init__(self) -> None:
        if not (is_number(self.low) and is_number(self.high)) or self.low > self.high:
            raise ValueError(f"Parameter bounds must be numbers low <= high, got {self}")
        if self.search is not None:
            lo, hi = self.search
            if not (is_number(lo) and is_number(hi) and 0 < lo <= hi):
                raise ValueError(f"Parameter.search must be factors 0 < low <= high, got {self}")
        defaults = self.default if isinstance(self.default, tuple) else (self.default,)
        if isinstance(self.default, tuple) and not self.per_layer:
            raise ValueError("only a per_layer Parameter takes a tuple default")
        for v in defaults:
            self.check("default", v)

    def check(self, name: str, value: object) -> float:
        """``value`` as a float, or a one-line ValueError naming ``name`` and the bounds."""
        if not is_number(value) or not math.isfinite(value):
            raise ValueError(f"sleep parameter {name} must be a finite number, got {value!r}")
        v = float(value)
        too_low = v <= self.low if self.exclusive_low else v < self.low
        if too_low or v > self.high:
            op = ">" if self.exclusive_low else ">="
            bound = f"{op} {self.low:g}" + ("" if self.high == math.inf else f", <= {self.high:g}")
            raise ValueError(f"sleep parameter {name} must be {bound}, got {v:g}")
        return v

    def resolve(self, name: str, value: object, n_layers: int) -> float | tuple[float, ...]:
        """Check a value (a number, or for per-layer parameters a number or a sequence of
        ``n_layers`` numbers) and return it as a float or a tuple of floats."""
        if not self.per_layer:
            return self.check(name, value)
        if is_number(value):
            return tuple(self.check(name, value) for _ in range(n_layers))
        if isinstance(value, str) or not hasattr(value, "__iter__"):
            raise ValueError(
                f"sleep parameter {name} takes a number or one number per weight layer, "
                f"got {value!r}"
            )
        values = tuple(value)
        if len(values) != n_layers and value is self.default:
            raise ValueError(
                f"sleep parameter {name}: its declared default has {len(values)} values (one "
                f"per weight layer of the net it was tuned on) but the network has {n_layers} "
                f"weight layers: give {name} explicitly"
            )
        if len(values) != n_layers:
            raise ValueError(
                f"sleep parameter {name} has {len(values)} values but the network has "
                f"{n_layers} weight layers: give one per layer"
            )
        return tuple(self.check(f"{name}[{k}]", v) for k, v in enumerate(values))


#: The engine's own tunable parameters: the conversion's, not the model's equations.
ENGINE_PARAMETERS: dict[str, Parameter] = {
    "alpha_scale": Parameter(
        14.308178,
        doc="scale on every layer's data-based alpha (reference reduced_mnist_10ep)",
        search=(0.2, 5.0),
    ),
}
