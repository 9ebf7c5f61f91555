"""What the sleep benchmark runs, as data: the nets, the workloads, the parameters.

A workload is the reference preset with scaled thresholds and depression; a net is the
reference MLP at a hidden-width multiple, trained once and cached as ``.npz``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"

PRESET = "reduced_mnist_10ep"
BASE_HIDDEN = 1200
N_TRAIN = 5000  # the reference's limited-data scripts: the FIRST 5000 training images
EPOCHS = 10
TRAIN_SEED = 0
SLEEP_SEED = 0
RERUN_WEIGHT_SCALE = 1.01
PROBE_THRESHOLD_SCALES = (1.0, 0.1, 0.01)


@dataclass(frozen=True)
class Workload:
    """The preset with ``v_thresh`` x ``thresh_scale`` and ``dec`` x ``dec_scale``."""

    name: str
    thresh_scale: float = 1.0
    dec_scale: float = 1.0
    doc: str = ""

    def spec(self) -> dict:
        return {
            "workload": self.name,
            "thresh_scale": self.thresh_scale,
            "dec_scale": self.dec_scale,
        }


#: The preset as it is: with the reference-trained net the hidden layers are nearly silent.
QUIET = Workload("preset", doc="the preset as published")
#: Thresholds x0.5 alone do not keep the net spiking (the depression silences every
#: neuron after a few spikes; see the probe), so dec is reduced too.
ACTIVE = Workload("active", 0.5, 1e-3, doc="hidden layers keep firing: synaptic work")
WORKLOADS = {w.name: w for w in (QUIET, ACTIVE)}


def make_params(spec: dict, base_alphas):
    """SleepParams of a worker spec: the preset, scaled by the spec's workload scales."""
    from brainsleep.sleep.params import params_from_set, preset

    p = preset(PRESET)
    ts, ds = spec.get("thresh_scale", 1.0), spec.get("dec_scale", 1.0)
    p["v_thresh"] = [t * ts for t in p["v_thresh"]]
    p["dec"] = p["dec"] * ds
    return params_from_set(p, list(base_alphas))


def alpha_scale() -> float:
    from brainsleep.sleep.params import preset

    return float(preset(PRESET)["alpha_scale"])


def sizes_label(width: int) -> str:
    h = BASE_HIDDEN * width
    return f"784-{h}-{h}-10"


# ---------------------------------------------------------------- nets (weights + alphas)


def load_data():
    from brainsleep.data import as_float, load_dataset

    ds = load_dataset("mnist")
    x = as_float(ds.train_images[:N_TRAIN])
    y = np.asarray(ds.train_labels[:N_TRAIN])
    return x, y, as_float(ds.test_images), np.asarray(ds.test_labels)


def _substitute_weights(sizes, rng) -> list[np.ndarray]:
    """Shapes of the net, values like a reference-trained net's (10 epochs, 5000 images:
    hidden ~U(-0.01, 0.01) + drift, output layer shifted positive)."""
    ws = []
    for k in range(len(sizes) - 1):
        w = rng.uniform(-0.01, 0.01, size=(sizes[k + 1], sizes[k]))
        w += rng.normal(0.0, 0.001, size=w.shape)
        if k == len(sizes) - 2:
            w += rng.normal(0.002, 0.003, size=w.shape)
        ws.append(w)
    return ws


def prepare_net(width: int, data, log=print) -> Path:
    """Weights, base alphas and the mean image for one width, cached as .npz."""
    from brainsleep.atomic import atomic_write_with
    from brainsleep.normalize import normalization_alphas
    from brainsleep.sleep import MaskedMeanImage

    hidden = BASE_HIDDEN * width
    sizes = (784, hidden, hidden, 10)
    x, y, xt, yt = data
    path = CACHE / f"net_w{width}_reference_e{EPOCHS}_n{N_TRAIN}_s{TRAIN_SEED}.npz"
    if path.exists() and "meta" in np.load(path, allow_pickle=False):
        return path
    meta: dict = {"sizes": sizes}
    try:
        from brainsleep import ann

        rec = ann.get_recipe("reference", epochs=EPOCHS)
        model = ann.build_model(rec, sizes=sizes, seed=TRAIN_SEED)
        log(f"training {'-'.join(map(str, sizes))} (reference recipe, {EPOCHS} epochs)")
        t0 = time.perf_counter()
        ann.train(model, x, y, rec, seed=TRAIN_SEED, progress=False, threads=os.cpu_count())
        meta["train_s"] = round(time.perf_counter() - t0, 1)
        weights = ann.get_weights(model)
        meta["test_accuracy"] = float(ann.evaluate(model, xt, yt).accuracy)
        meta["source"] = "trained"
        meta["how"] = (
            f"brainsleep.ann reference recipe, {EPOCHS} epochs, first {N_TRAIN} "
            f"MNIST training images, seed {TRAIN_SEED}"
        )
    except Exception as exc:  # noqa: BLE001 - ann missing or broken: labelled substitute
        log(f"brainsleep.ann unusable ({type(exc).__name__}: {exc}); SUBSTITUTE weights")
        weights = _substitute_weights(sizes, np.random.default_rng(1000 + width))
        meta["source"] = "substitute"
        meta["how"] = f"SUBSTITUTE weights (brainsleep.ann unusable: {type(exc).__name__})"
    alphas = list(normalization_alphas(weights, x, hidden_scale=0.75).alphas)
    meta["alphas_how"] = "brainsleep.normalize.normalization_alphas (hidden_scale 0.75, quirk)"
    arrays = {f"w{k}": w for k, w in enumerate(weights)}
    arrays["base_alphas"] = np.asarray(alphas)
    arrays["mean_image"] = MaskedMeanImage.from_images(x, n_steps=1).mean_image
    arrays["meta"] = np.asarray(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: str) -> None:  # np.savez appends ".npz" to a bare name: use a file
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write_with(path, write)
    return path


