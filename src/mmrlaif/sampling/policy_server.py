"""An OpenAI-compatible server on the freshly trained policy, started inside the sampling task
(``sampling.serve_policy``): start it, wait until it is ready, sample through it, stop it.

The command is a template (``sampling.serve_command``): by default vLLM's
``vllm serve {model} --host {host} --port {port}``; ``python -m mmrlaif.models.serve`` serves
the tiny model the same way where vLLM cannot run (the tests).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


class PolicyServerError(RuntimeError):
    """The policy server did not start (exited, or not ready in time); names its log."""


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 20) -> str:
    text = path.read_text(errors="replace") if path.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def policy_server(
    model_dir: str | Path,
    command: Sequence[str],
    timeout_s: float = 900.0,
    host: str = "127.0.0.1",
    poll_s: float = 0.5,
) -> Iterator[str]:
    """Serve ``model_dir`` for the duration of the ``with`` block; yields the API root.

    Args:
        model_dir: The policy folder.
        command: The command template; ``{model}``, ``{host}`` and ``{port}`` are filled in.
        timeout_s: How long to wait for ``GET /health`` to answer 200.
        host: Address to bind (loopback: only this task talks to it).
        poll_s: Seconds between readiness checks.

    Raises:
        PolicyServerError: The process exited or was not ready within ``timeout_s`` (with the
            tail of its log).
    """
    port = _free_port(host)
    argv = [part.format(model=str(model_dir), host=host, port=port) for part in command]
    log = Path(tempfile.mkdtemp(prefix="mmrlaif-serve-")) / "server.log"
    logger.info("starting the policy server: %s (log %s)", " ".join(argv), log)
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    root = f"http://{host}:{port}"
    try:
        _wait_ready(proc, f"{root}/health", timeout_s, poll_s, log)
        logger.info("policy server ready at %s/v1", root)
        yield f"{root}/v1"
    finally:
        _stop(proc)
        logger.info("policy server stopped (exit %s)", proc.returncode)


def _wait_ready(
    proc: subprocess.Popen, url: str, timeout_s: float, poll_s: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise PolicyServerError(
                f"the policy server exited with code {proc.returncode} before it was ready; "
                f"last lines of {log}:\n{_tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            _stop(proc)
            raise PolicyServerError(
                f"the policy server was not ready within {timeout_s:.0f} s ({url}); "
                f"last lines of {log}:\n{_tail(log)}"
            )
        time.sleep(poll_s)


def _stop(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it does not go."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
