"""Build the sleep network as Brian2 objects from a model file: one builder, every device.

The builder knows no equation: neuron, input and synapse strings come from the model
file (``models/src.py`` by default). It adds only the plumbing: the input intensity
``x`` of each step, the schedule that reproduces the reference loop exactly, and the
monitors.

Schedule of one step (one clock; everything but the decay in the ``thresholds`` slot,
ordered explicitly): decay of every layer (``start``); input threshold; then for each
layer l: transmission from layer l-1 (``on_pre``), threshold of layer l, Hebbian update
(``on_post``, which sees ``lastspike_pre == t`` for presynaptic spikes of this step),
reset of layer l.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .inputs import INPUT_CLASSES, SleepInput
from .model import SleepModel
from .params import SleepParams

# Engine-private shared variables of the input group, set per run: the RNG seed, and the
# number of steps the run lasts (a compiled build holds up to its step capacity).
SEED_VARIABLE = "brainsleep_seed"
STEPS_VARIABLE = "brainsleep_n_steps"
# Whether a compiled run writes its synapses' (pre, post) indices back (1) or not (0): they
# are read once per process, to check the build's connection order (standalone.py).
WRITE_ORDER_VARIABLE = "brainsleep_write_order"
# The fewest steps a compiled build holds when its input kind pads (SleepInput.time_indexed):
# the default T (20 000), the sweeps over T and the class-incremental protocol's growing
# sleeps all share one build. The padding costs 16 bytes per step per run (masked-mean).
MIN_STEP_CAPACITY = 2**17
# Synapse storage order per weight layer: "pre" (presynaptic-major, synapse k = i * n_out + j)
# makes a presynaptic spike's transmission read one contiguous row; "post"
# (postsynaptic-major, k = j * n_in + i) makes a postsynaptic spike's Hebbian update read
# and write one contiguous row. The input layer's transmission dominates (about 90 % of all
# spikes are input spikes), the Hebbian update dominates deeper (benchmarks/sleep_engine.md).
SYNAPSE_ORDERS = ("pre", "post")


def default_synapse_orders(n_layers: int) -> tuple[str, ...]:
    """Presynaptic-major for the first weight layer, postsynaptic-major after it."""
    return ("pre",) + ("post",) * (n_layers - 1)


def step_capacity(n_steps: int, input_kind: str) -> int:
    """Steps a compiled build holds for a run of ``n_steps`` with inputs of ``input_kind``.

    ``n_steps`` itself for kinds whose data is dense in time; otherwise the smallest
    power-of-two multiple of :data:`MIN_STEP_CAPACITY` that holds it, so every T up to it
    runs on one build (the run sets its own T, :data:`STEPS_VARIABLE`).
    """
    if INPUT_CLASSES[input_kind].time_indexed is None:
        return n_steps
    capacity = MIN_STEP_CAPACITY
    while capacity < n_steps:
        capacity *= 2
    return capacity


@dataclass(frozen=True)
class NetworkSpec:
    """Everything that fixes the compiled structure of a sleep network.

    ``input_kind`` names the input class (``brainsleep.sleep.inputs.INPUT_CLASSES``) and
    ``input_structure`` holds its :meth:`~brainsleep.sleep.inputs.SleepInput.structure`
    as sorted (key, value) pairs.
    """

    sizes: tuple[int, ...]  # layer sizes, input first
    n_steps: int
    dt: float
    input_kind: str
    input_structure: tuple = ()
    record_layers: tuple[int, ...] = ()
    rest_every: int = 0  # every layer rests every this many steps (0: never)
    synapse_orders: tuple[str, ...] = ()  # per weight layer (SYNAPSE_ORDERS); () = default

    def __post_init__(self) -> None:
        if not self.synapse_orders:
            object.__setattr__(self, "synapse_orders", default_synapse_orders(self.n_layers))
        bad = [o for o in self.synapse_orders if o not in SYNAPSE_ORDERS]
        if bad or len(self.synapse_orders) != self.n_layers:
            raise ValueError(
                f"synapse_orders {self.synapse_orders} must give one of {SYNAPSE_ORDERS} "
                f"per weight layer ({self.n_layers})"
            )

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def with_step_capacity(self) -> NetworkSpec:
        """This structure with ``n_steps`` raised to the build's :func:`step_capacity`."""
        return replace(self, n_steps=step_capacity(self.n_steps, self.input_kind))

    @classmethod
    def for_inputs(
        cls, sizes, inputs: SleepInput, dt: float, record_layers=(), synapse_orders=()
    ) -> NetworkSpec:
        """The structure that ``inputs`` (a checked :class:`SleepInput`) need on ``sizes``."""
        structure = tuple(
            (k, tuple(v) if isinstance(v, list) else v)
            for k, v in sorted(inputs.structure().items())
        )
        return cls(
            sizes=tuple(int(n) for n in sizes),
            n_steps=inputs.n_steps,
            dt=dt,
            input_kind=inputs.kind,
            input_structure=structure,
            record_layers=tuple(record_layers),
            rest_every=inputs.rest_every,
            synapse_orders=tuple(synapse_orders),
        )

    def placeholder_input(self) -> SleepInput:
        """An input of this structure with zero data (what a compiled build is made with)."""
        cls = INPUT_CLASSES[self.input_kind]
        return cls.placeholder(self.sizes[0], self.n_steps, dict(self.input_structure))


