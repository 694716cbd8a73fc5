"""A recording loopback stand-in for the Kubeflow Pipelines v2beta1 REST API.

It answers just the requests the real ``kfp.Client`` 2.17 makes for ``mmrlaif submit`` and
``mmrlaif schedule`` (paths and JSON field names from ``kfp_server_api``'s generated client):

    GET    /apis/v2beta1/healthz
    GET    /apis/v2beta1/experiments            (filter: display_name EQUALS; namespace)
    POST   /apis/v2beta1/experiments
    GET    /apis/v2beta1/experiments/{id}
    POST   /apis/v2beta1/runs
    GET    /apis/v2beta1/recurringruns          (experiment_id, filter: display_name EQUALS)
    POST   /apis/v2beta1/recurringruns
    DELETE /apis/v2beta1/recurringruns/{id}
    GET    /apis/v2beta1/pipelines              (filter: display_name EQUALS)
    POST   /apis/v2beta1/pipelines/upload       (multipart file; name; also its first version)
    POST   /apis/v2beta1/pipelines/upload_version   (multipart file; name, pipelineid)
    GET    /apis/v2beta1/pipelines/{id}/versions

and records every request (method, path, query, headers, JSON body), refused or not. It can be
told to refuse (:meth:`FakeKFP.refuse`: a status for every request or for one method and path)
or to hang (accept the connection and never answer). It validates nothing a real server would
(specs, parameters, namespaces); a request it does not know gets 404, a filter it does not
understand 400, so an unexpected call shows up in the test. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import datetime
import http.server
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"


@dataclass
class Request:
    """One request as received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: Any  # parsed JSON, or the raw text if not JSON, or None
    raw: str = ""


@dataclass
class _Rule:
    status: int
    method: str | None
    path: str | None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path == path
        )


