"""Labelled budgets: fractions of the training set, class imbalance, validation splits.

Why one file of this length: the selectors, the imbalance spec and the validation split
must agree on one index convention (sorted int64, seeded); most lines are docstrings.

Every selector returns int64 indices into the training set, **sorted ascending** (the
order of the draw is not kept: training shuffles every epoch anyway, and sorted indices
are easy to compare and store). All randomness comes from
``numpy.random.default_rng(seed)``, so a seed fixes the subset.

Counts use round-half-up (``floor(x + 0.5)``), not Python's round-half-to-even, so that
a count never depends on the parity of its neighbour.

Imbalance specs
---------------
A spec names a multiplier of the per-class share for some classes; classes not named
keep 1.0. ``"5-9:0.1"`` gives classes 5..9 a tenth of the others' examples. Items are
``CLASSES:MULT`` or ``CLASSESxMULT`` (CLASSES is ``c`` or ``a-b``), separated by ``,``
``;`` or ``_``. The canonical form (:func:`format_imbalance`) is ``"5-9x0.1"`` or
``"0x0.05_3x0.2"``: safe as a directory name and as a CSV value; ``"none"`` when balanced.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brainsleep.names import MAX_SEED, unknown_name

__all__ = [
    "MODES",
    "Subset",
    "format_imbalance",
    "imbalanced_subset",
    "format_task",
    "make_subset",
    "parse_imbalance",
    "parse_tasks",
    "select_subset",
    "split_validation",
    "task_split",
]

#: Subset selection modes of :func:`select_subset`.
MODES = ("stratified", "random", "first")

_Seed = int | Sequence[int]
_EXAMPLE = 'e.g. "5-9:0.1" (classes 5..9 at 10 %), "0:0.05,3:0.2", "5-9x0.1_1x0.5" or "none"'
_ITEM = re.compile(r"^(\d+)(?:-(\d+))?\s*[:x]\s*(\S+)$")


# --------------------------------------------------------------------------- helpers


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _as_labels(labels: Any) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.min() < 0:
        raise ValueError("labels must be >= 0")
    return labels.astype(np.int64, copy=False)


def _n_total(n: int, fraction: float | None, count: int | None) -> int:
    """The absolute budget from exactly one of ``fraction`` or ``count``."""
    if (fraction is None) == (count is None):
        raise ValueError("give exactly one of fraction or count")
    if count is not None:
        if isinstance(count, bool) or int(count) != count or not 1 <= count <= n:
            raise ValueError(f"count must be an integer in [1, {n}], got {count}")
        return int(count)
    if not (isinstance(fraction, int | float) and 0 < fraction <= 1):
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return _round_half_up(fraction * n)


def _format_classes(classes: Sequence[int] | np.ndarray) -> str:
    return ", ".join(str(int(c)) for c in classes)


def _check_every_class(labels: np.ndarray, idx: np.ndarray, what: str) -> None:
    """Refuse a subset that leaves a class of the training set without examples."""
    missing = np.setdiff1d(np.unique(labels), labels[idx])
    if missing.size:
        raise ValueError(
            f"{what} gives {idx.size} examples and no example of class(es) "
            f"{_format_classes(missing)}; use a larger fraction or count"
        )


def _draw_per_class(
    labels: np.ndarray, counts: Mapping[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Draw ``counts[c]`` examples of each class c without replacement, classes in order."""
    parts = []
    for c in sorted(counts):
        pool = np.flatnonzero(labels == c)
        if counts[c] > pool.size:
            raise ValueError(f"class {c} needs {counts[c]} examples but has only {pool.size}")
        parts.append(rng.choice(pool, size=counts[c], replace=False))
    return np.sort(np.concatenate(parts)).astype(np.int64)


def _equal_counts(sizes: Mapping[int, int], n_total: int) -> dict[int, int]:
    """``n_total`` split as equally as possible over the classes (remainder to the lowest
    ids); a class with fewer examples than its share gives all it has, and the rest is
    split over the others in the same way. Without such a class (every subset up to
    about 90 % of MNIST) this is the plain equal split; with one, fraction 1 is the whole
    training set, not an error (MNIST's classes hold 5421 to 6742 images)."""
    counts: dict[int, int] = {}
    open_classes = sorted(sizes)
    remaining = n_total
    while open_classes:
        base, extra = divmod(remaining, len(open_classes))
        share = {c: base + (1 if i < extra else 0) for i, c in enumerate(open_classes)}
        short = [c for c in open_classes if sizes[c] < share[c]]
        if not short:
            counts.update(share)
            break
        for c in short:
            counts[c] = sizes[c]
            remaining -= sizes[c]
            open_classes.remove(c)
    return counts


