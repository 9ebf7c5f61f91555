"""The static check of a model file: :func:`check_names`, before anything is run.

Every name in every string of the model is declared (its block's equations,
``CONSTANTS``, an engine-provided name, or a Brian2 function, constant or unit); an error
names the name, the block and key, and the file's line. It runs nothing, so it sits
just above :mod:`~brainsleep.sleep.model`, below the loader that applies it and then the
trial run (:func:`brainsleep.sleep.engine.load_model`).
"""

from __future__ import annotations

from .model import CODE_KEYS, GROUP_NAMES, INPUT_NAMES, REQUIRED_KEYS, SYNAPSE_NAMES, SleepModel
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
