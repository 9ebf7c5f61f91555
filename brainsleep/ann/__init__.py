"""Torch MLP, training recipes, evaluation metrics and checkpoints.

The reference network (tmtadros/SleepReplayConsolidation, DeepLearnToolbox code) is a
784-1200-1200-10 perceptron without biases, ReLU on every layer, the output included,
trained with non-inverted dropout and a half-sum-of-squares loss. :class:`MLP`
reproduces it and also offers the ordinary torch conventions (inverted dropout, linear
output with cross-entropy) for a stronger baseline. Training recipes are plain data
(:class:`Recipe`), so an experiment records exactly how a network was trained.

Modules
-------
* :mod:`~brainsleep.ann.network`: :class:`MLP`, weight access, hidden activations.
* :mod:`~brainsleep.ann.recipes`: :class:`Recipe`, :data:`RECIPES`, :func:`get_recipe`,
  :func:`build_model`.
* :mod:`~brainsleep.ann.remedies`: remedies for little or imbalanced data (mixup, class
  weights, oversampling, logit adjustment), :data:`REMEDY_NAMES`, :class:`Remedies`.
* :mod:`~brainsleep.ann.training`: :func:`train`, :class:`TrainHistory`,
  :func:`resolve_train_device` (CPU or GPU).
* :mod:`~brainsleep.ann.evaluation`: :func:`evaluate`, :class:`Evaluation`.
* :mod:`~brainsleep.ann.checkpoint`: :func:`save_checkpoint`, :func:`load_checkpoint`
  (an MLP file; not to be confused with :func:`brainsleep.sleep.load_model`, which
  loads an equation file).

Conventions
-----------
* Weights are stored as ``nn.Linear.weight``: shape ``(n_out, n_in)``, no biases.
* ``dropout_style="reference"``: while training, hidden activations are multiplied by a
  Bernoulli mask with keep probability ``1 - dropout`` and NOT rescaled; in eval mode
  they are multiplied by ``1 - dropout``. ``"inverted"``: while training the kept
  activations are divided by ``1 - dropout`` (``torch.nn.Dropout`` semantics); in eval
  mode nothing is scaled.
* ``output_grad="identity"`` reproduces the reference's backward pass through the
  output ReLU: DeepLearnToolbox's ``nnbp`` uses ``d = out - target`` for a ReLU output
  layer, i.e. it ignores the ReLU's derivative there (a silent output unit still gets a
  gradient). ``"relu"`` uses the true derivative.
"""

from __future__ import annotations

from .checkpoint import load_checkpoint, save_checkpoint
from .evaluation import Evaluation, evaluate, score
from .network import (
    DEFAULT_SIZES,
    DROPOUT_STYLES,
    MLP,
    OUTPUT_GRADS,
    get_weights,
    hidden_activations,
    set_weights,
)
from .recipes import INITS, LOSSES, OPTIMIZERS, RECIPES, Recipe, build_model, get_recipe
from .remedies import REMEDIES, REMEDY_NAMES, Remedies
from .training import (
    TrainDeviceUnavailableError,
    TrainHistory,
    TrainingDivergedError,
    resolve_train_device,
    train,
    train_baseline,
)

__all__ = [
    "DEFAULT_SIZES",
    "DROPOUT_STYLES",
    "INITS",
    "LOSSES",
    "MLP",
    "OPTIMIZERS",
    "OUTPUT_GRADS",
    "RECIPES",
    "REMEDIES",
    "REMEDY_NAMES",
    "Evaluation",
    "Recipe",
    "Remedies",
    "TrainDeviceUnavailableError",
    "TrainHistory",
    "TrainingDivergedError",
    "build_model",
    "evaluate",
    "score",
    "get_recipe",
    "get_weights",
    "hidden_activations",
    "load_checkpoint",
    "resolve_train_device",
    "save_checkpoint",
    "set_weights",
    "train",
    "train_baseline",
]
