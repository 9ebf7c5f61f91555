"""A tiny MNIST-shaped data set written as IDX files, for pipeline tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brainsleep.data import IDX_FILES, write_idx


def make_tiny_mnist(
    directory: Path, n_train_per_class: int = 40, n_test_per_class: int = 10
) -> Path:
    """Class k: a bright 6x6 block at a class-specific place plus noise (learnable)."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)

    def images(n_per_class):
        xs, ys = [], []
        for k in range(10):
            base = np.zeros((28, 28))
            r, c = 3 + 5 * (k // 4), 3 + 6 * (k % 4)
            base[r : r + 6, c : c + 6] = 220
            for _ in range(n_per_class):
                xs.append(np.clip(base + rng.normal(0, 25, (28, 28)), 0, 255))
                ys.append(k)
        order = rng.permutation(len(ys))
        return np.asarray(xs, np.uint8)[order], np.asarray(ys, np.uint8)[order]

    tx, ty = images(n_train_per_class)
    vx, vy = images(n_test_per_class)
    write_idx(directory / f"{IDX_FILES['train_images']}.gz", tx)
    write_idx(directory / f"{IDX_FILES['train_labels']}.gz", ty)
    write_idx(directory / f"{IDX_FILES['test_images']}.gz", vx)
    write_idx(directory / f"{IDX_FILES['test_labels']}", vy)
    return directory


def finish_cells(results_dir: Path, cell_ids) -> None:
    """Mark cells of a hand-written results directory finished (``cells/<id>/done.json``),
    as the pipeline does last: the reports leave unfinished cells out."""
    from brainsleep.formats import CELLS_DIR, DONE_MARKER

    for cell in set(cell_ids):
        d = Path(results_dir) / CELLS_DIR / cell
        d.mkdir(parents=True, exist_ok=True)
        (d / DONE_MARKER).write_text("{}")
