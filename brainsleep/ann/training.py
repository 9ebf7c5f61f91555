"""Training: :func:`train` runs a :class:`~brainsleep.ann.recipes.Recipe` on an MLP.

One seed fixes the epoch permutations, the dropout masks (and the draws of the recipe's
remedies, :mod:`brainsleep.ann.remedies`) and hence the weights on CPU; optional
validation data give per-epoch accuracy and early stopping with restoration of the best
weights. :class:`TrainHistory` records what a call did. Fine-tuning is another
call of :func:`train` on a trained model.

Training runs on the CPU or on a GPU (:func:`resolve_train_device`). Every random draw
is made on the CPU from the seed's generator, on either device, so a GPU sees the same
batches and masks; only the float32 arithmetic differs (another summation order), so
its weights are close to, not bit-identical with, the CPU's.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from brainsleep.names import TRAIN_DEVICES, unknown_name

from .evaluation import _accuracy
from .network import MLP, _as_float_tensor, _as_labels
from .recipes import Recipe, build_model
from .remedies import Remedies


class TrainingDivergedError(ValueError):
    """Training made the loss NaN or infinite: the weights are unusable (the message names
    the recipe, the epoch and the step)."""


class TrainDeviceUnavailableError(RuntimeError):
    """Training on a GPU was asked for where torch sees none (one line saying why)."""


def resolve_train_device(device: str = "auto") -> str:
    """The torch device training runs on: ``"cpu"`` or ``"cuda"``.

    The one place that decides it (the experiment's ``--train-device``, its fingerprint
    and the baseline cache's key all ask here).

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        ``auto``: the GPU where torch sees one (``torch.cuda.is_available()``), else the
        CPU, whose results ``auto`` then gives exactly.

    Returns
    -------
    str
        ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    ValueError
        An unknown name.
    TrainDeviceUnavailableError
        ``"cuda"`` where torch sees no GPU.
    """
    if device not in TRAIN_DEVICES:
        raise ValueError(unknown_name("training device", device, TRAIN_DEVICES))
    if device == "cpu":
        return "cpu"
    has_gpu = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if has_gpu else "cpu"
    if not has_gpu:
        cuda = torch.version.cuda
        build = (
            f"torch {torch.__version__} built for CUDA {cuda}"
            if cuda
            else (f"torch {torch.__version__} is a CPU-only build")
        )
        raise TrainDeviceUnavailableError(
            f"training on cuda needs a GPU that torch can use, and torch sees none ({build}); "
            "train on a GPU machine, or on the CPU (cpu or auto)"
        )
    return "cuda"


@dataclass
class TrainHistory:
    """What :func:`train` did.

    Attributes
    ----------
    loss
        Mean mini-batch loss per epoch (loss of the recipe with its remedies, dropout
        active).
    val_accuracy
        Validation accuracy after each epoch (empty without ``val``).
    best_epoch
        1-based epoch with the best validation accuracy (first one on ties), None
        without ``val``. With early stopping these weights are the ones restored.
    n_steps
        Optimiser steps taken (for step-matched controls).
    epochs_run
        Epochs started (the last one may be partial when ``max_steps`` stopped it).
    stopped_early
        True when patience ran out.
    restored_best
        True when the best-epoch weights were restored at the end.
    diverged_at_step
        The step whose loss was NaN or inf, where training stopped (early stopping then
        restored the best epoch's weights); None when it did not happen.
    wall_s
        Wall-clock seconds.
    """

    loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    n_steps: int = 0
    epochs_run: int = 0
    stopped_early: bool = False
    restored_best: bool = False
    diverged_at_step: int | None = None
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able)."""
        return dataclasses.asdict(self)


def _batch_loss(out: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "mse_half_sum":
        onehot = F.one_hot(y, out.shape[1]).to(out.dtype)
        return 0.5 * ((out - onehot) ** 2).sum() / out.shape[0]
    return F.cross_entropy(out, y)


def _make_optimizer(model: MLP, recipe: Recipe) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if recipe.optimizer == "sgd":
        # torch: v = m*v + g; W -= lr*v. DeepLearnToolbox: v = m*v + lr*g; W -= v.
        # Identical for a constant lr (v_dlt = lr * v_torch); tested by hand.
        return torch.optim.SGD(
            params, lr=recipe.lr, momentum=recipe.momentum, dampening=0.0,
            weight_decay=recipe.weight_decay, nesterov=False,
        )  # fmt: skip
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def _batches(
    n: int,
    batch_size: int,
    drop_last: bool,
    g: torch.Generator,
    order: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Index batches of one epoch from a fresh permutation, or from ``order`` (the indices
    of an oversampled epoch, already shuffled; ``n`` is then its length)."""
    perm = torch.randperm(n, generator=g) if order is None else order
    if n < batch_size:
        return [perm]
    n_batches = n // batch_size if drop_last else -(-n // batch_size)
    return [perm[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]


def _check_compatible(model: MLP, recipe: Recipe) -> None:
    """Warn when the model's architecture settings differ from the recipe's."""
    diffs = [
        f"{k}: model {getattr(model, k)!r} vs recipe {getattr(recipe, k)!r}"
        for k in ("dropout", "dropout_style", "output_relu")
        if getattr(model, k) != getattr(recipe, k)
    ]
    if diffs:
        warnings.warn(
            f"train: model and recipe {recipe.name!r} differ ({'; '.join(diffs)}); "
            "the model's settings are used",
            stacklevel=3,
        )


def train(
    model: MLP,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    recipe: Recipe,
    seed: int = 0,
    val: tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor] | None = None,
    progress: bool = True,
    epochs: int | None = None,
    max_steps: int | None = None,
    threads: int | None = 1,
    device: str = "cpu",
) -> TrainHistory:
    """Train ``model`` in place with ``recipe`` (also used for fine-tuning).

    Parameters
    ----------
    model
        The network; its current weights are the starting point.
    x, y
        Training inputs ``(N, sizes[0])`` (float, e.g. in [0, 1]) and int labels ``(N,)``.
    recipe
        Optimiser, loss, batch size, epochs, early stopping and remedies (class weights,
        class prior and oversampling are computed from ``y``).
    seed
        Seeds ``torch.manual_seed`` and the private generator that draws the epoch
        permutations, the dropout masks and the remedies' draws (oversampled epochs,
        mixup coefficients and pairs): same seed and data give the same weights on CPU.
    val
        Optional ``(x_val, y_val)``: accuracy is recorded per epoch and, if the recipe
        has a patience, drives early stopping with restoration of the best weights.
        A recipe with patience but no ``val`` trains for the fixed epoch count and warns.
    progress
        Show a tqdm bar over epochs.
    epochs
        Overrides ``recipe.epochs``.
    max_steps
        Stop after this many optimiser steps (possibly mid-epoch). If given and
        ``epochs`` is None, epochs run until the step budget is spent.
    threads
        ``torch.set_num_threads`` during training (restored afterwards); None leaves it.
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (:func:`resolve_train_device`). The model
        trains there and is back on the CPU when this returns; the data stay on the CPU
        and each batch goes to the device once drawn.

    Returns
    -------
    TrainHistory

    Raises
    ------
    TrainDeviceUnavailableError
        ``device="cuda"`` where torch sees no GPU.
    TrainingDivergedError
        The loss became NaN or infinite (raised before that batch's step) with no best
        epoch to fall back on (early stopping with a validation split restores it
        instead, see ``diverged_at_step``), or the returned weights are not finite:
        nothing diverged is returned as if it were usable.
    ValueError
        Malformed data or labels, or a model that does not fit the recipe.

    Notes
    -----
    A fresh optimiser is created on every call, so fine-tuning starts with zero momentum
    (Adam moments) rather than the state left by the first training.
    """
    t0 = time.perf_counter()
    dev = torch.device(resolve_train_device(device))
    n_out = model.sizes[-1]
    xt = _as_float_tensor(x, model.sizes[0])
    yt = _as_labels(y, xt.shape[0], n_out)
    if xt.shape[0] == 0:
        raise ValueError("train: empty training set")
    xv = yv = None
    if val is not None:
        xv = _as_float_tensor(val[0], model.sizes[0], "val x")
        yv = _as_labels(val[1], xv.shape[0], n_out, "val y")
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"train: max_steps must be >= 0, got {max_steps}")
    n_epochs = recipe.epochs if epochs is None else int(epochs)
    if max_steps is not None and epochs is None:
        n_epochs = None  # as many as the step budget needs
    early = recipe.early_stopping_patience is not None and val is not None
    if recipe.early_stopping_patience is not None and val is None:
        warnings.warn(
            f"train: recipe {recipe.name!r} asks for early stopping but no validation split "
            f"was given; training for a fixed {n_epochs} epochs",
            stacklevel=2,
        )
    _check_compatible(model, recipe)
    # None for a plain recipe: then training is exactly what it was before remedies.
    remedies = Remedies.for_training(recipe.remedies, yt, n_out) if recipe.remedies else None

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    torch.manual_seed(int(seed))
    g = torch.Generator().manual_seed(int(seed))
    hist = TrainHistory()
    best_state: list[torch.Tensor] | None = None
    best_acc = -math.inf
    since_best = 0
    try:
        model.to(dev)  # before the optimiser: its state lives where the weights do
        opt = _make_optimizer(model, recipe)
        model.dropout_generator = g
        bar = tqdm(total=n_epochs, disable=not progress, desc=f"train[{recipe.name}]", unit="ep")
        epoch = 0
        while (n_epochs is None or epoch < n_epochs) and (
            max_steps is None or hist.n_steps < max_steps
        ):
            model.train()
            losses = []
            order = None if remedies is None else remedies.epoch_order(yt, g)
            for idx in _batches(xt.shape[0], recipe.batch_size, recipe.drop_last, g, order):
                if max_steps is not None and hist.n_steps >= max_steps:
                    break
                opt.zero_grad(set_to_none=True)
                if remedies is None:
                    loss = _batch_loss(model(xt[idx].to(dev)), yt[idx].to(dev), recipe.loss)
                else:
                    xb, targets = remedies.batch(xt[idx], yt[idx], g)
                    loss = remedies.loss(model(xb.to(dev)), targets.to(dev), recipe.loss)
                value = float(loss.detach())
                if not math.isfinite(value):
                    # Stop before the step spreads it into the weights: a diverged
                    # network must never be recorded as a trained one. With early
                    # stopping the best epoch's weights (from before) are what training
                    # returns anyway; without, there is nothing usable.
                    hist.diverged_at_step = hist.n_steps + 1
                    if not (early and best_state is not None):
                        raise TrainingDivergedError(
                            f"training diverged: the loss is {value} at step "
                            f"{hist.n_steps + 1} (epoch {epoch + 1}) of recipe {recipe.name!r} "
                            f"(lr {recipe.lr:g}, remedies {list(recipe.remedies) or 'none'}); "
                            "lower the learning rate or change the recipe or remedies"
                        )
                    break
                loss.backward()
                opt.step()
                hist.n_steps += 1
                losses.append(value)
            epoch += 1
            hist.loss.append(float(np.mean(losses)) if losses else math.nan)
            if hist.diverged_at_step is not None:  # early stopping keeps the best epoch
                hist.stopped_early = True
                break
            postfix = {"loss": f"{hist.loss[-1]:.4f}"}
            if xv is not None:
                acc = _accuracy(model, xv, yv)
                hist.val_accuracy.append(acc)
                postfix["val_acc"] = f"{acc:.4f}"
                if acc > best_acc:
                    best_acc, hist.best_epoch, since_best = acc, epoch, 0
                    if early:
                        best_state = [p.detach().clone() for p in model.parameters()]
                else:
                    since_best += 1
            bar.set_postfix(postfix)
            bar.update(1)
            if early and since_best >= recipe.early_stopping_patience:
                hist.stopped_early = True
                break
        bar.close()
        hist.epochs_run = epoch
        if early and best_state is not None:
            with torch.no_grad():
                for p, b in zip(model.parameters(), best_state, strict=True):
                    p.copy_(b)
            hist.restored_best = True
        bad = [k for k, p in enumerate(model.parameters(), 1) if not torch.isfinite(p).all()]
        if bad:  # the last step can overflow with no loss left to show it
            raise TrainingDivergedError(
                f"training diverged: layer(s) {bad} hold NaN or inf after the last step of "
                f"recipe {recipe.name!r} (lr {recipe.lr:g}); lower the learning rate or "
                "change the recipe or remedies"
            )
    finally:
        model.dropout_generator = None
        model.to("cpu")
        model.eval()
        if threads is not None:
            torch.set_num_threads(old_threads)
    hist.wall_s = time.perf_counter() - t0
    return hist


def train_baseline(
    recipe: Recipe,
    sizes,
    seed: int,
    x: np.ndarray,
    y: np.ndarray,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> tuple[MLP, TrainHistory]:
    """A cell's baseline: a network of ``sizes`` initialised and trained by ``recipe``.

    Everything that decides a trained baseline happens in this package (the key of
    :mod:`brainsleep.experiment.baselines` digests its modules).

    Parameters
    ----------
    recipe : Recipe
        The training recipe, remedies included.
    sizes : sequence of int
        Layer sizes, input first.
    seed : int
        Seeds the initialisation and the training.
    x, y : numpy.ndarray
        Training images ``(n, 784)`` and labels ``(n,)``.
    val : tuple of numpy.ndarray, optional
        Validation images and labels (early stopping reads them).
    progress : bool, optional
        Show a progress bar.
    device : str, optional
        Where to train (:func:`resolve_train_device`); the network returned is on the CPU.

    Returns
    -------
    (MLP, TrainHistory)
    """
    model = build_model(recipe, sizes, seed)
    hist = train(model, x, y, recipe, seed=seed, val=val, progress=progress, device=device)
    return model, hist
