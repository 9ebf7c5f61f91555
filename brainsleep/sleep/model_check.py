"""The two checks a model file passes before anything is trained or compiled.

1. :func:`check_names`, static: every name in every string of the model is declared (its
   block's equations, ``CONSTANTS``, an engine-provided name, or a Brian2 function,
   constant or unit); an error names the name, the block and key, and the file's line.
2. :func:`trial_run`: the model is built and run on a tiny network (sizes 4-3-2, 3 steps)
   on Brian2's runtime device with the numpy target; any error becomes one line.

:func:`brainsleep.sleep.model.load_model` runs both once per file content.
"""

from __future__ import annotations

import re
import warnings

from .model import (
    CODE_KEYS,
    GROUP_NAMES,
    INPUT_NAMES,
    REQUIRED_KEYS,
    SYNAPSE_NAMES,
    TRIAL_SIZES,
    TRIAL_STEPS,
    SleepModel,
)
from .model_source import _equations, _one_line, _source_line, _where

# ------------------------------------------------------------------ the static check


def _builtins() -> frozenset[str]:
    """Brian2's default functions, constants and units: resolvable in every string."""
    from brian2.core.namespace import DEFAULT_CONSTANTS, DEFAULT_FUNCTIONS, DEFAULT_UNITS

    return frozenset(DEFAULT_FUNCTIONS) | frozenset(DEFAULT_CONSTANTS) | frozenset(DEFAULT_UNITS)


def _statements(code: str) -> list[tuple[int, str]]:
    """(line offset in ``code``, statement) pairs, split at newlines and ``;`` as Brian2
    splits abstract code; comments and empty statements dropped."""
    out = []
    for k, line in enumerate(code.split("\n")):
        for part in line.split(";"):
            part = part.split("#", 1)[0].strip()
            if part:
                out.append((k, part))
    return out


def check_names(model: SleepModel, text: str | None = None) -> None:
    """Static check: every name a model's strings use is declared somewhere.

    Allowed in a block's strings: the block's own equation variables, ``CONSTANTS``
    keys, Brian2's default functions, constants and units, and what the engine provides
    (every group: ``t, dt, t_in_timesteps, i, N, lastspike``; the input
    group: ``x``; synapses: ``j``, ``N_incoming``, ..., the postsynaptic (NEURON)
    variables plain or with ``_post``, and with ``_pre`` the variables that both the
    input group and a hidden layer have, since layer 1's presynaptic group is the input).
    Statements may define temporaries (``name = expr``) used by later lines.

    Parameters
    ----------
    model : SleepModel
        The loaded model.
    text : str, optional
        The model file's source (read from ``model.path`` when not given), to report
        line numbers.

    Raises
    ------
    ValueError
        One line naming the unknown name, the block and key, and the line of the file.
    """
    from brian2.parsing.statements import parse_statement
    from brian2.utils.stringtools import get_identifiers

    if text is None:
        text = model.path.read_text(errors="replace")
    path = model.path
    eqs = {b: _equations(path, text, b, model.block(b)["equations"]) for b in REQUIRED_KEYS}
    input_vars = set(eqs["INPUT"].names) | GROUP_NAMES | INPUT_NAMES
    neuron_vars = set(eqs["NEURON"].names) | GROUP_NAMES
    pre_vars = input_vars & neuron_vars
    synapse_vars = (
        set(eqs["SYNAPSE"].names)
        | SYNAPSE_NAMES
        | neuron_vars
        | {f"{n}_post" for n in neuron_vars}
        | {f"{n}_pre" for n in pre_vars}
    )
    common = set(model.constants) | _builtins()
    variables = {"INPUT": input_vars, "NEURON": neuron_vars, "SYNAPSE": synapse_vars}

    def unknown(block: str, key: str, value: str, name: str, offset: int | None) -> ValueError:
        line = _source_line(text, block, key, value, offset, name)
        hint = (
            f'not declared in {block}["equations"] or CONSTANTS, not an engine name such as '
            "x, t, dt, i, N, lastspike or v_post, nor a Brian2 function or constant"
        )
        base = name[: -len("_pre")] if name.endswith("_pre") else None
        if block == "SYNAPSE" and base in neuron_vars:
            hint = f"layer 1's presynaptic group is the input layer, and INPUT declares no {base!r}"
        elif block == "SYNAPSE" and base in input_vars:
            hint = f"the hidden layers (NEURON) declare no {base!r}: it fails after layer 1"
        return ValueError(f"{_where(path, line, block, key)} uses unknown name {name!r} ({hint})")

    for block in REQUIRED_KEYS:
        known = variables[block] | common
        value = model.block(block)["equations"]
        for eq in eqs[block].values():
            if eq.expr is None:
                continue
            names = set(eq.expr.identifiers) - set(eqs[block].stochastic_variables)
            for name in sorted(names - known):
                raise unknown(block, "equations", value, name, None)
        for key, kind in CODE_KEYS[block].items():
            code = model.block(block).get(key)
            if not code:
                continue
            if kind == "expression":
                expr = " ".join(part for _, part in _statements(code))
                for name in sorted(get_identifiers(expr) - known):
                    raise unknown(block, key, code, name, None)
                continue
            temporaries: set[str] = set()
            for offset, statement in _statements(code):
                try:
                    var, op, expr, _ = parse_statement(statement)
                except ValueError as exc:
                    line = _source_line(text, block, key, code, offset)
                    raise ValueError(
                        f"{_where(path, line, block, key)}: cannot read the statement "
                        f"{statement!r} ({_one_line(exc)})"
                    ) from None
                for name in sorted(get_identifiers(expr) - known - temporaries):
                    raise unknown(block, key, code, name, offset)
                if var not in known and var not in temporaries:
                    if op != "=":
                        raise unknown(block, key, code, var, offset)
                    temporaries.add(var)


