"""Standard remedies for little or imbalanced training data, as options of a recipe.

A practitioner facing little data mixes examples (mixup); facing class imbalance, weights
the loss by class, oversamples the rare classes or adjusts the logits by the class prior.
Each is a name in :attr:`Recipe.remedies <brainsleep.ann.recipes.Recipe.remedies>`;
:func:`~brainsleep.ann.training.train` applies them through one :class:`Remedies` made
from those names and the training labels. They combine with each other and with sleep.

* ``augment``: random affine shifts and rotations of the 28 x 28 images
  (``kornia.augmentation.RandomAffine``), :data:`AUGMENT_DEGREES`, :data:`AUGMENT_TRANSLATE`.
* ``mixup``: convex combinations of pairs of training examples and of their one-hot
  targets (Zhang et al. 2018), :data:`MIXUP_ALPHA`.
* ``class-weighted``: the loss weighted per class by inverse training-class frequency.
* ``oversample``: every epoch is a class-balanced sample, with replacement, of the size of
  the training set.
* ``logit-adjust``: the logit-adjusted loss (Menon et al. 2021), :data:`LOGIT_ADJUST_TAU`;
  softmax cross-entropy only (a :class:`~brainsleep.ann.recipes.Recipe` with the squared
  loss refuses it: there the offsets move targets below 0, out of reach of ReLU outputs,
  and training diverges).

The three class-prior corrections (``class-weighted``, ``oversample``, ``logit-adjust``)
may be combined; each corrects for the same prior, so together they compound (e.g.
``class-weighted`` with ``oversample`` weights a class by about ``1 / prior**2``).

References
----------
E. Riba, D. Mishkin, D. Ponsa, E. Rublee, G. Bradski (2020), "Kornia: an Open Source
Differentiable Computer Vision Library for PyTorch", WACV (``RandomAffine``; torchvision's
CUDA-only wheel for torch 2.13 cannot be imported with the CPU torch this project pins).
H. Zhang, M. Cisse, Y. N. Dauphin, D. Lopez-Paz (2018), "mixup: Beyond Empirical Risk
Minimization", ICLR.
A. K. Menon, S. Jayasumana, A. S. Rawat, H. Jain, A. Veit, S. Kumar (2021), "Long-tail
learning via logit adjustment", ICLR.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from brainsleep.names import REMEDY_NAMES, unknown_name

__all__ = [
    "LOGIT_ADJUST_TAU",
    "MIXUP_ALPHA",
    "REMEDIES",
    "REMEDY_NAMES",
    "Remedies",
    "augment",
    "balanced_epoch",
    "check_remedies",
    "class_counts",
    "class_weights",
    "logit_offsets",
    "mixup",
    "mixup_lambda",
    "remedy_loss",
]

#: ``augment``: rotations uniform in +-10 degrees and shifts uniform in +-10 % of the image
#: side (about 3 pixels), each per image: the usual small-affine augmentation for MNIST
#: digits, which stay legible (larger rotations turn 6 into 9).
AUGMENT_DEGREES = 10.0
AUGMENT_TRANSLATE = 0.1
#: Image side of the flat inputs (MNIST and Fashion-MNIST: 28 x 28 = 784 pixels).
IMAGE_SIDE = 28
#: Mixup's Beta(alpha, alpha) parameter: 0.2, the value Zhang et al. (2018) use for
#: ImageNet and recommend in [0.1, 0.4]; small alpha keeps most mixes close to one example.
MIXUP_ALPHA = 0.2
#: Logit adjustment's temperature tau: 1, the value for which the adjusted loss is
#: consistent for the balanced error (Menon et al. 2021, section 4).
LOGIT_ADJUST_TAU = 1.0

#: Every remedy, with what it does (``--help``, records); keys are :data:`REMEDY_NAMES`.
REMEDIES: dict[str, str] = {
    "augment": f"random affine shift (+-{100 * AUGMENT_TRANSLATE:g} %) and rotation "
    f"(+-{AUGMENT_DEGREES:g} degrees) of each image, per batch (kornia RandomAffine)",
    "mixup": f"mixup of example pairs and their one-hot targets, Beta({MIXUP_ALPHA:g}, "
    f"{MIXUP_ALPHA:g}) per batch",
    "class-weighted": "loss weighted per class by inverse training-class frequency (mean 1)",
    "oversample": "each epoch a class-balanced sample with replacement, of the training size",
    "logit-adjust": f"logit-adjusted loss, tau * log(class prior) added to the outputs, "
    f"tau = {LOGIT_ADJUST_TAU:g} (cross-entropy recipes only: --recipe strong)",
}
if tuple(REMEDIES) != REMEDY_NAMES:  # the command line lists REMEDY_NAMES without torch
    raise ImportError(f"REMEDIES {tuple(REMEDIES)} != brainsleep.names.REMEDY_NAMES {REMEDY_NAMES}")


def check_remedies(names: Iterable[str]) -> tuple[str, ...]:
    """The remedy names, checked, in the canonical order of :data:`REMEDY_NAMES`.

    Parameters
    ----------
    names
        Remedy names in any order.

    Returns
    -------
    tuple of str
        The same names, ordered as :data:`REMEDY_NAMES` (the order applied is fixed).

    Raises
    ------
    ValueError
        A name that is no remedy, a name given twice, or a single string instead of names.
    """
    if isinstance(names, str):
        raise ValueError(f"remedies must be a sequence of names, not the string {names!r}")
    names = list(names)
    for name in names:
        if name not in REMEDY_NAMES:
            raise ValueError(unknown_name("remedy", name, REMEDY_NAMES))
    for name in set(names):
        if names.count(name) > 1:
            raise ValueError(f"remedy {name!r} is given twice")
    return tuple(n for n in REMEDY_NAMES if n in names)


def class_counts(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Examples per class, ``(n_classes,)`` int64."""
    return torch.bincount(y.long(), minlength=n_classes)[:n_classes]


