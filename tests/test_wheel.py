"""Installed, brainsleep is one namespace (issue 15) whose commands work anywhere (issue 33).

The wheel is built from a copy of the sources and installed into a fresh virtualenv
outside the repository. Offline and quick: no build isolation, no dependencies
downloaded; the new environment sees the project environment's packages through a
``.pth`` file (a path line only: the project's editable-install hooks are not run there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What a wheel is built from (pyproject.toml maps models/ and analysis/ into brainsleep).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "brainsleep", "models", "analysis")

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with only the brainsleep wheel installed; returns its python."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"  # a copy: building in the checkout would leave build/ behind
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif path.is_file():
            shutil.copy2(path, src / name)
    dist = root / "dist"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
        + ["--wheel-dir", str(dist), str(src)],
        cwd=root,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("brainsleep-*.whl")

    env_dir = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=root)
    assert made.returncode == 0, made.stderr
    python = env_dir / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=root,
        ).stdout.strip()
    )
    # The dependencies (torch, Brian2, ...) of the project environment, nothing downloaded.
    (site / "_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        + ["--no-deps", "--no-index", str(wheel)],
        cwd=root,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return python


@pytest.fixture
def outside(tmp_path) -> Path:
    """A working directory outside the repository, with a user's own ``models/``."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("MINE = True\n")
    return tmp_path


def test_only_the_brainsleep_namespace_is_installed(venv, tmp_path):
    code = textwrap.dedent(
        """
        import importlib, importlib.resources, sys
        import brainsleep, brainsleep.models, brainsleep.analysis
        print(brainsleep.__file__)
        print(brainsleep.models.__file__)
        print(brainsleep.analysis.__file__)
        print((importlib.resources.files("brainsleep.models") / "src.py").is_file())
        for name in ("models", "analysis"):
            try:
                importlib.import_module(name)
            except ModuleNotFoundError:
                print(name, "missing")
            else:
                print(name, "importable")
        """
    )
    proc = _run([str(venv), "-c", code], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.splitlines()
    prefix = str(venv.parents[1])
    for path in out[:3]:  # the wheel's copy, not the checkout
        assert path.startswith(prefix), (path, prefix)
        assert not path.startswith(str(REPO)), path
    assert out[1].endswith(os.path.join("brainsleep", "models", "__init__.py"))
    assert out[2].endswith(os.path.join("brainsleep", "analysis", "__init__.py"))
    assert out[3] == "True", "models/src.py is not in the wheel"
    assert out[4:] == ["models missing", "analysis missing"]


def test_a_users_models_folder_does_not_shadow_the_packaged_models(venv, outside):
    code = "import brainsleep.models, models; print(brainsleep.models.__file__, models.MINE)"
    proc = _run([str(venv), "-c", code], cwd=outside)
    assert proc.returncode == 0, proc.stderr[-3000:]
    packaged, mine = proc.stdout.split()
    assert packaged.startswith(str(venv.parents[1])) and mine == "True"


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "brainsleep.experiment", "--help"],
        ["-m", "brainsleep.analysis", "--help"],
        ["-m", "brainsleep.cache", "--help"],
    ],
    ids=["experiment", "analysis", "cache"],
)
def test_entry_points_run_installed(venv, outside, command):
    proc = _run([str(venv), *command], cwd=outside)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"usage: python -m {command[1]} "), proc.stdout[:300]


def test_console_script_runs_installed(venv, outside):
    proc = _run([str(venv.parent / "brainsleep"), "--help"], cwd=outside)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--sleep-preset" in proc.stdout


@pytest.fixture(scope="module")
def tiny_run(data_dir, build_root, tmp_path_factory) -> Path:
    """A real results directory, made in-process: one cell, the reference device."""
    from brainsleep.experiment.__main__ import main

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    argv = [
        "--data-dir", str(data_dir), "--fractions", "0.5", "--hidden", "24", "16",
        "--epochs", "3", "--finetune-epochs", "1", "--sleep-steps", "40",
        "--sleep-preset", "mnist_class_incremental", "--record-spikes", "hidden",
        "--device", "reference", "--seeds", "0", "--build-root", str(build_root),
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    return out


@pytest.mark.parametrize("how", ["console-script", "module"])
def test_installed_analysis_draws_a_tiny_run_from_outside(venv, outside, tiny_run, tmp_path, how):
    """``brainsleep-analysis DIR`` and ``python -m brainsleep.analysis DIR`` from a directory
    outside the repository, with only the wheel installed: figures and summary written."""
    if how == "console-script":
        command = [str(venv.parent / "brainsleep-analysis")]
    else:
        command = [str(venv), "-m", "brainsleep.analysis"]
    figures = tmp_path / "figures"
    proc = _run([*command, str(tiny_run), "--out", str(figures), "-q"], cwd=outside)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 failed" in proc.stdout
    assert "baseline" in (figures / "summary.md").read_text()
    for name in ("accuracy_vs_fraction.png", "sleep_gain_vs_fraction.png"):
        assert (figures / name).stat().st_size > 8000, name
    assert list((figures / "cells").rglob("raster.png")), "no raster from the spikes"


def test_console_script_usage_names_itself(venv, outside):
    from brainsleep.cli import ANALYSIS_SCRIPT

    proc = _run([str(venv.parent / ANALYSIS_SCRIPT), "report", "--help"], cwd=outside)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"usage: {ANALYSIS_SCRIPT} report "), proc.stdout[:300]


def test_the_wheel_carries_the_license(venv, outside):
    code = (
        "import importlib.metadata as m; d = m.distribution('brainsleep'); "
        "print(d.metadata['License-Expression']); "
        "print(any(f.name == 'LICENSE' and 'MIT License' in f.read_text() for f in d.files))"
    )
    proc = _run([str(venv), "-c", code], cwd=outside)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["MIT", "True"]