# ------------------------------------------------------------------- the trial run

# Brian2 object names of the sleep network (brainsleep/sleep/network.py) -> block, key.
_OBJECT_KEYS = (
    (r"layer0_\w*thresholder\w*", 'INPUT["threshold"]'),
    (r"layer0_\w*resetter\w*", 'INPUT["reset"]'),
    (r"layer0\w*", 'INPUT["equations"]'),
    (r"layer\d+_\w*thresholder\w*", 'NEURON["threshold"]'),
    (r"layer\d+_\w*resetter\w*", 'NEURON["reset"]'),
    (r"decay\d+\w*", 'NEURON["decay_step"]'),
    (r"layer\d+\w*", 'NEURON["equations"]'),
    (r"syn\d+_pre\w*", 'SYNAPSE["on_pre"]'),
    (r"syn\d+_post\w*", 'SYNAPSE["on_post"]'),
    (r"syn\d+\w*", 'SYNAPSE["equations"]'),
)


def _summary(exc: BaseException) -> str:
    """One line for an exception out of Brian2: the innermost message, and the block and
    key of the Brian2 object it came from."""
    obj, inner, seen = None, exc, set()
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        obj = getattr(inner, "_brian_objname", None) or obj
        nxt = inner.__cause__ or inner.__context__
        if nxt is None:
            break
        inner = nxt
    where = ""
    if obj:
        label = next((k for pat, k in _OBJECT_KEYS if re.fullmatch(pat, obj)), None)
        where = f" in {label} (Brian2 object {obj!r})" if label else f" in Brian2 object {obj!r}"
    return f"{type(inner).__name__}{where}: {_one_line(inner)}"


