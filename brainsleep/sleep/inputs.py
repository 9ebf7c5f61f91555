"""Sleep inputs: one class per input kind, behind one interface (:class:`SleepInput`).

An input supplies data, never equations: its kind's equations (how the intensity ``x``
of pixel ``i`` is computed each step) are model data in ``models/inputs.py``. The data
are split by how often they change, because a compiled build is reused across runs:

- :meth:`SleepInput.structure`: fixed per compiled build (part of the build key);
- :meth:`SleepInput.structure_values`: per-pixel constants set when the network is built;
- :meth:`SleepInput.run_values`: per-pixel values of one run (run arguments);
- :meth:`SleepInput.timed_values`: per-step values of one run (TimedArray contents).

Kinds: :class:`ArrayInput` (an explicit (T, n_in) array) and :class:`MaskedMeanImage`
(the reference's masked mean image, ``create_masked_input.m``: only the mean image and
two integers per step are stored, so a 20 000-step input never exists as a T x 784
array). A plain (T, n_in) array passed to the engine becomes an :class:`ArrayInput`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from brainsleep.models.inputs import INPUT_KINDS

# Streams derived from the user's seed, so the window positions and the numpy
# reference's uniforms never share random numbers.
WINDOW_STREAM = 1
UNIFORM_STREAM = 2


class SleepInput(ABC):
    """Interface of a sleep input kind (see the module docstring)."""

    #: Key of the kind's equations in ``models/inputs.py``.
    kind: ClassVar[str]

    #: Number of sleep steps T and of input neurons (pixels): given by each kind.
    n_steps: int
    n_inputs: int

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


#: Every input kind by its name in ``models/inputs.py``.
INPUT_CLASSES: dict[str, type[SleepInput]] = {
    c.kind: c for c in (ArrayInput, MaskedMeanImage, ImageSequence)
}


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
