"""The tests mirror the code: helpers in helper modules, and every end-to-end module marked e2e."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports by its absolute dotted name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_test_imports_conftest_or_another_test_module() -> None:
    for module in TESTS.rglob("*.py"):
        wrong = {
            name
            for name in imported_modules(module)
            if name.startswith("tests.") and name.split(".")[-1].startswith(("conftest", "test_"))
        }
        assert not wrong, f"{module.relative_to(ROOT)} imports {wrong}: move what it needs to a helper module"


def test_test_modules_sit_in_the_folder_of_what_they_test() -> None:
    assert sorted(path.name for path in TESTS.glob("test_*.py")) == []
    folders = {path.parent.name for path in TESTS.rglob("test_*.py")}
    assert folders == {"api", "worker", "shared", "screening", "filestore", "client", "e2e", "project"}


def module_marks(path: Path) -> set[str]:
    """The names of the marks in a module's `pytestmark` (one mark or a list of them)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and [ast.unparse(target) for target in node.targets] == [
            "pytestmark"
        ]:
            marks = node.value.elts if isinstance(node.value, ast.List) else [node.value]
            return {ast.unparse(mark).removeprefix("pytest.mark.") for mark in marks}
    return set()


def test_every_end_to_end_module_is_marked_e2e() -> None:
    # `pytest -m "not e2e"` (scripts/check) must leave out every test that starts real processes.
    for module in sorted((TESTS / "e2e").glob("test_*.py")):
        assert "e2e" in module_marks(module), module.name


def test_the_edit_loop_and_the_whole_suite_have_their_scripts() -> None:
    for script in ("scripts/check", "scripts/test"):
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"