def _require_every_class(counts: torch.Tensor, remedy: str) -> None:
    missing = torch.nonzero(counts == 0).flatten().tolist()
    if missing:
        raise ValueError(
            f"remedy {remedy!r} needs an example of every class; the training labels have "
            f"none of class(es) {', '.join(map(str, missing))}"
        )


def class_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Per-class loss weights: inverse training-class frequency, normalised to mean 1.

    Parameters
    ----------
    y
        Training labels ``(N,)``.
    n_classes
        Number of classes (output units).

    Returns
    -------
    torch.Tensor
        ``(n_classes,)`` float64, ``w_c = (1 / n_c) / mean_k(1 / n_k)``.

    Raises
    ------
    ValueError
        A class without examples.
    """
    counts = class_counts(y, n_classes)
    _require_every_class(counts, "class-weighted")
    inv = 1.0 / counts.to(torch.float64)
    return inv / inv.mean()


def logit_offsets(y: torch.Tensor, n_classes: int, tau: float = LOGIT_ADJUST_TAU) -> torch.Tensor:
    """What logit adjustment adds to the outputs in the loss: ``tau * log(prior)``, centred.

    The prior is the training-class frequency. The offsets are centred (their mean over
    classes subtracted): under softmax cross-entropy that changes nothing (a constant
    added to every logit cancels), so the loss is exactly Menon et al.'s (2021) logit-
    adjusted loss; under the reference's squared loss it makes the adjustment zero on
    balanced data instead of shifting every target by ``-tau * log(1 / n_classes)``.

    Parameters
    ----------
    y
        Training labels ``(N,)``.
    n_classes
        Number of classes.
    tau
        Temperature (:data:`LOGIT_ADJUST_TAU`).

    Returns
    -------
    torch.Tensor
        ``(n_classes,)`` float64.

    Raises
    ------
    ValueError
        A class without examples (its log prior would be minus infinity).
    """
    counts = class_counts(y, n_classes)
    _require_every_class(counts, "logit-adjust")
    log_prior = torch.log(counts.to(torch.float64) / counts.sum())
    return tau * (log_prior - log_prior.mean())


def balanced_epoch(y: torch.Tensor, n_classes: int, g: torch.Generator) -> torch.Tensor:
    """Indices of one oversampled epoch: class-balanced, with replacement, ``len(y)`` long.

    Every class present in ``y`` gets ``len(y) // k`` draws (``k`` classes present), the
    remainder one more each for randomly chosen classes; each class's draws are uniform
    with replacement over its examples, and the epoch is then shuffled. All randomness
    comes from ``g``.

    Parameters
    ----------
    y
        Training labels ``(N,)``.
    n_classes
        Number of classes.
    g
        The training generator.

    Returns
    -------
    torch.Tensor
        ``(N,)`` int64 indices into ``y``.
    """
    n = y.shape[0]
    present = torch.nonzero(class_counts(y, n_classes)).flatten()
    k = present.numel()
    per_class = torch.full((k,), n // k, dtype=torch.int64)
    per_class[torch.randperm(k, generator=g)[: n - k * (n // k)]] += 1
    parts = []
    for c, m in zip(present.tolist(), per_class.tolist(), strict=True):
        members = torch.nonzero(y == c).flatten()
        parts.append(members[torch.randint(members.numel(), (m,), generator=g)])
    order = torch.cat(parts)
    return order[torch.randperm(n, generator=g)]


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random affine shifts and rotations of a batch of flat 28 x 28 images.

    ``kornia.augmentation.RandomAffine`` with :data:`AUGMENT_DEGREES` and
    :data:`AUGMENT_TRANSLATE`, one draw per image, bilinear, zeros outside. kornia draws
    from torch's global generator, so a seed taken from ``g`` seeds it inside
    :func:`torch.random.fork_rng` (the caller's global state is left untouched): the same
    ``g`` state gives the same images.

    Parameters
    ----------
    x
        Images ``(B, 784)``, float.
    g
        The training generator.

    Returns
    -------
    torch.Tensor
        ``(B, 784)``, same dtype.

    Raises
    ------
    ValueError
        ``x`` is not ``(B, 784)``.
    """
    from kornia.augmentation import RandomAffine

    if x.ndim != 2 or x.shape[1] != IMAGE_SIDE * IMAGE_SIDE:
        raise ValueError(
            f"augment: inputs must be (batch, {IMAGE_SIDE * IMAGE_SIDE}) images, got "
            f"{tuple(x.shape)}"
        )
    seed = int(torch.randint(0, 2**62, (1,), generator=g))
    warp = RandomAffine(
        degrees=AUGMENT_DEGREES, translate=(AUGMENT_TRANSLATE, AUGMENT_TRANSLATE), p=1.0
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = warp(x.reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE))
    return out.reshape(x.shape).to(x.dtype)


