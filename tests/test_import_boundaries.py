"""Import boundaries: no cycles, layered stages, pure analysis/scoring, no srservice -> workers.

The import graph is read from the source (every ``import`` statement, including those inside
functions and ``TYPE_CHECKING`` blocks), so a lazy import cannot hide a loop. The purity of
``analysis`` and ``scoring`` is also checked in a fresh interpreter, so that other tests'
imports cannot hide a violation. ``docs/architecture.md`` describes the layers.

The loops this replaced were between stages more than between modules (``jobs.runner`` ->
``delivery`` -> ``jobs``; ``results`` -> ``reporting.uids`` while ``reporting`` imported
``results``), hence the stage-level check beside the module-level one.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("pydicom", "pynetdicom", "celery", "sqlalchemy", "kombu")


# --- the static import graph ---------------------------------------------------------------
def _module_names(package_dir: Path, package: str) -> dict[str, Path]:
    """Every module of a package directory: dotted name -> file."""
    out: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts[0] == package:
            out[".".join(parts)] = path
    return out


def _imports(path: Path, name: str, is_package: bool) -> set[str]:
    """Dotted names a module imports (absolute, relative resolved).

    ``from a.b import c`` yields ``a.b.c``; the graph resolves it to the module ``a.b.c`` when
    that exists (importing a submodule, as ``import a.b.c`` would), else to ``a.b``.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    base = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                module = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def import_graph(package: str = "srservice") -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (a name resolved to the module it is)."""
    modules = _module_names(ROOT / package, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, name, path.name == "__init__.py"):
            # ``from a.b import c``: c is the module a.b.c if it exists, else a name in a.b.
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def unit(module: str) -> str:
    """The stage a module belongs to: ``srservice.<package>`` or a top-level module."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_modules() -> None:
    assert cycles(import_graph()) == []


def test_no_import_cycle_between_stages() -> None:
    """Packages and top-level modules are layered too (e.g. jobs imports listener, never back)."""
    graph: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        graph.setdefault(unit(module), set()).update(
            unit(t) for t in targets if unit(t) != unit(module))
    assert cycles(graph) == []


def test_workers_imports_srservice_and_srservice_never_imports_workers() -> None:
    offending = {}
    for name, path in _module_names(ROOT / "srservice", "srservice").items():
        bad = {m for m in _imports(path, name, path.name == "__init__.py")
               if m.split(".")[0] == "workers"}
        if bad:
            offending[name] = sorted(bad)
    assert offending == {}
    assert cycles(import_graph("workers")) == []
    workers_imports = set().union(*(
        _imports(p, n, p.name == "__init__.py")
        for n, p in _module_names(ROOT / "workers", "workers").items()))
    assert any(m.startswith("srservice.") for m in workers_imports)


def test_pure_packages_import_only_their_own_types() -> None:
    """analysis imports only itself, errors and the version; scoring only analysis.types."""
    graph = import_graph()
    for module, targets in graph.items():
        if unit(module) == "srservice.analysis":
            assert {t for t in targets if unit(t) != "srservice.analysis"} <= {
                "srservice", "srservice.errors"}, module
    assert graph["srservice.scoring"] <= {"srservice.analysis.types"}


def test_cycle_finder_finds_cycles() -> None:
    # The checks above must be able to fail.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = import_graph()
    assert "srservice.listener.spool" in graph["srservice.jobs.store"]
    assert "srservice.jobs.store" in graph["srservice.jobs"]  # the package's face counts


# --- purity in a fresh interpreter ----------------------------------------------------------
def _analysis_modules() -> list[str]:
    import srservice.analysis as pkg

    return ["srservice.analysis"] + [
        f"srservice.analysis.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]


def _check(modules: list[str]) -> dict[str, list[str]]:
    code = (
        "import importlib, json, sys\n"
        f"mods = {modules!r}\n"
        f"forbidden = {FORBIDDEN!r}\n"
        "out = {}\n"
        "for m in mods:\n"
        "    importlib.import_module(m)\n"
        "out['loaded'] = sorted(k for k in sys.modules if k.split('.')[0] in forbidden)\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    result: dict[str, list[str]] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def test_analysis_modules_are_listed() -> None:
    mods = _analysis_modules()
    assert "srservice.analysis.pipeline" in mods
    assert "srservice.analysis.types" in mods


def test_analysis_imports_no_dicom_network_queue_or_database() -> None:
    assert _check(_analysis_modules())["loaded"] == []


def test_scoring_imports_no_dicom_network_queue_or_database() -> None:
    assert _check(["srservice.scoring"])["loaded"] == []


def test_checker_detects_a_violation() -> None:
    # The subprocess check itself must be able to fail.
    assert _check(["pydicom"])["loaded"] != []
