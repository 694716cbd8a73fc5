"""Stop a local run's task processes when ``mmrlaif run`` dies without stopping them.

``kfp.local`` starts each task as a subprocess of the process that runs the pipeline. When that
process is killed outright (SIGKILL, the OOM killer, a closed terminal), its tasks keep running:
training, writing into the run's folder, holding memory. :class:`Reaper` prevents that. While
a local run is under way, every process it starts carries ``MMRLAIF_RUN_OWNER=<pid>:<nonce>``
in its environment (inherited by the tasks and whatever they start: ``torchrun`` workers,
data loader workers), and a small watcher process, started in a session of its own so that a
signal to the run's process group does not reach it, waits for its parent to go. When the
parent is gone (its parent process id changes), the watcher sends SIGTERM to every process
carrying the mark, then SIGKILL to those still there after a grace period, and exits. When
the run ends normally, :class:`Reaper` does the same itself (nothing is left to stop after a
finished run; a failed or interrupted one may leave shards running) and stops the watcher.

Processes are found through ``/proc/<pid>/environ``, so this works on Linux (the project's
machines, containers and CI); elsewhere nothing is found and nothing is stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)

#: Environment variable marking the processes of a local run: ``<pid>:<nonce>``.
OWNER_ENV = "MMRLAIF_RUN_OWNER"
#: Seconds between the watcher's checks of its parent.
POLL_S = 0.5
#: Seconds between SIGTERM and SIGKILL.
GRACE_S = 10.0


def marked(owner: str) -> list[int]:
    """Process ids (other than this one) whose environment has ``MMRLAIF_RUN_OWNER=owner``."""
    needle = f"{OWNER_ENV}={owner}".encode()
    found = []
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def stop_marked(owner: str, grace: float = GRACE_S) -> list[int]:
    """SIGTERM every process marked ``owner``, SIGKILL those left after ``grace`` seconds.

    Returns:
        The process ids that were sent SIGTERM.
    """
    pids = marked(owner)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and marked(owner) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in marked(owner):
        _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


class Reaper:
    """Mark the processes a local run starts and stop them when it ends or dies.

    Use as a context manager around the run: it sets ``MMRLAIF_RUN_OWNER`` in this process's
    environment (restored on exit) and starts the watcher.
    """

    def __init__(self, grace: float = GRACE_S) -> None:
        self.owner = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.grace = grace
        self._watcher: subprocess.Popen | None = None
        self._saved: str | None = None

    def __enter__(self) -> Reaper:
        env = {k: v for k, v in os.environ.items() if k != OWNER_ENV}
        self._watcher = subprocess.Popen(
            [sys.executable, "-m", __name__, self.owner, str(os.getpid()), str(self.grace)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._saved = os.environ.get(OWNER_ENV)
        os.environ[OWNER_ENV] = self.owner
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is None:
            os.environ.pop(OWNER_ENV, None)
        else:
            os.environ[OWNER_ENV] = self._saved
        left = stop_marked(self.owner, self.grace)
        if left:
            logger.warning("stopped %d task process(es) left running: %s", len(left), left)
        if self._watcher is not None:
            self._watcher.terminate()
            self._watcher.wait()


def _watch(owner: str, parent: int, grace: float) -> None:
    """The watcher: wait until ``parent`` is gone, then stop the processes marked ``owner``."""
    while os.getppid() == parent:
        time.sleep(POLL_S)
    stop_marked(owner, grace)


if __name__ == "__main__":
    _watch(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
