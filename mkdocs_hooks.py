"""mkdocs hook: the documentation site shows notebooks as nbdev renders them, not their machinery.

Before mkdocs reads the pages, the notebooks of docs_dir (nbs/) are copied to a _docs_src-<pid>/ folder beside it
(removed when mkdocs ends), with:
- cells marked `#| hide` and the `#| default_exp` cell left out;
- every `#| export` cell replaced by what a reader of the API needs: each definition's signature and docstring (as
  nbdev's `show_doc` shows them); cells of imports alone are left out;
- the remaining `#| ...` directive lines (`#| slow`, `#| gpu`, ...) removed from the code shown.
"""

import ast
import json
import os
import shutil
from pathlib import Path

OUT = f"_docs_src-{os.getpid()}"  # one per build, so that two builds of the same checkout never share it
_MADE: list[Path] = []


def _directives(source: str) -> tuple[list[str], str]:
    "The `#|` directive lines at the top of a cell, and the rest of its source."
    lines = source.split("\n")
    k = 0
    while k < len(lines) and lines[k].startswith("#|"):
        k += 1
    return [d[2:].strip() for d in lines[:k]], "\n".join(lines[k:]).strip("\n")


def _signature(node: ast.AST) -> str:
    "`def name(args) -> ret` or `class Name(bases)`, as written, under its decorators."
    decorators = "".join(f"@{ast.unparse(d)}\n" for d in node.decorator_list)
    return decorators + _bare_signature(node)


def _bare_signature(node: ast.AST) -> str:
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(b) for b in node.bases)
        return f"class {node.name}({bases})" if bases else f"class {node.name}"
    ret = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    return f"{prefix} {node.name}({ast.unparse(node.args)}){ret}"


def api_markdown(code: str) -> str | None:
    "Signature and docstring of each public definition in an export cell; None when it defines nothing to show."
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    parts = []
    body = []
    for node in tree.body:  # definitions inside a top-level `if` (an optional dependency) count too
        body.extend(node.body + node.orelse if isinstance(node, ast.If) else [node])
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            doc = ast.get_docstring(node) or ""
            parts.append(f"#### `{node.name}`\n\n```python\n{_signature(node)}\n```\n\n{doc}".rstrip())
            if isinstance(node, ast.ClassDef):
                for m in node.body:
                    if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and not m.name.startswith("_"):
                        mdoc = ast.get_docstring(m) or ""
                        parts.append(f"`{node.name}.{m.name}`: `{_bare_signature(m)}`\n\n{mdoc}".rstrip())
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            names = [n for n in names if not n.startswith("_") and n != "log"]
            text = ast.unparse(node)
            if names and len(text) > 200:  # a long value: its name and the start of it
                text = text[:160].rsplit(" ", 1)[0] + " ..."
            if names:
                parts.append(f"```python\n{text}\n```")
    return "\n\n".join(parts) or None


def page(nb: dict) -> dict:
    "The notebook as the site shows it."
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            cells.append(cell)
            continue
        directives, body = _directives("".join(cell["source"]))
        if any(d.startswith(("hide", "default_exp")) for d in directives):
            continue
        if any(d.startswith("export") for d in directives):
            text = api_markdown(body)
            if text:
                cells.append({"cell_type": "markdown", "metadata": {}, "source": text})
            continue
        cells.append({**cell, "source": body})
    return {**nb, "cells": cells}


def on_config(config):
    src = Path(config["docs_dir"])
    out = src.parent / OUT
    config["watch"].append(str(src))  # `mkdocs serve` rebuilds when a notebook changes, not the copy
    shutil.rmtree(out, ignore_errors=True)
    _MADE.append(out)
    shutil.copytree(src, out, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.ipynb"))
    for f in sorted(src.glob("*.ipynb")):
        nb = json.loads(f.read_text(encoding="utf-8"))
        (out / f.name).write_text(json.dumps(page(nb), ensure_ascii=False, indent=1), encoding="utf-8")
    config["docs_dir"] = str(out)
    return config


def on_shutdown():
    "The copies go when mkdocs ends (a build, or `mkdocs serve` stopped)."
    while _MADE:
        shutil.rmtree(_MADE.pop(), ignore_errors=True)
