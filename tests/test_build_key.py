"""The build key covers everything a compiled binary depends on (no compiling here).

A build is reused whenever its key matches, so a source of generated code left out of the
key means a stale binary silently answering for edited equations. The case that found it:
editing an input kind's equations in models/inputs.py kept the old key and the old build.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from brainsleep.digests import files_digest
from brainsleep.models.inputs import INPUT_KINDS
from brainsleep.sleep import standalone
from brainsleep.sleep.model import load_model
from brainsleep.sleep.network import NetworkSpec

SPEC = NetworkSpec((4, 3, 2), 10, 0.001, "masked-mean", (("patch", 2),))


def key() -> str:
    return standalone.build_key(load_model(), SPEC, "cpp_standalone", None)


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
    assert standalone.build_key(other, SPEC, "cpp_standalone", None) != standalone.build_key(
        loaded, SPEC, "cpp_standalone", None
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
