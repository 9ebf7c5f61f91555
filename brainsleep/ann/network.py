"""The network: a bias-free ReLU perceptron (:class:`MLP`) and access to its weights.

This module holds the torch model with its two dropout styles and the reference's
identity gradient through the output ReLU (see :mod:`brainsleep.ann` for the
conventions), the input checks every entry point shares (:func:`_as_float_tensor`,
:func:`_as_labels`), weight access as numpy arrays (:func:`get_weights`,
:func:`set_weights`), and eval-mode forward passes in batches (:func:`hidden_activations`
and the :func:`_eval_batches` iterator that evaluation uses).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

DEFAULT_SIZES: tuple[int, ...] = (784, 1200, 1200, 10)
DROPOUT_STYLES = ("reference", "inverted")
OUTPUT_GRADS = ("identity", "relu")


class _ReluIdentityGrad(torch.autograd.Function):
    """ReLU forward, identity backward: the reference's output layer (see package doc)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:
        return z.clamp_min(0.0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad


class MLP(nn.Module):
    """Bias-free fully connected ReLU network with reference or inverted dropout.

    Parameters
    ----------
    sizes
        Layer widths, input first, e.g. ``(784, 1200, 1200, 10)``.
    dropout
        Drop probability on hidden layers (the input and output are never dropped).
    dropout_style
        ``"reference"`` (non-inverted, eval activations scaled by ``1 - dropout``) or
        ``"inverted"`` (train activations scaled by ``1 / (1 - dropout)``).
    output_relu
        Apply a ReLU to the output layer (the reference does).
    output_grad
        Backward pass through the output ReLU: ``"identity"`` (reference) or ``"relu"``.
        Ignored when ``output_relu`` is False.

    Notes
    -----
    Dropout masks are drawn from :attr:`dropout_generator` when it is set (``train``
    sets it so that a seed fixes every mask), else from torch's global generator.
    """

    def __init__(
        self,
        sizes: Sequence[int] = DEFAULT_SIZES,
        dropout: float = 0.25,
        dropout_style: str = "reference",
        output_relu: bool = True,
        output_grad: str = "identity",
    ) -> None:
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"MLP sizes must be >= 2 positive widths, got {sizes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP dropout must be in [0, 1), got {dropout}")
        if dropout_style not in DROPOUT_STYLES:
            raise ValueError(
                f"MLP dropout_style must be one of {DROPOUT_STYLES}, got {dropout_style!r}"
            )
        if output_grad not in OUTPUT_GRADS:
            raise ValueError(f"MLP output_grad must be one of {OUTPUT_GRADS}, got {output_grad!r}")
        self.sizes = sizes
        self.dropout = float(dropout)
        self.dropout_style = dropout_style
        self.output_relu = bool(output_relu)
        self.output_grad = output_grad
        self.layers = nn.ModuleList(
            nn.Linear(n_in, n_out, bias=False)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.dropout_generator: torch.Generator | None = None

    @property
    def keep(self) -> float:
        """Keep probability ``1 - dropout``."""
        return 1.0 - self.dropout

    @property
    def eval_hidden_scale(self) -> float:
        """Factor applied to hidden activations in eval mode (0.75 for the reference)."""
        return self.keep if self.dropout_style == "reference" else 1.0

    def config(self) -> dict[str, Any]:
        """Constructor arguments as a plain dict (for model files)."""
        return {
            "sizes": list(self.sizes),
            "dropout": self.dropout,
            "dropout_style": self.dropout_style,
            "output_relu": self.output_relu,
            "output_grad": self.output_grad,
        }

    def _dropout(self, a: torch.Tensor) -> torch.Tensor:
        """Apply the hidden-layer dropout of the current mode to post-ReLU ``a``."""
        if self.dropout == 0.0:
            return a
        if not self.training:
            return a * self.eval_hidden_scale if self.dropout_style == "reference" else a
        # Same test as the reference's nnff: keep where rand > dropoutFraction. Drawn on
        # the CPU (train's generator is a CPU one), so every training device sees the
        # same masks.
        u = torch.rand(a.shape, generator=self.dropout_generator, dtype=a.dtype, device="cpu")
        mask = (u > self.dropout).to(a.device, a.dtype)
        if self.dropout_style == "reference":
            return a * mask
        return a * mask / self.keep

    def _output(self, z: torch.Tensor) -> torch.Tensor:
        if not self.output_relu:
            return z
        if self.output_grad == "identity":
            return _ReluIdentityGrad.apply(z)
        return torch.relu(z)

    def forward_all(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Forward pass that also returns the hidden activations.

        Returns
        -------
        out
            Output layer values (post-ReLU if ``output_relu``).
        fed
            Per hidden layer, the activation the next layer receives: post-ReLU, then
            dropout mask (train) or eval scaling (eval) applied.
        raw
            Per hidden layer, the post-ReLU values before dropout/scaling.
        """
        fed: list[torch.Tensor] = []
        raw: list[torch.Tensor] = []
        a = x
        for layer in self.layers[:-1]:
            r = torch.relu(layer(a))
            a = self._dropout(r)
            raw.append(r)
            fed.append(a)
        return self._output(self.layers[-1](a)), fed, raw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output layer values for a batch ``x`` of shape ``(B, sizes[0])``."""
        return self.forward_all(x)[0]


def _as_float_tensor(x: np.ndarray | torch.Tensor, n_in: int, what: str = "x") -> torch.Tensor:
    """``x`` as a float32 CPU tensor of shape ``(N, n_in)``, with checks."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()  # torch warns on read-only arrays (e.g. a loaded data set's)
    t = torch.as_tensor(x).detach().to("cpu", torch.float32)
    if t.ndim != 2 or t.shape[1] != n_in:
        raise ValueError(f"{what} must have shape (N, {n_in}), got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{what} contains NaN or inf")
    return t


def _as_labels(
    y: np.ndarray | torch.Tensor, n: int, n_classes: int, what: str = "y"
) -> torch.Tensor:
    """``y`` as an int64 CPU tensor of shape ``(n,)`` with values in ``[0, n_classes)``."""
    if isinstance(y, np.ndarray) and not y.flags.writeable:
        y = y.copy()
    t = torch.as_tensor(y).detach().to("cpu")
    if t.is_floating_point():
        raise ValueError(f"{what} must hold integer class labels, got dtype {t.dtype}")
    t = t.to(torch.int64)
    if t.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {tuple(t.shape)}")
    if n and (int(t.min()) < 0 or int(t.max()) >= n_classes):
        raise ValueError(
            f"{what} labels must lie in [0, {n_classes}), got [{int(t.min())}, {int(t.max())}]"
        )
    return t


def get_weights(model: MLP) -> list[np.ndarray]:
    """Copies of the weight matrices as float64 arrays of shape ``(n_out, n_in)``."""
    return [layer.weight.detach().cpu().to(torch.float64).numpy().copy() for layer in model.layers]


def set_weights(model: MLP, weights: Sequence[np.ndarray]) -> None:
    """Overwrite the model's weights (cast to the parameter dtype).

    Raises
    ------
    ValueError
        Wrong number of matrices, or a matrix with the wrong shape or NaN/inf values.
    """
    if len(weights) != len(model.layers):
        raise ValueError(
            f"set_weights: expected {len(model.layers)} weight matrices, got {len(weights)}"
        )
    arrays = []
    for i, (w, layer) in enumerate(zip(weights, model.layers, strict=True), start=1):
        a = np.asarray(w.detach().cpu() if isinstance(w, torch.Tensor) else w, dtype=np.float64)
        if a.shape != tuple(layer.weight.shape):
            raise ValueError(
                f"set_weights: layer {i}: expected shape {tuple(layer.weight.shape)}, got {a.shape}"
            )
        if not np.isfinite(a).all():
            raise ValueError(f"set_weights: layer {i}: weights contain NaN or inf")
        arrays.append(a)
    with torch.no_grad():
        for a, layer in zip(arrays, model.layers, strict=True):
            layer.weight.copy_(torch.from_numpy(a).to(layer.weight.dtype))


@torch.no_grad()
def _eval_batches(
    model: MLP, x: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]]:
    """Yield ``forward_all`` results in eval mode, batch by batch; restores the mode.

    Each batch runs where the model's weights are (a GPU while training there) and comes
    back as CPU tensors.
    """
    was_training = model.training
    device = model.layers[0].weight.device
    model.eval()
    try:
        for start in range(0, x.shape[0], batch_size):
            out, fed, raw = model.forward_all(x[start : start + batch_size].to(device))
            yield out.cpu(), [a.cpu() for a in fed], [a.cpu() for a in raw]
    finally:
        model.train(was_training)


def hidden_activations(
    model: MLP, x: np.ndarray | torch.Tensor, raw: bool = False, batch_size: int = 1000
) -> list[torch.Tensor]:
    """Hidden-layer activations in eval mode.

    Parameters
    ----------
    model
        The network.
    x
        Inputs, shape ``(N, sizes[0])``.
    raw
        False (default): the values the next layer receives, i.e. post-ReLU times the
        eval scaling (``1 - dropout`` for reference dropout, 1 for inverted); this is
        what the reference's ``nnff`` stores in ``nn.a`` in test mode. True: post-ReLU
        values without the scaling. Both have the same zero pattern.
    batch_size
        Rows per forward pass (bounds memory).

    Returns
    -------
    list of torch.Tensor
        One float32 tensor ``(N, width)`` per hidden layer.
    """
    t = _as_float_tensor(x, model.sizes[0])
    parts: list[list[torch.Tensor]] = [[] for _ in model.layers[:-1]]
    for _, fed, rw in _eval_batches(model, t, batch_size):
        for i, a in enumerate(rw if raw else fed):
            parts[i].append(a)
    return [
        torch.cat(p) if p else torch.empty(0, w)
        for p, w in zip(parts, model.sizes[1:-1], strict=True)
    ]
