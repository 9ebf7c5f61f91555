"""Checkpoints: one file per trained MLP, with its recipe, seed and metadata.

:func:`save_checkpoint` writes the network's configuration and weights, the recipe, the
seed and a small JSON-like ``meta`` dict through :mod:`brainsleep.atomic` (readers never
see a partial file); :func:`load_checkpoint` reads it back with
``torch.load(weights_only=True)`` and turns every kind of damage into a one-line
:class:`ValueError`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from brainsleep.atomic import atomic_write_bytes

from .network import MLP
from .recipes import Recipe

_FILE_FORMAT = "brainsleep.mlp"
_FILE_VERSION = 1


def _check_plain(obj: Any, where: str) -> None:
    """Reject values that ``torch.load(weights_only=True)`` or JSON could not hold."""
    # Exact types: numpy scalars subclass float and torch's version string subclasses
    # str, and neither may be unpickled with weights_only=True.
    if obj is None or type(obj) in (bool, int, float, str):
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    if type(obj) is dict:
        for k, v in obj.items():
            if type(k) is not str:
                raise ValueError(f"save_checkpoint: {where} has a non-string key {k!r}")
            _check_plain(v, f"{where}.{k}")
        return
    raise ValueError(f"save_checkpoint: {where} has unsupported type {type(obj).__name__}")


def save_checkpoint(
    path: str | os.PathLike,
    model: MLP,
    recipe: Recipe | None,
    seed: int | None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write model, recipe, seed and ``meta`` to one checkpoint file, atomically.

    Parameters
    ----------
    path
        The file to write; its directory is created when missing.
    model
        The network (its configuration and weights are stored).
    recipe
        How it was trained, or None.
    seed
        The training seed, or None.
    meta
        Only None, bool, int, float, str, lists and str-keyed dicts (e.g. a summary of
        the training subset).

    Returns
    -------
    pathlib.Path
        ``path``. The file is written by :func:`brainsleep.atomic.atomic_write_bytes`
        (temporary name in the same directory, then renamed), so readers never see a
        partial file.

    Raises
    ------
    ValueError
        ``meta`` holds a value that is not plain data.
    OSError
        The file cannot be written (naming ``path``).
    """
    meta = {} if meta is None else meta
    _check_plain(meta, "meta")
    payload = {
        "format": _FILE_FORMAT,
        "version": _FILE_VERSION,
        "model": model.config(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "recipe": None if recipe is None else recipe.to_dict(),
        "seed": None if seed is None else int(seed),
        "meta": meta,
        "torch_version": str(torch.__version__),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike) -> tuple[MLP, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    model
        The :class:`MLP` in eval mode.
    info
        ``{"recipe": Recipe | None, "seed", "meta", "torch_version", "config"}``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is corrupt, truncated or not a brainsleep MLP checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_checkpoint: no such file: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged archives
        raise ValueError(
            f"load_checkpoint: {path} is corrupt or not a checkpoint ({type(exc).__name__})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != _FILE_FORMAT:
        raise ValueError(f"load_checkpoint: {path} is not a brainsleep MLP checkpoint")
    try:
        model = MLP(**payload["model"])
        model.load_state_dict(payload["state_dict"])
        recipe = None if payload["recipe"] is None else Recipe.from_dict(payload["recipe"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(
            f"load_checkpoint: {path} has inconsistent content ({exc})".splitlines()[0]
        ) from exc
    model.eval()
    info = {
        "recipe": recipe,
        "seed": payload.get("seed"),
        "meta": payload.get("meta", {}),
        "torch_version": payload.get("torch_version"),
        "config": payload["model"],
    }
    return model, info