# --------------------------------------------------------------------------- fractions


def select_subset(
    labels: Any,
    fraction: float | None = None,
    mode: str = "stratified",
    seed: _Seed = 0,
    *,
    count: int | None = None,
) -> np.ndarray:
    """Choose a labelled budget from the training set.

    Parameters
    ----------
    labels : array_like of int
        Labels of the whole training set (N,).
    fraction : float, optional
        Share of the training set, in (0, 1]; the budget is ``round(fraction * N)``.
    mode : {"stratified", "random", "first"}
        ``stratified``: the budget is split as equally as possible over the classes
        present in ``labels``, the remainder going to the lowest class ids, each class
        drawn without replacement; a class too small for its share gives all of its
        examples and the others share the rest. ``random``: uniform without replacement.
        ``first``: the first examples, as the reference scripts do (``seed`` ignored).
    seed : int or sequence of int
        Seed of ``numpy.random.default_rng``.
    count : int, optional
        Absolute budget instead of ``fraction``.

    Returns
    -------
    numpy.ndarray
        int64 indices into ``labels``, sorted ascending.

    Raises
    ------
    ValueError
        Fraction outside (0, 1], unknown mode, or a budget that leaves a class without
        examples (the message names the classes).
    """
    labels = _as_labels(labels)
    n_total = _n_total(labels.size, fraction, count)
    what = f"{mode} selection of " + (f"fraction {fraction}" if count is None else f"count {count}")
    if mode == "stratified":
        classes = np.unique(labels)
        if n_total < classes.size:
            raise ValueError(
                f"{what} gives {n_total} examples for {classes.size} classes: class(es) "
                f"{_format_classes(classes[n_total:])} would get none"
            )
        counts = _equal_counts({int(c): int((labels == c).sum()) for c in classes}, n_total)
        return _draw_per_class(labels, counts, np.random.default_rng(seed))
    if mode == "random":
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(labels.size, size=n_total, replace=False)).astype(np.int64)
    elif mode == "first":
        idx = np.arange(n_total, dtype=np.int64)
    else:
        raise ValueError(unknown_name("subset mode", mode, MODES))
    _check_every_class(labels, idx, what)
    return idx


# --------------------------------------------------------------------------- imbalance


def _parse_float(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"imbalance spec {spec!r}: multiplier {text!r} must be a positive number; {_EXAMPLE}"
        )
    return value


def _parse_items(spec: str | None) -> dict[int, float]:
    """The classes a spec names, with their multipliers (no range check)."""
    text = "" if spec is None else str(spec).strip()
    named: dict[int, float] = {}
    if text.lower() in ("", "none", "balanced"):
        return named
    for item in re.split(r"[,;_]", text):
        match = _ITEM.match(item.strip())
        if not match:
            raise ValueError(f"imbalance spec {spec!r}: cannot read item {item!r}; {_EXAMPLE}")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if lo > hi:
            raise ValueError(f"imbalance spec {spec!r}: empty class range {lo}-{hi}; {_EXAMPLE}")
        twice = sorted(set(range(lo, hi + 1)) & set(named))
        if twice:
            raise ValueError(
                f"imbalance spec {spec!r}: class(es) {_format_classes(twice)} named twice; "
                f"{_EXAMPLE}"
            )
        value = _parse_float(match.group(3), str(spec))
        named.update(dict.fromkeys(range(lo, hi + 1), value))
    return named


