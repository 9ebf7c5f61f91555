"""MLP, recipes, training, evaluation and model files (tiny networks, CPU, 1 thread)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from brainsleep.ann import (
    MLP,
    RECIPES,
    Recipe,
    build_model,
    evaluate,
    get_recipe,
    get_weights,
    hidden_activations,
    load_checkpoint,
    save_checkpoint,
    score,
    set_weights,
    train,
)
from brainsleep.ann import training as training_module
from brainsleep.ann.training import TrainingDivergedError

torch.set_num_threads(1)


def _relu(z):
    return np.maximum(z, 0.0)


def _blobs(n, d=20, k=3, seed=0, p=0.3):
    """Separable data: noisy binary prototypes, one per class, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    protos = (np.random.default_rng(1234).random((k, d)) < p).astype(np.float32)
    y = rng.integers(0, k, n)
    x = np.clip(protos[y] + 0.2 * rng.standard_normal((n, d)), 0, 1).astype(np.float32)
    return x, y.astype(np.int64)


# --------------------------------------------------------------------------- reference step


# A 3-2-2 net with a hidden unit and an output unit that are silent for some samples,
# so both the ReLU masks and the reference's identity gradient at the output matter.
W1 = np.array([[0.5, -0.2, 0.1], [-0.3, 0.4, 0.2]])
W2 = np.array([[0.6, -0.5], [-0.4, 0.7]])
XS = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.2], [0.3, 0.3, 0.3], [1.0, 1.0, 0.0]])
YS = np.array([1, 0, 1, 0])


def _dlt_step(ws, vs, x, onehot, lr, momentum):
    """One DeepLearnToolbox nnff/nnbp/nnapplygrads step (dropout 0, ReLU output).

    Written from the toolbox's formulas: d_out = -(y - out) (no ReLU derivative at the
    output), d_h = (d_next @ W) * (a_h > 0), dW = d_next.T @ a / m,
    v = momentum * v + lr * dW, W -= v. Returns the loss before the update.
    """
    m = x.shape[0]
    a = [x]
    for w in ws:
        a.append(_relu(a[-1] @ w.T))
    e = onehot - a[-1]
    loss = 0.5 * np.sum(e**2) / m
    d = -e
    grads = [None] * len(ws)
    for i in range(len(ws) - 1, -1, -1):
        grads[i] = d.T @ a[i] / m
        if i > 0:
            d = (d @ ws[i]) * (a[i] > 0)
    for i in range(len(ws)):
        vs[i] = momentum * vs[i] + lr * grads[i]
        ws[i] = ws[i] - vs[i]
    return loss


def test_reference_two_sgd_momentum_steps_match_hand_computation():
    # preconditions: some hidden unit and some TARGET output unit are silent
    h = _relu(XS @ W1.T)
    assert (h == 0).any() and ((h @ W2.T)[np.arange(4), YS] < 0).any()

    recipe = get_recipe("reference", dropout=0.0, batch_size=4, epochs=2, lr=0.1)
    model = MLP((3, 2, 2), dropout=0.0)
    set_weights(model, [W1, W2])
    hist = train(model, XS, YS, recipe, progress=False)

    ws, vs = [W1.copy(), W2.copy()], [np.zeros_like(W1), np.zeros_like(W2)]
    onehot = np.eye(2)[YS]
    losses = [_dlt_step(ws, vs, XS, onehot, 0.1, 0.5) for _ in range(2)]

    assert hist.n_steps == 2
    np.testing.assert_allclose(hist.loss, losses, rtol=1e-6)
    for got, want in zip(get_weights(model), ws, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)

    # the true ReLU derivative at the output gives a different trajectory
    other = MLP((3, 2, 2), dropout=0.0, output_grad="relu")
    set_weights(other, [W1, W2])
    train(other, XS, YS, recipe, progress=False)
    assert not np.allclose(get_weights(other)[1], ws[1], atol=1e-6)


def test_cross_entropy_loss_value():
    recipe = get_recipe("strong", dropout=0.0, batch_size=4, epochs=1, early_stopping_patience=None)
    model = MLP((3, 2, 2), dropout=0.0, dropout_style="inverted", output_relu=False)
    set_weights(model, [W1, W2])
    hist = train(model, XS, YS, recipe, progress=False)
    z = _relu(XS @ W1.T) @ W2.T
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert hist.loss[0] == pytest.approx(-logp[np.arange(4), YS].mean(), rel=1e-6)


# --------------------------------------------------------------------------- dropout


