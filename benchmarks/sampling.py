"""Sampling throughput: n samples per prompt in one batched generate call against one call per
(prompt, seed), same model, prompts and seeds, in one run.

    python benchmarks/sampling.py --model runs/demo/sft/model --world runs/demo/world

Prints tokens/s of both, their ratio, and how many samples are identical in both.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mmrlaif import io
from mmrlaif.config import SamplingConfig
from mmrlaif.models.chat import ChatFormat
from mmrlaif.models.load import load_vlm
from mmrlaif.models.seeded import SeededGumbelSampler, sample_seed
from mmrlaif.sampling.sampler import sample_candidates
from mmrlaif.toyworld import WorldPaths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="runs/demo/sft/model")
    parser.add_argument("--world", default="runs/demo/world")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--n", type=int, default=10)
    args = parser.parse_args()
    model, processor = load_vlm(args.model)
    prompts = io.read_rows(WorldPaths(Path(args.world)).prompts("align"))[: args.prompts]
    cfg = SamplingConfig(n=args.n, max_new_tokens=48, prompts_per_batch=8, seed=0)
    ours, s_ours = sample_candidates(model, processor, prompts, cfg)
    # Baseline: one generate call per (prompt, sample), each with that sample's own seed.
    tok = processor.tokenizer
    chat = ChatFormat(processor)
    base_rows, base_tokens = [], 0
    start = time.perf_counter()
    for p in prompts:
        image = io.cell_to_image(p["image"], p["prompt_id"])
        enc = chat.encode_prompts([p["question"]], [image])
        for j in range(args.n):
            seed = sample_seed(cfg.seed, p["prompt_id"], j)
            out = model.generate(
                **enc,
                do_sample=True,
                max_new_tokens=cfg.max_new_tokens,
                logits_processor=[SeededGumbelSampler([seed], cfg.temperature)],
                temperature=1.0,
                top_k=None,
                top_p=None,
                pad_token_id=tok.pad_token_id,
                eos_token_id=chat.stop_token_ids,
            )
            new = out[0, enc["input_ids"].shape[1] :]
            base_tokens += int((new != tok.pad_token_id).sum())
            base_rows.append(tok.decode(new, skip_special_tokens=True).strip())
    base_seconds = time.perf_counter() - start
    same = sum(a["response"] == b for a, b in zip(ours, base_rows, strict=True))
    print(
        f"batched: {s_ours.new_tokens} tokens in {s_ours.seconds:.2f} s "
        f"= {s_ours.tokens_per_second:.0f} tokens/s"
    )
    print(
        f"one call per sample: {base_tokens} tokens in {base_seconds:.2f} s "
        f"= {base_tokens / base_seconds:.0f} tokens/s"
    )
    print(f"identical samples: {same}/{len(base_rows)}")
    print(f"throughput ratio: {s_ours.tokens_per_second / (base_tokens / base_seconds):.1f}x")


if __name__ == "__main__":
    main()
