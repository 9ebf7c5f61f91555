"""SRC: the neuron and Hebbian synapse of Sleep Replay Consolidation, as Brian2 strings.

This is the reference rule of Tadros, Krishnan, Ramyaa & Bazhenov (the MATLAB function
``sleepnn_old.m``), written as data. Copy this file, edit the equations, and pass the
copy to the engine (``run_sleep(..., model="path/to/copy.py")`` or ``--model``): the
engine never hard-codes an equation.

The engine's contract with a model file (checked when the file is loaded):
- ``INPUT``, ``NEURON`` and ``SYNAPSE`` dicts with the keys used below;
- the input group reads ``x``, the engine-defined input intensity of this step;
- shared variables that the engine sets from ``SleepParams`` each run:
  input ``rescale`` = 1 / (dt * max_rate); neuron ``v_thresh`` (one per layer) and
  ``decay``; synapse ``alpha`` (one per layer), ``inc`` and ``dec``;
- the synaptic weight is called ``w``; the membrane potential is ``v``.
Any other name used in the strings must be a key of ``CONSTANTS``.

Step order inside one time step (fixed by the engine, as in the reference loop):
decay of every layer; input spikes; then for each layer in turn: transmission from
the previous layer (``on_pre``), threshold, Hebbian update (``on_post``), reset.
"""

# Width of the weight-dependence g(w): g falls from 2 to 0 around w = 0 within a few
# multiples of this (reference: exp(-w / 0.001)).
W_SHARPNESS = 0.001

CONSTANTS = {"w_sharpness": W_SHARPNESS}

# Input layer: pixel i spikes in a step with probability min(1, 2 * dt * max_rate * x).
# The reference writes the test as (u * rescale) / 2 <= x with one fresh uniform u per
# pixel per step; the same form keeps the arithmetic identical. A pixel with x = 0 has
# P = 0, so it gets no draw: most pixels lie outside the masked window at any step.
INPUT = {
    "equations": """
        rescale : 1 (shared)    # 1 / (dt * max_rate)
    """,
    "threshold": "x > 0 and rand() * rescale / 2 <= x",
    "reset": "",
}

# Integrate-and-fire neuron: no leak current, but a multiplicative decay once per step,
# a hard threshold and a reset to 0. No refractory period, no lower bound on v.
NEURON = {
    "equations": """
        v : 1                   # membrane potential (dimensionless)
        v_thresh : 1 (shared)   # firing threshold of this layer (beta_l)
        decay : 1 (shared)      # multiplicative decay per step (0.999)
    """,
    "decay_step": "v = decay * v",
    "threshold": "v >= v_thresh",
    "reset": "v = 0",
}

# Hebbian synapse. A presynaptic spike adds alpha * w to the postsynaptic potential.
# When the postsynaptic neuron fires, every synapse onto it changes once:
# potentiated by inc * g(w) if its presynaptic neuron fired in this step, depressed by
# dec * g(w) otherwise. g is sharply DEcreasing in w, so strong synapses barely move.
SYNAPSE = {
    "equations": """
        w : 1                   # weight, copied from and back to the ANN
        alpha : 1 (shared)      # data-based scale of this layer (normalisation)
        inc : 1 (shared)        # potentiation rate
        dec : 1 (shared)        # depression rate
        g_w = 2 * (1 - 1 / (1 + exp(-w / w_sharpness))) : 1
    """,
    "on_pre": "v_post += alpha * w",
    "on_post": """
        pre_fired = int(lastspike_pre == t)
        g = g_w                 # evaluate g(w) once: it is used twice below
        w += pre_fired * inc * g - (1 - pre_fired) * dec * g
    """,
}
