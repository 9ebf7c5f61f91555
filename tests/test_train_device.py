"""Where the ANN trains (``--train-device``, issue 34): auto, cpu, cuda.

Without a GPU, ``auto`` is the CPU and gives exactly its results and fingerprint;
``cuda`` is refused in one line before any work. A GPU-trained run is another
configuration (its own fingerprint, its own cached baselines); CPU runs keep the
fingerprints and baseline keys they had before the option existed. The GPU's own
numerics are checked where a GPU exists (skipped here otherwise).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from brainsleep import ann
from brainsleep.ann import training
from brainsleep.experiment.__main__ import main
from brainsleep.experiment.baselines import baseline_key
from brainsleep.experiment.config import ExperimentConfig
from tests.test_experiment import argv, never_called

HAS_GPU = torch.cuda.is_available()


@pytest.fixture
def no_gpu(monkeypatch):
    """torch sees no GPU, whatever this machine has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch says it sees a GPU (for what is decided before training touches it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")


def test_resolve_train_device_without_gpu(no_gpu):
    assert training.resolve_train_device("cpu") == "cpu"
    assert training.resolve_train_device("auto") == "cpu"
    with pytest.raises(training.TrainDeviceUnavailableError) as info:
        training.resolve_train_device("cuda")
    assert "\n" not in str(info.value) and "sees none" in str(info.value)
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        training.resolve_train_device("gpu")


def test_resolve_train_device_with_gpu(fake_gpu):
    assert training.resolve_train_device("auto") == "cuda"
    assert training.resolve_train_device("cuda") == "cuda"
    assert training.resolve_train_device("cpu") == "cpu"


def test_train_on_cuda_without_gpu_is_refused_before_it_starts(no_gpu):
    recipe = ann.get_recipe("reference", epochs=1)
    model = ann.build_model(recipe, (784, 8, 10), 0)
    before = ann.get_weights(model)
    x, y = np.random.default_rng(0).random((20, 784)), np.arange(20) % 10
    with pytest.raises(training.TrainDeviceUnavailableError):
        ann.train(model, x, y, recipe, progress=False, device="cuda")
    assert all(np.array_equal(a, b) for a, b in zip(before, ann.get_weights(model), strict=True))


def test_cuda_without_gpu_is_refused_in_one_line(no_gpu, data_dir, tmp_path, capsys, monkeypatch):
    """``--train-device cuda`` where torch sees no GPU: one line, exit code 3
    (unavailable), before any training; nothing written."""
    monkeypatch.setattr(ann, "train_baseline", never_called("training"))
    monkeypatch.setattr(ann, "train", never_called("training"))
    out = tmp_path / "never"
    args = argv(data_dir, out, tmp_path / "b", "--device", "reference", "--train-device", "cuda")
    assert main(args) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: --train-device cuda:") and "sees none" in err[0]
    assert not out.exists()


def _metrics(out):
    df = pd.read_csv(out / "metrics.csv")
    timing = [c for c in df.columns if "second" in c or c.endswith("_s") or "wall" in c]
    return df.drop(columns=timing)


def test_auto_without_gpu_gives_exactly_the_cpu_results(no_gpu, data_dir, tmp_path):
    """The default (auto) on a machine without a GPU: the CPU's metrics, value for value,
    config.json saying cpu, and the CPU run's fingerprint."""
    runs = {}
    for device in ("auto", "cpu"):
        out = tmp_path / device
        args = argv(data_dir, out, tmp_path / "b", "--device", "reference")
        assert main([*args, "--train-device", device]) == 0
        runs[device] = (json.loads((out / "config.json").read_text()), _metrics(out))
    (auto_cfg, auto), (cpu_cfg, cpu) = runs["auto"], runs["cpu"]
    assert auto_cfg["config"]["train_device"] == cpu_cfg["config"]["train_device"] == "cpu"
    assert auto_cfg["fingerprint"] == cpu_cfg["fingerprint"]
    assert len(cpu) == 4 and cpu["accuracy"].notna().all()
    pd.testing.assert_frame_equal(auto, cpu)


def test_cpu_keeps_the_fingerprint_it_had_before_the_field(no_gpu, monkeypatch):
    """A results directory made before ``--train-device`` existed (on the CPU) resumes
    with auto and cpu; cuda is another configuration, and so is auto with a GPU."""
    cpu = ExperimentConfig(device="reference", train_device="cpu").fingerprint()
    assert ExperimentConfig(device="reference", train_device="auto").fingerprint() == cpu
    cuda = ExperimentConfig(device="reference", train_device="cuda").fingerprint()
    assert cuda != cpu
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ExperimentConfig(device="reference", train_device="auto").fingerprint() == cuda
    assert ExperimentConfig(device="reference", train_device="cpu").fingerprint() == cpu
    # the fingerprint of a configuration without the field (as config.json files before it)
    monkeypatch.setattr(
        ExperimentConfig,
        "to_dict",
        lambda self: {k: v for k, v in dataclasses.asdict(self).items() if k != "train_device"},
    )
    assert ExperimentConfig(device="reference", train_device="cpu").fingerprint() == cpu


def test_the_baseline_cache_keeps_gpu_and_cpu_baselines_apart(monkeypatch):
    recipe = ann.get_recipe("reference")
    x, y = np.zeros((4, 784)), np.arange(4)
    plain = baseline_key(recipe, (784, 8, 10), 0, x, y)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert baseline_key(recipe, (784, 8, 10), 0, x, y, device="cpu") == plain
    assert baseline_key(recipe, (784, 8, 10), 0, x, y, device="auto") == plain
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "GPU A")
    gpu_a = baseline_key(recipe, (784, 8, 10), 0, x, y, device="cuda")
    assert gpu_a != plain
    assert baseline_key(recipe, (784, 8, 10), 0, x, y, device="auto") == gpu_a
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "GPU B")
    assert baseline_key(recipe, (784, 8, 10), 0, x, y, device="cuda") not in (plain, gpu_a)


