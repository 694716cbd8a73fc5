"""Write one API reference page per module of ``src/mmrlaif`` (mkdocs-gen-files).

Run by the ``gen-files`` plugin on every ``mkdocs build``: it walks the source tree as it is,
so a module renamed or moved gets its page under its new name with no edit here. Skipped:
``__main__`` modules, private ``_``-prefixed modules and packages, folders that are not
packages (no ``__init__.py``) and anything under a ``data`` folder (package data, such as
the twins' files). The navigation is written to ``reference/SUMMARY.md`` for
mkdocs-literate-nav.
"""

from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = SRC / "mmrlaif"
# Folders of non-Python files that live inside the package: never modules.
DATA_DIR_NAME = "data"


def _documented(path: Path) -> bool:
    parts = path.relative_to(SRC).with_suffix("").parts
    if DATA_DIR_NAME in parts[:-1]:
        return False
    if parts[-1] == "__main__":
        return False
    if any(part.startswith("_") and part != "__init__" for part in parts):
        return False
    # Every folder from the package root down must be a package.
    folder = path.parent
    while folder != SRC:
        if not (folder / "__init__.py").is_file():
            return False
        folder = folder.parent
    return True


nav = mkdocs_gen_files.Nav()

for path in sorted(PACKAGE.rglob("*.py")):
    if not _documented(path):
        continue
    module_path = path.relative_to(SRC).with_suffix("")
    doc_path = path.relative_to(SRC).with_suffix(".md")
    parts = tuple(module_path.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        doc_path = doc_path.with_name("index.md")
    full_doc_path = Path("reference", doc_path)

    nav[parts] = doc_path.as_posix()
    with mkdocs_gen_files.open(full_doc_path, "w") as fd:
        fd.write(f"::: {'.'.join(parts)}\n")
    mkdocs_gen_files.set_edit_path(full_doc_path, path.relative_to(ROOT))

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as nav_file:
    nav_file.writelines(nav.build_literate_nav())
