"""Shared look of every figure: stage colours, layer colours, figure creation and saving.

Importing this module selects the non-interactive ``Agg`` backend, so figures can be made
on a machine without a display (CI, the GPU box, a notebook kernel started over SSH).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

# Before pyplot is imported anywhere: no GUI backend, figures are only ever written to files.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (must follow matplotlib.use)
from matplotlib.figure import Figure  # noqa: E402

from brainsleep.atomic import atomic_write_with  # noqa: E402

#: One colour per stage (the stages and their order: :data:`brainsleep.formats.STAGES`),
#: used by every figure so a stage looks the same everywhere.
#: sleep and sleep_finetune share a hue family (blue), finetune_only is its control (orange).
STAGE_COLORS: dict[str, str] = {
    "baseline": "#555555",
    "sleep": "#1f77b4",
    "sleep_finetune": "#17becf",
    "finetune_only": "#ff7f0e",
    "strong": "#9467bd",
}

#: Human-readable stage names for legends.
STAGE_LABELS: dict[str, str] = {
    "baseline": "baseline (ANN)",
    "sleep": "sleep",
    "sleep_finetune": "sleep + fine-tune",
    "finetune_only": "fine-tune only",
    "strong": "strong",
}

#: Colours per layer index (0 = input); cycled for deeper networks.
LAYER_COLORS: tuple[str, ...] = ("#7f7f7f", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")

#: Error-bar style of every point-with-CI figure (claims report, sweep, remedies).
ERR_KW = {"capsize": 3, "elinewidth": 1, "markersize": 5}

#: Default DPI of saved PNGs: readable on screen, a few hundred KB at most.
DPI = 120


def stage_color(stage: str) -> str:
    """Colour of a stage.

    Parameters
    ----------
    stage : str
        Stage name as in ``metrics.csv``.

    Returns
    -------
    str
        A matplotlib colour; unknown stages get black so they are visible but obviously
        not one of the known ones.
    """
    return STAGE_COLORS.get(stage, "#000000")


def stage_label(stage: str) -> str:
    """Legend label of a stage (the stage name itself for unknown stages)."""
    return STAGE_LABELS.get(stage, stage)


def layer_color(layer: int) -> str:
    """Colour of a network layer (0 = input layer)."""
    return LAYER_COLORS[int(layer) % len(LAYER_COLORS)]


def layer_name(layer: int, n_layers: int | None = None) -> str:
    """Name of a spiking layer: ``input``, ``hidden k`` or ``output``.

    Parameters
    ----------
    layer : int
        Layer index, 0 = input.
    n_layers : int, optional
        Number of layers including the input; when given, the last one is called
        ``output``.
    """
    if layer == 0:
        return "input (layer 0)"
    if n_layers is not None and layer == n_layers - 1:
        return f"output (layer {layer})"
    return f"hidden {layer} (layer {layer})"


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    panel_size: tuple[float, float] = (4.8, 3.4),
    max_width: float = 16.0,
    **subplot_kw,
) -> tuple[Figure, list]:
    """Create a figure with a grid of panels sized from the panel count.

    Parameters
    ----------
    nrows, ncols : int
        Grid shape.
    panel_size : (float, float)
        Width and height of one panel in inches.
    max_width : float
        Cap on the total width in inches; panels shrink beyond it.
    **subplot_kw
        Passed to :func:`matplotlib.pyplot.subplots` (e.g. ``sharex=True``).

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : list of matplotlib.axes.Axes
        Flat list in row-major order, always a list even for a single panel.
    """
    width = min(panel_size[0] * ncols, max_width)
    height = panel_size[1] * nrows
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained", **subplot_kw
    )
    return fig, list(axes.ravel())


def grid_shape(n_panels: int, max_cols: int = 3) -> tuple[int, int]:
    """Rows and columns for ``n_panels`` panels with at most ``max_cols`` columns."""
    n_panels = max(int(n_panels), 1)
    ncols = min(n_panels, max_cols)
    nrows = -(-n_panels // ncols)
    return nrows, ncols


def hide_unused(axes: list, used: int) -> None:
    """Hide the axes of a grid beyond the first ``used`` panels."""
    for ax in axes[used:]:
        ax.set_visible(False)


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = DPI) -> Path:
    """Write a figure to ``path`` atomically and close it.

    The figure is rendered into a temporary file in the destination directory and renamed
    into place (:func:`brainsleep.atomic.atomic_write_with`), so a reader never sees a
    half-written PNG and an interrupted run never leaves one behind.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Figure to save; it is closed afterwards (also on error) to free its memory.
    path : str or os.PathLike
        Destination; the format follows the suffix (``.png`` normally). Parent
        directories are created.
    dpi : int
        Resolution.

    Returns
    -------
    pathlib.Path
        The destination path.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    try:
        return atomic_write_with(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi))
    finally:
        plt.close(fig)


def note(ax, text: str) -> None:
    """Write a centred grey message in an (empty) panel, e.g. ``not recorded``."""
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="#777777",
        fontsize=10,
    )
