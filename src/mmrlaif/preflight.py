"""Preflight: what can go wrong before the first task, found in one pass (``mmrlaif check``).

``mmrlaif run`` runs all of it before anything starts; ``mmrlaif check --config ...`` runs it
alone. Each problem names the config key (or the environment variable) and the file or server:

* the static checks of config loading, local model paths and trainer arguments
  (``check_local_paths``, ``check_trainer_args``);
* the tracking server answers (an ``http(s)`` tracking URI), within ``timeout`` seconds
  instead of MLflow's own minutes of retries;
* every S3 bucket the run reads or writes is reachable with the credentials at hand;
* local model folders load: ``config.json`` parses, every ``*.safetensors`` file has a whole
  header, and the policy's processor loads with an image token its tokenizer knows;
* RLAIF-V prompts read from a local file, encoded by the local policy's processor as sampling
  and DPO encode them, leave room for an answer of ``sampling.max_new_tokens`` within
  ``dpo.max_length`` (DPO never truncates a pair: it refuses it, after sampling and labeling).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from mmrlaif.config import (
    MODEL_PATH_KEYS,
    TOYWORLD_DATA,
    Config,
    ConfigError,
    check_local_paths,
    selection_benchmark,
)
from mmrlaif.io import cell_to_image, is_s3, read_table, s3
from mmrlaif.io.prompts import PromptsError, prompt_rows
from mmrlaif.models.chat import ChatFormat
from mmrlaif.tracking.uri import ENV_TRACKING_URI, redact_uri, tracking_uri
from mmrlaif.training.validate import check_trainer_args

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One preflight failure: where (a config key, a variable) and what."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class PreflightError(ConfigError):
    """The preflight found problems (all of them are listed in the message)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"preflight found {len(problems)} problem(s):\n{lines}")


def preflight(cfg: Config, *, reach: bool = True, timeout: float = 5.0) -> list[Problem]:
    """Every problem the preflight finds (empty: go).

    Args:
        cfg: The configuration.
        reach: Also check that the tracking server and the S3 buckets answer from here (off
            for ``submit``: the cluster's servers are often not reachable from a laptop).
        timeout: Seconds per network check.
    """

    problems: list[Problem] = []
    for check in (check_local_paths, check_trainer_args):
        try:
            check(cfg)
        except ConfigError as exc:
            key, _, message = str(exc).partition(": ")
            problems.append(Problem(key, message) if message else Problem("config", key))
    if reach:
        problems += _tracking(cfg, timeout)
        problems += _buckets(cfg, timeout)
    problems += _model_folders(cfg)
    if not problems:
        problems += _prompt_lengths(cfg)
    return problems


def check(cfg: Config, *, reach: bool = True, timeout: float = 5.0) -> None:
    """Raise :class:`PreflightError` listing every problem :func:`preflight` finds."""
    problems = preflight(cfg, reach=reach, timeout=timeout)
    if problems:
        raise PreflightError(problems)


def _tracking(cfg: Config, timeout: float) -> list[Problem]:
    uri = tracking_uri(cfg)
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return []
    key = ENV_TRACKING_URI if os.environ.get(ENV_TRACKING_URI, "").strip() else "tracking.uri"
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    url = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}/health"
    request = urllib.request.Request(url)
    if parts.username:
        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return []
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return [Problem(key, f"the MLflow server at {redact_uri(uri)} refuses access ({exc})")]
        return []  # it answers
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return [
            Problem(
                key,
                f"no MLflow server answers at {redact_uri(uri)} within {timeout:g} s ({reason})",
            )
        ]


def _s3_uris(cfg: Config) -> list[tuple[str, str]]:
    """(key, URI) of every ``s3://`` location a run of ``cfg`` reads or writes: prompts, the
    prompt ledger, the shard cache, model paths and the data of the benchmarks it runs (a
    preset's other benchmark roots and the cluster's staging areas are not used here)."""

    candidates = [
        ("data.align_prompts", cfg.data.align_prompts),
        ("data.prompts_prefix", cfg.data.prompts_prefix),
        ("data.ledger_uri", cfg.data.ledger_uri if cfg.data.prompts_prefix else None),
        ("pipeline.shard_cache", cfg.pipeline.shard_cache),
    ]
    for dotted in MODEL_PATH_KEYS:
        section, key = dotted.split(".")
        candidates.append((dotted, getattr(getattr(cfg, section), key)))
    bench = cfg.eval.benchmarks
    selecting = selection_benchmark(cfg.pipeline.select_metric)
    for name in dict.fromkeys([*bench.run, *([selecting] if selecting else [])]):
        root = bench.data.get(name)
        if root != TOYWORLD_DATA:
            candidates.append((f"eval.benchmarks.data.{name}", root))
    return [(k, v) for k, v in candidates if isinstance(v, str) and v.startswith("s3://")]


