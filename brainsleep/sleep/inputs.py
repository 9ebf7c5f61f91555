"""Sleep inputs: explicit intensity arrays and the reference's masked mean image.

The masked-mean-image input (``create_masked_input.m``) shows, at every step, one
``patch x patch`` window of the training set's mean image, zero elsewhere, at a window
position drawn uniformly per step. Only the mean image and two integers per step (the
window's row and column offsets) are stored; the per-pixel intensities are computed
inside the simulation, so a 20 000-step input never exists as a T x 784 array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Streams derived from the user's seed, so the window positions and the numpy
# reference's uniforms never share random numbers.
WINDOW_STREAM = 1
UNIFORM_STREAM = 2


@dataclass(frozen=True)
class MaskedMeanImage:
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
        """Number of input neurons (pixels)."""
        return int(self.mean_image.size)

    @property
    def shape(self) -> tuple[int, int]:
        """(n_steps, n_inputs), the shape an explicit input array would have."""
        return (self.n_steps, self.n_inputs)

    def windows(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Row and column offsets of every step's window, int32 arrays of length T."""
        h, w = self.mean_image.shape
        rng = np.random.default_rng([seed, WINDOW_STREAM])
        rows = rng.integers(0, h - self.patch + 1, size=self.n_steps, dtype=np.int32)
        cols = rng.integers(0, w - self.patch + 1, size=self.n_steps, dtype=np.int32)
        return rows, cols

    def frame(self, row: int, col: int) -> np.ndarray:
        """Flat (row-major) intensities of one step with its window at (row, col)."""
        out = np.zeros_like(self.mean_image)
        p = self.patch
        out[row : row + p, col : col + p] = self.mean_image[row : row + p, col : col + p]
        return out.ravel()

    def to_array(self, seed: int) -> np.ndarray:
        """The full (T, n_inputs) array; for tests and small T only."""
        rows, cols = self.windows(seed)
        return np.stack([self.frame(r, c) for r, c in zip(rows, cols, strict=True)])


def check_inputs(inputs, n_in: int):
    """Validate the sleep input against the network's input size; return (kind, n_steps)."""
    if isinstance(inputs, MaskedMeanImage):
        if inputs.n_inputs != n_in:
            raise ValueError(
                f"masked mean image has {inputs.n_inputs} pixels but the first weight layer "
                f"expects {n_in} inputs"
            )
        return "masked", inputs.n_steps
    x = np.asarray(inputs)
    if x.ndim != 2:
        raise ValueError(
            f"inputs must be a (T, n_in) array or a MaskedMeanImage, got shape {x.shape}"
        )
    if x.shape[1] != n_in:
        raise ValueError(
            f"inputs have {x.shape[1]} columns but the first weight layer expects {n_in}"
        )
    if x.shape[0] < 1:
        raise ValueError("inputs have 0 steps; give at least one row")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise ValueError("inputs contain NaN or inf (or are not numeric)")
    if x.min() < 0:
        raise ValueError("inputs contain negative intensities; they must be >= 0")
    return "array", int(x.shape[0])
