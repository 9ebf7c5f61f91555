"""The sparseness measures claim 4 is judged on, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from brainsleep.sparseness import population_sparseness, small_weight_fraction, weight_hoyer


def test_population_sparseness_by_hand():
    # r = (1, 2, 3): a = (2)^2 / (14/3) = 6/7; (1 - a) / (1 - 1/3) = (1/7) / (2/3) = 3/14
    assert population_sparseness([1, 2, 3]) == pytest.approx(3 / 14)
    assert population_sparseness([0, 0, 5]) == pytest.approx(1.0)
    assert population_sparseness([4, 4]) == pytest.approx(0.0)
    rows = population_sparseness(np.array([[1, 2, 3], [0, 0, 0]]), axis=1)
    assert rows[0] == pytest.approx(3 / 14) and np.isnan(rows[1])  # all silent: no shape


def test_small_weight_fraction_ignores_a_few_large_rows_that_move_hoyer():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(100, 50))
    before = small_weight_fraction([w])
    # by hand on a tiny layer: median |w| = 1, threshold 0.1: one of five is below it
    assert small_weight_fraction([np.array([0.05, 1.0, 1.0, 2.0, -3.0])]) == pytest.approx(0.2)
    depressed = w.copy()
    depressed[:3] = -50.0  # three heavily depressed rows, as after a sleep that hit a few
    assert abs(small_weight_fraction([depressed]) - before) < 0.01
    assert weight_hoyer([depressed]) - weight_hoyer([w]) > 0.1
    with pytest.raises(ValueError, match="relative"):
        small_weight_fraction([w], relative=0)
