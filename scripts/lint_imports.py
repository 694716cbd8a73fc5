"""Check the import contracts of ``pyproject.toml`` (``[tool.importlinter]``) with import-linter.

import-linter (through grimp) reads a package from its folder, and ``mmrlaif`` ships three
subpackages from folders outside ``src/mmrlaif`` (``components/``, ``pipelines/``, ``images/``,
mapped by ``[tool.setuptools.package-dir]``). This script lays the package out as a wheel
installs it, in a temporary folder (copies of the ``.py`` files only), puts that folder first on
``sys.path`` and runs the linter on it, so every contract sees the whole package.

Usage: ``python scripts/lint_imports.py [pyproject.toml]`` (``make lint`` runs it); exits 1 when
a contract is broken, printing which import breaks it.
"""

from __future__ import annotations

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


def main(argv: list[str]) -> int:
    from importlinter.cli import lint_imports

    pyproject = Path(argv[0] if argv else "pyproject.toml").resolve()
    with tempfile.TemporaryDirectory(prefix="mmrlaif-imports-") as tmp:
        lay_out(pyproject, Path(tmp))
        sys.path.insert(0, tmp)
        try:
            return lint_imports(config_filenames=(str(pyproject),), no_cache=True, no_logo=True)
        finally:
            sys.path.remove(tmp)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