@dataclass
class FakeKFP:
    """The server's state, what it received, and how it misbehaves."""

    multi_user: bool = False
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    recurring_runs: dict[str, dict] = field(default_factory=dict)
    pipelines: dict[str, dict] = field(default_factory=dict)
    versions: dict[str, dict] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    hang: bool = False
    _rules: list[_Rule] = field(default_factory=list)
    _release: threading.Event = field(default_factory=threading.Event)
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- set-up -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeKFP:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeKFP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def refuse(self, status: int, method: str | None = None, path: str | None = None) -> None:
        """Answer ``status`` to every request, or to ``method`` on ``path`` only."""
        self._rules.append(_Rule(status, method, path))

    def add_experiment(self, name: str, namespace: str = "") -> dict:
        exp = {"experiment_id": str(uuid.uuid4()), "display_name": name, "namespace": namespace}
        self.experiments[exp["experiment_id"]] = {**exp, "created_at": _now()}
        return self.experiments[exp["experiment_id"]]

    def add_recurring_run(self, name: str, experiment_id: str) -> dict:
        rid = str(uuid.uuid4())
        self.recurring_runs[rid] = {
            "recurring_run_id": rid,
            "display_name": name,
            "experiment_id": experiment_id,
            "mode": "ENABLE",
            "status": "ENABLED",
            "created_at": _now(),
        }
        return self.recurring_runs[rid]

    # ---- what was received --------------------------------------------------------------

    def calls(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """Recorded requests, optionally of one method and/or path."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]

    # ---- the API --------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        for rule in self._rules:
            if rule.matches(method, path):
                return rule.status, _error(rule.status, f"refused by the test ({rule.status})")
        parts = path.removeprefix(API).strip("/").split("/")
        with self._lock:
            if path == f"{API}/healthz" and method == "GET":
                return 200, {"multi_user": self.multi_user}
            if parts[0] == "experiments":
                return self._experiments(method, parts[1:], query, body)
            if parts == ["runs"] and method == "POST":
                return self._create(self.runs, "run_id", body, state="PENDING")
            if parts[0] == "recurringruns":
                return self._recurring(method, parts[1:], query, body)
            if parts[0] == "pipelines":
                return self._pipelines(method, parts[1:], query, body)
        return 404, _error(404, f"no route {method} {path}")

    def _experiments(self, method, rest, query, body):
        if not rest and method == "GET":
            found, err = _filtered(self.experiments.values(), query)
            if err:
                return 400, _error(400, err)
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if not rest and method == "POST":
            return self._create(self.experiments, "experiment_id", body)
        if len(rest) == 1 and method == "GET":
            exp = self.experiments.get(rest[0])
            return (200, exp) if exp else (404, _error(404, f"experiment {rest[0]} not found"))
        return 404, _error(404, "no route")

    def _recurring(self, method, rest, query, body):
        if not rest and method == "GET":
            found, err = _filtered(self.recurring_runs.values(), query)
            if err:
                return 400, _error(400, err)
            if "experiment_id" in query:
                found = [r for r in found if r["experiment_id"] == query["experiment_id"][0]]
            # the real server's grpc-gateway names this field in camelCase (kfp_server_api too)
            return 200, {"recurringRuns": found, "total_size": len(found)} if found else {}
        if not rest and method == "POST":
            return self._create(self.recurring_runs, "recurring_run_id", body, status="ENABLED")
        if len(rest) == 1 and method == "DELETE":
            if self.recurring_runs.pop(rest[0], None) is None:
                return 404, _error(404, f"recurring run {rest[0]} not found")
            return 200, {}
        return 404, _error(404, "no route")

    def _pipelines(self, method, rest, query, body):
        name = (query.get("name") or query.get("display_name") or [""])[0]
        if not rest and method == "GET":
            found, err = _filtered(self.pipelines.values(), query)
            if err:
                return 400, _error(400, err)
            return 200, {"pipelines": found, "total_size": len(found)} if found else {}
        if rest == ["upload"] and method == "POST":
            if not isinstance(body, str) or "uploadfile" not in body or "pipelineInfo" not in body:
                return 400, _error(400, "expected a multipart upload of a pipeline spec")
            if any(p["display_name"] == name for p in self.pipelines.values()):
                return 409, _error(409, f"pipeline {name!r} already exists")
            pid = str(uuid.uuid4())
            self.pipelines[pid] = {"pipeline_id": pid, "display_name": name, "created_at": _now()}
            self._add_version(pid, name, body)
            return 200, self.pipelines[pid]
        if rest == ["upload_version"] and method == "POST":
            pid = (query.get("pipelineid") or [""])[0]
            if pid not in self.pipelines:
                return 404, _error(404, f"pipeline {pid} not found")
            if not isinstance(body, str) or "pipelineInfo" not in body:
                return 400, _error(400, "expected a multipart upload of a pipeline spec")
            if any(
                v["pipeline_id"] == pid and v["display_name"] == name
                for v in self.versions.values()
            ):
                return 409, _error(409, f"version {name!r} already exists")
            return 200, self._add_version(pid, name, body)
        if len(rest) == 2 and rest[1] == "versions" and method == "GET":
            found = [v for v in self.versions.values() if v["pipeline_id"] == rest[0]]
            return 200, {"pipeline_versions": found, "total_size": len(found)} if found else {}
        return 404, _error(404, "no route")

    def _add_version(self, pipeline_id: str, name: str, upload: str) -> dict:
        vid = str(uuid.uuid4())
        self.versions[vid] = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": vid,
            "display_name": name,
            "created_at": _now(),
            "upload": upload,
        }
        return self.versions[vid]

    @staticmethod
    def _create(table: dict, key: str, body: Any, **extra: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, _error(400, "body must be a JSON object")
        obj = {**body, key: str(uuid.uuid4()), "created_at": _now(), **extra}
        table[obj[key]] = obj
        return 200, obj


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: FakeKFP

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        fake = self.server_state
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake.requests.append(
            Request(self.command, split.path, parse_qs(split.query), headers, body, raw)
        )
        if fake.hang:
            fake._release.wait(30)
            self.close_connection = True
            return
        status, payload = fake.handle(self.command, split.path, parse_qs(split.query), body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = _serve


def _filtered(items, query: dict) -> tuple[list[dict], str | None]:
    """``items`` matching the request's ``filter`` (only display_name EQUALS is understood)."""
    items = list(items)
    if "filter" not in query:
        return items, None
    try:
        predicates = json.loads(query["filter"][0])["predicates"]
    except (ValueError, KeyError, TypeError):
        return [], f"cannot parse filter {query['filter'][0]!r}"
    for p in predicates:
        if p.get("operation") not in ("EQUALS", 1) or p.get("key") != "display_name":
            return [], f"unsupported predicate {p}"
        value = p.get("stringValue", p.get("string_value"))
        items = [i for i in items if i.get("display_name") == value]
    return items, None


def _error(status: int, message: str) -> dict:
    # grpc-gateway's error body: a gRPC code and a message
    codes = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13, 503: 14}
    return {"code": codes.get(status, 2), "message": message, "details": []}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
