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
        for p in (ROOT / "webhooks").glob("*.py")
        if p.name != "wsgi.py"
    }
    assert {k: v for k, v in offenders.items() if v} == {}