@pytest.mark.parametrize("protocol", ["limited", "class-incremental"])
def test_every_training_gets_the_configured_device(
    protocol, fake_gpu, data_dir, tmp_path, monkeypatch
):
    """With a GPU (faked: the training itself runs on the CPU here), the baseline, the
    fine-tuning, the step-matched control and every class-incremental task train on cuda,
    the baseline cache keys them as GPU-trained, and config.json records cuda."""
    seen, keys = [], []
    real_train = training.train

    def record(*args, device="cpu", **kwargs):
        seen.append(device)
        return real_train(*args, device="cpu", **kwargs)

    monkeypatch.setattr(training, "train", record)  # train_baseline's
    monkeypatch.setattr(ann, "train", record)  # the pipeline's fine-tuning, incremental's
    from brainsleep.experiment import pipeline

    real_key = pipeline.baseline_key
    monkeypatch.setattr(
        pipeline, "baseline_key", lambda *a, **k: keys.append(k.get("device")) or real_key(*a, **k)
    )
    monkeypatch.setenv("BRAINSLEEP_BASELINE_CACHE", str(tmp_path / "baselines"))
    out = tmp_path / "run"
    if protocol == "limited":
        args = argv(data_dir, out, tmp_path / "b", "--device", "reference")
    else:
        args = [
            *argv(data_dir, out, tmp_path / "b", "--device", "reference"),
            "--protocol", "class-incremental", "--tasks", "0-1", "2-3", "--task-size", "30",
            "--fractions", "1", "--sleep-preset", "mnist_class_incremental",
        ]  # fmt: skip
    assert main(args) == 0
    assert seen and set(seen) == {"cuda"}
    # limited: baseline, fine-tuning, control; incremental: 2 tasks x 4 variants + 2 fine-tunings
    assert len(seen) == (3 if protocol == "limited" else 2 * 4 + 2)
    assert keys == (["cuda"] if protocol == "limited" else [])
    assert json.loads((out / "config.json").read_text())["config"]["train_device"] == "cuda"


@pytest.mark.skipif(not HAS_GPU, reason="no GPU torch can use here")
@pytest.mark.parametrize("remedies", [(), ("mixup", "class-weighted", "logit-adjust")])
def test_gpu_training_is_close_to_the_cpu(remedies):
    """On a GPU machine: the same batches and dropout masks as on the CPU (drawn there),
    so the weights differ only by float32 rounding; the network comes back on the CPU."""
    name = "strong" if remedies else "reference"
    recipe = ann.get_recipe(name, epochs=2, **({"remedies": remedies} if remedies else {}))
    rng = np.random.default_rng(0)
    x, y = rng.random((300, 784)), np.arange(300) % 10
    val = (rng.random((60, 784)), np.arange(60) % 10)
    nets = {}
    for device in ("cpu", "cuda"):
        model, hist = ann.train_baseline(
            recipe, (784, 64, 32, 10), 1, x, y, val, progress=False, device=device
        )
        assert all(p.device.type == "cpu" for p in model.parameters())
        nets[device] = (ann.get_weights(model), hist)
    (w_cpu, h_cpu), (w_gpu, h_gpu) = nets["cpu"], nets["cuda"]
    assert h_cpu.n_steps == h_gpu.n_steps
    for a, b in zip(w_cpu, w_gpu, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-3)
    np.testing.assert_allclose(h_gpu.val_accuracy, h_cpu.val_accuracy, atol=0.05)
