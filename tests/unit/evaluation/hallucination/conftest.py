"""Fixtures for the benchmark tests: hand-written data trees, a fake model, a loopback judge.

* ``bench_data``: a copy of ``fixtures/`` with images added, one folder per benchmark. Every
  image is a solid colour whose red channel is ``40 * k``; the fake model reads ``k`` back.
* ``fake_model``: builds an ``answer_fn`` from a table ``(k, prompt) -> answer``.
* ``judge_server``: a tiny OpenAI-compatible chat server on 127.0.0.1 that rates answers
  deterministically from the request: an answer containing ``[[n]]`` gets "Rating: n",
  ``[[both]]`` gets two different ratings, ``[[error]]`` gets HTTP 400, anything else a reply
  without a rating.
"""

from __future__ import annotations

import http.server
import io
import json
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from tests.servers import send_json, serve_http

FIXTURES = Path(__file__).parent / "fixtures"

# Image files of each benchmark and the colour index k drawn into them.
IMAGES = {
    "pope": {f"images/COCO_val2014_{k:012d}.jpg": k for k in (1, 2, 3)},
    "amber": {f"image/AMBER_{k}.jpg": k for k in (1, 2, 3)},
    "mmhal": {
        "images/10172500456_1f40b6bd8b_o.jpg": 1,
        "images/20000000001_aaaaaaaaaa_o.jpg": 2,
        "images/30000000002_bbbbbbbbbb_o.jpg": 3,
        "images/40000000003_cccccccccc_o.jpg": 4,
    },
}


def image_bytes(k: int) -> bytes:
    """A small JPEG whose red channel is 40 * k."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (40 * k, 200, 7)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def colour_index(image: Image.Image) -> int:
    """The k an image was drawn with."""
    return round(image.getpixel((0, 0))[0] / 40)


@pytest.fixture()
def fixtures_dir() -> Path:
    """The hand-written fixture files (read only: copy before changing)."""
    return FIXTURES


@pytest.fixture()
def bench_data(tmp_path: Path) -> dict[str, Path]:
    """Benchmark -> a writable copy of its fixture folder, with its images."""
    roots = {}
    for name in ("pope", "amber", "object_halbench", "mmhal"):
        root = tmp_path / "data" / name
        shutil.copytree(FIXTURES / name, root)
        for rel, k in IMAGES.get(name, {}).items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(image_bytes(k))
        roots[name] = root
    return roots


@dataclass
class FakeModel:
    """An ``answer_fn`` answering from a table ``(k, prompt) -> answer``; records its calls."""

    table: Mapping[tuple[int, str], str]
    batches: list[list[tuple[int, str]]] = field(default_factory=list)

    def __call__(self, batch: Sequence[tuple[Image.Image, str]]) -> list[str]:
        keys = [(colour_index(image), prompt) for image, prompt in batch]
        self.batches.append(keys)
        return [self.table[key] for key in keys]


@pytest.fixture()
def fake_model() -> Callable[[Mapping[tuple[int, str], str]], FakeModel]:
    """Factory of :class:`FakeModel`."""
    return FakeModel


@dataclass
class JudgeServer:
    """A running loopback judge; ``base_url`` ends in ``/v1``; ``requests`` records bodies."""

    base_url: str
    requests: list[dict] = field(default_factory=list)


def _judge_reply(prompt: str) -> str | None:
    answer = prompt.rsplit("### LMM Response to Evaluate", 1)[-1]
    marker = re.search(r"\[\[(\w+)\]\]", answer)
    if marker is None:
        return "The answer is hard to judge, so I give no verdict."
    if marker.group(1) == "error":
        return None
    if marker.group(1) == "both":
        return "It could be Rating: 1 or Rating: 5."
    return f"The answer matches the image contents.\nRating: {marker.group(1)}, as explained."


def _handler(server: JudgeServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, payload: dict) -> None:
            send_json(self, status, payload)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server.requests.append({"path": self.path, "body": body})
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": f"no route {self.path}"})
                return
            content = _judge_reply(body["messages"][-1]["content"])
            if content is None:
                self._send(400, {"error": "bad request"})
                return
            self._send(
                200,
                {
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                },
            )

    return Handler


@pytest.fixture()
def judge_server() -> Iterator[JudgeServer]:
    """A loopback chat-completions judge (real HTTP on 127.0.0.1), stopped after the test."""
    state = JudgeServer(base_url="")
    with serve_http(_handler(state), "judge") as root:
        state.base_url = f"{root}/v1"
        yield state
