"""Render a run report in headless Chromium and save a PNG screenshot (a manual check).

Not part of the test suite: CI has no browser. Install one first, e.g. ``apt-get install -y
chromium`` on Debian. Then::

    .venv/bin/python scripts/screenshot_report.py runs/demo/report.html /tmp/report.png
    .venv/bin/python scripts/screenshot_report.py runs/demo --regenerate   # report.html first

The page is opened from a ``file://`` URL with networking left off, so a report that still
referenced anything outside itself would show broken images in the screenshot.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger("screenshot_report")

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser(name: str | None = None) -> str:
    """The Chromium executable: ``name`` when given, else the first of :data:`BROWSERS` found.

    Raises:
        FileNotFoundError: No browser on ``PATH``.
    """
    for candidate in (name,) if name else BROWSERS:
        path = shutil.which(candidate)
        if path:
            return path
    raise FileNotFoundError(
        f"no Chromium found (tried {', '.join((name,) if name else BROWSERS)}); "
        "install one, e.g. apt-get install -y chromium"
    )


def screenshot(
    html: Path,
    png: Path,
    width: int = 1280,
    height: int = 4000,
    browser: str | None = None,
    timeout_s: float = 120.0,
) -> Path:
    """Render ``html`` in headless Chromium at ``width`` x ``height`` and save ``png``.

    Raises:
        FileNotFoundError: ``html`` or the browser is missing.
        RuntimeError: The browser failed or wrote no screenshot.
    """
    html = html.resolve()
    if not html.is_file():
        raise FileNotFoundError(f"no report at {html}")
    png = png.resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [
            find_browser(browser),
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            html.as_uri(),
        ]
        logger.info("running %s", " ".join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return png


def main(argv: list[str] | None = None) -> int:
    """Command line: ``screenshot_report.py REPORT_OR_RUN [PNG]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="report.html, or a run folder holding one")
    parser.add_argument("png", type=Path, nargs="?", default=Path("/tmp/report.png"))
    parser.add_argument("--regenerate", action="store_true", help="write the run's report first")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--browser", help="browser executable (default: the first Chromium found)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    html = args.report
    if html.is_dir():
        if args.regenerate:
            from mmrlaif.tracking.report import write_report

            write_report(html)
        html = html / "report.html"
    try:
        png = screenshot(html, args.png, args.width, args.height, args.browser)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"screenshot_report: error: {exc}", file=sys.stderr)
        return 2
    print(f"screenshot written to {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
