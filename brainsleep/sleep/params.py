"""SleepParams: the one typed record that carries the sleep phase's parameters."""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass

from brainsleep.models.presets import DECAY, DT, PRESETS

#: Largest seed the engine takes: Brian2's compiled devices keep it in an int32 variable.
#: Seeds are integers in ``0 .. MAX_SEED`` everywhere (command line, subsets, sleep).
MAX_SEED = 2**31 - 1


def _is_number(value) -> bool:
    """A real number (int, float or numpy scalar), not a bool or a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class SleepParams:
    """Parameters of one sleep phase.

    Parameters
    ----------
    max_rate : float
        Input rate scale (Hz): pixel intensity x fires with P = min(1, 2*dt*max_rate*x).
    inc, dec : float
        Potentiation and depression rates of the Hebbian rule.
    thresholds : sequence of float
        Firing threshold of each weight layer's output neurons (beta_l), each > 0.
    alphas : sequence of float
        Scale of each weight layer's input (normalisation alpha times alpha_scale),
        each >= 0.
    decay : float
        Multiplicative decay of the membrane potential per step.
    dt : float
        Time step in seconds.

    Raises
    ------
    ValueError
        A value that is not a finite number, a negative rate or alpha, a threshold or
        dt <= 0, no layers, or unequal numbers of thresholds and alphas; the message
        names the field.
    """

    max_rate: float
    inc: float
    dec: float
    thresholds: tuple[float, ...]
    alphas: tuple[float, ...]
    decay: float = DECAY
    dt: float = DT

    def __post_init__(self) -> None:
        for name in ("thresholds", "alphas"):
            values = getattr(self, name)
            if isinstance(values, str) or not hasattr(values, "__iter__"):
                raise ValueError(
                    f"SleepParams.{name} must be a sequence of numbers, got {values!r}"
                )
            values = tuple(values)
            bad = [v for v in values if not _is_number(v)]
            if bad:
                raise ValueError(f"SleepParams.{name} must hold numbers, got {bad[0]!r}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        scalars = {
            "max_rate": self.max_rate,
            "inc": self.inc,
            "dec": self.dec,
            "decay": self.decay,
            "dt": self.dt,
        }
        for name, value in scalars.items():
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"SleepParams.{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("max_rate", "inc", "dec", "decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"SleepParams.{name} must be >= 0, got {getattr(self, name)}")
        if self.dt <= 0:
            raise ValueError(f"SleepParams.dt must be > 0, got {self.dt}")
        for name in ("thresholds", "alphas"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"SleepParams.{name} is empty: give one value per weight layer")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"SleepParams.{name} contains NaN or inf: {values}")
        for k, v in enumerate(self.thresholds):
            if v <= 0:
                raise ValueError(f"SleepParams.thresholds[{k}] must be > 0, got {v}")
        for k, v in enumerate(self.alphas):
            if v < 0:
                raise ValueError(f"SleepParams.alphas[{k}] must be >= 0, got {v}")
        if len(self.thresholds) != len(self.alphas):
            raise ValueError(
                f"SleepParams has {len(self.thresholds)} thresholds but {len(self.alphas)} "
                "alphas: give one of each per weight layer"
            )

    @property
    def n_layers(self) -> int:
        """Number of weight layers these parameters are for."""
        return len(self.thresholds)

    @property
    def rescale(self) -> float:
        """The reference's input rescale factor 1 / (dt * max_rate) (inf when rate is 0)."""
        return math.inf if self.max_rate == 0 else 1.0 / (self.dt * self.max_rate)

    def to_dict(self) -> dict:
        """JSON-able dict of every field."""
        d = asdict(self)
        d["thresholds"] = list(self.thresholds)
        d["alphas"] = list(self.alphas)
        return d

    def to_json(self) -> str:
        """The parameters as a compact JSON string (recorded with every result)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> SleepParams:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown SleepParams fields {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**d)


def preset_names() -> list[str]:
    """Names of the reference parameter sets in ``models/presets.py``."""
    return sorted(PRESETS)


def params_from_set(p: dict, base_alphas) -> SleepParams:
    """SleepParams from a parameter set and the network's data-based alphas.

    Parameters
    ----------
    p : dict
        ``max_rate, inc, dec, thresholds, alpha_scale`` and optionally ``decay, dt``: a
        preset of ``models/presets.py``, a ``--sleep-params`` file or a search candidate.
    base_alphas : sequence of float
        Data-based normalisation alphas, one per weight layer (before alpha_scale).
    """
    thresholds = tuple(p["thresholds"])
    if len(base_alphas) != len(thresholds):
        raise ValueError(
            f"the sleep parameters have {len(thresholds)} thresholds but the network has "
            f"{len(base_alphas)} weight layers"
        )
    return SleepParams(
        max_rate=p["max_rate"],
        inc=p["inc"],
        dec=p["dec"],
        thresholds=thresholds,
        alphas=tuple(a * p["alpha_scale"] for a in base_alphas),
        decay=p.get("decay", DECAY),
        dt=p.get("dt", DT),
    )


def from_preset(name: str, base_alphas, alpha_scale: float | None = None) -> SleepParams:
    """Build SleepParams from a named reference preset.

    Parameters
    ----------
    name : str
        A key of ``models.presets.PRESETS``.
    base_alphas : sequence of float
        Data-based normalisation alphas, one per weight layer (before alpha_scale).
    alpha_scale : float, optional
        Override of the preset's alpha_scale.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown sleep preset {name!r}; known: {', '.join(preset_names())}")
    p = dict(PRESETS[name])
    if alpha_scale is not None:
        p["alpha_scale"] = alpha_scale
    return params_from_set(p, base_alphas)
