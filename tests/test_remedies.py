"""Remedies for little or imbalanced data (issue 14): augmentation, mixup, class weights,
oversampling, logit adjustment; their checks in the recipe, the configuration and the
command line."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from brainsleep.ann import REMEDY_NAMES, Recipe, build_model, get_recipe, get_weights, train
from brainsleep.ann.remedies import (
    AUGMENT_TRANSLATE,
    LOGIT_ADJUST_TAU,
    MIXUP_ALPHA,
    Remedies,
    augment,
    balanced_epoch,
    check_remedies,
    class_weights,
    logit_offsets,
    mixup,
    mixup_lambda,
    remedy_loss,
)
from brainsleep.ann.training import _batch_loss
from brainsleep.experiment.__main__ import build_parser
from brainsleep.experiment.config import ConfigError, ExperimentConfig, _check_remedies
from tests.test_experiment import refusal

torch.set_num_threads(1)

# 6 / 3 / 1 examples of classes 0 / 1 / 2
Y_IMBALANCED = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# ----------------------------------------------------------------------------- augment


def _digit_batch(n: int = 6) -> torch.Tensor:
    """Flat 28 x 28 images of a bright bar in the middle (shifts and rotations move it)."""
    x = torch.zeros(n, 28, 28)
    x[:, 8:20, 12:16] = 1.0
    return x.reshape(n, 784)


def test_augment_moves_pixels_keeps_shape_and_mass():
    x = _digit_batch()
    out = augment(x, _gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)
    # a shift of at most 10 % (about 3 pixels) keeps the centred bar inside the image:
    # bilinear resampling and rotation change its mass by little
    assert torch.allclose(out.sum(dim=1), x.sum(dim=1), rtol=0.1)
    # each image gets its own draw
    assert not torch.equal(out[0], out[1])
    # centre of mass moves by at most the translation plus what a 10 degree rotation of
    # the bar about the image centre can add (a pixel or so)
    cols = torch.arange(28.0).repeat(28)
    com = (out * cols).sum(1) / out.sum(1)
    assert (com - 13.5).abs().max() <= 28 * AUGMENT_TRANSLATE + 1.5


def test_augment_is_reproducible_with_the_generator_and_leaves_global_rng_alone():
    x = _digit_batch()
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = augment(x, _gen(5))
    after = torch.rand(3)
    assert torch.equal(before, after), "the global torch generator must be untouched"
    assert torch.equal(a, augment(x, _gen(5)))
    assert not torch.equal(a, augment(x, _gen(6)))


def test_augment_refuses_non_image_inputs():
    with pytest.raises(ValueError, match=r"\(batch, 784\) images, got \(2, 10\)"):
        augment(torch.zeros(2, 10), _gen(0))


# ------------------------------------------------------------------------------- mixup


def test_mixup_lambda_follows_the_generator():
    assert mixup_lambda(_gen(0)) == mixup_lambda(_gen(0))
    assert mixup_lambda(_gen(0)) != mixup_lambda(_gen(1))
    g = _gen(3)
    lams = np.array([mixup_lambda(g) for _ in range(4000)])
    assert lams.min() >= 0 and lams.max() <= 1
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) (0.179 for a = 0.2; 1/12 if uniform)
    assert abs(lams.mean() - 0.5) < 0.03
    assert abs(lams.var() - 1 / (4 * (2 * MIXUP_ALPHA + 1))) < 0.015
    assert len(set(lams.tolist())) > 3990  # a fresh draw per batch


def test_mixup_targets_are_convex_combinations():
    x = torch.rand(8, 5, generator=_gen(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2, 0])
    t = F.one_hot(y, 3).float()
    xm, tm, lam = mixup(x, t, _gen(7))
    assert xm.shape == x.shape and xm.dtype == x.dtype and tm.shape == t.shape
    torch.testing.assert_close(tm.sum(dim=1), torch.ones(8))
    assert (tm >= 0).all() and (tm <= 1).all()
    # the same draws, by hand: lambda, then the partner of each example
    g = _gen(7)
    lam2 = mixup_lambda(g)
    perm = torch.randperm(8, generator=g)
    assert lam == lam2 and 0 < lam < 1
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x[perm])
    torch.testing.assert_close(tm, lam * t + (1 - lam) * t[perm])
    assert not torch.equal(xm, x)


# ---------------------------------------------------------------------- class weights


def test_class_weights_are_inverse_frequencies_with_mean_1():
    w = class_weights(Y_IMBALANCED, 3)
    # 1/6, 1/3, 1 over their mean 1/2
    torch.testing.assert_close(w, torch.tensor([1 / 3, 2 / 3, 2.0], dtype=torch.float64))
    assert float(w.mean()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="class-weighted.*class\\(es\\) 3"):
        class_weights(Y_IMBALANCED, 4)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse_half_sum"])
def test_class_weighted_loss_by_hand(loss):
    out = torch.randn(10, 3, generator=_gen(1))
    t = F.one_hot(Y_IMBALANCED, 3).float()
    w = class_weights(Y_IMBALANCED, 3)
    got = float(remedy_loss(out, t, loss, weights=w))
    o, tt, y = out.numpy().astype(np.float64), t.numpy(), Y_IMBALANCED.numpy()
    per = (
        -(tt * _log_softmax(o)).sum(1) if loss == "cross_entropy" else 0.5 * ((o - tt) ** 2).sum(1)
    )
    wi = np.array([1 / 3, 2 / 3, 2.0])[y]
    assert got == pytest.approx((wi * per).sum() / wi.sum(), rel=1e-5)
    assert abs(got - per.mean()) > 1e-3  # the weights change the loss on this batch
    if loss == "cross_entropy":  # torch's own weighted cross-entropy agrees
        assert got == pytest.approx(float(F.cross_entropy(out, Y_IMBALANCED, weight=w.float())))


@pytest.mark.parametrize("loss", ["cross_entropy", "mse_half_sum"])
def test_remedy_loss_without_remedies_is_the_plain_loss(loss):
    out = torch.randn(7, 4, generator=_gen(2))
    y = torch.tensor([0, 1, 2, 3, 3, 1, 0])
    got = remedy_loss(out, F.one_hot(y, 4).float(), loss)
    torch.testing.assert_close(got, _batch_loss(out, y, loss))


# ------------------------------------------------------------------------ oversample


def test_oversample_epochs_are_class_balanced_and_of_the_same_size():
    order = balanced_epoch(Y_IMBALANCED, 3, _gen(0))
    assert order.shape == (10,) and order.dtype == torch.int64
    counts = torch.bincount(Y_IMBALANCED[order], minlength=3)
    assert counts.sum() == 10 and int(counts.max() - counts.min()) <= 1
    assert int((order == 9).sum()) >= 3  # the one example of class 2, drawn with replacement
    assert torch.equal(order, balanced_epoch(Y_IMBALANCED, 3, _gen(0)))
    assert not torch.equal(order, balanced_epoch(Y_IMBALANCED, 3, _gen(1)))
    # every epoch balanced; over many, the remainder spreads and every example is drawn
    g = _gen(1)
    epochs = [balanced_epoch(Y_IMBALANCED, 3, g) for _ in range(300)]
    per_epoch = torch.stack([torch.bincount(Y_IMBALANCED[o], minlength=3) for o in epochs])
    assert set(per_epoch.flatten().tolist()) == {3, 4}
    orders = torch.cat(epochs)
    assert all(abs(c - 1000) < 60 for c in per_epoch.sum(0).tolist())
    assert set(orders.tolist()) == set(range(10))


def test_oversample_keeps_the_number_of_steps():
    x, y = _data(60)
    plain = get_recipe("reference", epochs=3, batch_size=8)
    over = dataclasses.replace(plain, remedies=("oversample",))
    steps = [
        train(build_model(r, (784, 8, 3), 0), x, y, r, progress=False).n_steps
        for r in (plain, over)
    ]
    assert steps == [3 * (60 // 8)] * 2


# ---------------------------------------------------------------------- logit adjust


def test_logit_adjusted_loss_is_cross_entropy_of_adjusted_logits():
    prior = np.array([0.6, 0.3, 0.1])
    offsets = logit_offsets(Y_IMBALANCED, 3)
    torch.testing.assert_close(
        offsets, torch.tensor(LOGIT_ADJUST_TAU * (np.log(prior) - np.log(prior).mean()))
    )
    out = torch.randn(10, 3, generator=_gen(4))
    got = float(
        remedy_loss(out, F.one_hot(Y_IMBALANCED, 3).float(), "cross_entropy", None, offsets)
    )
    z = out.numpy().astype(np.float64) + LOGIT_ADJUST_TAU * np.log(prior)  # Menon et al.
    want = -_log_softmax(z)[np.arange(10), Y_IMBALANCED.numpy()].mean()
    assert got == pytest.approx(want, rel=1e-5)
    assert abs(got - float(F.cross_entropy(out, Y_IMBALANCED))) > 1e-3
    # balanced labels: no adjustment at all (also under the squared loss)
    assert torch.equal(logit_offsets(torch.tensor([0, 1, 2, 2, 1, 0]), 3), torch.zeros(3).double())


# ------------------------------------------------------------------------ the checks


def test_remedy_names_are_checked_and_ordered():
    assert check_remedies(["oversample", "mixup"]) == ("mixup", "oversample")
    r = get_recipe("strong", remedies=["logit-adjust", "mixup"])
    assert r.remedies == ("mixup", "logit-adjust")
    assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r  # config.json round trip
    for bad, match in [
        (("foo",), "unknown remedy 'foo'; known: augment, mixup, class-weighted"),
        (("mixup", "mixup"), "'mixup' is given twice"),
        ("mixup", "not the string"),
    ]:
        with pytest.raises(ValueError, match=match) as exc:
            get_recipe("strong", remedies=bad)
        assert "\n" not in str(exc.value) and "Recipe 'strong'" in str(exc.value)


def test_logit_adjust_needs_the_cross_entropy_loss(tmp_path, capsys):
    """Under the reference's squared loss with ReLU outputs the offsets put the common
    classes' targets below 0: its Fashion-MNIST baselines diverged (loss to 3e9, NaN).
    Refused by the recipe, and by the command line before anything is trained or written."""
    with pytest.raises(ValueError, match="logit-adjust needs loss 'cross_entropy'") as exc:
        get_recipe("reference", remedies=["logit-adjust"])
    assert "\n" not in str(exc.value)
    assert get_recipe("strong", remedies=["logit-adjust"]).remedies == ("logit-adjust",)
    line = refusal(["--remedy", "logit-adjust", "--device", "reference"], tmp_path, capsys)
    assert "--recipe reference" in line and "cross_entropy" in line
    cfg = ExperimentConfig(recipe="strong", remedies=("logit-adjust",))
    _check_remedies(cfg)  # accepted
    assert cfg.remedies == ("logit-adjust",)


def test_validate_refuses_unknown_or_repeated_remedies():
    cfg = ExperimentConfig(remedies=("oversample", "mixup"))
    _check_remedies(cfg)
    assert cfg.remedies == ("mixup", "oversample")
    with pytest.raises(
        ConfigError, match=r"^--remedy: unknown remedy 'foo'; known: augment, mixup, "
    ):
        _check_remedies(ExperimentConfig(remedies=("mixup", "foo")))
    with pytest.raises(ConfigError, match="--remedy: mixup is given twice"):
        _check_remedies(ExperimentConfig(remedies=("mixup", "mixup")))


@pytest.mark.parametrize("argv", [["--remedy", "foo"], ["--remedy", "oversample", "oversample"]])
def test_cli_refuses_bad_remedy_in_one_line_and_writes_nothing(argv, tmp_path, capsys):
    assert refusal([*argv, "--device", "reference"], tmp_path, capsys).startswith("error: --remedy")


def test_help_lists_the_remedies_and_their_constants(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping inside the names
    text = build_parser().format_help()
    flat = " ".join(text.split())
    assert "--remedy" in text
    assert f"one or more of: {', '.join(REMEDY_NAMES)}" in flat
    assert f"alpha {MIXUP_ALPHA:g}" in flat and f"tau {LOGIT_ADJUST_TAU:g}" in flat
    assert build_parser().parse_args([]).remedy == []


def test_fingerprint_changes_with_a_remedy_and_not_without(monkeypatch):
    plain = ExperimentConfig(device="reference")
    fp = plain.fingerprint()
    assert ExperimentConfig(device="reference", remedies=("mixup",)).fingerprint() != fp
    assert (
        ExperimentConfig(device="reference", remedies=("mixup",)).fingerprint()
        != ExperimentConfig(device="reference", remedies=("oversample",)).fingerprint()
    )
    # no remedy: the fingerprint of a configuration without the field (old results stay valid)
    to_dict = ExperimentConfig.to_dict
    monkeypatch.setattr(
        ExperimentConfig,
        "to_dict",
        lambda self: {k: v for k, v in to_dict(self).items() if k != "remedies"},
    )
    assert plain.fingerprint() == fp


def test_pipeline_recipe_carries_the_remedies(tmp_path):
    from brainsleep.experiment.pipeline import CellKey, CellRunner

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 20)
    data = {
        "x_train": rng.random((200, 784)).astype(np.float32),
        "y_train": y,
        "x_test": rng.random((20, 784)).astype(np.float32),
        "y_test": np.arange(20) % 10,
    }
    cfg = ExperimentConfig(device="reference", fractions=[0.5], remedies=("oversample",))
    runner = CellRunner(cfg, CellKey("mnist", 0.5, "none", 0), data, tmp_path)
    assert runner.recipe.name == "reference" and runner.recipe.remedies == ("oversample",)
    cfg = ExperimentConfig(device="reference", fractions=[0.5])
    assert CellRunner(cfg, CellKey("mnist", 0.5, "none", 0), data, tmp_path).recipe.remedies == ()


# ------------------------------------------------------------------------ end to end


def _data(n: int, seed: int = 0):
    """Imbalanced blobs, 3 classes as flat 28 x 28 images (class 2 rare)."""
    rng = np.random.default_rng(seed)
    protos = (np.random.default_rng(1234).random((3, 784)) < 0.3).astype(np.float32)
    y = np.r_[np.zeros(n // 2), np.ones(n // 2 - n // 10), np.full(n // 10, 2)].astype(np.int64)
    x = np.clip(protos[y] + 0.2 * rng.standard_normal((n, 784)), 0, 1).astype(np.float32)
    return x, y


@pytest.mark.parametrize("name", ["reference", "strong"])
def test_train_with_every_remedy(name):
    x, y = _data(60)
    plain = get_recipe(name, epochs=3, batch_size=16, early_stopping_patience=None)
    # every remedy the recipe takes (logit-adjust needs the cross-entropy loss)
    usable = [r for r in REMEDY_NAMES if plain.loss == "cross_entropy" or r != "logit-adjust"]
    full = dataclasses.replace(plain, remedies=tuple(usable))

    def weights(recipe, seed):
        model = build_model(recipe, (784, 8, 3), 0)
        hist = train(model, x, y, recipe, seed=seed, progress=False)
        assert len(hist.loss) == 3 and np.isfinite(hist.loss).all()
        return get_weights(model)

    a, b, c = weights(full, 0), weights(full, 0), weights(full, 1)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))  # a seed, one result
    assert not all(np.array_equal(u, v) for u, v in zip(a, c, strict=True))
    p = weights(plain, 0)
    assert not all(np.array_equal(u, v) for u, v in zip(a, p, strict=True))


@pytest.mark.parametrize("remedy", REMEDY_NAMES)
def test_train_applies_each_remedy(remedy):
    x, y = _data(60)
    plain = get_recipe("strong", epochs=2, batch_size=16, early_stopping_patience=None)
    out = []
    for recipe in (plain, dataclasses.replace(plain, remedies=(remedy,))):
        model = build_model(recipe, (784, 8, 3), 0)
        train(model, x, y, recipe, seed=0, progress=False)
        out.append(get_weights(model))
    assert not all(np.array_equal(u, v) for u, v in zip(*out, strict=True))


def test_remedies_for_training_refuses_a_missing_class():
    with pytest.raises(ValueError, match="logit-adjust.*class\\(es\\) 3"):
        Remedies.for_training(["logit-adjust"], Y_IMBALANCED, 4)
    assert Remedies.for_training(["oversample", "mixup"], Y_IMBALANCED, 4).weights is None
