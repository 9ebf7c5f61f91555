"""Names the command line offers whose definitions live in modules that import torch.

``python -m brainsleep.experiment --help`` lists them without importing torch; the
defining module checks at import that its names are exactly these, so the two cannot
drift apart. Imports nothing.
"""

from __future__ import annotations

__all__ = ["MAX_SEED", "RECIPE_NAMES", "REMEDY_NAMES", "TRAIN_DEVICES", "unknown_name"]

#: The training recipes, in the order of :data:`brainsleep.ann.recipes.RECIPES` (which
#: refuses to import if its keys differ).
RECIPE_NAMES: tuple[str, ...] = ("reference", "strong", "diehl2015")

#: The training remedies for little or imbalanced data (``--remedy``), in the order of
#: :data:`brainsleep.ann.remedies.REMEDIES` (which refuses to import if its keys differ).
REMEDY_NAMES: tuple[str, ...] = ("augment", "mixup", "class-weighted", "oversample", "logit-adjust")

#: Where the ANN trains (``--train-device``): auto (the GPU where torch sees one, else
#: the CPU), cpu, cuda; resolved by :func:`brainsleep.ann.training.resolve_train_device`.
TRAIN_DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

#: Largest seed the engine takes: Brian2's compiled devices keep it in an int32 variable.
#: Seeds are integers in ``0 .. MAX_SEED`` everywhere (command line, subsets, sleep); here,
#: not in the engine, so that drawing a subset imports nothing of it.
MAX_SEED: int = 2**31 - 1


def unknown_name(kind: str, name: object, known) -> str:
    """The one wording of a name that no registry holds: ``unknown <kind> '<name>'; known:
    a, b, c`` (every registry of devices, inputs, presets, recipes, remedies, data sets).

    Parameters
    ----------
    kind : str
        What the name should have named ("device", "sleep input", ...).
    name : object
        The name given (shown with ``repr``).
    known : iterable of str
        The names the registry holds, in the order to list them.

    Returns
    -------
    str
        The message (the caller raises its own error type with it).
    """
    return f"unknown {kind} {name!r}; known: {', '.join(known)}"
