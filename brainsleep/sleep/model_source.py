"""Where in a model file a block's value is: the line numbers of one-line errors.

The static check (:mod:`brainsleep.sleep.model_check`) and the reader
(:mod:`brainsleep.sleep.model`) both name the file and line of what they refuse; this
module, below both, finds the line from the file's text and its AST.
"""

from __future__ import annotations

import ast
from pathlib import Path


def _one_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's message (KeyError without quotes)."""
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in str(msg).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _where(path: Path, line: int | None, block: str, key: str) -> str:
    at = f"model file {path}" + (f", line {line}" if line else "")
    return f'{at}: {block}["{key}"]'


def _value_node(tree: ast.Module | None, block: str, key: str) -> ast.expr | None:
    """The AST node of ``BLOCK = {..., key: <node>}`` or ``BLOCK[key] = <node>`` (the last)."""
    found = None
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            hit = None
            if isinstance(target, ast.Name) and target.id == block:
                if isinstance(value, ast.Dict):
                    for k, v in zip(value.keys, value.values, strict=True):
                        if isinstance(k, ast.Constant) and k.value == key:
                            hit = v
                elif isinstance(value, ast.Call) and getattr(value.func, "id", None) == "dict":
                    hit = next((kw.value for kw in value.keywords if kw.arg == key), None)
            elif (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and target.value.id == block
                and isinstance(target.slice, ast.Constant)
                and target.slice.value == key
            ):
                hit = value
            if hit is not None and (found is None or hit.lineno >= found.lineno):
                found = hit
    return found


def _has_name(line: str, name: str) -> bool:
    from brian2.utils.stringtools import get_identifiers

    return name in get_identifiers(line.split("#", 1)[0])


def _source_line(
    text: str, block: str, key: str, value: str, offset: int | None = None, name: str | None = None
) -> int | None:
    """Line of the model file where line ``offset`` of ``block[key]`` (or ``name`` in it) is."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        tree = None
    node = _value_node(tree, block, key)
    lines = text.splitlines()
    if offset is None and name is not None:
        offset = next(
            (k for k, line in enumerate(value.split("\n")) if _has_name(line, name)), None
        )
    if node is not None:
        exact = (
            isinstance(node, ast.Constant)
            and node.value == value
            and node.end_lineno - node.lineno == value.count("\n")
        )
        if exact and offset is not None:
            return node.lineno + offset
        if name is not None:
            for k in range(node.lineno, node.end_lineno + 1):
                if _has_name(lines[k - 1], name):
                    return k
        return node.lineno
    if name is not None:
        return next((k for k, line in enumerate(lines, 1) if _has_name(line, name)), None)
    return None


def _equations(path: Path, text: str, block: str, value: str):
    """``brian2.Equations`` of a block, or a one-line ValueError with the failing line."""
    import brian2

    try:
        return brian2.Equations(value)
    except Exception as exc:
        offset = None
        for k, line in enumerate(value.split("\n")):
            if line.split("#", 1)[0].strip():
                try:
                    brian2.Equations(line)
                except Exception:
                    offset = k
                    break
        line_no = _source_line(text, block, "equations", value, offset)
        raise ValueError(
            f"{_where(path, line_no, block, 'equations')} does not parse as Brian2 "
            f"equations: {_one_line(exc)}"
        ) from None