@dataclass
class BrianNetwork:
    """The Brian2 objects of one sleep network, by role."""

    net: object
    input_group: object
    layers: list  # NeuronGroups of layers 1..L
    synapses: list  # Synapses of weight layers 1..L
    monitors: dict  # layer index -> SpikeMonitor
    timed_arrays: dict = field(default_factory=dict)  # name -> TimedArray


# Every group's time of its last spike, which the model's synapses read (``lastspike_pre``
# in on_post). The engine keeps it itself, set by the reset of the spikers only, instead of
# asking Brian2 for it with ``refractory=0 ms``: that also made Brian2 recompute
# ``not_refractory`` for every neuron at every step, a quarter of a sleep run's time in
# benchmarks/sleep_engine.md, for a refractory period of zero.
LASTSPIKE = "lastspike : second"
LASTSPIKE_RESET = "lastspike = t"
# Before the first spike: long before t = 0, as Brian2's own initial lastspike.
LASTSPIKE_INITIAL_S = -1e4


def _with_lastspike(reset: str | None) -> str:
    """A group's reset statements followed by the engine's ``lastspike = t``."""
    return "\n".join(s for s in ((reset or "").strip(), LASTSPIKE_RESET) if s)


def _input_equations(model: SleepModel, inputs: SleepInput) -> str:
    """The model's input equations, the engine's variables and the input kind's equations."""
    return "\n".join(
        [
            model.input["equations"],
            f"{SEED_VARIABLE} : integer (shared)",
            f"{STEPS_VARIABLE} : integer (shared)",
            f"{WRITE_ORDER_VARIABLE} : integer (shared)",
            LASTSPIKE,
            inputs.equations,
        ]
    )


