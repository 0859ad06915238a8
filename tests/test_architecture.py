"""Layering: each layer imports only the layers below it, and no module imports itself back
through a cycle (ARCHITECTURE.md).

    entry (app, routes, __main__, commands) → transactions → http → service → pixels → dicom → base
    → storage
"""

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
MODULES = sorted([*(ROOT / "pacs").rglob("*.py"), *(ROOT / "storage").rglob("*.py")])

# Highest first; a module belongs to the first layer one of whose prefixes names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry", ("pacs.app", "pacs.routes", "pacs.__main__", "pacs.commands", "pacs.config")),
    ("transactions", ("pacs.transactions",)),
    ("http", ("pacs.http",)),
    ("dimse", ("pacs.dimse",)),
    ("service", ("pacs.service",)),
    ("pixels", ("pacs.pixels",)),
    ("dicom", ("pacs.dicom",)),
    ("base", ("pacs.settings", "pacs.names", "pacs.malloc_arenas", "pacs.bounded_cache",
              "pacs.ascii_numbers", "pacs.telemetry", "pacs.logs", "pacs.cores", "pacs")),
    ("storage", ("storage",)),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports, at any depth (functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "__import__" and node.args
              and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def _layer(module: str) -> int | None:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


KNOWN = {_module_name(p) for p in MODULES}


@cache
def _graph() -> dict[str, set[str]]:
    """Each of our modules → the modules of ours it imports."""
    return {_module_name(p): {m for m in _imported_modules(p) if m in KNOWN} - {_module_name(p)}
            for p in MODULES}


def test_every_module_has_a_layer() -> None:
    assert len(MODULES) > 50
    assert [m for m in KNOWN if _layer(m) is None] == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_run_down(path: Path) -> None:
    module = _module_name(path)
    own = _layer(module)
    assert own is not None
    upward = sorted(m for m in _graph()[module] if (_layer(m) or 0) < own)
    assert not upward, f"{module} ({LAYERS[own][0]}) imports layers above it: {upward}"


def test_no_import_cycles() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            raise AssertionError(f"import cycle: {' → '.join(trail[trail.index(module):])}"
                                 f" → {module}")
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            if not imported.startswith(module + "."):  # a package importing its own modules
                visit(imported, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_checks_see_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from pacs.service import errors\n    import pacs\n")
    assert _imported_modules(sample) == {"pacs.service", "pacs.service.errors", "pacs"}


def test_the_checks_see_an_upward_import() -> None:
    """storage importing the service layer would be flagged."""
    assert _layer("storage.rows") > _layer("pacs.service.stores")  # type: ignore[operator]
    assert _layer("pacs.dicom.ingest") > _layer("pacs.pixels.codecs")  # type: ignore[operator]


def test_the_supervisor_loads_no_worker_only_library() -> None:
    """`pacs serve --workers N` supervises from `pacs.__main__`, which must not pull in pydicom,
    numpy or the codecs (~50 MB in each process that does)."""
    probe = ("import sys, pacs.__main__; print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'pydicom', 'numpy', 'PIL', 'imagecodecs', 'pylibjpeg', 'starlette'}))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    assert loaded == "[]"
