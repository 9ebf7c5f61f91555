"""SRC variant: additive, bounded Hebbian rule (no weight dependence g(w)).

An example of an edited plasticity rule. Everything is as in ``src.py`` except the
synapse: potentiation adds ``inc`` and depression subtracts ``dec`` outright, and the
weight is clipped to [-W_MAX, W_MAX]. Without g(w), strong synapses keep growing until
the bound stops them, which is exactly what the reference's g was designed to prevent.

Run it with ``run_sleep(..., model="src_additive")`` or ``--model models/src_additive.py``.
"""

# Hard bound on the weight magnitude.
W_MAX = 1.0

CONSTANTS = {"w_max": W_MAX}

INPUT = {
    "equations": """
        rescale : 1 (shared)    # 1 / (dt * max_rate)
    """,
    "threshold": "x > 0 and rand() * rescale / 2 <= x",
    "reset": "",
}

NEURON = {
    "equations": """
        v : 1                   # membrane potential (dimensionless)
        v_thresh : 1 (shared)   # firing threshold of this layer
        decay : 1 (shared)      # multiplicative decay per step
    """,
    "decay_step": "v = decay * v",
    "threshold": "v >= v_thresh",
    "reset": "v = 0",
}

SYNAPSE = {
    "equations": """
        w : 1                   # weight
        alpha : 1 (shared)      # data-based scale of this layer
        inc : 1 (shared)        # potentiation step
        dec : 1 (shared)        # depression step
    """,
    "on_pre": "v_post += alpha * w",
    "on_post": """
        pre_fired = int(lastspike_pre == t)
        w = clip(w + pre_fired * inc - (1 - pre_fired) * dec, -w_max, w_max)
    """,
}