def build_network(
    model: SleepModel, spec: NetworkSpec, inputs: SleepInput | None = None, seed: int = 0
) -> BrianNetwork:
    """Create the Brian2 objects (for whichever device is active) and the Network.

    Values (weights, parameters, input) are set afterwards from :func:`run_values`
    (assigned directly on runtime, passed as ``run_args`` to a compiled binary). The
    TimedArray contents are those of ``inputs`` with ``seed`` (runtime cannot change them
    later); without ``inputs`` (a standalone build) they are placeholders of the right
    size, replaced per run.
    """
    import brian2 as b2

    dt = spec.dt * b2.second
    inputs = inputs if inputs is not None else spec.placeholder_input()
    namespace = {**model.constants, **inputs.namespace()}
    steps = inputs.timed_steps()
    timed = {
        name: b2.TimedArray(values, dt=dt * steps.get(name, 1), name=name)
        for name, values in inputs.timed_values(seed).items()
    }
    namespace.update(timed)

    # One clock, Brian2's defaultclock: brian2cuda's synapse templates refer to it by name.
    b2.defaultclock.dt = dt
    inp = b2.NeuronGroup(
        spec.sizes[0],
        _input_equations(model, inputs),
        threshold=model.input["threshold"],
        reset=_with_lastspike(model.input.get("reset")),
        namespace=namespace,
        name=input_name(),
    )
    inp.lastspike = LASTSPIKE_INITIAL_S * b2.second
    inp.thresholder["spike"].when = "thresholds"
    inp.thresholder["spike"].order = 0
    inp.resetter["spike"].when, inp.resetter["spike"].order = "thresholds", 1
    for var, values in inputs.structure_values().items():
        setattr(inp, var, values)

    layers, synapses, objects = [], [], [inp]
    pre = inp
    for layer in range(1, spec.n_layers + 1):
        grp = b2.NeuronGroup(
            spec.sizes[layer],
            "\n".join([model.neuron["equations"], LASTSPIKE]),
            threshold=model.neuron["threshold"],
            reset=_with_lastspike(model.neuron["reset"]),
            namespace=namespace,
            name=layer_name(layer),
        )
        grp.lastspike = LASTSPIKE_INITIAL_S * b2.second
        decay = grp.run_regularly(model.neuron["decay_step"], when="start", name=f"decay{layer}")
        if spec.rest_every:  # back to rest at the start of every presentation, before decay
            objects.append(
                grp.run_regularly(
                    model.neuron["rest"],
                    dt=spec.rest_every * dt,
                    when="start",
                    order=-1,
                    name=f"rest{layer}",
                )
            )
        syn = b2.Synapses(
            pre,
            grp,
            model=model.synapse["equations"],
            on_pre=model.synapse["on_pre"],
            on_post=model.synapse["on_post"],
            # Same-step transmission; one scalar delay per pathway instead of two
            # per-synapse arrays that Brian2 would store, load and write every run.
            delay={"pre": 0 * b2.ms, "post": 0 * b2.ms},
            namespace=namespace,
            name=synapse_name(layer),
        )
        # All-to-all in the layer's storage order (SYNAPSE_ORDERS; checked after runs):
        # the generator runs over postsynaptic neurons when given for i.
        if spec.synapse_orders[layer - 1] == "pre":
            syn.connect()
        else:
            syn.connect(i="k for k in range(N_pre)")
        base = 4 * layer
        syn.pre.when, syn.pre.order = "thresholds", base + 1
        grp.thresholder["spike"].when, grp.thresholder["spike"].order = "thresholds", base + 2
        syn.post.when, syn.post.order = "thresholds", base + 3
        grp.resetter["spike"].when, grp.resetter["spike"].order = "thresholds", base + 4
        layers.append(grp)
        synapses.append(syn)
        objects += [grp, decay, syn]
        pre = grp

    groups = [inp, *layers]
    monitors = {}
    for layer in spec.record_layers:
        monitors[layer] = b2.SpikeMonitor(groups[layer], name=monitor_name(layer))
        objects.append(monitors[layer])
    net = b2.Network(*objects, name="sleep_network")
    return BrianNetwork(net, inp, layers, synapses, monitors, timed)