def mixup_lambda(g: torch.Generator, alpha: float = MIXUP_ALPHA) -> float:
    """One mixing coefficient ``lambda ~ Beta(alpha, alpha)`` drawn from ``g``.

    torch's Beta sampler takes no generator, so a seed is drawn from ``g`` and numpy's
    ``Generator.beta`` samples with it: the same ``g`` state gives the same lambda.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=g))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup(
    x: torch.Tensor, targets: torch.Tensor, g: torch.Generator, alpha: float = MIXUP_ALPHA
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup of a batch (Zhang et al. 2018): each example mixed with another of the batch.

    ``x' = lam * x + (1 - lam) * x[perm]``, likewise the soft targets, with one
    ``lam ~ Beta(alpha, alpha)`` per batch and ``perm`` a random permutation of the batch,
    both drawn from ``g``.

    Parameters
    ----------
    x
        Inputs ``(B, D)``.
    targets
        Soft targets ``(B, C)`` (one-hot rows for plain labels).
    g
        The training generator.
    alpha
        Beta parameter (:data:`MIXUP_ALPHA`).

    Returns
    -------
    tuple
        ``(x_mixed, targets_mixed, lam)``.
    """
    lam = mixup_lambda(g, alpha)
    perm = torch.randperm(x.shape[0], generator=g)
    return lam * x + (1.0 - lam) * x[perm], lam * targets + (1.0 - lam) * targets[perm], lam


