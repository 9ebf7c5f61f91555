"""The fields of a run's configuration (``config.json``'s ``config``) by their role.

Which fields are grid axes (a directory grows by them, directories merge across them),
which change no result (left out of the fingerprint), and how two configurations differ
in words. Imports neither xarray nor pandas: ``--help`` and one-line refusals stay light.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = ["GRID_FIELDS", "NON_SEMANTIC", "config_differences"]

#: Fields of ``config.json``'s ``config`` that change no result: left out of the
#: fingerprint that guards a results directory.
NON_SEMANTIC = ("out", "progress", "data_dir", "build_root", "workers", "scheduler")
#: The grid axes: a cell's id carries its dataset, fraction, imbalance and seed, so runs
#: that differ only in these share a results directory, which grows (config.json keeps
#: the union), and directories that differ only in these merge in the analysis.
GRID_FIELDS = ("datasets", "fractions", "seeds", "imbalance")


def config_differences(old: Mapping | None, new: Mapping | None) -> str:
    """What differs between two ``config.json`` configurations (their ``config``), as
    ``name: old -> new; ...`` with the grid axes and the fields that change no result
    left out; a sentence naming what else can differ when no argument does."""
    from brainsleep.atomic import json_default

    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return "a config.json records no comparable configuration"
    skip = set(GRID_FIELDS) | set(NON_SEMANTIC)
    # Compare in the stored (JSON) form: a tuple field reads back as a list.
    old, new = (json.loads(json.dumps(dict(c), default=json_default)) for c in (old, new))
    diffs = [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if k not in skip and old.get(k) != new.get(k)
    ]
    if diffs:
        return "; ".join(diffs)
    return (
        "same arguments, but another engine version, other model or input-kind equations, "
        "or other data file contents"
    )