def trial_run(model: SleepModel, values: dict | None = None, weights: list | None = None) -> list:
    """Build and run the model on a tiny network on the runtime device (numpy target).

    ``values`` replace the declared defaults (e.g. the ``inference`` values) and
    ``weights`` (shaped by :data:`TRIAL_SIZES`) the random ones; returns
    the weights before the run and after each of its two runs (masked-mean image, input
    array). Brian2's device, preferences and numpy's global random state are restored
    after the run, and Brian2's log output is held back, so the check leaves no trace.
    """
    import gc

    import brian2 as b2
    import numpy as np
    from brian2.devices.device import previous_devices, reset_device
    from brian2.utils.logger import catch_logs

    from . import run_sleep
    from .inputs import MaskedMeanImage
    from .params import SleepParams

    rng = np.random.default_rng(0)
    sizes = TRIAL_SIZES
    if weights is None:
        weights = [
            rng.uniform(0.2, 1.0, (n_out, n_in))
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        ]
    n_layers = len(weights)
    # The declared defaults (a per-layer tuple's first value for every layer), a 1 s step
    # and large layer scales: lit pixels fire at any sensible rate, so every layer fires
    # too and every string (threshold, reset, on_pre, on_post, decay) runs on real events.
    values = {
        **{
            name: p.default[0] if isinstance(p.default, tuple) else p.default
            for name, p in model.parameters.items()
        },
        **(values or {}),
    }
    params = SleepParams(values, alphas=[1000.0] * n_layers, dt=1.0)
    after = []
    side = int(round(sizes[0] ** 0.5))
    trials = [
        ("masked mean image", MaskedMeanImage(np.full((side, side), 0.5), TRIAL_STEPS, side)),
        ("input array", np.full((TRIAL_STEPS, sizes[0]), 0.5)),
    ]
    saved_prefs = dict(b2.prefs)
    # run_sleep's runtime path calls brian2.seed, which reseeds numpy's global RNG.
    saved_rng = np.random.get_state()  # noqa: NPY002
    n_devices = len(previous_devices)  # set_device pushes, reset_device pops
    failure = None
    with catch_logs(), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            for label, inputs in trials:
                try:
                    res = run_sleep(
                        weights,
                        inputs,
                        params,
                        device="runtime",
                        seed=0,
                        model=model,
                        record_layers="none",
                        prefs={"codegen.target": "numpy"},
                    )
                    after.append(res.weights)
                except Exception as exc:  # any error of a user's model: one line
                    failure = (label, _summary(exc))
                    break
        finally:
            while len(previous_devices) > n_devices:
                reset_device()
            for k, v in saved_prefs.items():
                if b2.prefs[k] is not v:
                    b2.prefs[k] = v
            np.random.set_state(saved_rng)  # noqa: NPY002
            gc.collect()  # Brian2 objects of a failed build warn when collected: now, muted
    if failure is not None:
        label, summary = failure
        raise ValueError(
            f"model file {model.path} fails a {TRIAL_STEPS}-step trial run "
            f"({'-'.join(map(str, sizes))} network, {label}) on Brian2's runtime device: "
            f"{summary}"
        )
    return [weights, *after]


def check_plasticity_off(model: SleepModel) -> None:
    """Refuse a model whose ``inference`` declarations do not switch its plasticity off.

    SNN evaluation runs the model's own equations with every declared ``inference``
    value applied (``models/src.py``: ``inc = dec = 0``); the trial network (see
    :func:`trial_run`) is run with them, and any weight it changes means the spiking
    network would learn while it is being evaluated. Its weights are a probe: each
    neuron's first input at 1 (every neuron fires on the first steps) and the others at
    0, where a weight-dependent rule moves most (src's g(0) = 1; its g(w) is exactly 0
    for the trial's usual weights of 0.2-1). Checked when the model is loaded, before
    anything is trained; a rule this probe cannot move is caught after the run (the
    device evaluator compares the weights).

    Raises
    ------
    ValueError
        One line naming the model file, the layers whose weights changed and what to
        declare.
    """
    import numpy as np

    values = {n: p.inference for n, p in model.parameters.items() if p.inference is not None}
    probe = []
    for n_in, n_out in zip(TRIAL_SIZES[:-1], TRIAL_SIZES[1:], strict=True):
        w = np.zeros((n_out, n_in))
        w[:, 0] = 1.0
        probe.append(w)
    before, *after = trial_run(model, values, probe)

    changed = sorted(
        {k + 1 for run in after for k, (a, b) in enumerate(zip(before, run, strict=True))
         if not np.array_equal(a, b)}
    )  # fmt: skip
    if changed:
        declared = ", ".join(f"{n} = {v}" for n, v in values.items()) or "none"
        raise ValueError(
            f"model file {model.path}: its inference values ({declared}) leave plasticity "
            f"on (weights of layer(s) {', '.join(map(str, changed))} change in a trial "
            "run); SNN evaluation needs them off: declare inference=... on the learning "
            "rates' Parameter(...) (models/src.py: inc and dec, inference=0.0)"
        )
