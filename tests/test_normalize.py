"""Data-based normalisation against hand-computed small networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainsleep.ann import MLP, get_weights, set_weights
from brainsleep.normalize import alphas_for_model, normalization_alphas

# A 2-2-2-2 network small enough to push through by hand.
X = np.array([[3.0, 0.0], [1.0, 1.0]])
W1 = np.array([[2.0, -1.0], [0.5, 0.5]])
W2 = np.array([[1.0, 0.0], [0.0, 8.0]])
W3 = np.array([[0.5, 0.5], [-1.0, 0.1]])
WEIGHTS = [W1, W2, W3]

# Test mode with hidden_scale 0.75, worked by hand:
# layer 1: z = [6, 1.5], [1, 1] -> relu, *0.75 -> [4.5, 1.125], [0.75, 0.75]
#          act max 4.5 (6 unscaled), weight max 2 -> s1 = 4.5
# layer 2: z = [4.5, 9], [0.75, 6] -> relu, *0.75 -> [3.375, 6.75], [0.5625, 4.5]
#          act max 6.75, weight max 8 -> s2 = 8
# layer 3 (output, not scaled): z = [0.5*3.375 + 0.5*6.75, -3.375 + 0.675]
#          = [5.0625, -2.7]; [0.28125 + 2.25, -0.5625 + 0.45] = [2.53125, -0.1125]
#          act max 5.0625, weight max 0.5 -> s3 = 5.0625
S_075 = [4.5, 8.0, 5.0625]
ACT_075 = [4.5, 6.75, 5.0625]
WMAX = [2.0, 8.0, 0.5]


def test_hand_computed_reference_quirk():
    n = normalization_alphas(WEIGHTS, X)
    np.testing.assert_allclose(n.activation_max, ACT_075, rtol=1e-15)
    np.testing.assert_allclose(n.weight_max, WMAX, rtol=1e-15)
    np.testing.assert_allclose(n.s, S_075, rtol=1e-15)
    # f1 = s1, f2 = s2/f1, f3 = s3/f2 (prev = f)
    f1 = 4.5
    f2 = 8.0 / f1
    f3 = 5.0625 / f2
    np.testing.assert_allclose(n.factors, [f1, f2, f3], rtol=1e-15)
    np.testing.assert_allclose(n.alphas, [1 / f1, 1 / f2, 1 / f3], rtol=1e-15)
    # closed form of the quirk
    s1, s2, s3 = S_075
    np.testing.assert_allclose(n.alphas, [1 / s1, s1 / s2, s2 / (s1 * s3)], rtol=1e-14)
    assert n.quirk is True and n.hidden_scale == 0.75 and n.alpha_scale == 1.0


def test_hand_computed_without_quirk():
    n = normalization_alphas(WEIGHTS, X, quirk=False)
    s1, s2, s3 = S_075
    np.testing.assert_allclose(n.alphas, [1 / s1, s1 / s2, s2 / s3], rtol=1e-14)
    quirk = normalization_alphas(WEIGHTS, X, quirk=True)
    # the forms agree on layers 1-2 and differ on layer 3
    np.testing.assert_allclose(n.alphas[:2], quirk.alphas[:2], rtol=1e-15)
    assert not np.isclose(n.alphas[2], quirk.alphas[2])


def test_hidden_scale_one_hand_computed():
    # Without scaling: layer 1 -> [6, 1.5], [1, 1]: s1 = max(2, 6) = 6
    # layer 2 -> [6, 12], [1, 8]: s2 = max(8, 12) = 12
    # layer 3 -> [0.5*6 + 0.5*12, -6 + 1.2] = [9, <0]; [0.5 + 4, -1 + 0.8]: s3 = 9
    n = normalization_alphas(WEIGHTS, X, hidden_scale=1.0)
    np.testing.assert_allclose(n.s, [6.0, 12.0, 9.0], rtol=1e-15)
    np.testing.assert_allclose(n.alphas, [1 / 6, 6 / 12, 12 / (6 * 9)], rtol=1e-14)


def test_alpha_scale_multiplies_every_alpha():
    base = normalization_alphas(WEIGHTS, X)
    scaled = normalization_alphas(WEIGHTS, X, alpha_scale=14.308178)
    np.testing.assert_allclose(scaled.alphas, np.array(base.alphas) * 14.308178, rtol=1e-14)
    assert scaled.s == base.s and scaled.alpha_scale == 14.308178


def test_weight_max_wins_when_activations_small():
    x = X * 0.01  # activations become tiny, the weight maxima decide
    n = normalization_alphas(WEIGHTS, x)
    np.testing.assert_allclose(n.s, WMAX, rtol=1e-15)


def test_batch_size_does_not_change_result():
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(5, 4)), rng.normal(size=(6, 5)), rng.normal(size=(3, 6))]
    x = rng.random((37, 4))
    a = normalization_alphas(ws, x, batch_size=1000)
    b = normalization_alphas(ws, x, batch_size=4)
    np.testing.assert_allclose(a.alphas, b.alphas, rtol=1e-15)
    # the closed form holds on an arbitrary net, too
    s1, s2, s3 = a.s
    np.testing.assert_allclose(a.alphas, [1 / s1, s1 / s2, s2 / (s1 * s3)], rtol=1e-13)


@pytest.mark.parametrize(
    ("weights", "x", "match"),
    [
        ([W1, W2 * np.nan, W3], X, "layer 2: weights contain NaN"),
        ([W1, W2, np.where(W3 > 0, np.inf, W3)], X, "layer 3: weights contain NaN or inf"),
        (WEIGHTS, np.array([[np.nan, 0.0], [1.0, 1.0]]), "x contains NaN"),
        ([W1, np.ones((2, 3)), W3], X, "layer 2: weights"),
        ([W1, W2, np.ones((2, 5))], X, "layer 3"),
        (WEIGHTS, np.ones((2, 3)), "layer 1: .* but x provides 3"),
        (WEIGHTS, np.ones(2), "2-D"),
        ([], X, "no weight"),
        (WEIGHTS, np.zeros((0, 2)), "no rows"),
    ],
)
def test_bad_inputs(weights, x, match):
    with pytest.raises(ValueError, match=match):
        normalization_alphas(weights, x)


def test_zero_scale_layer_is_an_error():
    with pytest.raises(ValueError, match="layer 2: scale is 0"):
        normalization_alphas([W1, -np.abs(W2), W3], X)


@pytest.mark.parametrize(
    "kw", [{"alpha_scale": 0.0}, {"hidden_scale": -1.0}, {"alpha_scale": np.nan}]
)
def test_bad_scales(kw):
    with pytest.raises(ValueError, match="must be finite and > 0"):
        normalization_alphas(WEIGHTS, X, **kw)


@pytest.mark.parametrize(
    ("style", "dropout", "expected_scale"),
    [("reference", 0.25, 0.75), ("reference", 0.5, 0.5), ("inverted", 0.25, 1.0)],
)
def test_alphas_for_model_picks_hidden_scale(style, dropout, expected_scale):
    model = MLP((2, 2, 2, 2), dropout=dropout, dropout_style=style)
    set_weights(model, WEIGHTS)
    n = alphas_for_model(model, torch.tensor(X, dtype=torch.float32), alpha_scale=3.0)
    assert n.hidden_scale == expected_scale
    ref = normalization_alphas(get_weights(model), X, hidden_scale=expected_scale, alpha_scale=3.0)
    np.testing.assert_allclose(n.alphas, ref.alphas, rtol=1e-12)


def test_activation_max_matches_model_eval_activations():
    # The activations used are the ones the torch model's eval pass feeds forward.
    from brainsleep.ann import hidden_activations

    torch.manual_seed(0)
    model = MLP((6, 5, 4, 3))
    x = np.random.default_rng(1).random((20, 6)).astype(np.float32)
    n = alphas_for_model(model, x)
    acts = hidden_activations(model, x)
    for i, a in enumerate(acts):
        assert n.activation_max[i] == pytest.approx(max(float(a.max()), 0.0), rel=1e-6)


def test_alphas_cache_computes_once_per_weights_and_never_stale(monkeypatch):
    """A search sleeps one baseline many times: its alphas are computed once, equal the
    uncached ones, and a model changed in place gets new ones."""
    import brainsleep.normalize as normalize

    torch.manual_seed(0)
    model = MLP((6, 5, 3))
    x = np.random.default_rng(0).random((20, 6))
    calls = []
    real = normalize.alphas_for_model
    monkeypatch.setattr(normalize, "alphas_for_model", lambda m, xx: calls.append(1) or real(m, xx))
    cache = normalize.AlphasCache(x)
    first = cache(model)
    assert cache(model) is first and len(calls) == 1
    np.testing.assert_array_equal(first.alphas, real(model, x).alphas)
    w = get_weights(model)
    w[0][0, 0] += 0.5
    set_weights(model, w)
    changed = cache(model)
    assert len(calls) == 2 and not np.array_equal(changed.alphas, first.alphas)
    np.testing.assert_array_equal(changed.alphas, real(model, x).alphas)
