"""The DeepSpeed configs of GPU DPO runs (``DPOConfig(deepspeed=...)``, HF Trainer integration).

Checked without DeepSpeed installed: they parse, have their ZeRO stage and settings, and every
``"auto"`` is one that ``HfTrainerDeepSpeedConfig`` fills (read from its source). With DeepSpeed
installed, the integration itself fills them and ``dpo_arguments`` builds; without it,
``dpo_arguments`` fails only for the missing package.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from transformers.integrations import deepspeed as hf_deepspeed

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = {
    2: ROOT / "configs" / "deepspeed" / "zero2.json",
    3: ROOT / "configs" / "deepspeed" / "zero3.json",
}
HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None


@pytest.fixture(autouse=True)
def _no_leaked_deepspeed_config():
    """``HfDeepSpeedConfig`` registers itself globally; ZeRO-3 there alters ``from_pretrained``."""
    yield
    hf_deepspeed.unset_hf_deepspeed_config()


def _load(stage: int) -> dict[str, Any]:
    return json.loads(CONFIGS[stage].read_text())


def _auto_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every ``"auto"`` value."""
    if isinstance(node, dict):
        return [k for key, v in node.items() for k in _auto_keys(v, f"{prefix}{key}.")]
    return [prefix[:-1]] if node == "auto" else []


def _hf_fillable_keys() -> set[str]:
    """The keys ``HfTrainerDeepSpeedConfig`` fills: the literals of its ``fill_*`` calls."""
    tree = ast.parse(inspect.getsource(hf_deepspeed.HfTrainerDeepSpeedConfig).lstrip())
    keys = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"fill_match", "fill_only"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            keys.add(node.args[0].value)
    return keys


@pytest.mark.parametrize("stage", sorted(CONFIGS))
def test_config_parses_with_its_stage(stage):
    cfg = _load(stage)
    zero = cfg["zero_optimization"]
    assert zero["stage"] == stage
    assert zero["overlap_comm"] is True and zero["contiguous_gradients"] is True
    assert zero["reduce_bucket_size"] == "auto"
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu"):
        assert cfg[key] == "auto", key
    assert cfg["gradient_accumulation_steps"] == "auto"
    assert cfg["gradient_clipping"] == "auto"
    assert cfg["bf16"]["enabled"] == "auto"
    # the Trainer's optimiser and cosine schedule (the method's) are used, not DeepSpeed's
    assert "optimizer" not in cfg and "scheduler" not in cfg
    assert not any(k.startswith("_") for k in cfg)  # no comment keys: DeepSpeed may reject them


def test_zero3_saves_full_16bit_weights():
    zero = _load(3)["zero_optimization"]
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert zero["stage3_prefetch_bucket_size"] == "auto"
    assert zero["stage3_param_persistence_threshold"] == "auto"


@pytest.mark.parametrize("stage", sorted(CONFIGS))
def test_every_auto_is_one_the_hf_integration_fills(stage):
    fillable = _hf_fillable_keys()
    # the reader finds the keys it must (guards against a silent change of the source layout)
    assert {"train_micro_batch_size_per_gpu", "zero_optimization.reduce_bucket_size"} <= fillable
    autos = _auto_keys(_load(stage))
    assert autos
    assert set(autos) <= fillable, sorted(set(autos) - fillable)


def _llava_config(text_hidden: int = 64):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    return LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2),
        text_config=LlamaConfig(
            hidden_size=text_hidden, num_hidden_layers=1, num_attention_heads=2
        ),
    )


@pytest.mark.parametrize("stage", sorted(CONFIGS))
def test_hf_integration_fills_every_auto(stage, tmp_path):
    pytest.importorskip("deepspeed")  # HfTrainerDeepSpeedConfig needs the package
    from types import SimpleNamespace

    from transformers import TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        max_grad_norm=0.5,
        use_cpu=True,
        report_to="none",
    )
    ds = hf_deepspeed.HfTrainerDeepSpeedConfig(_load(stage))
    ds.trainer_config_process(args)
    model = SimpleNamespace(config=_llava_config(text_hidden=64))  # a VLM: text_config.hidden_size
    ds.trainer_config_finalize(args, model, num_training_steps=10)
    assert _auto_keys(ds.config) == []
    assert ds.config["train_micro_batch_size_per_gpu"] == 4
    assert ds.config["gradient_accumulation_steps"] == 2
    assert ds.config["train_batch_size"] == 4 * 2 * args.world_size
    assert ds.config["gradient_clipping"] == 0.5
    assert ds.config["bf16"]["enabled"] is False
    assert ds.config["zero_optimization"]["reduce_bucket_size"] == 64 * 64
    assert ds.is_zero3() == (stage == 3)


_BUILD = """
import json, sys
from pathlib import Path
from mmrlaif.config import DPOConfig
from mmrlaif.training.dpo import dpo_arguments
args = dpo_arguments(DPOConfig(deepspeed=sys.argv[1]), Path(sys.argv[2]), 0)
print(json.dumps({"deepspeed": args.deepspeed, "config": args.hf_deepspeed_config.config}))
"""


@pytest.mark.parametrize("stage", sorted(CONFIGS))
def test_dpo_arguments_take_the_config_or_name_the_missing_package(stage, tmp_path):
    from mmrlaif.config import DPOConfig
    from mmrlaif.training.dpo import dpo_arguments

    path = str(CONFIGS[stage])
    if not HAS_DEEPSPEED:
        # transformers: "No package metadata was found for The 'deepspeed>=...' distribution was
        # not found and is required by this application." (a PackageNotFoundError, an ImportError)
        with pytest.raises(ImportError, match="deepspeed"):
            dpo_arguments(DPOConfig(deepspeed=path), tmp_path, 0)
        return
    # a fresh process: DeepSpeed sets up torch.distributed and accelerate's global state
    env = os.environ | {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29531",
    }
    done = subprocess.run(
        [sys.executable, "-c", _BUILD, path, str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    built = json.loads(done.stdout.strip().splitlines()[-1])
    assert built["deepspeed"] == path
    assert built["config"]["zero_optimization"]["stage"] == stage
    # process-time values are filled; the model-size ones wait for trainer_config_finalize
    assert built["config"]["train_micro_batch_size_per_gpu"] == 8
