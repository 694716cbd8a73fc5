"""The import contracts of pyproject.toml hold, and an import that breaks one fails the lint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from lint_imports import lay_out  # noqa: E402

LINT = """
import sys
sys.path.insert(0, sys.argv[1])
from importlinter.cli import lint_imports
only = tuple(sys.argv[3:])  # contract ids (none: all)
sys.exit(lint_imports(config_filenames=(sys.argv[2],), limit_to_contracts=only, no_cache=True))
"""


def _lint(tmp_path: Path, extra: dict[str, str], *only: str) -> subprocess.CompletedProcess:
    """Lint the package as installed plus ``extra`` modules (import path -> source), against
    the contracts ``only`` (all when none)."""
    lay_out(ROOT / "pyproject.toml", tmp_path)
    for module, source in extra.items():
        (tmp_path / (module.replace(".", "/") + ".py")).write_text(source)
    # a fresh interpreter: this one has mmrlaif imported from src/, without the extra modules
    return subprocess.run(
        [sys.executable, "-c", LINT, str(tmp_path), str(ROOT / "pyproject.toml"), *only],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def test_the_package_keeps_its_contracts(tmp_path: Path) -> None:
    done = _lint(tmp_path, {})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "source", "contract"),
    [
        ("mmrlaif.io.upward", "import mmrlaif.cli", "layers"),
        ("mmrlaif.models.orchestrates", "import kfp", "kfp"),
        ("mmrlaif.pairs.tracks", "from mmrlaif.tracking import uri", "stages"),
    ],
)
def test_a_violating_import_fails_the_lint(tmp_path: Path, module, source, contract) -> None:
    done = _lint(tmp_path, {module: source + "\n"}, contract)
    assert done.returncode == 1, done.stdout
    assert "BROKEN" in done.stdout and f"{module} -> " in done.stdout
    assert _lint(tmp_path / "clean", {}, contract).returncode == 0


def test_a_function_body_import_needs_its_reason(tmp_path: Path) -> None:
    from lint_imports import unexplained_imports

    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools]\npackages = ["mmrlaif"]\n[tool.setuptools.package-dir]\n"" = "src"\n'
    )
    package = tmp_path / "src" / "mmrlaif"
    package.mkdir(parents=True)
    module = package / "late.py"
    body = "def f():\n    {reason}import json\n    from os import path\n\n    return json, path\n"
    module.write_text(body.format(reason=""))
    assert unexplained_imports(tmp_path / "pyproject.toml") == [
        "src/mmrlaif/late.py:2: import json",
        "src/mmrlaif/late.py:3: from os import path",
    ]
    # one reason on the line above covers the block of imports under it
    module.write_text(body.format(reason="# lazy: a heavy module\n    "))
    assert unexplained_imports(tmp_path / "pyproject.toml") == []
    # imports at module level, and under TYPE_CHECKING, need none
    module.write_text(
        "import json\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import os\n\n\ndef f():\n    return json\n"
    )
    assert unexplained_imports(tmp_path / "pyproject.toml") == []
