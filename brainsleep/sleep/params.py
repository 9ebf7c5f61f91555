"""SleepParams: the values of one sleep phase, for exactly what the model declares.

The model file declares its tunable parameters (``PARAMETERS`` in ``models/src.py``,
each a :class:`~brainsleep.sleep.parameters.Parameter`); the engine adds its own, declared
here in :data:`ENGINE_PARAMETERS` (the conversion's ``alpha_scale``) and the time step
``dt``. A parameter set (a preset of ``models/presets.py``, a ``--sleep-params`` file, a
search trial) is a partial override by those names: :func:`params_from_set`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from brainsleep.names import (
    MAX_SEED,  # noqa: F401  (declared once, outside the engine)
    unknown_name,
)

from .model import read_declarations
from .parameters import ENGINE_PARAMETERS, Parameter, is_number

#: The simulation time step in seconds (the reference's dt = 0.001).
DT = 0.001


def _as_value(name: str, value: object) -> float | tuple[float, ...]:
    if is_number(value):
        if not math.isfinite(value):
            raise ValueError(f"SleepParams.{name} must be a finite number, got {value!r}")
        return float(value)
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise ValueError(f"SleepParams.{name} must be a number or numbers, got {value!r}")
    values = tuple(value)
    bad = [v for v in values if not is_number(v) or not math.isfinite(v)]
    if bad or not values:
        raise ValueError(f"SleepParams.{name} must hold finite numbers, got {values!r}")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class SleepParams:
    """Values of one sleep phase: every declared parameter, the layer scales and dt.

    Build it with :meth:`for_model` or :func:`params_from_set`, which apply the model's
    declarations (defaults, bounds, one value per layer); the constructor checks only
    what holds for every model.

    Parameters
    ----------
    values : mapping of str to float or tuple of float
        One entry per parameter the model declares; per-layer parameters hold one value
        per weight layer. Values in the unit's SI base (Hz, seconds).
    alphas : sequence of float
        The conversion's scale of each weight layer's input (data-based normalisation
        alpha times ``alpha_scale``), each >= 0; set on the synapses' ``alpha``.
    dt : float
        Time step in seconds.

    Raises
    ------
    ValueError
        A value that is not a finite number, a negative alpha, dt <= 0, no layers, or a
        per-layer value whose length differs from the number of alphas; the message
        names the field.
    """

    values: Mapping[str, float | tuple[float, ...]]
    alphas: tuple[float, ...]
    dt: float = DT

    def __post_init__(self) -> None:
        if not isinstance(self.values, Mapping):
            raise ValueError(f"SleepParams.values must be a mapping, got {self.values!r}")
        values = {str(k): _as_value(k, v) for k, v in self.values.items()}
        alphas = _as_value("alphas", self.alphas)
        alphas = alphas if isinstance(alphas, tuple) else (alphas,)
        for k, v in enumerate(alphas):
            if v < 0:
                raise ValueError(f"SleepParams.alphas[{k}] must be >= 0, got {v}")
        if not is_number(self.dt) or not math.isfinite(self.dt) or self.dt <= 0:
            raise ValueError(f"SleepParams.dt must be > 0, got {self.dt!r}")
        for name, v in values.items():
            if isinstance(v, tuple) and len(v) != len(alphas):
                raise ValueError(
                    f"SleepParams has {len(v)} values of {name} but {len(alphas)} alphas: "
                    "give one of each per weight layer"
                )
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "alphas", alphas)
        object.__setattr__(self, "dt", float(self.dt))

    def __getitem__(self, name: str) -> float | tuple[float, ...]:
        try:
            return self.values[name]
        except KeyError:
            raise KeyError(
                f"no sleep parameter {name!r}; these parameters have {sorted(self.values)}"
            ) from None

    def layer_value(self, name: str, layer: int) -> float:
        """Value of ``name`` for weight layer ``layer`` (0-based); scalars for every layer."""
        v = self[name]
        return v[layer] if isinstance(v, tuple) else v

    @property
    def n_layers(self) -> int:
        """Number of weight layers these parameters are for."""
        return len(self.alphas)

    def to_dict(self) -> dict:
        """JSON-able dict: every value by name, ``alphas`` and ``dt``."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in self.values.items()}
        return {**out, "alphas": list(self.alphas), "dt": self.dt}

    def to_json(self) -> str:
        """The parameters as a compact JSON string (recorded with every result)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> SleepParams:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        if "alphas" not in d:
            raise ValueError("SleepParams.from_dict needs 'alphas'")
        alphas, dt = d.pop("alphas"), d.pop("dt", DT)
        return cls(d, alphas, dt)

    @classmethod
    def for_model(cls, model=None, *, alphas, dt: float = DT, **values: object) -> SleepParams:
        """The model's declared defaults, overridden by ``values``, with given alphas.

        Parameters
        ----------
        model : str, Path or SleepModel, optional
            The model whose ``PARAMETERS`` apply (``"src"`` by default).
        alphas : sequence of float
            Layer scales of the conversion, one per weight layer.
        dt : float
            Time step in seconds.
        **values
            Declared parameters by name.

        Raises
        ------
        ValueError
            An undeclared name or a value out of its declared bounds.
        """
        alphas = tuple(alphas)
        return cls(resolve_values(declared_parameters(model), values, len(alphas)), alphas, dt)


def declared_parameters(model=None) -> dict[str, Parameter]:
    """The tunable parameters ``model`` declares (its file's ``PARAMETERS``)."""
    return read_declarations(model).parameters


def resolve_values(
    declared: Mapping[str, Parameter], overrides: Mapping[str, object], n_layers: int
) -> dict[str, float | tuple[float, ...]]:
    """Declared defaults overridden by ``overrides``, each checked against its declaration.

    Raises
    ------
    ValueError
        A name the model does not declare, or a value out of its bounds (one line).
    """
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ValueError(
            f"unknown sleep parameter(s) {unknown}; the model declares {sorted(declared)}"
        )
    return {
        name: p.resolve(name, overrides.get(name, p.default), n_layers)
        for name, p in declared.items()
    }


def params_from_set(p: Mapping[str, object], base_alphas, model=None) -> SleepParams:
    """SleepParams from a parameter set and the network's data-based alphas.

    Parameters
    ----------
    p : mapping
        A partial override by name: declared parameters of the model, the engine's
        ``alpha_scale`` and ``dt`` (a preset of ``models/presets.py``, a
        ``--sleep-params`` file or a search trial). Missing names keep their defaults.
    base_alphas : sequence of float
        Data-based normalisation alphas, one per weight layer (before alpha_scale).
    model : str, Path or SleepModel, optional
        The model whose declarations apply (``"src"`` by default).

    Raises
    ------
    ValueError
        An undeclared name, a value out of bounds, or per-layer values whose number
        differs from the number of weight layers.
    """
    p = dict(p)
    dt = p.pop("dt", DT)
    engine = resolve_values(
        ENGINE_PARAMETERS, {k: p.pop(k) for k in list(p) if k in ENGINE_PARAMETERS}, 1
    )
    alphas = tuple(float(a) * engine["alpha_scale"] for a in base_alphas)
    return SleepParams(resolve_values(declared_parameters(model), p, len(alphas)), alphas, dt)


def search_space(model=None) -> dict[str, Parameter]:
    """Every searchable parameter (declared with a ``search`` range): engine's and model's."""
    everything = {**declared_parameters(model), **ENGINE_PARAMETERS}
    return {name: p for name, p in everything.items() if p.search is not None}


def preset_names() -> list[str]:
    """Names of the reference parameter sets in ``models/presets.py``."""
    from brainsleep.models.presets import PRESETS

    return sorted(PRESETS)


def preset(name: str) -> dict:
    """A copy of preset ``name`` of ``models/presets.py`` (a partial override by name).

    Raises
    ------
    ValueError
        An unknown name; the message lists the known ones.
    """
    from brainsleep.models.presets import PRESETS

    if name not in PRESETS:
        raise ValueError(unknown_name("sleep preset", name, preset_names()))
    return dict(PRESETS[name])


def from_preset(
    name: str, base_alphas, alpha_scale: float | None = None, model=None
) -> SleepParams:
    """Build SleepParams from a named reference preset.

    Parameters
    ----------
    name : str
        A key of ``models.presets.PRESETS``.
    base_alphas : sequence of float
        Data-based normalisation alphas, one per weight layer (before alpha_scale).
    alpha_scale : float, optional
        Override of the preset's alpha_scale.
    model : str, Path or SleepModel, optional
        The model whose declarations apply (``"src"`` by default).
    """
    p = preset(name)
    if alpha_scale is not None:
        p["alpha_scale"] = alpha_scale
    return params_from_set(p, base_alphas, model)
