"""Sleep inputs: one class per input kind, behind one interface (:class:`SleepInput`).

Why one file of this length: every input kind implements the same four-part interface
(below), and the kinds read best next to it and to each other.

An input supplies data, never equations: its kind's equations (how the intensity ``x``
of pixel ``i`` is computed each step) are model data in ``models/inputs.py``. The data
are split by how often they change, because a compiled build is reused across runs:

- :meth:`SleepInput.structure`: fixed per compiled build (part of the build key);
- :meth:`SleepInput.structure_values`: per-pixel constants set when the network is built;
- :meth:`SleepInput.run_values`: per-pixel values of one run (run arguments);
- :meth:`SleepInput.timed_values`: per-step values of one run (TimedArray contents).

Kinds: :class:`ArrayInput` (an explicit (T, n_in) array), :class:`MaskedMeanImage`
(the reference's masked mean image, ``create_masked_input.m``: only the mean image and
two integers per step are stored, so a 20 000-step input never exists as a T x 784
array), :class:`ImageSequence` (SNN evaluation) and the sleep inputs of issue 14, none
of which stores a (T, n_in) array either: :class:`MeanImage` (the whole mean image every
step), :class:`SampledImages` (a random training image per window, from a pool),
:class:`ClassMeanImages` (the mean image of a random class per window) and
:class:`UniformNoise` (the same intensity on every pixel). A plain (T, n_in) array passed
to the engine becomes an :class:`ArrayInput`.

The sleep inputs an experiment can choose by name are :data:`SLEEP_INPUTS`, built from
the training data by :func:`make_sleep_input`.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from brainsleep.models.inputs import INPUT_KINDS
from brainsleep.names import unknown_name

# Streams derived from the user's seed, so the window positions and the numpy
# reference's uniforms never share random numbers.
WINDOW_STREAM = 1
UNIFORM_STREAM = 2
# The pool inputs' random choices (which images form the pool, which row each window shows).
INDEX_STREAM = 3


class SleepInput(ABC):
    """Interface of a sleep input kind (see the module docstring)."""

    #: Key of the kind's equations in ``models/inputs.py``.
    kind: ClassVar[str]

    #: Number of sleep steps T and of input neurons (pixels): given by each kind.
    n_steps: int
    n_inputs: int

    #: The TimedArrays read at the simulation time, one value per step (or per window of
    #: :meth:`timed_steps`). A compiled build holds a step capacity of at least T
    #: (:func:`brainsleep.sleep.network.step_capacity`) and a shorter run pads these with
    #: zeros it never reads, so one build serves every T. ``None``: the kind's data is
    #: dense in time (an explicit (T, n) array, SNN images) and each T is its own build.
    time_indexed: ClassVar[tuple[str, ...] | None] = ()

    @property
    def shape(self) -> tuple[int, int]:
        """(n_steps, n_inputs), the shape an explicit input array would have."""
        return (self.n_steps, self.n_inputs)

    @property
    def equations(self) -> str:
        """This kind's equations for the input group (from ``models/inputs.py``)."""
        return INPUT_KINDS[self.kind]["equations"]

    @abstractmethod
    def structure(self) -> dict:
        """JSON-able values that fix the compiled structure (besides T and n_inputs)."""

    def namespace(self) -> dict:
        """Constants the equations read by name (``models/inputs.py``: ``constants``)."""
        return {}

    def structure_values(self) -> dict[str, np.ndarray]:
        """Per-pixel constants of the input group, set once when the network is built."""
        return {}

    def run_values(self) -> dict[str, np.ndarray]:
        """Per-pixel variables of the input group set for each run."""
        return {}

    @abstractmethod
    def timed_values(self, seed: int) -> dict[str, np.ndarray]:
        """TimedArray contents of one run, float64, by the names the equations use."""

    def timed_steps(self) -> dict[str, int]:
        """Simulation steps per TimedArray value (1 unless a value holds for longer)."""
        return {}

    def padded_timed_values(self, seed: int, capacity: int) -> dict[str, np.ndarray]:
        """:meth:`timed_values` with the :attr:`time_indexed` arrays zero-padded to
        ``capacity`` steps (``capacity`` >= T; the run never reads the padding).

        Raises
        ------
        ValueError
            ``capacity`` < T, or a kind whose data is dense in time asked for more.
        """
        values = self.timed_values(seed)
        if capacity == self.n_steps:
            return values
        if capacity < self.n_steps or self.time_indexed is None:
            raise ValueError(
                f"a {self.kind} input of T = {self.n_steps} steps cannot fill a build of "
                f"{capacity} steps"
            )
        steps = self.timed_steps()
        out = dict(values)
        for name in self.time_indexed:
            rows = -(-capacity // steps.get(name, 1))
            arr = np.asarray(values[name])
            pad = np.zeros((rows - len(arr), *arr.shape[1:]), dtype=arr.dtype)
            out[name] = np.concatenate([arr, pad])
        return out

    @property
    def rest_every(self) -> int:
        """Every how many steps every layer is brought to rest (0: never)."""
        return 0

    @abstractmethod
    def to_array(self, seed: int) -> np.ndarray:
        """The full (T, n_inputs) intensity array; for tests and small T."""

    def frames(self, seed: int) -> Iterator[np.ndarray]:
        """The float64 intensity vector of each step in turn (the reference device)."""
        yield from self.to_array(seed)

    @classmethod
    @abstractmethod
    def placeholder(cls, n_inputs: int, n_steps: int, structure: dict) -> SleepInput:
        """An input of this kind with the given structure and zero data (for a build)."""

    def check(self, n_in: int) -> None:
        """Raise ValueError unless this input fits a network with ``n_in`` inputs."""
        if self.n_inputs != n_in:
            raise ValueError(
                f"the {self.kind} sleep input has {self.n_inputs} pixels but the first "
                f"weight layer expects {n_in} inputs"
            )


@dataclass(frozen=True, eq=False)
class ArrayInput(SleepInput):
    """An explicit intensity array: pixel ``i`` at step ``t`` has intensity ``x[t, i]``.

    Parameters
    ----------
    values : ndarray, shape (T, n_in)
        Finite, non-negative intensities.

    Raises
    ------
    ValueError
        Not 2-D, no steps, NaN or inf, or negative values.
    """

    values: np.ndarray
    kind: ClassVar[str] = "array"
    time_indexed: ClassVar[tuple[str, ...] | None] = None  # dense in time

    def __post_init__(self) -> None:
        x = np.asarray(self.values)
        if x.ndim != 2:
            raise ValueError(
                f"inputs must be a (T, n_in) array or a SleepInput, got shape {x.shape}"
            )
        if x.shape[0] < 1:
            raise ValueError("inputs have 0 steps; give at least one row")
        if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
            raise ValueError("inputs contain NaN or inf (or are not numeric)")
        if x.min() < 0:
            raise ValueError("inputs contain negative intensities; they must be >= 0")
        object.__setattr__(self, "values", np.asarray(x, dtype=np.float64))

    def check(self, n_in: int) -> None:
        if self.n_inputs != n_in:
            raise ValueError(
                f"inputs have {self.n_inputs} columns but the first weight layer expects {n_in}"
            )

    @property
    def n_steps(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_inputs(self) -> int:
        return int(self.values.shape[1])

    def structure(self) -> dict:
        return {}

    def timed_values(self, seed: int) -> dict[str, np.ndarray]:
        return {"x_in": self.values}

    def to_array(self, seed: int) -> np.ndarray:
        return self.values

    @classmethod
    def placeholder(cls, n_inputs: int, n_steps: int, structure: dict) -> ArrayInput:
        return cls(np.zeros((n_steps, n_inputs)))


@dataclass(frozen=True, eq=False)
class MaskedMeanImage(SleepInput):
    """The reference's sleep input: a random patch of the mean image at every step.

    Parameters
    ----------
    mean_image : ndarray, shape (height, width)
        Mean training image, intensities in [0, 1].
    n_steps : int
        Number of sleep steps T.
    patch : int
        Side of the square window (reference: 11).

    Notes
    -----
    The reference reshapes the mean image column-major (MATLAB) and draws the column
    offset first; for a row-major image that is the same as drawing a row offset and a
    column offset uniformly in ``0 .. height - patch`` / ``0 .. width - patch``.
    """

    mean_image: np.ndarray
    n_steps: int
    patch: int = 11
    kind: ClassVar[str] = "masked-mean"
    time_indexed: ClassVar[tuple[str, ...]] = ("win_row", "win_col")

    def __post_init__(self) -> None:
        img = np.asarray(self.mean_image, dtype=np.float64)
        if img.ndim != 2:
            raise ValueError(f"mean_image must be 2-D (height, width), got shape {img.shape}")
        if not np.all(np.isfinite(img)):
            raise ValueError("mean_image contains NaN or inf")
        if img.min() < 0:
            raise ValueError("mean_image has negative intensities; inputs must be >= 0")
        if not isinstance(self.n_steps, int | np.integer) or self.n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer, got {self.n_steps!r}")
        if isinstance(self.patch, bool) or not isinstance(self.patch, int | np.integer):
            raise ValueError(f"patch must be a whole number of pixels, got {self.patch!r}")
        if not 1 <= self.patch <= min(img.shape):
            raise ValueError(f"patch {self.patch} does not fit a {img.shape} image")
        object.__setattr__(self, "mean_image", img)
        object.__setattr__(self, "n_steps", int(self.n_steps))

    @classmethod
    def from_images(cls, images: np.ndarray, n_steps: int, patch: int = 11) -> MaskedMeanImage:
        """Mean image of a training set given as (N, 784) in [0, 1] or (N, 28, 28)."""
        x = np.asarray(images, dtype=np.float64)
        if x.ndim == 2:
            side = int(round(np.sqrt(x.shape[1])))
            if side * side != x.shape[1]:
                raise ValueError(f"cannot reshape {x.shape[1]} pixels to a square image")
            x = x.reshape(len(x), side, side)
        if x.ndim != 3 or len(x) == 0:
            raise ValueError(f"images must be (N, H, W) or (N, H*W) with N > 0, got {x.shape}")
        return cls(x.mean(axis=0), n_steps, patch)

    @property
    def n_inputs(self) -> int:
        return int(self.mean_image.size)

    def structure(self) -> dict:
        return {"image_shape": list(self.mean_image.shape), "patch": self.patch}

    def namespace(self) -> dict:
        return {"patch": self.patch}

    def structure_values(self) -> dict[str, np.ndarray]:
        h, w = self.mean_image.shape
        return {"px_row": np.repeat(np.arange(h), w), "px_col": np.tile(np.arange(w), h)}

    def run_values(self) -> dict[str, np.ndarray]:
        return {"mean_px": self.mean_image.ravel()}

    def windows(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Row and column offsets of every step's window, int32 arrays of length T."""
        h, w = self.mean_image.shape
        rng = np.random.default_rng([seed, WINDOW_STREAM])
        rows = rng.integers(0, h - self.patch + 1, size=self.n_steps, dtype=np.int32)
        cols = rng.integers(0, w - self.patch + 1, size=self.n_steps, dtype=np.int32)
        return rows, cols

    def timed_values(self, seed: int) -> dict[str, np.ndarray]:
        rows, cols = self.windows(seed)
        return {"win_row": rows.astype(np.float64), "win_col": cols.astype(np.float64)}

    def frame(self, row: int, col: int) -> np.ndarray:
        """Flat (row-major) intensities of one step with its window at (row, col)."""
        out = np.zeros_like(self.mean_image)
        p = self.patch
        out[row : row + p, col : col + p] = self.mean_image[row : row + p, col : col + p]
        return out.ravel()

    def to_array(self, seed: int) -> np.ndarray:
        return np.stack(list(self.frames(seed)))

    def frames(self, seed: int) -> Iterator[np.ndarray]:
        rows, cols = self.windows(seed)
        for r, c in zip(rows, cols, strict=True):
            yield self.frame(int(r), int(c))

    @classmethod
    def placeholder(cls, n_inputs: int, n_steps: int, structure: dict) -> MaskedMeanImage:
        return cls(np.zeros(tuple(structure["image_shape"])), n_steps, structure["patch"])


@dataclass(frozen=True, eq=False)
class ImageSequence(SleepInput):
    """Images shown one after the other, each for ``window`` steps (SNN evaluation).

    Parameters
    ----------
    images : ndarray, shape (n_images, n_in)
        Intensities, finite and >= 0 (flattened images in [0, 1]).
    window : int
        Steps per image; every layer rests at the start of each window.

    Raises
    ------
    ValueError
        Not 2-D, no images, NaN, inf or negative intensities, or ``window`` < 1.
    """

    images: np.ndarray
    window: int
    kind: ClassVar[str] = "images"
    time_indexed: ClassVar[tuple[str, ...] | None] = None  # dense in time

    def __post_init__(self) -> None:
        x = np.asarray(self.images, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"images must be (n_images, n_in) with n_images > 0, got {x.shape}")
        if not np.all(np.isfinite(x)) or x.min() < 0:
            raise ValueError("images contain NaN, inf or negative intensities")
        if not isinstance(self.window, int | np.integer) or self.window < 1:
            raise ValueError(f"window must be a positive number of steps, got {self.window!r}")
        object.__setattr__(self, "images", x)
        object.__setattr__(self, "window", int(self.window))

    @property
    def n_steps(self) -> int:
        return len(self.images) * self.window

    @property
    def n_inputs(self) -> int:
        return int(self.images.shape[1])

    @property
    def rest_every(self) -> int:
        return self.window

    def structure(self) -> dict:
        return {"window": self.window}

    def timed_values(self, seed: int) -> dict[str, np.ndarray]:
        return {"images": self.images}

    def timed_steps(self) -> dict[str, int]:
        return {"images": self.window}

    def to_array(self, seed: int) -> np.ndarray:
        return np.repeat(self.images, self.window, axis=0)

    def frames(self, seed: int) -> Iterator[np.ndarray]:
        for image in self.images:
            for _ in range(self.window):
                yield image

    @classmethod
    def placeholder(cls, n_inputs: int, n_steps: int, structure: dict) -> ImageSequence:
        window = structure["window"]
        return cls(np.zeros((n_steps // window, n_inputs)), window)


# ------------------------------------------------------------- sleep inputs (issue 14)

#: Default number of training images in the pool of :class:`SampledImages`.
DEFAULT_POOL_SIZE = 1000


def _check_steps(n_steps) -> int:
    """``n_steps`` as an int, or ValueError unless it is a positive integer."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    return int(n_steps)


def _check_count(name: str, value, what: str) -> int:
    """``value`` as an int, or ValueError unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1 ({what}), got {value!r}")
    return int(value)


def _flat_images(images, what: str = "images") -> np.ndarray:
    """Images (N, n_in) or (N, height, width) as a checked (N, n_in) array, N > 0.

    The dtype is kept (no float64 copy of a whole training set); rows are converted
    when they are used.
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x.reshape(len(x), -1)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"{what} must be (N, n_in) or (N, height, width) with N > 0, got shape {x.shape}; "
            "an empty set of images gives no sleep input"
        )
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{what} must be numeric, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contain NaN or inf")
    if x.min() < 0:
        raise ValueError(f"{what} have negative intensities; inputs must be >= 0")
    return x


@dataclass(frozen=True, eq=False)
class MeanImage(SleepInput):
    """The whole mean training image at every step (kind ``mean``).

    Pixel ``i`` has intensity ``mean_image[i]`` at every step, so it spikes with
    probability ``min(1, 2 dt max_rate mean_image[i])`` per step: the reference's input
    without its 11 x 11 window.

    Parameters
    ----------
    mean_image : ndarray, shape (n_in,) or (height, width)
        Mean training image, intensities >= 0 (in [0, 1] for images); stored flat,
        row-major (the pixel order of the network's input layer).
    n_steps : int
        Number of sleep steps T.

    Notes
    -----
    Per run: the mean image as the per-pixel variable ``mean_px`` (n_in float64). No
    timed data; the structure is (T, n_in) only.

    Raises
    ------
    ValueError
        Empty image, NaN, inf or negative intensities, or ``n_steps`` < 1.
    """

    mean_image: np.ndarray
    n_steps: int
    kind: ClassVar[str] = "mean"

    def __post_init__(self) -> None:
        img = np.asarray(self.mean_image, dtype=np.float64)
        if img.ndim not in (1, 2) or img.size == 0:
            raise ValueError(f"mean_image must be (n_in,) or (height, width), got {img.shape}")
        if not np.all(np.isfinite(img)) or img.min() < 0:
            raise ValueError("mean_image contains NaN, inf or negative intensities")
        object.__setattr__(self, "mean_image", img.ravel())
        object.__setattr__(self, "n_steps", _check_steps(self.n_steps))

    @classmethod
    def from_images(cls, images: np.ndarray, n_steps: int) -> MeanImage:
        """Mean image of a training set given as (N, n_in) or (N, height, width)."""
        return cls(_flat_images(images).mean(axis=0, dtype=np.float64), n_steps)

    @property
    def n_inputs(self) -> int:
        return int(self.mean_image.size)

    def structure(self) -> dict:
        return {}

    def run_values(self) -> dict[str, np.ndarray]:
        return {"mean_px": self.mean_image}

    def timed_values(self, seed: int) -> dict[str, np.ndarray]:
        return {}

    def to_array(self, seed: int) -> np.ndarray:
        return np.tile(self.mean_image, (self.n_steps, 1))

    def frames(self, seed: int) -> Iterator[np.ndarray]:
        for _ in range(self.n_steps):
            yield self.mean_image

    @classmethod
    def placeholder(cls, n_inputs: int, n_steps: int, structure: dict) -> MeanImage:
        return cls(np.zeros(n_inputs), n_steps)


class PoolInput(SleepInput):
    """Shared mechanics of the pool kinds: M images and one pool row per window.

    Every window of ``every`` steps shows one row of a pool of M images; the last
    window may be shorter. The data of one run are two TimedArrays (``models/inputs.py``,
    ``_POOL``): ``pool_images`` (M, n_in) float64 and ``pool_index`` (ceil(T / every),)
    row numbers, stored as float64. Their total size is M * n_in + ceil(T / every),
    never T * n_in. Subclasses say which images form the pool and how rows are drawn
    (:meth:`draw`); the same draw feeds every device, so all of them see the same
    images in the same windows.
    """

    every: int
    time_indexed: ClassVar[tuple[str, ...]] = ("pool_index",)

    @property
    def n_windows(self) -> int:
        """Number of windows K = ceil(T / every)."""
        return math.ceil(self.n_steps / self.every)

    @abstractmethod
    def draw(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The pool (M, n_in) float64 and each window's pool row, int64 (K,), of a run."""

    def timed_values(self, seed: int) -> dict[str, np.ndarray]:
        pool, index = self.draw(seed)
        return {"pool_images": pool, "pool_index": index.astype(np.float64)}

    def timed_steps(self) -> dict[str, int]:
        # pool_images is read at time (row * dt), so its dt is the clock's.
        return {"pool_images": 1, "pool_index": self.every}

    def to_array(self, seed: int) -> np.ndarray:
        pool, index = self.draw(seed)
        return pool[np.repeat(index, self.every)[: self.n_steps]]

    def frames(self, seed: int) -> Iterator[np.ndarray]:
        pool, index = self.draw(seed)
        for step in range(self.n_steps):
            yield pool[index[step // self.every]]


@dataclass(frozen=True, eq=False)
class SampledImages(PoolInput):
    """A random training image per window of ``every`` steps (kind ``samples``).

    Parameters
    ----------
    images : ndarray, shape (N, n_in) or (N, height, width)
        Training images, intensities >= 0 (in [0, 1]); flattened row-major.
    n_steps : int
        Number of sleep steps T.
    every : int
        Steps per window (1: a new image every step).
    pool_size : int
        Rows M of the pool, a fixed part of the compiled structure (so one build serves
        every training set of any size).

    Notes
    -----
    Per run (:meth:`draw`, seeded by the run's seed): if N <= M the pool is every
    training image (rows N .. M - 1 are zeros, never shown) and each window shows one of
    the N images uniformly at random; if N > M the pool is M distinct images drawn
    without replacement and each window shows one of those uniformly. Every window's
    image is then uniform over the N images, but with N > M two windows repeat an image
    more often than fully independent draws would. Data: M * n_in + ceil(T / every)
    float64 (1000 x 784 + 20 000 numbers, 6.4 MB, for the reference's T).

    Raises
    ------
    ValueError
        No images, NaN, inf or negative intensities, ``n_steps``, ``every`` or
        ``pool_size`` < 1.
    """

    images: np.ndarray
    n_steps: int
    every: int = 1
    pool_size: int = DEFAULT_POOL_SIZE
    kind: ClassVar[str] = "samples"

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", _flat_images(self.images, "the sample pool images"))
        object.__setattr__(self, "n_steps", _check_steps(self.n_steps))
        object.__setattr__(self, "every", _check_count("every", self.every, "steps per image"))
        object.__setattr__(
            self, "pool_size", _check_count("pool_size", self.pool_size, "images in the pool")
        )

    @property
    def n_inputs(self) -> int:
        return int(self.images.shape[1])

    def structure(self) -> dict:
        return {"every": self.every, "pool_size": self.pool_size}

    def draw(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, INDEX_STREAM])
        n, m = len(self.images), self.pool_size
        pool = np.zeros((m, self.n_inputs))
        if n <= m:
            pool[:n] = self.images
        else:
            pool[:] = self.images[np.sort(rng.choice(n, size=m, replace=False))]
        return pool, rng.integers(0, min(n, m), size=self.n_windows)

    @classmethod
    def placeholder(cls, n_inputs: int, n_steps: int, structure: dict) -> SampledImages:
        m = structure["pool_size"]
        return cls(np.zeros((m, n_inputs)), n_steps, structure["every"], m)


@dataclass(frozen=True, eq=False)
class ClassMeanImages(PoolInput):
    """The mean image of a random class per window of ``every`` steps (kind ``class-means``).

    Parameters
    ----------
    class_means : ndarray, shape (C, n_in)
        Mean image of each class, intensities >= 0 (in [0, 1]).
    n_steps : int
        Number of sleep steps T.
    every : int
        Steps per window (1: a new class every step).
    labels : tuple, optional
        The class label of each row (default 0 .. C - 1); for reports only.

    Notes
    -----
    Per run (:meth:`draw`): the pool is the C class means and each window's class is
    uniform over the C classes (not weighted by class frequency, so a rare class of
    unbalanced data is replayed as often as the others). Data: C * n_in +
    ceil(T / every) float64.

    Raises
    ------
    ValueError
        No class, NaN, inf or negative intensities, ``n_steps`` or ``every`` < 1, or
        ``labels`` not one per class.
    """

    class_means: np.ndarray
    n_steps: int
    every: int = 1
    labels: tuple = ()
    kind: ClassVar[str] = "class-means"

    def __post_init__(self) -> None:
        means = np.asarray(_flat_images(self.class_means, "class_means"), dtype=np.float64)
        object.__setattr__(self, "class_means", means)
        object.__setattr__(self, "n_steps", _check_steps(self.n_steps))
        object.__setattr__(self, "every", _check_count("every", self.every, "steps per class"))
        labels = tuple(self.labels) or tuple(range(len(means)))
        if len(labels) != len(means):
            raise ValueError(f"{len(labels)} labels for {len(means)} class means")
        object.__setattr__(self, "labels", labels)

    @classmethod
    def from_labelled(
        cls, images: np.ndarray, labels: np.ndarray, n_steps: int, every: int = 1, classes=None
    ) -> ClassMeanImages:
        """Class means of labelled training images.

        Parameters
        ----------
        images : ndarray, shape (N, n_in) or (N, height, width)
            Training images.
        labels : ndarray, shape (N,)
            Integer class label of each image.
        n_steps, every
            As for the class.
        classes : iterable of int, optional
            The classes to replay (default: every class present in ``labels``).

        Raises
        ------
        ValueError
            No labels, labels not one per image, or a chosen class without images.
        """
        x = _flat_images(images)
        if labels is None:
            raise ValueError("the class-means sleep input needs the training labels")
        y = np.asarray(labels)
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"labels must be (N,) = ({len(x)},), got shape {y.shape}")
        chosen = np.unique(y) if classes is None else np.asarray(list(classes))
        if chosen.size == 0:
            raise ValueError("no class to replay: classes is empty")
        means = []
        for c in chosen:
            rows = y == c
            if not rows.any():
                raise ValueError(f"class {c.item()!r} has no training image")
            means.append(x[rows].mean(axis=0, dtype=np.float64))
        return cls(np.stack(means), n_steps, every, tuple(c.item() for c in chosen))

    @property
    def n_inputs(self) -> int:
        return int(self.class_means.shape[1])

    def structure(self) -> dict:
        return {"every": self.every, "n_classes": len(self.class_means)}

    def draw(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, INDEX_STREAM])
        return self.class_means, rng.integers(0, len(self.class_means), size=self.n_windows)

    @classmethod
    def placeholder(cls, n_inputs: int, n_steps: int, structure: dict) -> ClassMeanImages:
        return cls(np.zeros((structure["n_classes"], n_inputs)), n_steps, structure["every"])


@dataclass(frozen=True, eq=False)
class UniformNoise(SleepInput):
    """The same intensity ``level`` on every pixel at every step (kind ``noise``).

    Each pixel spikes independently with probability ``min(1, 2 dt max_rate level)``
    per step: input without any image structure.

    Parameters
    ----------
    level : float
        Intensity of every pixel, in [0, 1].
    n_inputs : int
        Number of input pixels n_in.
    n_steps : int
        Number of sleep steps T.

    Notes
    -----
    Per run: one number, the shared variable ``noise_level``; no data per pixel or step.

    Raises
    ------
    ValueError
        ``level`` not a number in [0, 1], or ``n_inputs`` or ``n_steps`` < 1.
    """

    level: float
    n_inputs: int
    n_steps: int
    kind: ClassVar[str] = "noise"

    def __post_init__(self) -> None:
        try:
            level = float(self.level)
        except (TypeError, ValueError):
            raise ValueError(
                f"noise level must be a number in [0, 1], got {self.level!r}"
            ) from None
        if not 0.0 <= level <= 1.0:  # NaN fails too
            raise ValueError(f"noise level must be in [0, 1], got {self.level!r}")
        object.__setattr__(self, "level", level)
        object.__setattr__(self, "n_inputs", _check_count("n_inputs", self.n_inputs, "pixels"))
        object.__setattr__(self, "n_steps", _check_steps(self.n_steps))

    def structure(self) -> dict:
        return {}

    def run_values(self) -> dict[str, np.ndarray]:
        return {"noise_level": np.float64(self.level)}

    def timed_values(self, seed: int) -> dict[str, np.ndarray]:
        return {}

    def to_array(self, seed: int) -> np.ndarray:
        return np.full((self.n_steps, self.n_inputs), self.level)

    def frames(self, seed: int) -> Iterator[np.ndarray]:
        frame = np.full(self.n_inputs, self.level)
        for _ in range(self.n_steps):
            yield frame

    @classmethod
    def placeholder(cls, n_inputs: int, n_steps: int, structure: dict) -> UniformNoise:
        return cls(0.0, n_inputs, n_steps)


#: Every input kind by its name in ``models/inputs.py``.
INPUT_CLASSES: dict[str, type[SleepInput]] = {
    c.kind: c
    for c in (
        ArrayInput,
        MaskedMeanImage,
        ImageSequence,
        MeanImage,
        SampledImages,
        ClassMeanImages,
        UniformNoise,
    )
}


# ------------------------------------------------- sleep inputs by name (the factory)


def _masked_mean_input(x_train, y_train, n_steps, *, patch: int = 11) -> SleepInput:
    return MaskedMeanImage.from_images(x_train, n_steps, patch)


def _mean_input(x_train, y_train, n_steps) -> SleepInput:
    return MeanImage.from_images(_flat_images(x_train, "x_train"), n_steps)


def _samples_input(
    x_train, y_train, n_steps, *, every: int = 1, pool_size: int = DEFAULT_POOL_SIZE
) -> SleepInput:
    return SampledImages(_flat_images(x_train, "x_train"), n_steps, every, pool_size)


def _class_means_input(
    x_train, y_train, n_steps, *, every: int = 1, classes: list[int] | None = None
) -> SleepInput:
    return ClassMeanImages.from_labelled(x_train, y_train, n_steps, every, classes)


def _noise_input(x_train, y_train, n_steps, *, level: float | None = None) -> SleepInput:
    x = _flat_images(x_train, "x_train")
    # Default: the mean pixel value of the training set (of its mean image), so that the
    # noise drives the input layer with as many spikes per step as the ``mean`` input
    # (sum of intensities equal) and differs from it only by having no image structure.
    # A fixed 0.5 would be about 4x the drive of the MNIST mean image (mean pixel ~0.13).
    if level is None:
        level = float(x.mean(dtype=np.float64))
    return UniformNoise(level, x.shape[1], n_steps)


#: Sleep inputs an experiment can choose, by name: each builds a :class:`SleepInput` from
#: the training images (N, n_in) or (N, h, w), their labels (N,) and T, with the options
#: its keyword-only arguments name (:func:`sleep_input_options`).
SLEEP_INPUTS: dict[str, Callable[..., SleepInput]] = {
    "masked-mean": _masked_mean_input,  # the reference's input
    "mean": _mean_input,
    "samples": _samples_input,
    "class-means": _class_means_input,
    "noise": _noise_input,
}
#: The reference's input, the default.
DEFAULT_SLEEP_INPUT = "masked-mean"


def sleep_input_options(name: str) -> dict[str, object]:
    """The options of sleep input ``name`` and their defaults (None: data-dependent).

    Raises
    ------
    ValueError
        An unknown name; the message lists the known ones.
    """
    if name not in SLEEP_INPUTS:
        raise ValueError(unknown_name("sleep input", name, SLEEP_INPUTS))
    params = inspect.signature(SLEEP_INPUTS[name]).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def make_sleep_input(
    name: str, x_train: np.ndarray, y_train: np.ndarray | None, n_steps: int, **options
) -> SleepInput:
    """The sleep input ``name`` (a key of :data:`SLEEP_INPUTS`) of a training set.

    Parameters
    ----------
    name : str
        ``masked-mean`` (default; option ``patch``, 11), ``mean``, ``samples`` (options
        ``every``, 1, and ``pool_size``, 1000), ``class-means`` (options ``every``, 1,
        and ``classes``, all present) or ``noise`` (option ``level``, default the mean
        pixel value of ``x_train``).
    x_train : ndarray, shape (N, n_in) or (N, height, width)
        Training images, intensities in [0, 1]; pixels in the input layer's order.
    y_train : ndarray, shape (N,), or None
        Integer labels; needed by ``class-means`` only.
    n_steps : int
        Number of sleep steps T.
    **options
        The input's options (:func:`sleep_input_options`).

    Returns
    -------
    SleepInput

    Raises
    ------
    ValueError
        Unknown name or option, or bad data or option values (the message says which).
    """
    accepted = sleep_input_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        known = ", ".join(accepted) or "none"
        raise ValueError(
            f"sleep input {name!r} has no option {', '.join(map(repr, unknown))} "
            f"(its options: {known})"
        )
    kinds = {
        p.name: str(p.annotation)
        for p in inspect.signature(SLEEP_INPUTS[name]).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    for key, value in options.items():
        _check_option_type(name, key, value, kinds[key])
    return SLEEP_INPUTS[name](x_train, y_train, n_steps, **options)


def _check_option_type(name: str, key: str, value: object, annotation: str) -> None:
    """An option's value is of the type its keyword argument declares: a whole number
    for ``int`` (5.5 and true are not patch sizes), a number for ``float``, whole numbers
    for ``list[int]``; None only where the declaration allows it."""

    def whole(v) -> bool:
        return isinstance(v, int | np.integer) and not isinstance(v, bool)

    def number(v) -> bool:
        return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)

    if value is None and "None" in annotation:
        return
    if annotation.startswith("list[int]"):
        ok = isinstance(value, list | tuple) and all(whole(v) for v in value)
        want = "a list of whole numbers, e.g. [0,1,2]"
    elif annotation.startswith("int"):
        ok, want = whole(value), "a whole number"
    elif annotation.startswith("float"):
        ok, want = number(value), "a number"
    else:  # an option declared without a type: nothing to check
        return
    if not ok:
        raise ValueError(f"sleep input {name!r}: option {key}={value!r} must be {want}")


def as_input(inputs: SleepInput | np.ndarray, n_in: int) -> SleepInput:
    """``inputs`` as a :class:`SleepInput` checked against ``n_in`` network inputs.

    Raises
    ------
    ValueError
        A malformed array (see :class:`ArrayInput`) or a size mismatch.
    """
    inp = inputs if isinstance(inputs, SleepInput) else ArrayInput(inputs)
    inp.check(n_in)
    return inp
