"""The layering rules of docs/architecture.md, checked on the source itself."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_neither_flask_nor_celery():
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_modules(p) & {"flask", "celery", "workers", "webhooks"})
        for p in (ROOT / "connector").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_mapping_is_pure():
    io_modules = {"requests", "sqlalchemy", "redis", "fakeredis", "celery", "flask", "werkzeug", "socket", "urllib", "http", "time"}
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_modules(p) & io_modules)
        for p in (ROOT / "connector" / "mapping").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_receiver_does_no_storage_or_api_io():
    # webhooks/wsgi.py is the composition root; the receiver proper only verifies and enqueues.
    io_modules = {"sqlalchemy", "requests"}
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_modules(p) & io_modules)
        for p in (ROOT / "webhooks").rglob("*.py")  # the console's pages too: they read through connector/
        if p.name != "wsgi.py"
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def package_imports(package: str) -> dict[str, set[str]]:
    """Module → the modules of the same package it imports, at any depth of the file (an import kept
    inside a function to dodge a cycle still counts)."""
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        named: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                named.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named.add(node.module)
                named.update(f"{node.module}.{alias.name}" for alias in node.names)  # from pkg import module
        graph[name] = {m for m in named if m in modules and m != name}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` (its modules in import order, the first repeated at the end), or []."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return path[path.index(imported):] + [imported]
            if imported not in state and (cycle := visit(imported)):
                return cycle
        state[module] = "done"
        path.pop()
        return []

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return []


def test_import_cycle_is_found():
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_in_workers_or_webhooks():
    assert {package: import_cycle(package_imports(package)) for package in ("workers", "webhooks")} == {
        "workers": [], "webhooks": []}
