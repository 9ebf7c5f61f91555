"""Where brainsleep keeps its caches: one resolver for data, compiled builds, trained
baselines and cuRAND links.

Imports nothing heavy, so command-line tools that only need a path start fast.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The user cache of brainsleep (not created).

    ``$BRAINSLEEP_CACHE`` if set, else ``$XDG_CACHE_HOME/brainsleep``, else
    ``~/.cache/brainsleep``.
    """
    env = os.environ.get("BRAINSLEEP_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "brainsleep"


def default_build_root() -> Path:
    """Where compiled standalone projects are cached (not created).

    ``$BRAINSLEEP_BUILD_DIR`` if set, else ``<cache_root()>/builds``.
    """
    env = os.environ.get("BRAINSLEEP_BUILD_DIR")
    return Path(env).expanduser() if env else cache_root() / "builds"


#: Values of ``$BRAINSLEEP_BASELINE_CACHE`` that turn the baseline cache off.
BASELINE_CACHE_OFF = frozenset({"off", "0", "no", "false"})


def baseline_cache_root() -> Path | None:
    """Where trained baselines are cached (not created), or None when the cache is off.

    ``$BRAINSLEEP_BASELINE_CACHE`` if set (``off`` disables the cache), else
    ``<cache_root()>/baselines``.
    """
    env = os.environ.get("BRAINSLEEP_BASELINE_CACHE", "").strip()
    if env.lower() in BASELINE_CACHE_OFF:
        return None
    return Path(env).expanduser() if env else cache_root() / "baselines"