def parse_imbalance(spec: str | None, n_classes: int = 10) -> dict[int, float]:
    """Parse an imbalance spec into class -> multiplier of the per-class share.

    Parameters
    ----------
    spec : str or None
        ``"5-9:0.1"``, ``"0:0.05,3:0.2"``, ``"5-9:0.1;1:0.5"``, the canonical
        ``"5-9x0.1_1x0.5"``, or ``"none"`` / ``""`` / None for balanced.
    n_classes : int
        Number of classes; every class 0..n_classes-1 appears in the result.

    Returns
    -------
    dict of int to float
        Multiplier per class (1.0 for classes the spec does not name).

    Raises
    ------
    ValueError
        Malformed items, classes out of range or named twice, non-positive multipliers;
        the message quotes the spec and shows an example.
    """
    named = _parse_items(spec)
    outside = sorted(c for c in named if c >= n_classes)
    if outside:
        raise ValueError(
            f"imbalance spec {spec!r}: class(es) {_format_classes(outside)} outside "
            f"0-{n_classes - 1}; {_EXAMPLE}"
        )
    return {c: named.get(c, 1.0) for c in range(n_classes)}


def _format_float(value: float) -> str:
    text = repr(float(value))  # shortest text that reads back to the same float
    return text[:-2] if text.endswith(".0") else text


def format_imbalance(multipliers: Mapping[int, float] | str | None) -> str:
    """Canonical, filesystem-safe text of an imbalance: ``"5-9x0.1"``, ``"0x0.05_3x0.2"``.

    Parameters
    ----------
    multipliers : mapping of int to float, str or None
        Class -> multiplier (classes left out count as 1.0), or a spec string.

    Returns
    -------
    str
        Consecutive classes with the same multiplier form a range; items are sorted by
        class and joined by ``_``; ``"none"`` when every multiplier is 1.
        ``parse_imbalance(format_imbalance(d))`` gives ``d`` back (with 1.0 filled in).
    """
    if multipliers is None or isinstance(multipliers, str):
        multipliers = _parse_items(multipliers)
    items = []
    for c in sorted(multipliers):
        value = float(multipliers[c])
        if int(c) != c or c < 0:
            raise ValueError(f"imbalance: class {c!r} is not a non-negative integer")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"imbalance: class {c} multiplier {value} must be positive")
        if value == 1.0:
            continue
        if items and items[-1][1] == c - 1 and items[-1][2] == value:
            items[-1][1] = c
        else:
            items.append([c, c, value])
    if not items:
        return "none"
    return "_".join(
        (f"{lo}" if lo == hi else f"{lo}-{hi}") + f"x{_format_float(v)}" for lo, hi, v in items
    )


def imbalanced_subset(
    labels: Any,
    fraction: float | None,
    spec_or_dict: str | Mapping[int, float] | None,
    seed: _Seed = 0,
    *,
    count: int | None = None,
) -> np.ndarray:
    """Draw a class-imbalanced budget.

    Parameters
    ----------
    labels : array_like of int
        Labels of the whole training set (N,).
    fraction : float or None
        Balanced share in (0, 1]: class c gets
        ``round(fraction * N / n_classes * multiplier[c])`` examples.
    spec_or_dict : str, mapping or None
        Imbalance spec (see :func:`parse_imbalance`) or class -> multiplier.
    seed : int or sequence of int
        Seed of ``numpy.random.default_rng``.
    count : int, optional
        Balanced budget instead of ``fraction`` (``fraction * N`` replaced by ``count``).

    Returns
    -------
    numpy.ndarray
        int64 indices, sorted ascending. With all multipliers 1 and a budget divisible
        by the number of classes this equals ``select_subset(..., "stratified")``.

    Raises
    ------
    ValueError
        A class that would get no example (named), or more than it has.
    """
    labels = _as_labels(labels)
    n_total = _n_total(labels.size, fraction, count)
    classes = np.unique(labels)
    if isinstance(spec_or_dict, Mapping):
        multipliers = {int(c): float(v) for c, v in spec_or_dict.items()}
        format_imbalance(multipliers)  # validates the values
    else:
        multipliers = parse_imbalance(spec_or_dict, n_classes=int(classes.max()) + 1)
    unknown = sorted(set(multipliers) - {int(c) for c in classes})
    if any(multipliers[c] != 1.0 for c in unknown):
        raise ValueError(f"imbalance names class(es) {_format_classes(unknown)} absent from labels")
    share = n_total / classes.size
    counts = {int(c): _round_half_up(share * multipliers.get(int(c), 1.0)) for c in classes}
    empty = [c for c, k in counts.items() if k < 1]
    if empty:
        raise ValueError(
            f"imbalanced budget of {n_total} ({format_imbalance(multipliers)}) gives class(es) "
            f"{_format_classes(empty)} no example; use a larger fraction or multiplier"
        )
    return _draw_per_class(labels, counts, np.random.default_rng(seed))


