"""The reaper stops the processes a local run left behind (real processes, Linux /proc)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmrlaif.pipelines.reaper import OWNER_ENV, Reaper, marked, stop_marked

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="Linux /proc")

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
DEAF = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
]


def _start(command: list[str], owner: str) -> subprocess.Popen:
    proc = subprocess.Popen(command, env={**os.environ, OWNER_ENV: owner})
    deadline = time.monotonic() + 10
    while proc.pid not in marked(owner):  # the environment is readable once exec'd
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return proc


def _ignores_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = int(next(ln for ln in status.splitlines() if ln.startswith("SigIgn:")).split()[1], 16)
    return bool(ignored & (1 << (15 - 1)))


def test_marked_processes_are_stopped_and_others_left_alone():
    mine, other = _start(SLEEPER, "1:a"), _start(SLEEPER, "1:b")
    deaf = _start(DEAF, "1:a")
    while not _ignores_sigterm(deaf.pid):  # SIG_IGN installed (else SIGTERM would still do)
        time.sleep(0.02)
    try:
        assert sorted(stop_marked("1:a", grace=0.5)) == sorted([mine.pid, deaf.pid])
        assert mine.wait(5) == -15  # SIGTERM
        assert deaf.wait(5) == -9  # ignored SIGTERM: SIGKILL after the grace period
        assert other.poll() is None and marked("1:a") == []
    finally:
        for proc in (mine, other, deaf):
            proc.kill()
            proc.wait()


def test_the_reaper_marks_what_the_run_starts_and_stops_what_is_left():
    before = os.environ.get(OWNER_ENV)
    with Reaper(grace=0.5) as reaper:
        assert os.environ[OWNER_ENV] == reaper.owner
        left = _start(SLEEPER, reaper.owner)
    assert left.wait(5) == -15
    assert os.environ.get(OWNER_ENV) == before
