"""Fixtures shared by the test modules."""

from __future__ import annotations

import os

import pytest

from .tiny_data import make_tiny_mnist


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny MNIST-shaped IDX data set (``--data-dir``), one per test module."""
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


@pytest.fixture(scope="module")
def build_root(tmp_path_factory):
    """A build cache of the test module's own: each structure compiles once per module,
    and a module's tests see only the builds it made."""
    return tmp_path_factory.mktemp("builds")


# Tests train their baselines themselves unless a test turns the shared cache on
# (tests/test_baseline_cache.py): a developer's cache never feeds a test, and no test
# depends on another having trained first. Subprocesses inherit this.
os.environ["BRAINSLEEP_BASELINE_CACHE"] = "off"
