"""The build key covers everything a compiled binary depends on (no compiling here).

A build is reused whenever its key matches, so a source of generated code left out of the
key means a stale binary silently answering for edited equations. The case that found it:
editing an input kind's equations in models/inputs.py kept the old key and the old build.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from brainsleep.models.inputs import INPUT_KINDS
from brainsleep.sleep import standalone
from brainsleep.sleep.model import load_model
from brainsleep.sleep.network import NetworkSpec

REPO = Path(__file__).resolve().parents[1]
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
    sources = {p.resolve() for p in standalone.engine_sources()}
    expected = set((REPO / "brainsleep" / "sleep").glob("*.py")) | {REPO / "models" / "inputs.py"}
    assert {p.resolve() for p in expected} <= sources


def test_editing_an_engine_source_changes_the_digest_and_the_key(tmp_path, monkeypatch):
    copies = []
    for n, path in enumerate(standalone.engine_sources()):  # two are called inputs.py
        (tmp_path / str(n)).mkdir()
        copies.append(tmp_path / str(n) / path.name)
        shutil.copyfile(path, copies[-1])
    digest = standalone.engine_source_digest(tuple(copies))
    assert digest == standalone.engine_source_digest()
    before = key()
    network = next(p for p in copies if p.name == "network.py")
    network.write_text(network.read_text() + "\n# an edit\n")
    standalone.engine_source_digest.cache_clear()
    edited = standalone.engine_source_digest(tuple(copies))
    assert edited != digest
    monkeypatch.setattr(standalone, "engine_source_digest", lambda: edited)
    assert key() != before
