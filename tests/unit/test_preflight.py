"""Preflight: each fault found before the first task, naming the key and the file or server."""

from __future__ import annotations

import http.server
import json
import struct
import time
from pathlib import Path

import pytest

from mmrlaif.cli import main
from mmrlaif.config import Config, from_dict
from mmrlaif.preflight import Problem, preflight
from tests.servers import free_port, serve_http


@pytest.fixture(autouse=True)
def _no_env_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _cfg(tmp_path: Path, **sections) -> Config:
    data = {"run": {"output_dir": str(tmp_path / "run")}, **sections}
    return from_dict(Config, data)


def _health_server(status: int):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(status if self.path.endswith("/health") else 404)
            self.end_headers()
            self.wfile.write(b"OK")

    return serve_http(Handler, "health")


def test_tracking_server_is_checked_in_seconds(tmp_path: Path) -> None:
    port = free_port()
    cfg = _cfg(tmp_path, tracking={"uri": f"http://alice:pw@127.0.0.1:{port}"})
    start = time.monotonic()
    (problem,) = preflight(cfg, timeout=1.0)
    assert time.monotonic() - start < 5
    assert problem.key == "tracking.uri"
    assert f"no MLflow server answers at http://***@127.0.0.1:{port} within 1 s" in problem.message
    with _health_server(200) as root:
        assert preflight(_cfg(tmp_path, tracking={"uri": root}), timeout=1.0) == []
    with _health_server(401) as root:
        (problem,) = preflight(_cfg(tmp_path, tracking={"uri": root}), timeout=1.0)
        assert "refuses access" in problem.message


def _model_folder(path: Path, header_claims: int | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    if header_claims is not None:
        (path / "model.safetensors").write_bytes(struct.pack("<Q", header_claims) + b"{}" * 10)
    return path


def test_broken_model_folders_are_named(tmp_path: Path) -> None:
    policy = _model_folder(tmp_path / "policy", header_claims=1000)
    labeler = _model_folder(tmp_path / "labeler")
    (labeler / "config.json").write_text("{not json")
    cfg = _cfg(
        tmp_path,
        model={"name_or_path": str(policy)},
        labeling={"labeler": "model", "labeler_name_or_path": str(labeler)},
    )
    problems = preflight(cfg, reach=False)
    assert (
        Problem(
            "model.name_or_path",
            f"{policy}/model.safetensors: truncated safetensors file "
            "(header of 1000 bytes, file of 28)",
        )
        in problems
    )
    assert any(
        p.key == "labeling.labeler_name_or_path" and "config.json: not JSON" in p.message
        for p in problems
    )


@pytest.mark.integration
def test_s3_buckets_are_checked(s3_env, tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        data={"align_prompts": "s3://no-such-bucket/prompts.parquet"},
        pipeline={"shard_cache": f"s3://{s3_env.bucket}/shards"},
        # locations this run does not use are not checked: the cluster's pipeline root, the
        # data of a benchmark it does not run
        kfp={"pipeline_root": "s3://cluster-only/root"},
        eval={"benchmarks": {"data": {"pope": "s3://not-run/pope"}}},
    )
    (problem,) = preflight(cfg, timeout=2.0)
    assert problem == Problem(
        "data.align_prompts",
        "bucket 'no-such-bucket' of s3://no-such-bucket/prompts.parquet does not exist",
    )


def test_run_stops_before_any_task(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    port = free_port()
    argv = ["run", "--config", "configs/tiny_cpu.yaml", "--set", f"run.output_dir={out}"]
    argv += ["--set", f"tracking.uri=http://127.0.0.1:{port}"]
    start = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert "preflight found 1 problem(s)" in err and "tracking.uri: no MLflow server" in err
    assert not (out / "kfp").exists()
    assert main(["check", "--config", "configs/tiny_cpu.yaml"]) == 0
    assert "preflight: no problem found" in capsys.readouterr().out


@pytest.fixture()
def policy_folder(tiny_model, tmp_path: Path) -> Path:
    from mmrlaif.models.load import save_model

    return save_model(*tiny_model, tmp_path / "policy")


def _prompts(path: Path, questions: list[str]) -> Path:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 30)).save(buffer, format="PNG")
    image = {"bytes": buffer.getvalue(), "path": None}
    rows = [{"id": f"q{i}", "image": image, "question": q} for i, q in enumerate(questions)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_prompts_too_long_for_dpo_are_found_before_sampling(
    tiny_model, policy_folder, tmp_path: Path
):
    from mmrlaif.models.chat import ChatFormat

    short, long = "What is in the image?", "Describe " + "every little thing " * 12 + "you see."
    prompts = _prompts(tmp_path / "prompts.parquet", [short, long, short + " Please."])
    chat = ChatFormat(tiny_model[1])
    lengths = [len(ids) for ids in chat.tokenize([chat.prompt(long), chat.prompt(short)])]
    image_tokens = 16 - 1  # 64x64 image, 16-pixel patches, in place of the one <image>
    longest, shortest = lengths[0] + image_tokens, lengths[1] + image_tokens
    limit = shortest + 30  # room for the short prompts' answers of 24 tokens, not the long one's
    assert longest + 24 > limit

    def cfg(max_length: int) -> Config:
        return _cfg(
            tmp_path,
            model={"name_or_path": str(policy_folder)},
            data={"align_prompts": str(prompts), "id_column": "id"},
            sampling={"max_new_tokens": 24},
            dpo={"max_length": max_length},
        )

    (problem,) = preflight(cfg(limit), reach=False)
    assert problem == Problem(
        "dpo.max_length",
        f"1 of 3 prompts in {prompts} leave no room for an answer of sampling.max_new_tokens=24 "
        f"tokens within dpo.max_length={limit} (the longest, prompt q1, is {longest} tokens "
        f"with its image): raise dpo.max_length to {longest + 24} or shorten the prompts",
    )
    assert preflight(cfg(longest + 24), reach=False) == []


def test_an_image_token_the_model_does_not_expect_is_named(policy_folder, tmp_path: Path):
    # another image token in the tokenizer's config: transformers adds it to the vocabulary at
    # load (a new id), which the model's config.json does not expect (the run would fail on
    # image features that match no image token)
    for name in ("tokenizer_config.json", "processor_config.json"):
        data = json.loads((policy_folder / name).read_text())
        data["image_token"] = "<img>"
        (policy_folder / name).write_text(json.dumps(data))
    expected = json.loads((policy_folder / "config.json").read_text())["image_token_index"]
    cfg = _cfg(tmp_path, model={"name_or_path": str(policy_folder)})
    (problem,) = preflight(cfg, reach=False)
    assert problem.key == "model.name_or_path"
    assert problem.message.startswith(
        f"{policy_folder}: the processor's image token '<img>' is id "
    )
    assert f"config.json expects the image at id {expected}" in problem.message
