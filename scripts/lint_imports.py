"""Check the import contracts of ``pyproject.toml`` (``[tool.importlinter]``) with import-linter.

import-linter (through grimp) reads a package from its folder, and ``mmrlaif`` ships three
subpackages from folders outside ``src/mmrlaif`` (``components/``, ``pipelines/``, ``images/``,
mapped by ``[tool.setuptools.package-dir]``). This script lays the package out as a wheel
installs it, in a temporary folder (copies of the ``.py`` files only), puts that folder first on
``sys.path`` and runs the linter on it, so every contract sees the whole package.

It also checks the rule import-linter has no contract for: an import inside a function body
hides a dependency, so each one states why it is there, in a ``# lazy: <reason>`` comment on
its line or on the line above its block of imports (e.g. an optional or heavy dependency that a
command needs only when it runs). KFP components are exempt: KFP runs a component's function
body alone, so their imports must be inside it.

Usage: ``python scripts/lint_imports.py [pyproject.toml]`` (``make lint`` runs it); exits 1 when
a contract is broken or a function-body import gives no reason, printing which.
"""

from __future__ import annotations

import ast
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path


def lay_out(pyproject: Path, into: Path) -> None:
    """Copy the ``.py`` files of every package of ``pyproject``'s setuptools map into ``into``,
    at their import paths."""
    root = pyproject.parent
    setuptools = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]
    folders = setuptools.get("package-dir", {})
    for package in setuptools["packages"]:
        mapped = next(
            (
                root / folders[prefix] / package.removeprefix(prefix).lstrip(".").replace(".", "/")
                for prefix in sorted(folders, key=len, reverse=True)
                if prefix and (package == prefix or package.startswith(prefix + "."))
            ),
            root / folders.get("", ".") / package.replace(".", "/"),
        )
        target = into / package.replace(".", "/")
        target.mkdir(parents=True, exist_ok=True)
        for source in mapped.glob("*.py"):
            shutil.copy2(source, target / source.name)


#: Where function-body imports are the rule, not the exception (see the module docstring).
EXEMPT = ("components",)
#: The marker of a function-body import's reason.
REASON = "# lazy:"


def unexplained_imports(pyproject: Path) -> list[str]:
    """``file:line: import`` for every function-body import of the package without a reason.

    The reason is a ``# lazy: ...`` comment on the import's line or on the line above the
    contiguous block of imports it starts or belongs to.
    """
    root = pyproject.parent
    setuptools = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]
    folders = [root / f for p, f in setuptools.get("package-dir", {}).items() if p] + [
        root / setuptools.get("package-dir", {}).get("", ".") / "mmrlaif"
    ]
    found = []
    for folder in folders:
        if folder.name in EXEMPT:
            continue
        for path in sorted(folder.rglob("*.py")):
            lines = path.read_text().splitlines()
            for node in _body_imports(ast.parse("\n".join(lines))):
                if not _explained(lines, node.lineno - 1):
                    where = path.relative_to(root)
                    found.append(f"{where}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def _body_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports inside function bodies (``if TYPE_CHECKING:`` blocks left out)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                continue
            if isinstance(child, ast.Import | ast.ImportFrom) and in_function:
                found.append(child)
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, inner)

    visit(tree, False)
    return found


def _explained(lines: list[str], index: int) -> bool:
    """Whether the import at ``lines[index]`` or the head of its block has a reason."""
    if REASON in lines[index]:
        return True
    while index > 0:
        above = lines[index - 1].strip()
        if above.startswith(REASON):
            return True
        if not _continues_imports(above):
            return False
        index -= 1
    return False


def _continues_imports(line: str) -> bool:
    """Whether ``line`` may sit inside a block of imports (an import, its continuation, a blank
    or a comment)."""
    return not line or line.startswith(("import ", "from ", "#", ")")) or line.endswith((",", "("))


def main(argv: list[str]) -> int:
    from importlinter.cli import lint_imports

    pyproject = Path(argv[0] if argv else "pyproject.toml").resolve()
    with tempfile.TemporaryDirectory(prefix="mmrlaif-imports-") as tmp:
        lay_out(pyproject, Path(tmp))
        sys.path.insert(0, tmp)
        try:
            broken = lint_imports(config_filenames=(str(pyproject),), no_cache=True, no_logo=True)
        finally:
            sys.path.remove(tmp)
    unexplained = unexplained_imports(pyproject)
    for line in unexplained:
        print(f"{line}  <- a function-body import needs a '{REASON} <reason>' comment")
    if unexplained:
        print(f"{len(unexplained)} function-body import(s) without a reason")
    return 1 if broken or unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