# --------------------------------------------------------------------------- validation


def split_validation(
    indices: Any,
    labels: Any,
    val_fraction: float = 0.1,
    seed: _Seed = 0,
    stratified: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Carve a validation split out of a labelled budget.

    Parameters
    ----------
    indices : array_like of int
        The budget: indices into ``labels``.
    labels : array_like of int
        Labels of the whole training set.
    val_fraction : float
        Share of the budget for validation, in [0, 1). 0 gives an empty validation set.
    seed : int or sequence of int
        Seed of ``numpy.random.default_rng``.
    stratified : bool
        True: each class gives ``round(val_fraction * n_c)`` of its ``n_c`` examples.
        False: ``round(val_fraction * n)`` examples drawn uniformly.
        Either way every class with >= 2 examples keeps at least one in train, and a
        class with a single example stays in train.

    Returns
    -------
    train_idx, val_idx : numpy.ndarray
        Disjoint int64 index arrays, sorted ascending, whose union is ``indices``.

    Raises
    ------
    ValueError
        ``val_fraction`` outside [0, 1), or a requested split that would be empty or
        cannot be drawn without emptying a class.
    """
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    if idx.size != np.asarray(indices).size:
        raise ValueError("indices contain duplicates")
    labels = _as_labels(labels)
    if not (isinstance(val_fraction, int | float) and 0 <= val_fraction < 1):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0:
        return idx, np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    budget_labels = labels[idx]
    if stratified:
        val = _stratified_val(idx, budget_labels, val_fraction, rng)
    else:
        val = _uniform_val(idx, budget_labels, val_fraction, rng)
    if val.size == 0:
        raise ValueError(
            f"val_fraction {val_fraction} of a budget of {idx.size} examples gives an empty "
            "validation split; use a larger val_fraction or budget, or val_fraction=0"
        )
    val = np.sort(val)
    return np.setdiff1d(idx, val, assume_unique=True), val


def _stratified_val(
    idx: np.ndarray, budget_labels: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    parts = []
    for c in np.unique(budget_labels):
        pool = idx[budget_labels == c]
        # min(..., n_c - 1): the class keeps one training example (and a singleton stays).
        k = min(_round_half_up(val_fraction * pool.size), pool.size - 1)
        parts.append(rng.permutation(pool)[:k])
    return np.concatenate(parts).astype(np.int64)


def _uniform_val(
    idx: np.ndarray, budget_labels: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    n_val = _round_half_up(val_fraction * idx.size)
    left = dict(zip(*np.unique(budget_labels, return_counts=True), strict=True))
    val = []
    # Walk a random order, skipping an example that would take its class's last one.
    for pos in rng.permutation(idx.size):
        if len(val) == n_val:
            break
        c = budget_labels[pos]
        if left[c] > 1:
            val.append(idx[pos])
            left[c] -= 1
    if len(val) < n_val:
        raise ValueError(
            f"cannot draw {n_val} validation examples from {idx.size} while every class "
            "keeps a training example"
        )
    return np.asarray(val, dtype=np.int64)


# --------------------------------------------------------------------------- tasks

_TASK_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")
_TASK_EXAMPLE = 'e.g. "0-1" (classes 0 and 1), "2-4" or "0,5"'


def format_task(classes: Sequence[int]) -> str:
    """Canonical text of a task's classes: ``"0-1"``, ``"2-4"``, ``"0,5"``, ``"0-2,7"``.

    Parameters
    ----------
    classes : sequence of int
        The task's classes (any order, no repeats).

    Returns
    -------
    str
        Runs of consecutive classes as ``a-b`` (two or more), single classes as ``a``,
        joined by ``,``, in ascending order.
    """
    out: list[str] = []
    values = sorted(int(c) for c in classes)
    start = prev = None
    for c in [*values, None]:
        if start is not None and (c is None or c != prev + 1):
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if c is not None and start is None:
            start = c
        prev = c
    return ",".join(out)


def parse_tasks(specs: Sequence[str], n_classes: int = 10) -> list[tuple[int, ...]]:
    """Parse the tasks of a class-incremental sequence: one class spec per task.

    Parameters
    ----------
    specs : sequence of str
        One spec per task, in training order: ``"0-1"`` (a range, both ends included),
        ``"7"``, or items of those joined by ``,`` (``"0,5"``, ``"0-2,7"``).
    n_classes : int
        Classes are ``0 .. n_classes - 1``.

    Returns
    -------
    list of tuple of int
        The classes of each task, ascending; :func:`format_task` writes them back.

    Raises
    ------
    ValueError
        No task, an unreadable item, an empty range, a class out of range, or a class
        in two tasks (or twice in one); the message quotes the spec.
    """
    if isinstance(specs, str) or not specs:
        raise ValueError(f"give one class spec per task, {_TASK_EXAMPLE}")
    tasks: list[tuple[int, ...]] = []
    seen: dict[int, str] = {}
    for spec in specs:
        classes: list[int] = []
        for item in str(spec).split(","):
            match = _TASK_ITEM.match(item.strip())
            if not match:
                raise ValueError(f"task {spec!r}: cannot read {item!r}; {_TASK_EXAMPLE}")
            lo = int(match.group(1))
            hi = int(match.group(2)) if match.group(2) is not None else lo
            if lo > hi:
                raise ValueError(f"task {spec!r}: empty class range {lo}-{hi}; {_TASK_EXAMPLE}")
            classes += range(lo, hi + 1)
        for c in classes:
            if c >= n_classes:
                raise ValueError(f"task {spec!r}: class {c} is outside 0-{n_classes - 1}")
            if c in seen:
                where = "twice" if seen[c] == spec else f"in task {seen[c]!r} too"
                raise ValueError(f"task {spec!r}: class {c} is named {where}")
            seen[c] = spec
        tasks.append(tuple(sorted(classes)))
    return tasks


def task_split(
    labels: Any,
    classes: Sequence[int],
    size: int | None,
    val_fraction: float = 0.0,
    seed: _Seed = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation images of one task of a class-incremental sequence.

    The training images are the first ``size`` images of the task's classes in file
    order, as the reference takes them (``indices(1:5000)`` in
    ``MNIST/run_class_task_summary.m``). Validation images (``round(val_fraction *
    size)``, stratified by class) come from the task's images after those, so the
    training images stay the reference's; when there are too few of them, they are
    carved out of the training images instead (:func:`split_validation`).

    Parameters
    ----------
    labels : array_like of int
        Labels of the whole training set (never the test set).
    classes : sequence of int
        The task's classes.
    size : int or None
        Training images of the task at most (None: all of them).
    val_fraction : float
        Validation images as a share of the training images, in [0, 1); 0: none.
    seed : int or sequence of int
        Seed of the validation draw.

    Returns
    -------
    train_idx, val_idx : numpy.ndarray
        Disjoint int64 indices into ``labels``: ``train_idx`` in file order (ascending),
        ``val_idx`` ascending.

    Raises
    ------
    ValueError
        No image of the task's classes, a bad ``size`` or ``val_fraction``, or a
        validation split that would be empty.
    """
    labels = _as_labels(labels)
    pool = np.flatnonzero(np.isin(labels, np.asarray(list(classes), dtype=np.int64)))
    name = format_task(classes)
    if pool.size == 0:
        raise ValueError(f"task {name}: the training set has no image of these classes")
    if size is not None and (isinstance(size, bool) or int(size) != size or size < 1):
        raise ValueError(f"task {name}: size must be a positive integer, got {size!r}")
    if not (isinstance(val_fraction, int | float) and 0 <= val_fraction < 1):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_train = pool.size if size is None else min(int(size), pool.size)
    train = pool[:n_train].astype(np.int64)
    if val_fraction == 0:
        return train, np.empty(0, dtype=np.int64)
    n_val = _round_half_up(val_fraction * n_train)
    if n_val == 0:
        raise ValueError(
            f"task {name}: val_fraction {val_fraction} of {n_train} training images gives an "
            "empty validation split; use a larger val_fraction or task size"
        )
    spare = pool[n_train:]
    if spare.size > n_val:
        _, val = split_validation(spare, labels, n_val / spare.size, seed)
        return train, val
    return split_validation(train, labels, val_fraction, seed)


# --------------------------------------------------------------------------- the record


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.int64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Subset:
    """A labelled budget and its validation split.

    Attributes
    ----------
    train_idx, val_idx : numpy.ndarray
        Disjoint int64 indices into the training set, sorted ascending, read-only.
    mode : str
        Selection mode (see :func:`select_subset`).
    fraction : float
        Share of the training set in the budget (train + val), as requested, or
        ``count / N`` when a count was given.
    imbalance : str
        Canonical imbalance (:func:`format_imbalance`); ``"none"`` when balanced.
    seed : int
        Seed of the draw.
    val_fraction : float
        Requested share of the budget for validation.
    train_counts, val_counts : tuple of int
        Examples per class (index = class id) in train and validation.
    """

    train_idx: np.ndarray = field(repr=False)
    val_idx: np.ndarray = field(repr=False)
    mode: str
    fraction: float
    imbalance: str
    seed: int
    val_fraction: float = 0.0
    train_counts: tuple[int, ...] = ()
    val_counts: tuple[int, ...] = ()

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return int(self.train_idx.size)

    @property
    def n_val(self) -> int:
        """Number of validation examples."""
        return int(self.val_idx.size)

    @property
    def class_counts(self) -> dict[int, int]:
        """Training examples per class."""
        return dict(enumerate(self.train_counts))

    @property
    def val_class_counts(self) -> dict[int, int]:
        """Validation examples per class."""
        return dict(enumerate(self.val_counts))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: parameters, sizes, class counts and a digest of the indices."""
        digest = hashlib.sha256(self.train_idx.tobytes() + b"|" + self.val_idx.tobytes())
        return {
            "mode": self.mode,
            "fraction": float(self.fraction),
            "imbalance": self.imbalance,
            "seed": int(self.seed),
            "val_fraction": float(self.val_fraction),
            "n_train": self.n_train,
            "n_val": self.n_val,
            "train_class_counts": list(self.train_counts),
            "val_class_counts": list(self.val_counts),
            "indices_sha256": digest.hexdigest()[:16],
        }


def make_subset(
    labels: Any,
    fraction: float | None,
    mode: str = "stratified",
    imbalance: str | Mapping[int, float] | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
    *,
    count: int | None = None,
) -> Subset:
    """Choose a budget (balanced or imbalanced) and split off validation.

    Parameters
    ----------
    labels : array_like of int
        Labels of the whole training set.
    fraction : float or None
        Budget share in (0, 1]; or None with ``count``.
    mode : {"stratified", "random", "first"}
        See :func:`select_subset`. An imbalance needs ``"stratified"``.
    imbalance : str, mapping or None
        Imbalance spec or class -> multiplier; None / ``"none"`` for balanced.
    val_fraction : float
        Share of the budget for validation (taken out of the budget, not added).
    seed : int
        One seed for both draws (the validation draw uses an independent stream), an
        integer in ``0 .. MAX_SEED`` (the range the sleep engine takes).
    count : int, optional
        Absolute budget instead of ``fraction``.

    Returns
    -------
    Subset

    Raises
    ------
    ValueError
        A seed outside ``0 .. MAX_SEED``, or a budget or split that cannot be drawn.
    """

    if (
        isinstance(seed, bool)
        or not isinstance(seed, int | np.integer)
        or not (0 <= seed <= MAX_SEED)
    ):
        raise ValueError(f"seed must be an integer in 0..{MAX_SEED}, got {seed!r}")
    labels = _as_labels(labels)
    canon = format_imbalance(imbalance) if imbalance is not None else "none"
    if canon == "none":
        budget = select_subset(labels, fraction, mode, seed, count=count)
    elif mode != "stratified":
        raise ValueError(f"an imbalance ({canon}) needs mode='stratified', got {mode!r}")
    else:
        budget = imbalanced_subset(labels, fraction, imbalance, seed, count=count)
    # [seed, 1] gives the validation draw its own stream, independent of the budget draw.
    train, val = split_validation(budget, labels, val_fraction, seed=[seed, 1])
    n_classes = int(labels.max()) + 1
    return Subset(
        train_idx=_readonly(train),
        val_idx=_readonly(val),
        mode=mode,
        fraction=float(fraction) if count is None else count / labels.size,
        imbalance=canon,
        seed=int(seed),
        val_fraction=float(val_fraction),
        train_counts=tuple(int(k) for k in np.bincount(labels[train], minlength=n_classes)),
        val_counts=tuple(int(k) for k in np.bincount(labels[val], minlength=n_classes)),
    )
