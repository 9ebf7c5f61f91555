"""SRC variant: additive, bounded Hebbian rule (no weight dependence g(w)).

An example of an edited plasticity rule. The input and the neuron are those of
``src.py`` (imported, not copied); only the synapse differs: potentiation adds ``inc``
and depression subtracts ``dec`` outright, and the weight is clipped to
[-w_max, w_max]. Without g(w), strong synapses keep growing until the bound stops them,
which is exactly what the reference's g was designed to prevent. ``w_max`` is a declared
parameter, so ``--sleep-params`` can set it and ``--search`` leaves it alone.

Run it with ``run_sleep(..., model="src_additive")`` or ``--model models/src_additive.py``.
"""

from brainsleep.models.src import INPUT, NEURON
from brainsleep.models.src import PARAMETERS as SRC_PARAMETERS
from brainsleep.sleep.parameters import Parameter

__all__ = ["CONSTANTS", "INPUT", "NEURON", "PARAMETERS", "SYNAPSE"]

CONSTANTS = {}

PARAMETERS = {
    **SRC_PARAMETERS,
    "w_max": Parameter(1.0, exclusive_low=True, doc="hard bound on the weight magnitude"),
}

SYNAPSE = {
    "equations": """
        w : 1                   # weight
        alpha : 1 (shared)      # layer scale of the conversion, set by the engine
        inc : 1 (shared)        # potentiation step
        dec : 1 (shared)        # depression step
        w_max : 1 (shared)      # bound on |w|
    """,
    "on_pre": "v_post += alpha * w",
    "on_post": """
        pre_fired = int(lastspike_pre == t)
        w = clip(w + pre_fired * inc - (1 - pre_fired) * dec, -w_max, w_max)
    """,
}