def _model(style, sizes=(3, 40, 30, 2), seed=0):
    torch.manual_seed(seed)
    return MLP(sizes, dropout=0.25, dropout_style=style)


def test_reference_eval_scales_hidden_by_keep():
    model = _model("reference").eval()
    x = np.random.default_rng(0).random((7, 3))
    w1, w2, w3 = get_weights(model)
    a1 = _relu(x @ w1.T) * 0.75
    a2 = _relu(a1 @ w2.T) * 0.75
    out = _relu(a2 @ w3.T)
    with torch.no_grad():
        got = model(torch.tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(got, out, rtol=1e-5, atol=1e-7)
    fed = hidden_activations(model, x)
    raw = hidden_activations(model, x, raw=True)
    np.testing.assert_allclose(fed[0].double().numpy(), a1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fed[1].numpy(), raw[1].numpy() * 0.75, rtol=1e-6)


def test_inverted_eval_has_no_scaling():
    model = _model("inverted").eval()
    x = np.random.default_rng(0).random((7, 3))
    w1, w2, w3 = get_weights(model)
    out = _relu(_relu(_relu(x @ w1.T) @ w2.T) @ w3.T)
    with torch.no_grad():
        got = model(torch.tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(got, out, rtol=1e-5, atol=1e-7)
    assert model.eval_hidden_scale == 1.0


@pytest.mark.parametrize(("style", "factor"), [("reference", 1.0), ("inverted", 1 / 0.75)])
def test_train_mask_scaling(style, factor):
    model = _model(style).train()
    model.dropout_generator = torch.Generator().manual_seed(0)
    x = torch.rand(200, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, fed, raw = model.forward_all(x)
    for f, r in zip(fed, raw, strict=True):
        kept = f != 0
        # kept values are the activation times `factor`, nothing else
        torch.testing.assert_close(f[kept], r[kept] * factor)
        active = r > 0
        frac = float(kept[active].float().mean())
        assert 0.70 < frac < 0.80  # keep probability 0.75


def test_masks_follow_the_generator():
    model = _model("reference").train()
    x = torch.rand(20, 3)

    def run(seed):
        model.dropout_generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return model(x)

    torch.testing.assert_close(run(3), run(3), rtol=0, atol=0)
    assert not torch.equal(run(3), run(4))


# --------------------------------------------------------------------------- recipes, init


def test_reference_recipe_is_the_reference():
    r = RECIPES["reference"]
    assert (r.optimizer, r.lr, r.momentum, r.batch_size, r.epochs) == ("sgd", 0.01, 0.5, 100, 10)
    assert (r.loss, r.dropout, r.dropout_style, r.output_relu) == (
        "mse_half_sum",
        0.25,
        "reference",
        True,
    )
    assert (r.init, r.init_scale, r.weight_decay, r.drop_last) == ("uniform", 0.01, 0.0, True)
    assert r.early_stopping_patience is None and r.output_grad == "identity"


def test_get_recipe_overrides_and_errors():
    r = get_recipe("reference", epochs=40)
    assert r.epochs == 40 and RECIPES["reference"].epochs == 10
    with pytest.raises(ValueError, match="unknown recipe .*; known: reference, strong, diehl2015"):
        get_recipe("nope")
    with pytest.raises(ValueError, match="unknown Recipe fields"):
        get_recipe("reference", epoch=3)
    with pytest.raises(ValueError, match="lr must be > 0"):
        get_recipe("reference", lr=0.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        dataclasses.replace(r, loss="hinge")
    assert Recipe.from_dict(r.to_dict()) == r


def test_build_model_init():
    ref = RECIPES["reference"]
    a = build_model(ref, (30, 20, 5), seed=0)
    b = build_model(ref, (30, 20, 5), seed=0)
    c = build_model(ref, (30, 20, 5), seed=1)
    for wa, wb, wc in zip(get_weights(a), get_weights(b), get_weights(c), strict=True):
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc)
        assert np.abs(wa).max() <= 0.01 and np.abs(wa).max() > 0.009
    strong = build_model(RECIPES["strong"], (400, 20, 5), seed=0)
    w = get_weights(strong)[0]
    assert np.abs(w).max() <= 1 / math.sqrt(400) and np.abs(w).max() > 0.9 / math.sqrt(400)
    assert strong.dropout_style == "inverted" and not strong.output_relu


def test_get_set_weights_copies_and_checks():
    model = MLP((3, 2, 2))
    set_weights(model, [W1, W2])
    got = get_weights(model)
    assert got[0].dtype == np.float64 and got[0].shape == (2, 3)
    got[0][:] = 7.0  # a copy: the model is untouched
    np.testing.assert_allclose(get_weights(model)[0], W1, rtol=1e-7)
    with pytest.raises(ValueError, match=r"layer 2: expected shape \(2, 2\), got \(2, 3\)"):
        set_weights(model, [W1, np.zeros((2, 3))])
    with pytest.raises(ValueError, match="layer 1: weights contain NaN"):
        set_weights(model, [W1 * np.nan, W2])
    with pytest.raises(ValueError, match="expected 2 weight matrices, got 1"):
        set_weights(model, [W1])


# --------------------------------------------------------------------------- training


def _train_small(recipe, train_seed, init_seed=0, **kw):
    x, y = _blobs(120)
    model = build_model(recipe, (20, 16, 16, 3), seed=init_seed)
    hist = train(model, x, y, recipe, seed=train_seed, progress=False, **kw)
    return model, hist


@pytest.mark.parametrize("name", ["reference", "strong"])
def test_training_is_deterministic(name):
    recipe = get_recipe(name, epochs=3, batch_size=10, early_stopping_patience=None)
    m1, h1 = _train_small(recipe, 0)
    m2, h2 = _train_small(recipe, 0)
    m3, _ = _train_small(recipe, 1)  # same init, other permutations and masks
    for a, b, c in zip(get_weights(m1), get_weights(m2), get_weights(m3), strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    assert h1.loss == h2.loss


def test_batches_per_epoch_and_step_budget():
    x, y = _blobs(250)
    ref = get_recipe("reference", epochs=2)

    def steps(recipe, n=250, **kw):
        model = build_model(recipe, (20, 8, 3), seed=0)
        return train(model, x[:n], y[:n], recipe, progress=False, **kw)

    assert steps(ref).n_steps == 4  # floor(250 / 100) = 2 full batches per epoch
    assert steps(dataclasses.replace(ref, drop_last=False)).n_steps == 6  # 100, 100, 50
    assert steps(ref, n=50).n_steps == 2  # N < batch: one batch of all N
    h = steps(ref, max_steps=3, epochs=None)  # epochs follow the step budget
    assert (h.n_steps, h.epochs_run, len(h.loss)) == (3, 2, 2)
    assert steps(ref, max_steps=10, epochs=1).n_steps == 2  # whichever comes first


def test_finetune_continues_from_current_weights():
    recipe = get_recipe("reference", epochs=1, batch_size=10)
    model, _ = _train_small(recipe, 0)
    before = get_weights(model)
    x, y = _blobs(120)
    hist = train(model, x, y, recipe, seed=5, progress=False, max_steps=4, epochs=None)
    after = get_weights(model)
    assert hist.n_steps == 4
    assert not np.array_equal(before[0], after[0])
    assert np.abs(after[0] - before[0]).max() < 0.1  # a small move from where it was


def test_early_stopping_restores_best_epoch():
    x, y = _blobs(150)
    xv, yv = _blobs(60, seed=7)
    recipe = get_recipe("strong", epochs=40, batch_size=16, early_stopping_patience=2)
    model = build_model(recipe, (20, 16, 16, 3), seed=0)
    hist = train(model, x, y, recipe, val=(xv, yv), progress=False)
    assert hist.stopped_early and hist.restored_best
    assert hist.epochs_run == hist.best_epoch + 2 == len(hist.val_accuracy)
    assert hist.val_accuracy[hist.best_epoch - 1] == max(hist.val_accuracy)
    assert evaluate(model, xv, yv, 3).accuracy == pytest.approx(max(hist.val_accuracy))


def test_patience_without_validation_warns_and_runs_fixed_epochs():
    x, y = _blobs(40)
    recipe = get_recipe("strong", epochs=2, batch_size=16)
    model = build_model(recipe, (20, 8, 3), seed=0)
    with pytest.warns(UserWarning, match="no validation split"):
        hist = train(model, x, y, recipe, progress=False)
    assert hist.epochs_run == 2 and not hist.stopped_early and hist.best_epoch is None


def test_train_rejects_bad_labels():
    x, y = _blobs(40)
    model = MLP((20, 8, 3))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        train(model, x, y + 3, RECIPES["reference"], progress=False)
    with pytest.raises(ValueError, match=r"shape \(N, 20\)"):
        train(model, x[:, :5], y, RECIPES["reference"], progress=False)


def test_training_that_overflows_stops_loudly_at_the_first_step():
    """Weights so large that the forward pass overflows: the loss is NaN at once."""
    x, y = _blobs(64)
    recipe = get_recipe("reference", epochs=2, batch_size=16, init_scale=1e25)
    model = build_model(recipe, (20, 8, 3), seed=0)
    with pytest.raises(TrainingDivergedError, match=r"loss is nan at step 1 \(epoch 1\)") as e:
        train(model, x, y, recipe, progress=False)
    assert "\n" not in str(e.value) and "recipe 'reference'" in str(e.value)


def test_a_diverging_loss_stops_training_before_it_reaches_the_weights(monkeypatch):
    """Before the check, a NaN loss was recorded, stepped into the weights and the network
    returned as trained (a cell's baseline saved with NaN weights, scored at chance)."""
    x, y = _blobs(64)
    recipe = get_recipe("reference", epochs=3, batch_size=16)
    model = build_model(recipe, (20, 8, 3), seed=0)
    plain, calls = training_module._batch_loss, []

    def loss_overflowing_at_step_6(out, yb, kind):
        calls.append(1)
        value = plain(out, yb, kind)
        return value * math.inf if len(calls) == 6 else value

    monkeypatch.setattr(training_module, "_batch_loss", loss_overflowing_at_step_6)
    seen = []
    real_step = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: (
        seen.append([p.detach().clone() for p in model.parameters()]), real_step(self, *a, **k)
    )[1])  # fmt: skip
    with pytest.raises(TrainingDivergedError, match=r"loss is inf at step 6 \(epoch 2\)"):
        train(model, x, y, recipe, progress=False)
    assert len(seen) == 5  # the inf batch took no step
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_reference_recipe_learns_a_separable_problem():
    # The full 784-1200-1200 width: with the reference's 0.01 init, narrow nets sit near
    # the all-zero output for many epochs (the signal through 3 small layers scales with
    # the widths), so a 128-wide net is not a fair sanity check of the recipe.
    x, y = _blobs(1300, d=784)
    recipe = get_recipe("reference", epochs=3)
    model = build_model(recipe, (784, 1200, 1200, 3), seed=0)
    hist = train(model, x[:1000], y[:1000], recipe, progress=False)
    assert hist.n_steps == 30 and hist.loss[-1] < hist.loss[0]
    assert evaluate(model, x[1000:], y[1000:], 3).accuracy > 0.95


# --------------------------------------------------------------------------- evaluation


def test_evaluation_metrics_on_hand_set_weights():
    # hidden = relu(x) (identity W1), scaled by 0.75; outputs: x1, x2, 0.6*(x1 + x2)
    model = MLP((2, 2, 3), dropout=0.25)
    set_weights(model, [np.eye(2), np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.6]])])
    x = np.array([[1, 0], [1, 0], [0, 1], [1, 1], [1, 1], [0, 0], [0, 1]], dtype=np.float32)
    # (1,0) -> 0; (0,1) -> 1; (1,1) -> (.75, .75, .9) -> 2; (0,0) -> all 0 -> first max 0
    y = np.array([0, 1, 1, 2, 0, 2, 1])
    ev = evaluate(model, x, y, n_classes=4, batch_size=3)
    np.testing.assert_array_equal(ev.predictions, [0, 0, 1, 2, 2, 0, 1])
    assert ev.accuracy == pytest.approx(4 / 7)
    np.testing.assert_allclose(ev.per_class[:3], [1 / 2, 2 / 3, 1 / 2])
    assert np.isnan(ev.per_class[3])
    assert ev.balanced_accuracy == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    want = np.array([[1, 0, 1, 0], [1, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(ev.confusion, want)
    assert ev.confusion.dtype == np.int64
    p = np.array([3, 2, 2]) / 7
    assert ev.pred_entropy == pytest.approx(-(p * np.log(p)).sum())
    # active hidden units per sample: 1/2, 1/2, 1/2, 1, 1, 0, 1/2 -> mean 4/7
    assert ev.active_frac == pytest.approx([4 / 7])
    d = ev.to_dict()
    assert d["acc_class_1"] == pytest.approx(2 / 3) and d["acc_class_3"] is None
    assert d["active_frac_1"] == pytest.approx(4 / 7) and d["n"] == 7
    assert all(isinstance(v, float | int | type(None)) for v in d.values())


def test_score_is_evaluate_accuracy_alone():
    """A search trial's score: the same numbers evaluate gives (hand-set case above)."""
    model = MLP((2, 2, 3), dropout=0.25)
    set_weights(model, [np.eye(2), np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.6]])])
    x = np.array([[1, 0], [1, 0], [0, 1], [1, 1], [1, 1], [0, 0], [0, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 2, 0, 2, 1])
    assert score(model, x, y, n_classes=4, batch_size=3) == pytest.approx(4 / 7)
    assert score(model, x, y, balanced=True, n_classes=4) == pytest.approx(
        (1 / 2 + 2 / 3 + 1 / 2) / 3
    )
    # and on a trained-size random net with unbalanced labels, exactly evaluate's values
    xr, yr = _blobs(300, d=20)
    yr[yr == 2] = 0
    net = build_model(get_recipe("reference"), (20, 16, 3), seed=1)
    ev = evaluate(net, xr, yr, 3)
    assert score(net, xr, yr, n_classes=3) == ev.accuracy
    assert score(net, xr, yr, balanced=True, n_classes=3) == ev.balanced_accuracy
    with pytest.raises(ValueError, match="empty data set"):
        score(model, x[:0], y[:0], n_classes=4)
    with pytest.raises(ValueError, match="3 outputs but n_classes=2"):
        score(model, x, np.zeros(7, dtype=int), n_classes=2)


# --------------------------------------------------------------------------- files


def test_save_load_round_trip(tmp_path):
    recipe = get_recipe("reference", epochs=20)
    model = build_model(recipe, (6, 5, 4, 3), seed=3)
    meta = {"subset": {"fraction": 0.01, "counts": [1, 2, 3]}, "note": "x", "none": None}
    path = save_checkpoint(tmp_path / "m" / "model.pt", model, recipe, 3, meta)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left
    loaded, info = load_checkpoint(path)
    for a, b in zip(get_weights(model), get_weights(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    assert info["recipe"] == recipe and info["seed"] == 3 and info["meta"] == meta
    assert info["torch_version"] == torch.__version__
    assert loaded.config() == model.config() and not loaded.training


def test_save_rejects_non_plain_meta(tmp_path):
    with pytest.raises(ValueError, match=r"meta.arr has unsupported type ndarray"):
        save_checkpoint(tmp_path / "m.pt", MLP((2, 2)), None, 0, {"arr": np.zeros(2)})


def test_corrupt_files_raise_value_error(tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", MLP((6, 5, 3)), RECIPES["strong"], 0, {})
    data = path.read_bytes()
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    other = tmp_path / "other.pt"
    torch.save({"a": 1}, other)
    for p in (trunc, garbage, other):
        with pytest.raises(ValueError, match=p.name) as exc:
            load_checkpoint(p)
        assert "\n" not in str(exc.value)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_early_stopping_falls_back_on_the_best_epoch_when_the_loss_diverges(monkeypatch):
    """With a validation split and patience, a NaN loss stops training and the best
    epoch's weights (from before) are returned, as early stopping would have."""
    x, y = _blobs(64)
    recipe = get_recipe("strong", epochs=6, batch_size=16, early_stopping_patience=3)
    model = build_model(recipe, (20, 8, 3), seed=0)
    plain, calls = training_module._batch_loss, []

    def overflowing_in_epoch_3(out, yb, kind):
        calls.append(1)
        value = plain(out, yb, kind)
        return value * math.inf if len(calls) == 9 else value  # 4 batches per epoch

    monkeypatch.setattr(training_module, "_batch_loss", overflowing_in_epoch_3)
    hist = train(model, x, y, recipe, val=_blobs(30, seed=5), progress=False)
    assert hist.diverged_at_step == 9 and hist.stopped_early and hist.restored_best
    assert hist.epochs_run == 3 and len(hist.val_accuracy) == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_weights_that_overflow_at_the_last_step_are_refused(monkeypatch):
    """The last step has no loss after it to show an overflow: the weights are checked."""
    x, y = _blobs(32)
    recipe = get_recipe("reference", epochs=1, batch_size=16)
    model = build_model(recipe, (20, 8, 3), seed=0)
    real_step, steps = torch.optim.SGD.step, []

    def step_overflowing_last(self, *a, **k):
        out = real_step(self, *a, **k)
        steps.append(1)
        if len(steps) == 2:
            with torch.no_grad():
                model.layers[1].weight[0, 0] = math.inf
        return out

    monkeypatch.setattr(torch.optim.SGD, "step", step_overflowing_last)
    with pytest.raises(TrainingDivergedError, match=r"layer\(s\) \[2\] hold NaN or inf"):
        train(model, x, y, recipe, progress=False)