def net_meta(path: Path) -> dict:
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    meta["base_alphas"] = [float(a) for a in z["base_alphas"]]
    return meta


def load_net(path: str | Path):
    """(weights, base_alphas, mean_image, sizes) of a cached net."""
    z = np.load(path, allow_pickle=False)
    n = sum(1 for k in z.files if k.startswith("w") and k[1:].isdigit())
    weights = [z[f"w{k}"] for k in range(n)]
    sizes = (weights[0].shape[1], *(w.shape[0] for w in weights))
    return weights, [float(a) for a in z["base_alphas"]], z["mean_image"], sizes


# ---------------------------------------------------------------- the plan


def _step(section, width, wl: Workload, T, device, phase, **spec) -> dict:
    return {"section": section, "width": width, "steps": T, "device": device,
            "phase": phase, "spec": {**wl.spec(), "device": device, "steps": T, **spec}}  # fmt: skip


def _device_steps(width, wl: Workload, T, a, extras: bool) -> list[dict]:
    out = []
    if "reference" in a.devices:
        out.append(
            _step("results", width, wl, T, "reference", "run (exact_exp=False)", timed="ref")
        )
        if extras and a.exact_exp:
            phase = "run (exact_exp=True, bit-exact oracle)"
            out.append(
                _step("results", width, wl, T, "reference", phase, timed="ref", exact_exp=True)
            )
    if "runtime" in a.devices:
        out.append(_step("results", width, wl, T, "runtime", "run (numpy target)", timed="runtime"))
    for dev in ("cpp_standalone", "cuda_standalone"):
        if dev not in a.devices:
            continue
        out.append(
            _step("results", width, wl, T, dev, "first call: compile + run", cold=True, rerun=True)
        )
        out.append(_step("results", width, wl, T, dev, "fresh process, cached binary (record all)"))
        if extras and wl is QUIET:
            phase = "compile + run, input layer not recorded"
            out.append(_step("results", width, wl, T, dev, phase, cold=True, record="hidden"))
            phase = "fresh process, cached binary, input layer not recorded"
            out.append(_step("results", width, wl, T, dev, phase, record="hidden"))
    return out


def plan(a) -> list[dict]:
    """Every measurement of a run with the CLI's options ``a``, in order, as data.

    ``section``: the report's table; ``spec``: the worker's spec (``timed``: cut and
    extrapolate past a time budget; ``cold``: delete the cached build first; ``rerun``:
    a second call with new weights in the same process).
    """
    w1, T = a.widths[0], a.steps
    steps = []
    if a.probe_steps:
        Tp = min(a.probe_steps, T)
        for s in PROBE_THRESHOLD_SCALES:
            wl = Workload(f"thresholds x{s:g}", s)
            steps.append(_step("probe", w1, wl, Tp, "reference", "probe"))
        if a.active_steps:
            steps.append(_step("probe", w1, ACTIVE, min(a.active_steps, T), "reference", "probe"))
    steps += _device_steps(w1, QUIET, T, a, extras=True)
    profiled = a.profile and "cpp_standalone" in a.devices
    if profiled:
        steps.append(_step("profile", w1, QUIET, T, "cpp_standalone", "profile", cold=True))
    if a.active_steps:
        Ta = min(a.active_steps, T)
        steps += _device_steps(w1, ACTIVE, Ta, a, extras=False)
        if profiled:
            steps.append(_step("profile", w1, ACTIVE, Ta, "cpp_standalone", "profile", cold=True))
        if "cpp_standalone" in a.devices and Ta != T:  # memory vs T: preset on the short build
            phase = "fresh process, cached binary (record all)"
            steps.append(_step("results", w1, QUIET, Ta, "cpp_standalone", phase))
    for w in a.widths[1:]:
        steps += [dict(s, skippable=True) for s in _device_steps(w, QUIET, T, a, extras=False)]
    return steps
