"""Tests of brainsleep.subsets on synthetic labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brainsleep.subsets import (
    Subset,
    format_imbalance,
    imbalanced_subset,
    make_subset,
    parse_imbalance,
    select_subset,
    split_validation,
)


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """1000 shuffled labels, 100 per class (like a tiny MNIST)."""
    return np.random.default_rng(7).permutation(np.repeat(np.arange(10), 100)).astype(np.int64)


def counts(labels: np.ndarray, idx: np.ndarray) -> list[int]:
    return np.bincount(labels[idx], minlength=10).tolist()


# --------------------------------------------------------------------------- select_subset


@pytest.mark.parametrize(
    "fraction, expected",
    [
        (0.1, [10] * 10),
        (0.013, [2, 2, 2, 1, 1, 1, 1, 1, 1, 1]),  # 13: remainder to the lowest class ids
        (0.057, [6] * 7 + [5] * 3),
        (1.0, [100] * 10),
    ],
)
def test_stratified_counts_exact(labels, fraction, expected):
    idx = select_subset(labels, fraction)
    assert counts(labels, idx) == expected
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)  # sorted, no repeats


def test_stratified_takes_all_of_a_small_class_and_shares_the_rest():
    """Unequal classes (as MNIST's 5421..6742): fraction 1 is the whole set, not an
    error; a class short of its share gives all it has, the others split the rest."""
    uneven = np.repeat(np.arange(4), [10, 4, 7, 9]).astype(np.int64)
    assert counts(uneven, select_subset(uneven, 1.0))[:4] == [10, 4, 7, 9]
    # 24 of 30: equal share 6, class 1 has 4 -> the other three share 20: 7, 7, 6
    assert counts(uneven, select_subset(uneven, count=24))[:4] == [7, 4, 7, 6]
    # no class short: the plain equal split, as before
    assert counts(uneven, select_subset(uneven, count=16))[:4] == [4, 4, 4, 4]


def test_stratified_count_argument(labels):
    idx = select_subset(labels, count=23)
    assert counts(labels, idx) == [3, 3, 3] + [2] * 7
    with pytest.raises(ValueError, match="exactly one"):
        select_subset(labels, 0.1, count=10)
    with pytest.raises(ValueError, match="count must be"):
        select_subset(labels, count=0)


@pytest.mark.parametrize("mode", ["stratified", "random"])
def test_seed_reproducibility(labels, mode):
    a = select_subset(labels, 0.2, mode=mode, seed=3)
    b = select_subset(labels, 0.2, mode=mode, seed=3)
    c = select_subset(labels, 0.2, mode=mode, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.size == c.size == 200


def test_random_mode_size_and_range(labels):
    idx = select_subset(labels, 0.3, mode="random", seed=1)
    assert idx.size == 300 and np.unique(idx).size == 300
    assert idx.min() >= 0 and idx.max() < labels.size


def test_first_mode(labels):
    np.testing.assert_array_equal(select_subset(labels, 0.05, mode="first"), np.arange(50))
    np.testing.assert_array_equal(
        select_subset(labels, count=50, mode="first", seed=9), np.arange(50)
    )


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.0001, 2, float("nan")])
def test_fraction_out_of_range(labels, fraction):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\], got"):
        select_subset(labels, fraction)


def test_fraction_zero_message(labels):
    with pytest.raises(ValueError, match=r"^fraction must be in \(0, 1\], got 0$"):
        select_subset(labels, 0)


def test_too_small_names_classes(labels):
    with pytest.raises(ValueError, match=r"class\(es\) 7, 8, 9 would get none"):
        select_subset(labels, 0.007)
    sorted_labels = np.sort(labels)  # first 50 are all class 0
    with pytest.raises(ValueError, match=r"no example of class\(es\) 1, 2, 3, 4, 5, 6, 7, 8, 9"):
        select_subset(sorted_labels, 0.05, mode="first")
    with pytest.raises(ValueError, match=r"no example of class\(es\)"):
        select_subset(labels, count=2, mode="random")


def test_unknown_mode(labels):
    with pytest.raises(ValueError, match="unknown subset mode 'best'; known: stratified"):
        select_subset(labels, 0.1, mode="best")


def test_class_too_small_for_its_share():
    """It gives all it has (it used to be an error, which made fraction 1 of MNIST
    impossible); the other class makes up the budget."""
    labels = np.array([0] * 50 + [1] * 3)
    assert np.bincount(labels[select_subset(labels, count=10)]).tolist() == [7, 3]


# --------------------------------------------------------------------------- imbalance


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("5-9:0.1", {5: 0.1, 6: 0.1, 7: 0.1, 8: 0.1, 9: 0.1}),
        ("0:0.05,3:0.2", {0: 0.05, 3: 0.2}),
        ("5-9:0.1;1:0.5", {1: 0.5, 5: 0.1, 6: 0.1, 7: 0.1, 8: 0.1, 9: 0.1}),
        (" 2 : 3 , 4-4:0.25 ", {2: 3.0, 4: 0.25}),
        ("5-9x0.1_1x0.5", {1: 0.5, 5: 0.1, 6: 0.1, 7: 0.1, 8: 0.1, 9: 0.1}),
        ("none", {}),
        ("", {}),
        (None, {}),
    ],
)
def test_parse_imbalance_good(spec, expected):
    parsed = parse_imbalance(spec)
    assert parsed == {c: expected.get(c, 1.0) for c in range(10)}


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("5-9=0.1", "cannot read item"),
        ("5-9", "cannot read item"),
        ("a:0.1", "cannot read item"),
        ("5-9:0", "must be a positive number"),
        ("5-9:-1", "cannot read item|must be a positive number"),
        ("3:abc", "must be a positive number"),
        ("3:inf", "must be a positive number"),
        ("9-5:0.1", "empty class range"),
        ("8-10:0.1", r"class\(es\) 10 outside 0-9"),
        ("1:0.5,0-2:0.1", r"class\(es\) 1 named twice"),
        ("1:0.5,,2:0.1", "cannot read item"),
    ],
)
def test_parse_imbalance_bad(spec, problem):
    with pytest.raises(ValueError, match=problem) as info:
        parse_imbalance(spec)
    message = str(info.value)
    assert repr(spec) in message and 'e.g. "5-9:0.1"' in message


@pytest.mark.parametrize(
    "spec, canonical",
    [
        ("5-9:0.1", "5-9x0.1"),
        ("0:0.05,3:0.2", "0x0.05_3x0.2"),
        ("5-9:0.1;1:0.5", "1x0.5_5-9x0.1"),
        ("3:0.5,4:0.5,6:0.5", "3-4x0.5_6x0.5"),
        ("2:2.0", "2x2"),
        ("0:1e-05", "0x1e-05"),
        ("1:1.0", "none"),
        ("none", "none"),
    ],
)
def test_format_imbalance_canonical_and_round_trip(spec, canonical):
    parsed = parse_imbalance(spec)
    assert format_imbalance(parsed) == canonical
    assert format_imbalance(spec) == canonical
    assert parse_imbalance(canonical) == parsed
    assert format_imbalance(parse_imbalance(canonical)) == canonical
    assert all(ch.isalnum() or ch in "-._" for ch in canonical)  # safe as a directory name


def test_format_imbalance_round_trip_random_values():
    rng = np.random.default_rng(0)
    for _ in range(50):
        d = {c: float(rng.choice([1.0, rng.uniform(0.01, 3.0)])) for c in range(10)}
        assert parse_imbalance(format_imbalance(d)) == d


def test_format_imbalance_rejects_bad_values():
    with pytest.raises(ValueError, match="must be positive"):
        format_imbalance({1: 0.0})
    with pytest.raises(ValueError, match="non-negative integer"):
        format_imbalance({-1: 0.5})


def test_imbalanced_counts_exact(labels):
    idx = imbalanced_subset(labels, 0.5, "5-9:0.1", seed=2)
    assert counts(labels, idx) == [50] * 5 + [5] * 5
    idx = imbalanced_subset(labels, 0.2, {0: 0.05, 3: 0.25, 4: 1.5}, seed=2)
    assert counts(labels, idx) == [1, 20, 20, 5, 30, 20, 20, 20, 20, 20]  # 0.05*20 = 1
    np.testing.assert_array_equal(
        idx, imbalanced_subset(labels, 0.2, {0: 0.05, 3: 0.25, 4: 1.5}, 2)
    )
    assert np.unique(idx).size == idx.size and np.all(np.diff(idx) > 0)


def test_imbalanced_balanced_equals_stratified(labels):
    np.testing.assert_array_equal(
        imbalanced_subset(labels, 0.3, "none", seed=5), select_subset(labels, 0.3, seed=5)
    )


def test_imbalanced_too_small_and_too_large(labels):
    with pytest.raises(ValueError, match=r"class\(es\) 5, 6, 7, 8, 9 no example"):
        imbalanced_subset(labels, 0.04, "5-9:0.1")  # 4 * 0.1 rounds to 0
    with pytest.raises(ValueError, match="class 2 needs 150 examples but has only 100"):
        imbalanced_subset(labels, 1.0, "2:1.5")
    with pytest.raises(ValueError, match="absent from labels"):
        imbalanced_subset(labels, 0.1, {12: 0.5})


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("stratified", [True, False])
def test_split_validation_disjoint_and_covering(labels, stratified):
    budget = select_subset(labels, 0.2, seed=1)
    train, val = split_validation(budget, labels, 0.1, seed=4, stratified=stratified)
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), budget)
    assert val.size == 20 and train.size == 180
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    again = split_validation(budget, labels, 0.1, seed=4, stratified=stratified)
    np.testing.assert_array_equal(again[1], val)
    other = split_validation(budget, labels, 0.1, seed=5, stratified=stratified)
    assert not np.array_equal(other[1], val)
    assert min(counts(labels, train)) >= 1


def test_split_validation_stratified_counts(labels):
    budget = imbalanced_subset(labels, 0.5, "5-9:0.1")  # 50 of 0-4, 5 of 5-9
    train, val = split_validation(budget, labels, 0.2)
    assert counts(labels, val) == [10] * 5 + [1] * 5
    assert counts(labels, train) == [40] * 5 + [4] * 5


def test_split_validation_keeps_one_train_example_per_class():
    labels = np.array([0] * 10 + [1] * 2 + [2] * 1)
    budget = np.arange(labels.size)
    for stratified in (True, False):
        train, val = split_validation(budget, labels, 0.6, seed=0, stratified=stratified)
        assert set(labels[train]) == {0, 1, 2}
        assert np.intersect1d(train, val).size == 0 and train.size + val.size == budget.size
    with pytest.raises(ValueError, match="cannot draw 11 validation examples"):
        split_validation(budget, labels, 0.85, stratified=False)  # only 10 may leave


def test_split_validation_zero_and_impossible(labels):
    budget = select_subset(labels, 0.02)
    train, val = split_validation(budget, labels, 0.0)
    np.testing.assert_array_equal(train, budget)
    assert val.size == 0 and val.dtype == np.int64
    with pytest.raises(ValueError, match="empty validation split"):
        split_validation(budget, labels, 0.1)  # 2 per class: 0.2 rounds to 0
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        split_validation(budget, labels, 1.0)
    with pytest.raises(ValueError, match="duplicates"):
        split_validation(np.array([1, 1, 2]), labels, 0.5)


# --------------------------------------------------------------------------- Subset


def test_make_subset_record(labels):
    sub = make_subset(labels, 0.5, imbalance="5-9:0.1", val_fraction=0.2, seed=3)
    assert isinstance(sub, Subset)
    assert sub.imbalance == "5-9x0.1" and sub.mode == "stratified" and sub.seed == 3
    assert sub.n_train == 220 and sub.n_val == 55
    assert sub.class_counts == {c: (40 if c < 5 else 4) for c in range(10)}
    assert sub.val_class_counts == {c: (10 if c < 5 else 1) for c in range(10)}
    assert counts(labels, sub.train_idx) == list(sub.train_counts)
    summary = sub.to_dict()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["n_train"] == 220 and summary["train_class_counts"][5] == 4
    same = make_subset(labels, 0.5, imbalance="5-9x0.1", val_fraction=0.2, seed=3)
    assert same.to_dict() == summary
    assert (
        make_subset(labels, 0.5, imbalance="5-9x0.1", val_fraction=0.2, seed=4).to_dict()[
            "indices_sha256"
        ]
        != summary["indices_sha256"]
    )
    with pytest.raises(ValueError, match="read-only"):
        sub.train_idx[0] = 0


def test_make_subset_balanced_modes(labels):
    sub = make_subset(labels, None, mode="first", count=100)
    np.testing.assert_array_equal(sub.train_idx, np.arange(100))
    assert sub.fraction == 0.1 and sub.imbalance == "none" and sub.n_val == 0
    # A fixed budget: the validation draw must still follow the seed.
    val_a = make_subset(labels, None, mode="first", count=100, val_fraction=0.2, seed=0).val_idx
    val_b = make_subset(labels, None, mode="first", count=100, val_fraction=0.2, seed=1).val_idx
    assert val_a.size == val_b.size > 0 and not np.array_equal(val_a, val_b)
    sub = make_subset(labels, 0.1, val_fraction=0.1, seed=2)
    np.testing.assert_array_equal(
        np.sort(np.concatenate([sub.train_idx, sub.val_idx])), select_subset(labels, 0.1, seed=2)
    )
    with pytest.raises(ValueError, match="needs mode='stratified'"):
        make_subset(labels, 0.1, mode="random", imbalance="1:0.5")
