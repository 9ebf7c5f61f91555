"""Did the weights change where the sleep rule says they should?

Inputs are the dicts :func:`brainsleep.formats.load_weights` reads from
``weights_<stage>.npz`` (keys ``layer1``..``layerL``, arrays ``(n_out, n_in)``), usually
``weights_baseline`` (before) and ``weights_sleep`` (after).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from brainsleep.docstrings import fill_doc
from brainsleep.formats import weight_layer_index

from .accuracy import aggregate_over_seeds, group_title, setup_fraction_axis
from .style import layer_color, new_figure, note, stage_color

Weights = Mapping[str, np.ndarray]


def _common_layers(before: Weights, after: Weights) -> list[str]:
    layers = [k for k in before if k in after]
    if not layers:
        raise ValueError("before and after share no layer key")
    for k in layers:
        if np.shape(before[k]) != np.shape(after[k]):
            raise ValueError(f"{k}: shape {np.shape(before[k])} != {np.shape(after[k])}")
    return layers


def weight_change_table(before: Weights, after: Weights, *, atol: float = 1e-12) -> pd.DataFrame:
    """How much each layer moved between two weight sets.

    Parameters
    ----------
    before, after : mapping of str to numpy.ndarray
        Weights per layer key (``layer1``..), same shapes.
    atol : float
        A weight counts as changed when ``|after - before| > atol``.

    Returns
    -------
    pandas.DataFrame
        One row per common layer with ``layer, n_out, n_in, norm_before, norm_after``
        (Frobenius norms), ``norm_delta`` (``||after - before||_F``), ``rel_change``
        (``norm_delta / norm_before``, NaN if ``norm_before == 0``), ``mean_abs_change``,
        ``max_abs_change``, ``frac_changed``, ``frac_increased``, ``frac_decreased``,
        ``mean_before``, ``mean_after``.
    """
    rows = []
    for key in _common_layers(before, after):
        b = np.asarray(before[key], dtype=float)
        a = np.asarray(after[key], dtype=float)
        d = a - b
        nb = float(np.linalg.norm(b))
        nd = float(np.linalg.norm(d))
        rows.append(
            {
                "layer": key,
                "n_out": b.shape[0],
                "n_in": b.shape[1] if b.ndim > 1 else 1,
                "norm_before": nb,
                "norm_after": float(np.linalg.norm(a)),
                "norm_delta": nd,
                "rel_change": nd / nb if nb > 0 else np.nan,
                "mean_abs_change": float(np.mean(np.abs(d))),
                "max_abs_change": float(np.max(np.abs(d))) if d.size else 0.0,
                "frac_changed": float(np.mean(np.abs(d) > atol)),
                "frac_increased": float(np.mean(d > atol)),
                "frac_decreased": float(np.mean(d < -atol)),
                "mean_before": float(b.mean()),
                "mean_after": float(a.mean()),
            }
        )
    return pd.DataFrame(rows)


@fill_doc
def pixel_weight_change(
    before: Weights,
    after: Weights,
    *,
    layer: str = "layer1",
    image_shape: tuple[int, int] | None = (28, 28),
) -> np.ndarray:
    """Net weight change per input pixel: sum over hidden units of ``after - before``.

    ``map[p] = sum_j (W_after[j, p] - W_before[j, p])`` for the first weight layer, whose
    arrays are ``(n_hidden, n_pixels)``. Positive: the pixel gained weight (drives the
    hidden layer more after sleep); negative: it lost weight.

    Parameters
    ----------
    %(weights_before_after)s
    layer : str
        Layer key (default the input layer's weights, ``layer1``).
    image_shape : (int, int) or None
        Reshape to this image (default MNIST 28 x 28); None keeps the flat vector. When
        the pixel count does not match, a square shape is tried.

    Returns
    -------
    numpy.ndarray
        ``image_shape`` (or ``(n_in,)``) float64 map.
    """
    d = np.asarray(after[layer], dtype=float) - np.asarray(before[layer], dtype=float)
    per_pixel = d.sum(axis=0)
    if image_shape is None:
        return per_pixel
    if int(np.prod(image_shape)) != per_pixel.size:
        side = int(round(np.sqrt(per_pixel.size)))
        if side * side != per_pixel.size:
            raise ValueError(f"{per_pixel.size} inputs cannot be shown as {image_shape} image")
        image_shape = (side, side)
    return per_pixel.reshape(image_shape)


@fill_doc
def plot_weight_histograms(
    before: Weights,
    after: Weights,
    *,
    labels: tuple[str, str] = ("baseline", "sleep"),
    bins: int = 80,
    title: str | None = None,
) -> Figure:
    """Histograms of the weights before and after, one panel per layer.

    Parameters
    ----------
    %(weights_before_after)s
    labels : (str, str)
        Stage names of ``before`` and ``after``; also pick the colours from
        :data:`analysis.style.STAGE_COLORS`.
    bins : int
        Bins over the common range of both sets.
    %(title)s

    Returns
    -------
    matplotlib.figure.Figure
        Step histograms on a logarithmic count axis.
    """
    layers = _common_layers(before, after)
    fig, axes = new_figure(1, len(layers), panel_size=(4.0, 3.2))
    for ax, key in zip(axes, layers, strict=True):
        b = np.asarray(before[key], dtype=float).ravel()
        a = np.asarray(after[key], dtype=float).ravel()
        lo = float(min(b.min(), a.min()))
        hi = float(max(b.max(), a.max()))
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        for w, lab, ls in ((b, labels[0], "-"), (a, labels[1], "--")):
            counts, _ = np.histogram(w, bins=edges)
            ax.stairs(counts, edges, color=stage_color(lab), linestyle=ls, linewidth=1.4, label=lab)
        ax.set_yscale("log")
        ax.set_title(f"{key} ({b.size} weights)", fontsize=10)
        ax.set_xlabel("weight")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("number of weights")
    axes[0].legend(fontsize=8)
    fig.suptitle(title or f"Weight distribution: {labels[0]} vs {labels[1]}")
    return fig


@fill_doc
def plot_pixel_weight_change(
    before: Weights,
    after: Weights,
    *,
    layer: str = "layer1",
    image_shape: tuple[int, int] = (28, 28),
    title: str | None = None,
) -> Figure:
    """Which input pixels lost or gained weight: :func:`pixel_weight_change` as an image.

    Parameters
    ----------
    %(weights_before_after)s
    layer : str
        First-layer key.
    image_shape : (int, int)
        Image shape of the input.
    %(title)s

    Returns
    -------
    matplotlib.figure.Figure
        Diverging colormap (red = gained, blue = lost) centred at 0 with symmetric limits.
    """
    img = pixel_weight_change(before, after, layer=layer, image_shape=image_shape)
    fig, (ax,) = new_figure(1, 1, panel_size=(4.8, 4.2))
    vmax = float(np.max(np.abs(img)))
    # Symmetric limits keep white at exactly zero change even if all changes have one sign.
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-(vmax or 1.0), vmax=vmax or 1.0)
    im = ax.imshow(img, cmap="RdBu_r", norm=norm, interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, shrink=0.85)
    cb.set_label("Σ over hidden units of ΔW (after − before)")
    ax.set_xlabel("pixel column")
    ax.set_ylabel("pixel row")
    if vmax == 0:
        note(ax, "no change")
    ax.set_title(
        f"gained {np.count_nonzero(img > 0)}, lost {np.count_nonzero(img < 0)} pixels",
        fontsize=9,
    )
    fig.suptitle(title or f"Net {layer} weight change per input pixel")
    return fig


def plot_weight_change_by_fraction(changes: pd.DataFrame) -> Figure:
    """Relative norm change and fraction of changed weights per layer vs training fraction.

    Parameters
    ----------
    changes : pandas.DataFrame
        Rows of :func:`weight_change_table` from several cells with the extra columns
        ``dataset, imbalance, fraction, seed``.

    Returns
    -------
    matplotlib.figure.Figure
        One row per (dataset, imbalance), two columns (``rel_change`` in %,
        ``frac_changed`` in %), one line per layer, mean ± sd over seeds.
    """
    groups = sorted(
        (str(d), str(i))
        for d, i in changes[["dataset", "imbalance"]].drop_duplicates().itertuples(index=False)
    )
    cols = [("rel_change", "‖ΔW‖ / ‖W_before‖ (%)"), ("frac_changed", "weights changed (%)")]
    fig, axes = new_figure(len(groups), len(cols), panel_size=(5.0, 3.4))
    for gi, (dataset, imbalance) in enumerate(groups):
        sel = changes[(changes["dataset"] == dataset) & (changes["imbalance"] == imbalance)]
        for ci, (col, ylabel) in enumerate(cols):
            ax = axes[gi * len(cols) + ci]
            agg = aggregate_over_seeds(sel, col, by=("layer", "fraction"))
            setup_fraction_axis(ax, agg["fraction"].to_numpy(dtype=float))
            for layer in sorted(agg["layer"].unique(), key=weight_layer_index):
                a = agg[agg["layer"] == layer].sort_values("fraction")
                ax.errorbar(
                    a["fraction"],
                    a["mean"] * 100,
                    yerr=a["sd"].fillna(0.0) * 100,
                    color=layer_color(weight_layer_index(layer)),
                    marker="o",
                    markersize=4,
                    capsize=3,
                    label=layer,
                )
            ax.set_xlabel("training fraction (share of the training set)")
            ax.set_ylabel(ylabel)
            ax.set_title(group_title(dataset, imbalance), fontsize=10)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    if groups:
        axes[0].legend(fontsize=8)
    fig.suptitle("Weight change from sleep (sleep vs baseline, mean ± sd over seeds)")
    return fig
