"""The build key covers everything a compiled binary depends on (no compiling here).

A build is reused whenever its key matches, so a source of generated code left out of the
key means a stale binary silently answering for edited equations. The case that found it:
editing an input kind's equations in models/inputs.py kept the old key and the old build.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from brainsleep.digests import files_digest
from brainsleep.models.inputs import INPUT_KINDS
from brainsleep.sleep import get_device, load_model, standalone
from brainsleep.sleep.network import NetworkSpec

SPEC = NetworkSpec((4, 3, 2), 10, 0.001, "masked-mean", (("patch", 2),))


def key() -> str:
    return standalone.build_key(load_model(), SPEC, get_device("cpp_standalone"), None)


def test_editing_an_input_kinds_equations_changes_the_key(monkeypatch):
    before = key()
    edited = INPUT_KINDS["masked-mean"]["equations"].replace("in_rows * in_cols", "in_rows")
    assert edited != INPUT_KINDS["masked-mean"]["equations"]
    monkeypatch.setitem(INPUT_KINDS["masked-mean"], "equations", edited)
    assert key() != before
    monkeypatch.undo()
    assert key() == before


def test_the_engine_source_digest_covers_the_engine_and_the_input_kinds():
    from brainsleep.models import inputs
    from brainsleep.sleep import model

    sources = {p.resolve() for p in standalone.engine_sources()}
    expected = set(Path(model.__file__).parent.glob("*.py")) | {Path(inputs.__file__)}
    assert {p.resolve() for p in expected} <= sources


def test_the_key_follows_what_the_model_file_imports():
    """src_additive.py takes NEURON from src.py: the key covers the loaded content, not
    only the file's bytes."""
    from dataclasses import replace

    from brainsleep.sleep.model import model_content_digest

    loaded = load_model("src_additive")
    assert loaded.content_hash == model_content_digest("src_additive")
    other = replace(loaded, content_hash=model_content_digest("src"))
    cpp = get_device("cpp_standalone")
    assert standalone.build_key(other, SPEC, cpp, None) != standalone.build_key(
        loaded, SPEC, cpp, None
    )


def test_editing_an_engine_source_changes_the_digest_and_the_key(tmp_path, monkeypatch):
    copies = []
    for n, path in enumerate(standalone.engine_sources()):  # two are called inputs.py
        (tmp_path / str(n)).mkdir()
        copies.append(tmp_path / str(n) / path.name)
        shutil.copyfile(path, copies[-1])
    digest = files_digest(copies)
    assert digest == standalone.engine_source_digest()
    before = key()
    network = next(p for p in copies if p.name == "network.py")
    network.write_text(network.read_text() + "\n# an edit\n")
    edited = files_digest(copies)
    assert edited != digest
    monkeypatch.setattr(standalone, "engine_source_digest", lambda: edited)
    assert key() != before


# ------------------------------------------------------------------ cuda_standalone


def _fake_cuda(
    root: Path, monkeypatch, smi_query: str | None, nvcc_build: str = "cuda_13.0"
) -> None:
    """A fake ``nvidia-smi`` (one GPU answering ``smi_query`` to ``--query-gpu``; None: no
    GPU, "No devices were found") and a fake toolkit's ``nvcc`` (``$CUDA_PATH``)."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    if smi_query is None:
        smi = 'echo "No devices were found"; exit 6'
    else:
        smi = (
            'case "$1" in -L) echo "GPU 0: NVIDIA Fake (UUID: GPU-1)";; '
            f'--query-gpu=compute_cap*) echo "{smi_query}";; *) exit 2;; esac'
        )
    nvcc = root / "cuda" / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True, exist_ok=True)
    for path, body in (
        (bin_dir / "nvidia-smi", smi),
        (nvcc, f'echo "release"; echo "Build {nvcc_build}"'),
    ):
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_PATH", str(root / "cuda"))


def _keys(tmp_path, monkeypatch, name: str, smi_query: str | None, **nvcc) -> tuple[str, str, str]:
    """(cuda key, cuda toolchain, cpp key) with the fake GPU and toolkit ``name``."""
    _fake_cuda(tmp_path / name, monkeypatch, smi_query, **nvcc)
    cuda = get_device("cuda_standalone")
    cpp = get_device("cpp_standalone")
    return (
        standalone.build_key(load_model(), SPEC, cuda, None),
        cuda.toolchain_id(),
        standalone.build_key(load_model(), SPEC, cpp, None),
    )


def test_the_cuda_key_follows_the_gpu_architecture_driver_and_nvcc(tmp_path, monkeypatch):
    """A shared build cache never hands an sm_90 binary to an sm_80 GPU (or another
    driver's or nvcc's); the cpp_standalone key ignores the GPU."""
    h100, h100_tools, cpp = _keys(tmp_path, monkeypatch, "h100", "9.0, 580.65.06")
    assert h100_tools.endswith("| Build cuda_13.0 | sm_90 | driver 580.65.06")
    assert h100_tools.startswith(standalone.host_compiler_id() + " | ")
    a100, a100_tools, cpp_a100 = _keys(tmp_path, monkeypatch, "a100", "8.0, 580.65.06")
    assert "| sm_80 |" in a100_tools
    assert a100 != h100
    assert cpp_a100 == cpp
    driver, _, _ = _keys(tmp_path, monkeypatch, "driver", "9.0, 590.10.01")
    assert driver not in (h100, a100)
    nvcc, _, _ = _keys(tmp_path, monkeypatch, "nvcc", "9.0, 580.65.06", nvcc_build="cuda_12.8")
    assert nvcc not in (h100, a100, driver)
    again, _, _ = _keys(tmp_path, monkeypatch, "again", "9.0, 580.65.06")
    assert again == h100  # the same GPU, driver and nvcc: the same build
    # several GPUs: brian2cuda compiles for the highest compute capability
    mixed, mixed_tools, _ = _keys(tmp_path, monkeypatch, "mixed", "8.0, 580.65.06\n9.0, 580.65.06")
    assert mixed == h100 and mixed_tools == h100_tools


def test_the_cuda_key_without_a_gpu_names_the_default_architecture(tmp_path, monkeypatch):
    """Compiled without a GPU (the engine allows it): for sm_90, keyed "driver none", so
    such a build is never taken for one made on a GPU machine."""
    none, tools, cpp = _keys(tmp_path, monkeypatch, "none", None)
    assert tools.endswith("| sm_90 | driver none")
    h100, _, cpp_gpu = _keys(tmp_path, monkeypatch, "h100", "9.0, 580.65.06")
    assert none != h100 and cpp == cpp_gpu


def test_the_cpp_toolchain_is_the_host_compiler_line_alone():
    """cpp_standalone's key is what it was before the cuda part moved to its device class:
    the compiler field is ``$CXX --version``'s first line, nothing more."""
    import os as _os

    line = standalone._version_line([_os.environ.get("CXX", "g++"), "--version"])
    assert get_device("cpp_standalone").toolchain_id() == line
