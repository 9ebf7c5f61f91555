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

from dataclasses import dataclass, field

import numpy as np

from .model import SleepModel

# Engine-private shared variable of the input group: the RNG seed, settable per run.
SEED_VARIABLE = "brainsleep_seed"


@dataclass(frozen=True)
class NetworkSpec:
    """Everything that fixes the compiled structure of a sleep network."""

    sizes: tuple[int, ...]  # layer sizes, input first
    n_steps: int
    dt: float
    input_kind: str  # "array" or "masked"
    image_shape: tuple[int, int] | None = None  # masked input only
    patch: int | None = None  # masked input only
    record_layers: tuple[int, ...] = ()

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @classmethod
    def for_inputs(cls, sizes, inputs, dt: float, record_layers=()) -> NetworkSpec:
        """The structure that ``inputs`` (array or MaskedMeanImage, already checked with
        :func:`brainsleep.sleep.inputs.check_inputs`) need on ``sizes``."""
        from .inputs import MaskedMeanImage

        masked = isinstance(inputs, MaskedMeanImage)
        return cls(
            sizes=tuple(int(n) for n in sizes),
            n_steps=inputs.n_steps if masked else len(inputs),
            dt=dt,
            input_kind="masked" if masked else "array",
            image_shape=inputs.mean_image.shape if masked else None,
            patch=inputs.patch if masked else None,
            record_layers=tuple(record_layers),
        )


@dataclass
class BrianNetwork:
    """The Brian2 objects of one sleep network, by role."""

    net: object
    input_group: object
    layers: list  # NeuronGroups of layers 1..L
    synapses: list  # Synapses of weight layers 1..L
    monitors: dict  # layer index -> SpikeMonitor
    timed_arrays: dict = field(default_factory=dict)  # name -> TimedArray


def _input_equations(model: SleepModel, spec: NetworkSpec) -> str:
    """The model's input equations plus the engine-defined intensity ``x``."""
    eqs = [model.input["equations"], f"{SEED_VARIABLE} : integer (shared)"]
    if spec.input_kind == "array":
        eqs.append("x = x_in(t, i) : 1")
    else:
        eqs.append(
            """
            mean_px : 1 (constant)
            px_row : integer (constant)
            px_col : integer (constant)
            in_rows = int(px_row >= win_row(t)) * int(px_row < win_row(t) + patch) : 1
            in_cols = int(px_col >= win_col(t)) * int(px_col < win_col(t) + patch) : 1
            x = mean_px * in_rows * in_cols : 1
            """
        )
    return "\n".join(eqs)


def build_network(
    model: SleepModel, spec: NetworkSpec, timed_contents: dict | None = None
) -> BrianNetwork:
    """Create the Brian2 objects (for whichever device is active) and the Network.

    Values (weights, parameters, input) are set afterwards from :func:`run_values`
    (assigned directly on runtime, passed as ``run_args`` to a compiled binary).
    ``timed_contents`` gives the TimedArray contents (runtime cannot change them later);
    a standalone build leaves them zero and replaces them per run.
    """
    import brian2 as b2

    dt = spec.dt * b2.second
    namespace = dict(model.constants)
    timed_contents = timed_contents or {}
    if spec.input_kind == "array":
        shapes = {"x_in": (spec.n_steps, spec.sizes[0])}
    else:
        shapes = {"win_row": (spec.n_steps,), "win_col": (spec.n_steps,)}
        namespace["patch"] = spec.patch
    timed = {
        name: b2.TimedArray(timed_contents.get(name, np.zeros(shape)), dt=dt, name=name)
        for name, shape in shapes.items()
    }
    namespace.update(timed)

    # One clock, Brian2's defaultclock: brian2cuda's synapse templates refer to it by name.
    b2.defaultclock.dt = dt
    inp = b2.NeuronGroup(
        spec.sizes[0],
        _input_equations(model, spec),
        threshold=model.input["threshold"],
        reset=model.input.get("reset") or None,
        refractory=0 * b2.ms,  # gives lastspike, which on_post reads; no refractoriness
        namespace=namespace,
        name=input_name(),
    )
    inp.thresholder["spike"].when = "thresholds"
    inp.thresholder["spike"].order = 0
    if spec.input_kind == "masked":
        h, w = spec.image_shape
        inp.px_row = np.repeat(np.arange(h), w)
        inp.px_col = np.tile(np.arange(w), h)

    layers, synapses, objects = [], [], [inp]
    pre = inp
    for layer in range(1, spec.n_layers + 1):
        grp = b2.NeuronGroup(
            spec.sizes[layer],
            model.neuron["equations"],
            threshold=model.neuron["threshold"],
            reset=model.neuron["reset"],
            refractory=0 * b2.ms,
            namespace=namespace,
            name=layer_name(layer),
        )
        decay = grp.run_regularly(model.neuron["decay_step"], when="start", name=f"decay{layer}")
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
        # All-to-all, presynaptic-major: synapse k = i * n_out + j (checked after runs).
        syn.connect()
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


def synapse_order(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of every synapse in the order ``connect()`` creates them."""
    return np.repeat(np.arange(n_in), n_out), np.tile(np.arange(n_out), n_in)


def weights_to_synapses(w: np.ndarray) -> np.ndarray:
    """ANN weight matrix (n_out, n_in) -> synapse-ordered vector (presynaptic-major)."""
    return np.ascontiguousarray(np.asarray(w, dtype=np.float64).T).ravel()


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


def run_values(n_layers: int, weights, params, seed: int, inputs) -> dict[str, object]:
    """Per-run values keyed by ``"<object name>.<variable>"``.

    Weights, parameters, the seed and the masked image: passed to a compiled binary as
    run arguments and assigned directly on runtime. TimedArray contents come from
    :func:`timed_values`.
    """
    from .inputs import MaskedMeanImage

    out: dict[str, object] = {
        f"{input_name()}.rescale": params.rescale,
        f"{input_name()}.{SEED_VARIABLE}": seed,
    }
    for k in range(n_layers):
        grp, syn = layer_name(k + 1), synapse_name(k + 1)
        out[f"{grp}.v_thresh"] = params.thresholds[k]
        out[f"{grp}.decay"] = params.decay
        out[f"{syn}.alpha"] = params.alphas[k]
        out[f"{syn}.inc"] = params.inc
        out[f"{syn}.dec"] = params.dec
        out[f"{syn}.w"] = weights_to_synapses(weights[k])
    if isinstance(inputs, MaskedMeanImage):
        out[f"{input_name()}.mean_px"] = inputs.mean_image.ravel()
    return out


def assign_values(bn: BrianNetwork, values: dict[str, object]) -> None:
    """Set :func:`run_values` on the objects of a runtime network."""
    objects = {o.name: o for o in (bn.input_group, *bn.layers, *bn.synapses)}
    for full_name, value in values.items():
        owner, var = full_name.rsplit(".", 1)
        setattr(objects[owner], var, value)


def timed_values(inputs, seed: int) -> dict:
    """TimedArray contents of one run: the (T, n_in) input, or the window offsets."""
    from .inputs import MaskedMeanImage

    if isinstance(inputs, MaskedMeanImage):
        rows, cols = inputs.windows(seed)
        return {"win_row": rows.astype(np.float64), "win_col": cols.astype(np.float64)}
    return {"x_in": np.asarray(inputs, dtype=np.float64)}