def synapse_order(n_in: int, n_out: int, order: str = "pre") -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of every synapse in the order the builder creates them (``order``)."""
    if order == "pre":
        return np.repeat(np.arange(n_in), n_out), np.tile(np.arange(n_out), n_in)
    return np.tile(np.arange(n_in), n_out), np.repeat(np.arange(n_out), n_in)


def weights_to_synapses(w: np.ndarray, order: str = "pre") -> np.ndarray:
    """ANN weight matrix (n_out, n_in) -> synapse-ordered vector (``order``-major)."""
    w = np.asarray(w, dtype=np.float64)
    return np.ascontiguousarray(w.T if order == "pre" else w).ravel()


def synapses_to_matrix(values: np.ndarray, n_in: int, n_out: int, order: str) -> np.ndarray:
    """Synapse-ordered vector (``order``-major) -> ANN weight matrix (n_out, n_in), a copy."""
    if order == "pre":
        return values.reshape(n_in, n_out).T.copy()
    return values.reshape(n_out, n_in).copy()


def synapses_to_weights(values: np.ndarray, i: np.ndarray, j: np.ndarray, shape) -> np.ndarray:
    """Synapse values with their (i, j) -> ANN weight matrix (n_out, n_in)."""
    # Coverage is tracked apart from the values: a NaN weight is the model's doing (and
    # reported as such by run_sleep), not a missing synapse.
    out = np.zeros(shape)
    covered = np.zeros(shape, dtype=bool)
    out[j, i] = values
    covered[j, i] = True
    if not covered.all() or len(values) != covered.size:
        raise RuntimeError("synapses do not cover every (post, pre) pair once; network corrupt")
    return out


def input_name() -> str:
    """Brian2 name of the input NeuronGroup (fixed, so compiled code never changes)."""
    return "layer0"


def layer_name(layer: int) -> str:
    """Brian2 name of the NeuronGroup of layer ``layer`` (1..L)."""
    return f"layer{layer}"


def synapse_name(layer: int) -> str:
    """Brian2 name of the Synapses into layer ``layer`` (1..L)."""
    return f"syn{layer}"


def monitor_name(layer: int) -> str:
    """Brian2 name of the SpikeMonitor of layer ``layer`` (0 = input)."""
    return f"spikes{layer}"


def run_values(
    model: SleepModel,
    weights,
    params: SleepParams,
    seed: int,
    inputs: SleepInput,
    synapse_orders: tuple[str, ...] = (),
) -> dict[str, object]:
    """Per-run values keyed by ``"<object name>.<variable>"``, in base units.

    Every parameter the model declares (by name, per layer where declared so), the
    layer scales ``alpha``, the weights, the seed and the input's per-run values: passed
    to a compiled binary as run arguments and assigned directly on runtime. TimedArray
    contents come from the input's :meth:`~brainsleep.sleep.inputs.SleepInput.timed_values`.
    """
    n_layers = len(weights)
    orders = synapse_orders or default_synapse_orders(n_layers)
    out: dict[str, object] = {
        f"{input_name()}.{SEED_VARIABLE}": seed,
        f"{input_name()}.{STEPS_VARIABLE}": inputs.n_steps,
        f"{input_name()}.{WRITE_ORDER_VARIABLE}": 1,
    }
    owners = {"NEURON": layer_name, "SYNAPSE": synapse_name}
    for name, block in model.parameter_blocks.items():
        if block == "INPUT":
            out[f"{input_name()}.{name}"] = params.layer_value(name, 0)
            continue
        for k in range(n_layers):
            out[f"{owners[block](k + 1)}.{name}"] = params.layer_value(name, k)
    for k in range(n_layers):
        out[f"{synapse_name(k + 1)}.alpha"] = params.alphas[k]
        out[f"{synapse_name(k + 1)}.w"] = weights_to_synapses(weights[k], orders[k])
    for var, values in inputs.run_values().items():
        out[f"{input_name()}.{var}"] = values
    return out


def assign_values(bn: BrianNetwork, values: dict[str, object]) -> None:
    """Set :func:`run_values` on the objects of a runtime network."""
    objects = {o.name: o for o in (bn.input_group, *bn.layers, *bn.synapses)}
    for full_name, value in values.items():
        owner, var = full_name.rsplit(".", 1)
        setattr(objects[owner], f"{var}_", value)  # values are in base units
