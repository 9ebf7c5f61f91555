"""How a trained ANN becomes the spiking network of SNN evaluation: one record, checked once.

:class:`SNNSettings` holds the choices of ``--snn-protocol``, ``--snn-reset``,
``--snn-percentile`` and ``--snn-evaluator``; :meth:`SNNSettings.check` refuses a bad
combination in one line before anything is trained; :func:`conversion_params` turns
a protocol of ``models/conversion.py`` and a network into the :class:`SleepParams` the
simulation runs with (plasticity off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import SleepParams

#: Where the converted network is simulated: the batched simulator (``batched.py``, all
#: images at once, default) or the sleep's Brian2 device (any model's equations).
EVALUATORS = ("batched", "device")


def protocols() -> dict:
    """``models/conversion.py``'s PROTOCOLS (name -> entry; ``sleep`` -> None)."""
    from brainsleep.models.conversion import PROTOCOLS

    return PROTOCOLS


def resets() -> dict:
    """``models/conversion.py``'s RESETS (name -> statement; ``zero`` -> the model's own)."""
    from brainsleep.models.conversion import RESETS

    return RESETS


@dataclass(frozen=True)
class SNNSettings:
    """The conversion and simulator of SNN evaluation.

    Attributes
    ----------
    protocol : str
        A key of ``models/conversion.py``'s PROTOCOLS: ``sleep`` (the sleep phase's own
        parameters), ``diehl2015`` (Diehl et al. 2015) or ``diehl2015_textbook``.
    reset : str
        ``zero`` (the model's reset) or ``subtraction`` (Rueckauer et al. 2017).
    percentile : float or None
        Data-based normalisation by this percentile of the positive activations instead
        of the maximum (Rueckauer et al. 2017: 99.9).
    evaluator : str
        ``batched`` or ``device`` (:data:`EVALUATORS`).
    """

    protocol: str = "sleep"
    reset: str = "zero"
    percentile: float | None = None
    evaluator: str = "batched"

    def check(self, model=None) -> None:
        """Refuse a bad combination in one line (ValueError), before anything runs.

        With ``model`` (a loaded :class:`~brainsleep.sleep.model.SleepModel`), also check
        that its ``inference`` values switch its plasticity off (a trial run), that it
        declares what the protocol sets and, for the batched evaluator, that its
        inference statements are the ones the simulator implements.
        """
        known = protocols()
        if self.protocol not in known:
            raise ValueError(
                f"--snn-protocol {self.protocol}: unknown; one of {', '.join(known)} "
                "(models/conversion.py)"
            )
        if self.reset not in resets():
            raise ValueError(f"--snn-reset {self.reset}: unknown; one of {', '.join(resets())}")
        if self.evaluator not in EVALUATORS:
            raise ValueError(
                f"--snn-evaluator {self.evaluator}: unknown; one of {', '.join(EVALUATORS)}"
            )
        if self.protocol == "sleep" and (self.reset != "zero" or self.percentile is not None):
            raise ValueError(
                "--snn-reset and --snn-percentile change the conversion: they apply to "
                "--snn-protocol diehl2015(_textbook), not to the sleep's own parameters (sleep)"
            )
        if self.percentile is not None and not (
            isinstance(self.percentile, int | float) and 0 < self.percentile <= 100
        ):
            raise ValueError(
                f"--snn-percentile {self.percentile}: give a percentile in (0, 100], e.g. 99.9"
            )
        if self.evaluator == "device" and self.reset != "zero":
            raise ValueError(
                "--snn-reset subtraction runs on the batched evaluator only (the Brian2 "
                "network uses the model's own reset); leave out --snn-evaluator device"
            )
        if model is None:
            return
        from .engine import check_plasticity_off

        check_plasticity_off(model)  # a network that learns while evaluated is not the ANN's
        entry = known[self.protocol]
        if entry is not None:
            missing = sorted(set(entry["parameters"]) - set(model.parameters))
            if missing:
                raise ValueError(
                    f"--snn-protocol {self.protocol} sets {missing}, which model {model.name} "
                    "does not declare; use --snn-protocol sleep or a model of the src family"
                )
        if self.evaluator == "batched":
            from .batched import check_batched_model

            check_batched_model(model)
        elif not model.neuron.get("rest"):
            raise ValueError(
                f"model {model.name} has no NEURON['rest'] (the statements that bring a "
                "neuron to rest between images); SNN evaluation on the device needs it"
            )

    def to_dict(self) -> dict:
        """JSON-able record."""
        return {
            "protocol": self.protocol,
            "reset": self.reset,
            "percentile": self.percentile,
            "evaluator": self.evaluator,
        }


def conversion_params(
    settings: SNNSettings,
    model,
    weights,
    x_norm: np.ndarray,
    hidden_scale: float,
    sleep_params: SleepParams | None = None,
) -> tuple[SleepParams, dict]:
    """The parameters the converted network of ``weights`` runs with, plasticity off.

    Parameters
    ----------
    settings : SNNSettings
    model : SleepModel
    weights : list of ndarray, each (n_out, n_in)
    x_norm : ndarray (n, n_in)
        Images the data-based normalisation runs on (the network's training images).
    hidden_scale : float
        Test-time factor of hidden activations (the network's dropout convention).
    sleep_params : SleepParams, optional
        The sleep's parameters (needed by protocol ``sleep``).

    Returns
    -------
    params : SleepParams
        With every declared ``inference`` value applied (plasticity off).
    record : dict
        The normalisation (scales, alphas) for the results, empty for ``sleep``.

    Raises
    ------
    ValueError
        Protocol ``sleep`` without ``sleep_params``; a normalisation that fails.
    """
    from brainsleep.normalize import normalization_alphas

    from .inference import inference_params
    from .params import params_from_set

    entry = protocols()[settings.protocol]
    if entry is None:
        if sleep_params is None:
            raise ValueError("--snn-protocol sleep needs the sleep's parameters")
        return inference_params(sleep_params, model), {}
    norm = normalization_alphas(
        weights,
        x_norm,
        hidden_scale=hidden_scale,
        alpha_scale=1.0,
        quirk=entry["quirk"],
        percentile=settings.percentile,
    )
    p = {**entry["parameters"], "alpha_scale": entry["alpha_scale"]}
    return inference_params(params_from_set(p, norm.alphas, model), model), norm.to_dict()
