"""softmass_core stays Streamlit-free and offline."""

from __future__ import annotations

import ast
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import softmass_core
from tests.conftest import ROOT


def test_no_streamlit_import_in_source():
    offenders = []
    for path in (ROOT / "softmass_core").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"^\s*(import|from)\s+streamlit\b", text, flags=re.M):
            offenders.append(str(path))
    assert offenders == []


@pytest.mark.slow  # a second Python process that imports torch
def test_importing_every_core_module_loads_no_streamlit():
    names = [m.name for m in pkgutil.walk_packages(softmass_core.__path__, "softmass_core.")]
    assert "softmass_core.inference.cascade" in names and "softmass_core.data.phantom" in names
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}:\n"
        "    importlib.import_module(n)\n"
        "print('streamlit' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_no_download_paths_in_core():
    # weights are built with pretrained=False; the only pretrained=True is the opt-in --init imagenet of train.
    hits = []
    for path in (ROOT / "softmass_core").rglob("*.py"):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "pretrained=True" in line or "torch.hub" in line or "urlopen" in line or "requests." in line:
                hits.append(f"{path.name}:{i}")
    assert all(h.startswith("train.py:") for h in hits), hits


def test_statistics_import_only_the_numeric_libraries():
    # softmass_core.stats: numpy, scipy, scikit-learn, statsmodels, pandas; from the core only errors and labels.
    allowed = {"numpy", "scipy", "sklearn", "statsmodels", "pandas", "__future__"}
    allowed_core = {"softmass_core.errors", "softmass_core.labels", "softmass_core"}
    found = {}
    for path in sorted((ROOT / "softmass_core" / "stats").glob("*.py")):
        for mod in re.findall(r"^\s*(?:from|import)\s+([\w.]+)", path.read_text(encoding="utf-8"), flags=re.M):
            top = mod.split(".")[0]
            ok = (
                top in allowed
                or top in sys.stdlib_module_names
                or mod in allowed_core
                or mod.startswith("softmass_core.stats")
            )
            if not ok:
                found.setdefault(path.name, []).append(mod)
    assert found == {}
    code = (
        "import sys\n"
        "import softmass_core.stats.reader_study, softmass_core.stats.tables, softmass_core.stats.curves\n"
        "import softmass_core.stats.binary\n"
        "print(sorted(m for m in sys.modules if m.startswith('softmass_core.') and not m.startswith("
        "'softmass_core.stats')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['softmass_core.errors', 'softmass_core.labels']"


# --------------------------------------------------------------------------- the import graph


def _module_name(path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """Every module named by an import in ``tree``, at any depth, with its line; ``if TYPE_CHECKING:`` skipped.

    ``from a import b`` names ``a`` and ``a.b`` (``b`` may be a submodule), and
    ``importlib.import_module("a.b")`` with a literal names ``a.b``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((base, node.lineno))
            found.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _core_import_graph() -> dict[str, dict[str, int]]:
    """``{module: {imported softmass_core module: line}}`` over every file of softmass_core."""
    files = {_module_name(p): p for p in (ROOT / "softmass_core").rglob("*.py")}
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: dict[str, int] = {}
        for target, line in _imported_names(tree, name, path.name == "__init__.py"):
            if target in files and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(out)


def test_the_import_graph_helpers_see_lazy_imports_and_skip_type_checking():
    code = (
        "from typing import TYPE_CHECKING\n"
        "import importlib\n"
        "from softmass_core.errors import SoftmassError\n"
        "if TYPE_CHECKING:\n"
        "    from softmass_core.reader_study.store import ReaderStudyStore\n"
        "def f():\n"
        "    from softmass_core.inference import tta\n"
        "    from . import labels\n"
        "    return importlib.import_module('softmass_core.data.phantom.case')\n"
    )
    names = {n for n, _ in _imported_names(ast.parse(code), "softmass_core.x", False)}
    assert {
        "softmass_core.errors",
        "softmass_core.inference.tta",
        "softmass_core.labels",
        "softmass_core.data.phantom.case",
    } <= names
    assert "softmass_core.reader_study.store" not in names
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_core():
    # Imports inside functions count: a cycle hidden by a lazy import is still a cycle.
    graph = _core_import_graph()
    cycles = _cycles(graph)
    described = []
    for component in cycles:
        members = set(component)
        edges = [f"{a} -> {b} (line {graph[a][b]})" for a in component for b in sorted(graph[a]) if b in members]
        described.append(" | ".join(edges))
    assert cycles == [], "import cycles:\n" + "\n".join(described)


def test_only_the_cli_parses_command_lines():
    offenders = []
    for path in (ROOT / "softmass_core").rglob("*.py"):
        rel = path.relative_to(ROOT / "softmass_core")
        if rel.parts[0] == "cli" or rel == Path("__main__.py"):
            continue
        name = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target, line in _imported_names(tree, name, path.name == "__init__.py"):
            if target == "argparse" or target == "softmass_core.cli" or target.startswith("softmass_core.cli."):
                offenders.append(f"{rel}:{line} imports {target}")
    assert offenders == []


def test_files_stay_small_and_every_subpackage_says_what_it_offers():
    """#16's house rules: no engine or ui file over 600 lines, no page over 200, each subpackage documented."""
    too_long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for folder, limit in (("softmass_core", 600), ("ui", 600), ("pages", 200))
        for p in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit
    ]
    assert too_long == []
    packages = sorted(p.parent for p in (ROOT / "softmass_core").rglob("__init__.py"))
    assert {p.name for p in packages} >= {"io", "weights", "inference", "stats", "cohorts", "training", "data", "cli"}
    undocumented = []
    for pkg in packages:
        tree = ast.parse((pkg / "__init__.py").read_text(encoding="utf-8"))
        if len(ast.get_docstring(tree) or "") < 80:
            undocumented.append(str(pkg.relative_to(ROOT)))
    assert undocumented == []
