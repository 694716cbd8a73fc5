"""Every package folder ships: the explicit package list in pyproject covers them all."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_lists_every_package():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    dirs = setuptools["package-dir"]
    found = {"mmrlaif"}
    for init in (ROOT / "src" / "mmrlaif").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT / "src")
        found.add(".".join(rel.parts))
    for package, folder in dirs.items():
        if package:
            assert (ROOT / folder / "__init__.py").is_file(), folder
            found.add(package)
    assert listed == found
    for folder in (ROOT / "src" / "mmrlaif").iterdir():
        if folder.is_dir() and any(folder.glob("*.py")):
            assert (folder / "__init__.py").is_file(), f"{folder} is not a package"


def test_test_modules_have_unique_names():
    # the test folders are not packages: two test files of one name would shadow each other
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted(names) == sorted(set(names))
