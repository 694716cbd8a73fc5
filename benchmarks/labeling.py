"""Labeling throughput: our engine against the RLAIF-V reference approach, in one run.

Ours: questions deduplicated per image, one prefix pass per image whose KV cache serves a batched
pass over that image's question suffixes. Reference: every claim of every candidate asked by a
full forward pass at batch size 1 (as the reference code does). Same model, same candidates.

    python benchmarks/labeling.py --model runs/demo/sft/model --world runs/demo/world

(`make demo` writes both.) Prints the wall-time ratio and the processed-token ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mmrlaif import io
from mmrlaif.config import SamplingConfig
from mmrlaif.labeling.claims import LexiconClaimExtractor, TemplateQuestionBuilder
from mmrlaif.labeling.feedback import label_samples
from mmrlaif.labeling.labeler import VLMYesNoLabeler
from mmrlaif.models.chat import ChatFormat
from mmrlaif.models.load import load_vlm
from mmrlaif.sampling.sampler import sample_candidates
from mmrlaif.toyworld import WorldPaths, toy_lexicon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="runs/demo/sft/model")
    parser.add_argument("--world", default="runs/demo/world")
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--n", type=int, default=10, help="candidates per image")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, processor = load_vlm(args.model)
    prompts = io.read_rows(WorldPaths(Path(args.world)).prompts("align"))[: args.prompts]
    samples, _ = sample_candidates(
        model, processor, prompts, SamplingConfig(n=args.n, max_new_tokens=48, seed=0)
    )
    extractor, builder = LexiconClaimExtractor(toy_lexicon()), TemplateQuestionBuilder()

    start = time.perf_counter()
    ours = VLMYesNoLabeler(model, processor, prefix_cache=True)
    rows, stats = label_samples(samples, prompts, extractor, builder, ours)
    t_ours = time.perf_counter() - start

    # Reference: one full pass per (candidate, claim), batch size 1.
    images = {p["prompt_id"]: io.cell_to_image(p["image"], p["prompt_id"]) for p in prompts}
    reference = VLMYesNoLabeler(model, processor, batch_size=1, prefix_cache=False)
    ref_images, ref_questions = [], []
    for r in rows:
        for q in r["questions"]:
            ref_images.append(images[r["prompt_id"]])
            ref_questions.append(q)
    start = time.perf_counter()
    ref_verdicts = reference.answer(ref_images, ref_questions)
    t_ref = time.perf_counter() - start
    ours_flat = [a for r in rows for a in r["accepted"]]
    agree = sum(a == v.accepted for a, v in zip(ours_flat, ref_verdicts, strict=True))

    tok = processor.tokenizer
    n_image = model.config.image_seq_length

    def n_tokens(text: str) -> int:
        return len(tok(text.replace("<image>", ""), add_special_tokens=False)["input_ids"]) + (
            n_image if "<image>" in text else 0
        )

    chat = ChatFormat(processor)
    ref_tokens = sum(n_tokens(chat.prompt(q)) for q in ref_questions)
    distinct = {(r["prompt_id"], q) for r in rows for q in r["questions"]}
    our_tokens = sum(n_tokens(chat.prefix) for _ in {p for p, _ in distinct}) + sum(
        n_tokens(chat.suffix(q)) for _, q in distinct
    )
    print(f"candidates: {len(samples)} ({args.prompts} images x {args.n}), claims: {stats.claims}")
    print(f"distinct questions answered: {stats.questions_answered}")
    print(f"reference: {t_ref:.2f} s, {reference.forward_passes} passes, {ref_tokens} tokens")
    print(f"ours:      {t_ours:.2f} s, {ours.forward_passes} passes, {our_tokens} tokens")
    print(f"wall-time ratio (reference / ours): {t_ref / t_ours:.1f}x")
    print(f"processed-token ratio (reference / ours): {ref_tokens / our_tokens:.1f}x")
    print(f"verdict agreement: {agree}/{len(ref_verdicts)}")


if __name__ == "__main__":
    main()
