"""The project's import graph, read with `ast` from TumorApp/ and Tumor/: no import circle, the analysis
package stands alone (no Django, nothing from the web side), and no feature reaches into another's views."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("Tumor", "TumorApp")
ANALYSIS = "TumorApp.analysis"
FEATURES = ("accounts", "analyses", "series", "corrections", "pacs")
VIEW_MODULES = ("views", "api")  # API endpoints are views too


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _imported_names(name: str, path: Path) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every import in the file, at any depth (function-level too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found += [(module, alias.name) for alias in node.names]
    return found


def _resolve(module: str, name: str | None, modules) -> str | None:
    """The project module an import loads: `from pkg import mod` names pkg.mod, else the longest
    project prefix of the dotted path; None for anything outside the project."""
    if name is not None and f"{module}.{name}" in modules:
        return f"{module}.{name}"
    parts = module.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """(edges between project modules, every absolute module each file imports)."""
    modules = project_modules()
    edges, raw = {}, {}
    for name, path in modules.items():
        imported = _imported_names(name, path)
        raw[name] = [module for module, _ in imported]
        edges[name] = {target for module, alias in imported
                       if (target := _resolve(module, alias, modules)) is not None and target != name}
    return edges, raw


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_walk_sees_the_app_and_function_level_imports(graph):
    edges, _ = graph
    assert f"{ANALYSIS}.slice.pipeline" in edges and "TumorApp.models" in edges
    # services import the pipeline inside a function (so the server starts without the network)
    assert f"{ANALYSIS}.slice.pipeline" in edges["TumorApp.analyses.services"]


def test_no_import_circle(graph):
    edges, _ = graph
    assert _cycles(edges) == []


def test_the_analysis_package_imports_no_django_and_nothing_of_the_web_side(graph):
    edges, raw = graph
    for module in edges:
        if module == ANALYSIS or module.startswith(ANALYSIS + "."):
            assert not [m for m in raw[module] if m == "django" or m.startswith("django.")], module
            outside = {t for t in edges[module] if not (t == ANALYSIS or t.startswith(ANALYSIS + "."))}
            assert outside == set(), module


def test_features_do_not_import_each_others_views(graph):
    edges, _ = graph
    for module, targets in edges.items():
        parts = module.split(".")
        if len(parts) < 2 or parts[0] != "TumorApp" or parts[1] not in FEATURES:
            continue
        for target in targets:
            t = target.split(".")
            if len(t) >= 3 and t[0] == "TumorApp" and t[1] in FEATURES and t[1] != parts[1]:
                assert t[2] not in VIEW_MODULES, f"{module} imports {target}"


def test_analysis_subpackages_have_no_circle_between_them(graph):
    """io, model, slice and series as whole packages: what a stage needs sits below it, never both ways
    (e.g. model/ runs graphs and knows nothing of the slice stages; measuring backends through those
    stages is analysis/backend_trial.py, above both)."""
    edges, _ = graph

    def package(module: str) -> str:
        rest = module[len(ANALYSIS) + 1:].split(".") if module.startswith(ANALYSIS + ".") else []
        return f"{ANALYSIS}.{rest[0]}" if len(rest) > 1 else module

    packages: dict[str, set[str]] = {}
    for module, targets in edges.items():
        if module.startswith(ANALYSIS + "."):
            source = package(module)
            packages.setdefault(source, set()).update(
                package(t) for t in targets if t.startswith(ANALYSIS + ".") and package(t) != source)
    assert _cycles(packages) == []


def test_no_template_has_a_multi_line_hash_comment():
    """Django's {# #} comments end at the line: a multi-line one is printed on the page."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "templates"
    bad = [str(p.relative_to(root)) for p in root.rglob("*.html")
           if any("\n" in m.group(1) for m in re.finditer(r"\{#(.*?)#\}", p.read_text(), re.S))]
    assert not bad, f"use {{% comment %}} in: {bad}"
