"""Parameter descriptions shared by many public docstrings, declared once and filled in.

Why this module: a spike Dataset, a layer index or a figure title is a parameter of twenty
public functions, and twenty hand copies of its description drift apart. As MNE-Python does
with its ``docdict`` and ``fill_doc``, each description lives here once and a decorator puts
it into the docstrings that name it: a docstring line holding only ``%(name)s`` becomes the
entry ``name``, indented like that line. Only whole-line placeholders are filled, so ``%``
elsewhere in a docstring needs no escaping.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

__all__ = ["DOCS", "fill_doc"]

#: Shared numpydoc parameter entries, by placeholder name (first line: ``name : type``).
DOCS: dict[str, str] = {
    "ds": (
        "ds : xarray.Dataset\n"
        "    Spike Dataset, one row per spike (``step``, ``layer``, ``neuron``; attributes\n"
        "    ``dt`` in seconds, ``n_steps``, ``layer_sizes``, ``recorded_layers``), as\n"
        "    :func:`brainsleep.formats.make_spike_dataset` builds it."
    ),
    "layer": "layer : int\n    Layer index (0 = input, 1..L = the weight layers' outputs).",
    "layers_shown": (
        "layers : sequence of int, optional\n"
        "    Layers to show (default all); unrecorded ones are named in the title, not drawn."
    ),
    "x_unit": 'x_unit : {"s", "ms", "step"}\n    x axis unit.',
    "title": "title : str, optional\n    Figure title.",
    "weights_before_after": (
        "before, after : mapping of str to numpy.ndarray\n"
        "    Weight sets by layer key (``layer1``, ``layer2``, ..), the same shapes."
    ),
    "conf": (
        "conf : xarray.DataArray\n"
        "    Test-set counts with dims ``(stage, true, predicted)``, from ``confusion.nc``."
    ),
    "stages_shown": (
        "stages : sequence of str, optional\n"
        "    Stages to show, in this order; those absent are skipped (default: every stage\n"
        "    present, in :data:`brainsleep.formats.STAGES` order)."
    ),
    "run_cell": "cell : str\n    A cell id of :attr:`cells`.",
    "report_command_log": (
        "command : str, optional\n"
        "    The command line stated in the report.\n"
        "log : callable\n"
        "    Receives one line per file written."
    ),
    "report_raises": (
        "analysis.results.ResultsError\n    A directory is unusable (nothing is written then)."
    ),
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)%\((?P<name>\w+)\)s[ \t]*$", re.MULTILINE)
_F = TypeVar("_F", bound=Callable)


def fill_doc(obj: _F) -> _F:
    """Replace each whole-line ``%(name)s`` in ``obj.__doc__`` by :data:`DOCS` ``[name]``.

    Parameters
    ----------
    obj : function or class
        Its docstring is rewritten in place; every line of an entry gets the indentation
        of the placeholder line.

    Returns
    -------
    function or class
        ``obj`` itself (usable as a decorator).

    Raises
    ------
    KeyError
        A placeholder names no entry of :data:`DOCS`; the message names it and the module.
    """
    doc = obj.__doc__
    if not doc:
        return obj

    def entry(match: re.Match[str]) -> str:
        name, indent = match["name"], match["indent"]
        if name not in DOCS:
            raise KeyError(
                f"docstring placeholder %({name})s of {obj.__module__}.{obj.__qualname__} "
                f"names no entry of brainsleep.docstrings.DOCS; add it there"
            )
        return "\n".join(indent + line for line in DOCS[name].splitlines())

    obj.__doc__ = _PLACEHOLDER.sub(entry, doc)
    return obj