def remedy_loss(
    out: torch.Tensor,
    targets: torch.Tensor,
    loss: str,
    weights: torch.Tensor | None = None,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """A recipe's loss with soft targets, optional class weights and logit offsets.

    Per example, on ``z = out + offsets``: ``"cross_entropy"`` gives
    ``-sum_c t_c log softmax(z)_c``, ``"mse_half_sum"`` gives ``0.5 * sum_c (z_c - t_c)**2``.
    Without weights the loss is their mean (for one-hot targets, the recipe's plain loss);
    with class weights ``w`` each example is weighted by ``sum_c t_c w_c`` (its class's
    weight for a one-hot target) and the loss is the weighted mean, as in
    ``torch.nn.CrossEntropyLoss(weight=w)``.

    Parameters
    ----------
    out
        Network outputs ``(B, C)``.
    targets
        Soft targets ``(B, C)``, rows summing to 1.
    loss
        ``"cross_entropy"`` or ``"mse_half_sum"`` (see :class:`~brainsleep.ann.Recipe`).
    weights
        Per-class weights ``(C,)`` or None.
    offsets
        Per-class logit offsets ``(C,)`` added to ``out`` (logit adjustment) or None.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    z = out if offsets is None else out + offsets.to(out.device, out.dtype)
    if loss == "cross_entropy":
        per_example = -(targets * F.log_softmax(z, dim=1)).sum(dim=1)
    elif loss == "mse_half_sum":
        per_example = 0.5 * ((z - targets) ** 2).sum(dim=1)
    else:
        raise ValueError(f"remedy_loss: unknown loss {loss!r}")
    if weights is None:
        return per_example.mean()
    w = targets @ weights.to(out.device, out.dtype)
    return (w * per_example).sum() / w.sum()


@dataclass(frozen=True)
class Remedies:
    """The remedies of one training run, prepared from the training labels.

    Attributes
    ----------
    names
        The remedy names, canonical order.
    n_classes
        Number of classes (output units).
    weights
        ``class-weighted``: per-class weights (:func:`class_weights`), else None.
    offsets
        ``logit-adjust``: per-class logit offsets (:func:`logit_offsets`), else None.
    """

    names: tuple[str, ...]
    n_classes: int
    weights: torch.Tensor | None = None
    offsets: torch.Tensor | None = None

    @classmethod
    def for_training(cls, names: Iterable[str], y: torch.Tensor, n_classes: int) -> Remedies:
        """Check ``names`` and compute what they need from the training labels ``y``.

        Raises
        ------
        ValueError
            An unknown name, or a class without examples where a remedy needs every class.
        """
        names = check_remedies(names)
        return cls(
            names=names,
            n_classes=int(n_classes),
            weights=class_weights(y, n_classes) if "class-weighted" in names else None,
            offsets=logit_offsets(y, n_classes) if "logit-adjust" in names else None,
        )

    def epoch_order(self, y: torch.Tensor, g: torch.Generator) -> torch.Tensor | None:
        """``oversample``: the indices of the next epoch (:func:`balanced_epoch`); else None
        (the plain epoch, a permutation of the training set)."""
        if "oversample" not in self.names:
            return None
        return balanced_epoch(y, self.n_classes, g)

    def batch(
        self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and soft targets of a batch: augmented if asked, one-hot targets, then
        mixup if asked (augment first: mixup mixes the augmented images)."""
        if "augment" in self.names:
            x = augment(x, g)
        targets = F.one_hot(y, self.n_classes).to(x.dtype)
        if "mixup" in self.names:
            x, targets, _ = mixup(x, targets, g)
        return x, targets

    def loss(self, out: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
        """The recipe's loss with these remedies (:func:`remedy_loss`)."""
        return remedy_loss(out, targets, loss, self.weights, self.offsets)
