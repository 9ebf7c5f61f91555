"""SRC: the neuron and Hebbian synapse of Sleep Replay Consolidation, as Brian2 strings.

This is the reference rule of Tadros, Krishnan, Ramyaa & Bazhenov (the MATLAB function
``sleepnn_old.m``), written as data. Copy this file, edit the equations, and pass the
copy to the engine (``run_sleep(..., model="path/to/copy.py")`` or ``--model``): the
engine never hard-codes an equation.

The engine's contract with a model file (checked when the file is loaded):
- ``INPUT``, ``NEURON`` and ``SYNAPSE`` dicts with the keys used below;
- ``PARAMETERS``: every tunable constant, declared once (default, unit, bounds, meaning,
  search range). Each is a shared variable of the same name in exactly one block; the
  engine sets it in every run (per layer where ``per_layer``), ``--sleep-params`` and
  presets set it by name, the search explores it. To make a constant tunable, add it
  here and as ``name : unit (shared)`` in its block: nothing outside this file changes;
- the input group reads ``x``, the engine-defined input intensity of this step (its
  kind, e.g. the reference's masked mean image, is chosen apart: ``models/inputs.py``);
- the synapse declares ``alpha : 1 (shared)``, the conversion's layer scale, which the
  engine sets (data-based normalisation alpha times ``alpha_scale``);
- the synaptic weight is called ``w``; the membrane potential is ``v``.
Any other name used in the strings must be a key of ``CONSTANTS``.

Step order inside one time step (fixed by the engine, as in the reference loop):
decay of every layer; input spikes; then for each layer in turn: transmission from
the previous layer (``on_pre``), threshold, Hebbian update (``on_post``), reset.
"""

from brainsleep.sleep.parameters import Parameter

# Defaults are the reference's ``reduced_mnist_10ep`` set (models/presets.py), which the
# reference code found by search for one network: tune your own (--search).
PARAMETERS = {
    "max_rate": Parameter(
        42.162268,
        "Hz",
        doc="input rate scale: P(spike) = min(1, 2 dt max_rate x)",
        search=(0.25, 4.0),
    ),
    # inference=0: SNN evaluation switches the Hebbian rule off through these two.
    "inc": Parameter(
        0.022175, doc="potentiation rate", search=(0.01, 10.0), search_floor=1e-6, inference=0.0
    ),
    "dec": Parameter(
        0.076886, doc="depression rate", search=(0.01, 10.0), search_floor=1e-6, inference=0.0
    ),
    "v_thresh": Parameter(
        (37.312702, 7.101362, 32.780841),
        per_layer=True,
        exclusive_low=True,
        doc="firing threshold of each layer (beta_l)",
        search=(0.2, 5.0),
    ),
    "decay": Parameter(0.999, high=1.0, doc="multiplicative decay of v per step"),
}

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
        max_rate : Hz (shared)  # declared in PARAMETERS
        rescale = 1 / (dt * max_rate) : 1 (shared)
    """,
    "threshold": "x > 0 and rand() * rescale / 2 <= x",
    "reset": "",
}

# Integrate-and-fire neuron: no leak current, but a multiplicative decay once per step,
# a hard threshold and a reset to 0. No refractory period, no lower bound on v.
NEURON = {
    "equations": """
        v : 1                   # membrane potential (dimensionless)
        v_thresh : 1 (shared)   # declared in PARAMETERS (one per layer)
        decay : 1 (shared)      # declared in PARAMETERS
    """,
    "decay_step": "v = decay * v",
    "threshold": "v >= v_thresh",
    "reset": "v = 0",
    "rest": "v = 0",  # the state between two images in SNN evaluation
}

# Hebbian synapse. A presynaptic spike adds alpha * w to the postsynaptic potential.
# When the postsynaptic neuron fires, every synapse onto it changes once:
# potentiated by inc * g(w) if its presynaptic neuron fired in this step, depressed by
# dec * g(w) otherwise. g is sharply DEcreasing in w, so strong synapses barely move.
SYNAPSE = {
    "equations": """
        w : 1                   # weight, copied from and back to the ANN
        alpha : 1 (shared)      # layer scale of the conversion, set by the engine
        inc : 1 (shared)        # declared in PARAMETERS
        dec : 1 (shared)        # declared in PARAMETERS
        g_w = 2 * (1 - 1 / (1 + exp(-w / w_sharpness))) : 1
    """,
    "on_pre": "v_post += alpha * w",
    "on_post": """
        pre_fired = int(lastspike_pre == t)
        g = g_w                 # evaluate g(w) once: it is used twice below
        w += pre_fired * inc * g - (1 - pre_fired) * dec * g
    """,
}
