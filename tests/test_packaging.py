"""pyproject.toml and environment.yml declare the same stack (issue 34): a conda user gets
the pins a pip user gets on Python 3.11, and each supported Python has one stack."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
# pip installs these with `-e .` (environment.yml says so in its header)
NOT_IN_CONDA_FILE = {"filelock", "optuna", "dask"}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _stack(python: str) -> dict[str, SpecifierSet]:
    """Name -> specifier of every dependency pyproject.toml installs on `python`."""
    env = {"python_version": python, "python_full_version": f"{python}.0"}
    stack: dict[str, SpecifierSet] = {}
    for line in _pyproject()["project"]["dependencies"]:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            assert req.name.lower() not in stack, f"{req.name} declared twice for {python}"
            stack[req.name.lower()] = req.specifier
    return stack


def _conda_file() -> dict[str, SpecifierSet]:
    doc = yaml.safe_load((REPO / "environment.yml").read_text())
    found: dict[str, SpecifierSet] = {}
    for dep in doc["dependencies"]:
        for line in dep["pip"] if isinstance(dep, dict) else [dep]:
            if line.startswith("-e"):
                continue
            # conda's "python=3.11" is pip's "python==3.11"
            req = Requirement(re.sub(r"^([\w.-]+)=(?=[\d])", r"\1==", line))
            found[req.name.lower()] = req.specifier
    return found


def test_conda_file_pins_the_python_311_stack():
    conda, stack = _conda_file(), _stack("3.11")
    assert conda.pop("python") == SpecifierSet("==3.11")
    for name, spec in stack.items():
        if name in NOT_IN_CONDA_FILE:
            continue
        assert name in conda, f"environment.yml lacks {name} (pyproject.toml: {spec})"
        assert conda[name] == spec, f"{name}: environment.yml {conda[name]}, pyproject {spec}"


@pytest.mark.parametrize(
    ("python", "brian2", "brian2cuda"),
    [
        ("3.11", "==2.8.0", "==1.0a7"),
        ("3.12", "==2.10.1", "==1.0b1"),
        ("3.13", "==2.10.1", "==1.0b1"),
    ],
)
def test_each_python_has_one_brian2_stack(python, brian2, brian2cuda):
    assert SpecifierSet(_pyproject()["project"]["requires-python"]).contains(python + ".0")
    stack = _stack(python)
    assert stack["brian2"] == SpecifierSet(brian2)
    assert stack["brian2cuda"] == SpecifierSet(brian2cuda)
    assert "numpy" in stack and "torch" in stack


def test_python_314_is_not_claimed():
    assert not SpecifierSet(_pyproject()["project"]["requires-python"]).contains("3.14.0")
