"""One cache resolver: data, compiled builds and cuRAND links agree on the root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from brainsleep import data, paths
from brainsleep.sleep import cuda_setup

REPO = Path(__file__).resolve().parents[1]


def test_every_cache_follows_one_root(monkeypatch, tmp_path):
    for env, expected in [
        ({"BRAINSLEEP_CACHE": tmp_path / "bc", "XDG_CACHE_HOME": tmp_path / "x"}, tmp_path / "bc"),
        ({"XDG_CACHE_HOME": tmp_path / "x"}, tmp_path / "x" / "brainsleep"),
        ({}, Path.home() / ".cache" / "brainsleep"),
    ]:
        for name in ("BRAINSLEEP_CACHE", "XDG_CACHE_HOME", "BRAINSLEEP_BUILD_DIR"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        assert paths.cache_root() == expected
        assert data.default_cache_dir() == expected
        assert paths.default_build_root() == expected / "builds"
        assert cuda_setup._default_cache_dir() == expected / "curand"
    monkeypatch.setenv("BRAINSLEEP_BUILD_DIR", str(tmp_path / "b"))
    assert paths.default_build_root() == tmp_path / "b"


def test_cache_cli_imports_nothing_heavy():
    code = (
        "import sys, brainsleep.cache, brainsleep.paths; brainsleep.paths.default_build_root(); "
        "print(sorted(m for m in ('numpy', 'xarray', 'brian2', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
