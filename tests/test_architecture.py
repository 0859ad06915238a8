"""Layering: the server depends on storage, never the reverse (STYLE.md section 9)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
STORAGE_MODULES = sorted((ROOT / "storage").rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports, at any depth (functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "__import__" and node.args
              and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def test_storage_has_modules() -> None:
    assert len(STORAGE_MODULES) >= 10


@pytest.mark.parametrize("path", STORAGE_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_storage_never_imports_pacs(path: Path) -> None:
    offending = {name for name in _imported_modules(path)
                 if name == "pacs" or name.startswith("pacs.")}
    assert not offending, f"{path.relative_to(ROOT)} imports {sorted(offending)}"


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from pacs.errors import BadRequest\n    import pacs\n")
    assert _imported_modules(sample) == {"pacs.errors", "pacs"}