def _buckets(cfg: Config, timeout: float) -> list[Problem]:
    uris = _s3_uris(cfg)
    if not uris:
        return []

    settings = s3.current_settings()
    boto = boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        config=BotoConfig(
            connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1}
        ),
    )
    problems, seen = [], set()
    for key, uri in uris:
        bucket = uri[len("s3://") :].split("/", 1)[0]
        if bucket in seen:
            continue
        seen.add(bucket)
        try:
            boto.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            what = {"404": "does not exist", "NoSuchBucket": "does not exist"}.get(
                code, f"refuses access ({code})"
            )
            problems.append(Problem(key, f"bucket {bucket!r} of {uri} {what}"))
        except BotoCoreError as exc:
            where = settings.endpoint_url or "the default AWS endpoint"
            problems.append(Problem(key, f"S3 at {where} not usable for {uri}: {exc}"))
    return problems


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file's header is not whole (``None``: it is)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{path}: truncated safetensors file ({size} bytes, no header length)"
        (n,) = struct.unpack("<Q", head)
        if 8 + n > size:
            return f"{path}: truncated safetensors file (header of {n} bytes, file of {size})"
        try:
            json.loads(f.read(n))
        except ValueError:
            return f"{path}: safetensors header is not JSON"
    return None


def _model_folders(cfg: Config) -> list[Problem]:
    problems = []
    for dotted in MODEL_PATH_KEYS:
        section, key = dotted.split(".")
        value = getattr(getattr(cfg, section), key)
        if not isinstance(value, str) or not Path(value).expanduser().is_dir():
            continue
        folder = Path(value).expanduser()
        config = folder / "config.json"
        if not config.is_file():
            problems.append(Problem(dotted, f"{folder}: no config.json (not a model folder)"))
            continue
        try:
            json.loads(config.read_text())
        except ValueError as exc:
            problems.append(Problem(dotted, f"{config}: not JSON ({exc})"))
            continue
        for weights in sorted(folder.glob("*.safetensors")):
            why = _safetensors_problem(weights)
            if why:
                problems.append(Problem(dotted, why))
        if dotted == "model.name_or_path" and not problems:
            problems += _image_token(cfg, folder, dotted)
    return problems


def _image_token(cfg: Config, folder: Path, dotted: str) -> list[Problem]:
    # lazy: transformers takes seconds to import; a config without a local policy never needs it
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(
            folder, trust_remote_code=cfg.model.trust_remote_code
        )
    except Exception as exc:
        return [Problem(dotted, f"{folder}: the processor does not load ({exc})")]
    token = getattr(processor, "image_token", None)
    tokenizer = getattr(processor, "tokenizer", None)
    if token is None or tokenizer is None:
        return []
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id in (None, tokenizer.unk_token_id):
        return [Problem(dotted, f"{folder}: the tokenizer has no image token {token!r}")]
    config = json.loads((folder / "config.json").read_text())
    expected = next(
        (config[k] for k in ("image_token_id", "image_token_index") if k in config), None
    )
    if isinstance(expected, int) and expected != token_id:
        return [
            Problem(
                dotted,
                f"{folder}: the processor's image token {token!r} is id {token_id} in the "
                f"tokenizer, but config.json expects the image at id {expected} (a tokenizer "
                "from another checkpoint?)",
            )
        ]
    return []


def _prompt_lengths(cfg: Config, batch_size: int = 32) -> list[Problem]:
    """Local RLAIF-V prompts against ``dpo.max_length``, with the local policy's processor."""

    source, folder = cfg.data.align_prompts, cfg.model.name_or_path
    if (
        cfg.pipeline.method != "rlaifv"
        or not source
        or is_s3(source)
        or not folder
        or not Path(folder).expanduser().is_dir()
    ):
        return []
    # lazy: transformers takes seconds to import; a config without a local policy never needs it
    from transformers import AutoProcessor

    table = read_table(source)
    if cfg.data.limit is not None:
        table = table.slice(0, cfg.data.limit)
    try:
        rows, _ = prompt_rows(table, source, cfg.data)
    except PromptsError as exc:
        return [Problem("data.align_prompts", str(exc))]
    processor = AutoProcessor.from_pretrained(
        Path(folder).expanduser(), trust_remote_code=cfg.model.trust_remote_code
    )
    chat = ChatFormat(processor)
    answer, limit = cfg.sampling.max_new_tokens, cfg.dpo.max_length
    over: list[tuple[int, str]] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        images = [cell_to_image(r["image"], r["prompt_id"]) for r in batch]
        encoded = chat.encode_prompts([r["question"] for r in batch], images)
        for row, length in zip(batch, encoded["attention_mask"].sum(dim=1).tolist(), strict=True):
            if length + answer > limit:
                over.append((int(length), row["prompt_id"]))
    if not over:
        return []
    longest, pid = max(over)
    return [
        Problem(
            "dpo.max_length",
            f"{len(over)} of {len(rows)} prompts in {source} leave no room for an answer of "
            f"sampling.max_new_tokens={answer} tokens within dpo.max_length={limit} (the "
            f"longest, prompt {pid}, is {longest} tokens with its image): raise "
            f"dpo.max_length to {longest + answer} or shorten the prompts",
        )
    ]
