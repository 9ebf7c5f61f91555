"""The README's 'Where things are' holds for the code: data flow one way, no cycles.

Imports are read statically (every ``import`` statement, inside functions too), so an
import hidden in a function to dodge a cycle counts like one at the top; a name a package
exports lazily (``_EXPORTS`` of brainsleep.lazy) counts as an import of its module.
"""

import ast
import graphlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> installed package name (analysis and models install under brainsleep)
PACKAGES = {
    "brainsleep": "brainsleep",
    "analysis": "brainsleep.analysis",
    "models": "brainsleep.models",
}


def _modules(root: Path) -> dict[str, Path]:
    mods = {}
    for folder, package in PACKAGES.items():
        for path in (root / folder).rglob("*.py"):
            parts = [
                p for p in path.relative_to(root / folder).with_suffix("").parts if p != "__init__"
            ]
            mods[".".join([package, *parts])] = path
    return mods


def _canonical(name: str) -> str:
    for folder, package in PACKAGES.items():
        if folder != package and (name == folder or name.startswith(folder + ".")):
            return package + name[len(folder) :]
    return name


def _lazy_exports(mods: dict[str, Path]) -> dict[str, str]:
    """``package.name`` -> ``package.module`` for every lazily exported name."""
    exports = {}
    for module, path in mods.items():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets
            ):
                for name, where in ast.literal_eval(node.value).items():
                    exports[f"{module}.{name}"] = f"{module}.{where}"
    return exports


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package modules it imports (parents of a module excluded)."""
    mods = _modules(root)
    lazy = _lazy_exports(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package[: len(package) - node.level + 1] + ([base] if base else [])
                    )
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in map(_canonical, targets):
                target = lazy.get(target, target)
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != module and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def test_import_graph_is_acyclic():
    graph = import_graph()
    assert len(graph) > 80  # the scan found the package
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    (tmp_path / "brainsleep").mkdir()
    (tmp_path / "analysis").mkdir()
    (tmp_path / "brainsleep" / "a.py").write_text("from brainsleep import b\n")
    (tmp_path / "brainsleep" / "b.py").write_text("def f():\n    from analysis import c\n")
    (tmp_path / "analysis" / "c.py").write_text("from brainsleep.pkg import helper\n")
    (tmp_path / "brainsleep" / "pkg").mkdir()
    (tmp_path / "brainsleep" / "pkg" / "__init__.py").write_text('_EXPORTS = {"helper": "d"}\n')
    (tmp_path / "brainsleep" / "pkg" / "d.py").write_text("import brainsleep.a\n")
    graph = import_graph(tmp_path)
    assert graph["brainsleep.b"] == {"brainsleep.analysis.c"}
    assert "brainsleep.pkg.d" in graph["brainsleep.analysis.c"]  # through the lazy export
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()


@pytest.mark.parametrize("top", ["brainsleep.experiment", "brainsleep.analysis"])
def test_nothing_reaches_back_up(top):
    """The experiment drives the stages and the analysis reads what they wrote: no stage
    imports either (the analysis reads results through formats and the configuration
    record, never the pipeline that wrote them)."""
    graph = import_graph()
    inside = lambda m: m == top or m.startswith(top + ".")  # noqa: E731
    up = sorted(f"{m} -> {t}" for m, ts in graph.items() if not inside(m) for t in ts if inside(t))
    assert up == []


def test_analysis_imports_neither_brian2_nor_torch_at_import():
    code = (
        "import sys, importlib, pkgutil, analysis\n"
        "for m in pkgutil.walk_packages(analysis.__path__, 'analysis.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(k for k in ('brian2', 'torch') if k in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


def test_readme_names_only_paths_that_exist():
    """Every path of the README's 'Where things are' exists; a bare file name lives in the
    folder named last before it."""
    readme = (ROOT / "README.md").read_text()
    where = readme[readme.index("Where things are") :].split("\n\n")[0]
    named, folder = [], ROOT
    for path in re.findall(r"`([\w/.]+)`", where):
        if "/" in path:
            named.append(ROOT / path)
            if path.endswith("/"):
                folder = ROOT / path
        elif path.endswith(".py"):
            named.append(folder / path)
    missing = [str(p.relative_to(ROOT)) for p in named if not p.exists()]
    assert len(named) > 12 and missing == []
