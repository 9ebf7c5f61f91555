"""Sleep parameter sets of the reference code, as data: partial overrides by name.

Each preset is ``[max_rate, inc, dec, beta_1, beta_2, beta_3, alpha_scale]`` from the
reference scripts (T = 20 000 steps, dt = 0.001), keyed by the names the model declares
(``models/src.py``: ``max_rate``, ``inc``, ``dec``, ``v_thresh`` = beta_l) plus the
engine's ``alpha_scale`` (the layer scales are the data-based alphas times it). Anything
a preset leaves out keeps the model's declared default (decay 0.999).
They came from an automated search on one network each and transfer poorly: tune your
own on a validation split (``--search``).
"""

PRESETS = {
    "reduced_mnist_10ep": {
        "max_rate": 42.162268,
        "inc": 0.022175,
        "dec": 0.076886,
        "v_thresh": (37.312702, 7.101362, 32.780841),
        "alpha_scale": 14.308178,
    },
    "reduced_mnist_20ep": {
        "max_rate": 56.274254,
        "inc": 0.089164,
        "dec": 0.094930,
        "v_thresh": (39.355043, 18.459940, 35.408674),
        "alpha_scale": 2.683161,
    },
    "reduced_mnist_40ep": {
        "max_rate": 29.393650,
        "inc": 0.031111,
        "dec": 0.000001,
        "v_thresh": (8.102056, 26.252258, 33.832234),
        "alpha_scale": 2.023822,
    },
    "mnist_class_incremental": {
        "max_rate": 239.515363,
        "inc": 0.032064,
        "dec": 0.003344,
        "v_thresh": (14.548, 44.560, 38.046),
        "alpha_scale": 55.882,
    },
    "fashion_class_incremental": {
        "max_rate": 181.047,
        "inc": 0.041001,
        "dec": 0.003344,
        "v_thresh": (40.447, 27.597, 33.109),
        "alpha_scale": 31.593,
    },
}
