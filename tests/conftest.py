"""Fixtures shared by the test modules."""

from __future__ import annotations

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
