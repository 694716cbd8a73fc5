"""Loopback servers for tests: moto's S3, an MLflow tracking server on it, and a fault proxy.

Everything listens on 127.0.0.1 only. Servers are stopped by their PID (SIGTERM, then SIGKILL).
Credentials are fake (``testing``) and only ever placed in a child server's environment or,
through pytest's ``monkeypatch``, in the test process's.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without AWS / MLflow settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "MLFLOW_", "MMRLAIF_S3_", "BOTO"))
    }
    env.update(extra)
    return env


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process by PID, SIGKILL it after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def _wait_http(url: str, proc: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    """Poll ``url`` until it answers 200 (any answer if ``what`` is moto); fail with the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            return  # it answers
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    _stop(proc)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s:\n{_tail(log)}")


# --------------------------------------------------------------------------------------------
# moto S3
# --------------------------------------------------------------------------------------------


@dataclass
class MotoServer:
    """A running ``moto_server``."""

    endpoint: str
    pid: int
    log: Path

    def boto3_client(self):
        """A boto3 S3 client on this server with the fake credentials (for test set-up only)."""
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_bucket(self, prefix: str = "test") -> str:
        """Create a bucket with a unique name and return that name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.boto3_client().create_bucket(Bucket=name)
        return name


@contextlib.contextmanager
def run_moto(workdir: Path, timeout: float = 30.0) -> Iterator[MotoServer]:
    """Start ``moto_server`` on 127.0.0.1 and a free port; stop it by PID afterwards."""
    port = free_port()
    script = Path(sys.executable).parent / "moto_server"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    log = workdir / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "-H", LOOPBACK, "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_clean_env(),
        )
    try:
        endpoint = f"http://{LOOPBACK}:{port}"
        _wait_http(f"{endpoint}/moto-api/", proc, log, "moto_server", timeout)
        yield MotoServer(endpoint=endpoint, pid=proc.pid, log=log)
    finally:
        _stop(proc)


# --------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------


@dataclass
class MlflowServer:
    """A running ``mlflow server`` whose artifacts go to a bucket on moto."""

    uri: str
    pid: int
    bucket: str
    log: Path


@contextlib.contextmanager
def run_mlflow(moto: MotoServer, workdir: Path, timeout: float = 60.0) -> Iterator[MlflowServer]:
    """Start ``mlflow server`` (SQLite store, artifacts proxied to a fresh moto bucket)."""
    bucket = moto.create_bucket("mlflow")
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    env = _clean_env(
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_S3_ENDPOINT_URL=moto.endpoint,
        **FAKE_CREDENTIALS,
    )
    log = workdir / "mlflow.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *command,
                "server",
                "--backend-store-uri",
                f"sqlite:///{workdir / 'mlflow.db'}",
                "--artifacts-destination",
                f"s3://{bucket}",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=workdir,
        )
    try:
        uri = f"http://{LOOPBACK}:{port}"
        _wait_http(f"{uri}/health", proc, log, "mlflow server", timeout)
        yield MlflowServer(uri=uri, pid=proc.pid, bucket=bucket, log=log)
    finally:
        _stop(proc, timeout=15.0)


# --------------------------------------------------------------------------------------------
# Fault-injecting reverse proxy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request seen by the proxy."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    operation: str
    failed: bool = False


def s3_operation(method: str, path: str, query: dict[str, list[str]], headers) -> str:
    """Best-effort name of the S3 API call behind a path-style request."""
    copy = "x-amz-copy-source" in {k.lower() for k in headers}
    has_key = path.strip("/").count("/") >= 1
    if method == "PUT" and "partNumber" in query:
        return "UploadPartCopy" if copy else "UploadPart"
    if method == "PUT" and has_key:
        return "CopyObject" if copy else "PutObject"
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "DELETE" and "uploadId" in query:
        return "AbortMultipartUpload"
    if method == "DELETE" and has_key:
        return "DeleteObject"
    if method == "HEAD" and has_key:
        return "HeadObject"
    if method == "GET" and has_key:
        return "GetObject"
    if method == "GET" and "uploads" in query:
        return "ListMultipartUploads"
    if method == "GET":
        return "ListObjects"
    return f"{method} {path}"


SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId>"
    b"</Error>"
)


@dataclass
class Fault:
    """Fail requests matching ``match``: the first ``times`` of them (all when ``None``).

    ``mode`` is ``"slowdown"`` (HTTP 503 with S3's ``SlowDown`` error), ``"500"`` (HTTP 500
    ``InternalError``) or ``"reset"`` (the connection is reset without an answer).
    """

    match: Callable[[Request], bool]
    times: int | None = 1
    mode: str = "slowdown"
    hits: int = 0

    def take(self, request: Request) -> bool:
        if not self.match(request) or (self.times is not None and self.hits >= self.times):
            return False
        self.hits += 1
        return True


_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",  # this proxy already answered "100 Continue"
}


@dataclass
class FaultProxy:
    """A threaded HTTP reverse proxy on 127.0.0.1 that forwards to ``upstream`` verbatim,
    except for requests a :class:`Fault` claims. ``requests`` records everything seen."""

    upstream: str
    endpoint: str = ""
    faults: list[Fault] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self,
        match: Callable[[Request], bool] | str = lambda r: True,
        times: int | None = 1,
        mode: str = "slowdown",
    ) -> Fault:
        """Add a fault; ``match`` may be an S3 operation name such as ``"UploadPart"``."""
        if isinstance(match, str):
            name = match
            match = lambda r: r.operation == name  # noqa: E731
        fault = Fault(match=match, times=times, mode=mode)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def count(self, operation: str, failed: bool | None = None) -> int:
        """How many requests of ``operation`` were seen (only failed / passed ones if given)."""
        with self._lock:
            return sum(
                r.operation == operation and (failed is None or r.failed == failed)
                for r in self.requests
            )

    def _decide(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.take(request):
                    self.requests.append(_replace_failed(request))
                    return fault
            self.requests.append(request)
        return None


def _replace_failed(request: Request) -> Request:
    return Request(
        request.method, request.path, request.query, request.headers, request.operation, True
    )


def _make_handler(proxy: FaultProxy) -> type[http.server.BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:  # quiet
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            body = self._read_body()
            parts = urlsplit(self.path)
            query = parse_qs(parts.query, keep_blank_values=True)
            headers = {k: v for k, v in self.headers.items()}
            request = Request(
                method=self.command,
                path=parts.path,
                query=query,
                headers=headers,
                operation=s3_operation(self.command, parts.path, query, headers),
            )
            fault = proxy._decide(request)
            if fault is not None:
                self._fail(fault.mode)
                return
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            try:
                forward = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
                }
                if body or self.command in ("PUT", "POST"):
                    forward["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=forward)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() in _HOP_BY_HOP or key.lower() == "content-length":
                        continue
                    self.send_header(key, value)
                if self.command == "HEAD":
                    length = response.getheader("Content-Length")
                    if length is not None:
                        self.send_header("Content-Length", length)
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            finally:
                conn.close()

        def _fail(self, mode: str) -> None:
            if mode == "reset":
                # RST instead of FIN: the client sees "connection reset" with no answer.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                return
            status, code = (503, b"SlowDown") if mode == "slowdown" else (500, b"InternalError")
            body = SLOWDOWN_BODY.replace(b"SlowDown", code)
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


@contextlib.contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """Run a :class:`FaultProxy` in front of ``upstream`` (an ``http://127.0.0.1:PORT``)."""
    host = urlsplit(upstream).hostname
    if host not in (LOOPBACK, "localhost"):
        raise ValueError(f"fault_proxy only fronts loopback servers, not {upstream}")
    proxy = FaultProxy(upstream=upstream)
    with serve_http(_make_handler(proxy), "fault-proxy") as proxy.endpoint:
        yield proxy


# --------------------------------------------------------------------------------------------
# Small in-process HTTP servers of the tests (scripted APIs)
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_http(
    handler: type[http.server.BaseHTTPRequestHandler], name: str = "loopback-http"
) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (a free port) in a thread; yields ``http://127.0.0.1:PORT``
    and stops the server afterwards."""
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name=name, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def send_json(handler: http.server.BaseHTTPRequestHandler, status: int, payload: object) -> None:
    """Answer a request with ``payload`` as JSON."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
