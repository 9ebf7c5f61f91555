"""Shared parameter descriptions (brainsleep.docstrings): filled, indented, never left raw."""

import importlib
import inspect
import pkgutil

import pytest

import analysis
import brainsleep
from brainsleep.docstrings import DOCS, fill_doc


def test_placeholder_line_becomes_the_entry_indented_like_it():
    def f(ds, layer):
        """Summary with 100 %(not a placeholder)s in the text.

        Parameters
        ----------
        %(ds)s
        %(layer)s
        """

    # Python 3.13 strips the docstring's common indentation at compile time: the entry
    # takes the placeholder line's indentation, whatever it is, as the lines around it do
    (indent,) = [x.replace("%(layer)s", "") for x in f.__doc__.splitlines() if "%(layer)s" in x]
    assert indent.strip() == ""
    fill_doc(f)
    lines = f.__doc__.splitlines()
    start = lines.index(indent + "ds : xarray.Dataset")
    entry = DOCS["ds"].splitlines() + DOCS["layer"].splitlines()
    assert lines[start : start + len(entry)] == [indent + line for line in entry]
    assert lines[start - 1] == indent + "----------"
    assert "100 %(not a placeholder)s" in lines[0]  # only whole-line placeholders


def test_unknown_placeholder_is_named():
    def g():
        """Doc.

        %(no_such_entry)s
        """

    with pytest.raises(KeyError, match=r"%\(no_such_entry\)s .*test_docstrings.*DOCS"):
        fill_doc(g)


def _public_docs():
    for pkg in (brainsleep, analysis):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if "cuda" in info.name or info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if getattr(obj, "__module__", None) != module.__name__ or obj is fill_doc:
                    continue
                yield f"{info.name}.{name}", obj.__doc__
                if inspect.isclass(obj):
                    for attr, member in vars(obj).items():
                        yield f"{info.name}.{name}.{attr}", getattr(member, "__doc__", None)


def test_no_public_docstring_keeps_a_raw_placeholder():
    raw = [name for name, doc in _public_docs() if isinstance(doc, str) and "    %(" in doc]
    assert raw == []
