"""The ``estimate:`` section: the figures ``mmrlaif estimate`` turns a config into GPU-hours.

Two kinds of figures: sizes (how long an answer is, how many claims it holds, how many pairs a
prompt yields) and throughputs (how fast one GPU does a stage's unit of work). The defaults are
for a 7B VLM (LLaVA-1.5-7B) on one H100 80GB in bf16 with this project's code paths (Hugging
Face ``generate`` for sampling and evaluation, vLLM servers for the labeler and the claim
splitter, DeepSpeed ZeRO-3 for DPO). They are rough guesses, derived below from first
principles, not measurements: replace them with the figures a run logs (the sampling task's
``tokens_per_second`` metric, the samples table's mean response length, the labeling and pairs
counts) by pasting them into a preset's ``estimate:`` section.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mmrlaif.config.strict import ConfigError


@dataclass(frozen=True)
class EstimateConfig:
    """Sizes and per-GPU throughputs behind ``mmrlaif estimate`` (no effect on a run).

    Attributes:
        answer_tokens: Mean tokens of a sampled answer (capped by ``sampling.max_new_tokens``,
            or ``povid.max_new_tokens`` for POVID's noised-image answers). Guess: a detailed
            answer of about 90 words; measure it as the mean response length of a samples
            table.
        claims_per_answer: Mean atomic claims per answer, which is also the labeler's yes/no
            questions per answer. Guess: about one claim per 15 tokens of a descriptive
            answer; measure it from the feedback table's claims.
        pairs_per_prompt: Mean RLAIF-V DPO pairs kept per prompt (capped by
            ``pairs.max_pairs_per_prompt``). Guess: with 10 candidates nearly every prompt
            has two score gaps, and length balancing drops some; measure it as pairs / prompts
            of an iteration. POVID ignores it (one pair per source and prompt).
        eval_answer_tokens: Mean tokens of an evaluation description (toy eval/val splits,
            Object HalBench, AMBER generative), capped by the generation budget. Guess, as
            ``answer_tokens``.
        sampling_tokens_per_s: Generated tokens per second per GPU while sampling (Hugging
            Face ``generate``, ``prompts_per_batch`` x ``n`` rows per call). Guess: a 7B decode
            step reads about 14 GB of weights plus the KV cache of ~80 rows at about 3 TB/s,
            some 15 ms, so 5,000 tokens/s at best; ``generate``'s overhead takes about half.
        divide_claims_per_s: Claims per second per GPU of the claim splitter and question
            rewriter (an 8B instruct LLM, ``labeling.extractor`` / ``question_builder`` ``llm``).
            Guess: about 35 generated tokens per claim (the bullet, then its question) at about
            3,000 tokens/s of batched vLLM decoding.
        labeler_questions_per_s: Yes/no questions per second per GPU of the labeler (one
            output token each, logprobs read). Guess for a 34B VLM on vLLM with the image
            prefix cached: about 2·34e9·50 FLOP of prefill per question is 100+/s of compute
            at 40% utilisation; requests, image encoding and tensor parallelism leave ~20.
        dpo_pairs_per_s: DPO pairs per second per GPU, one epoch's pass over one pair (chosen
            and rejected, reference log-probs precomputed). Guess for 7B full fine-tuning:
            ~1,600 tokens per pair (two sequences of 576 image + ~200 text tokens) at
            ~10·7e9 FLOP per token (forward, backward, checkpointing recompute, reference) is
            1.1e14 FLOP, at 25% of the H100's 989 TFLOP/s about 2 pairs/s.
        eval_tokens_per_s: Generated tokens per second per GPU of an evaluation's descriptions
            (``eval.batch_size`` rows per call, fewer than sampling's). Guess: about a third of
            ``sampling_tokens_per_s`` at batch 16.
        eval_yesno_per_s: Yes/no answers per second per GPU of an evaluation (POPE, AMBER
            discriminative: a prefill of the image and question and a few tokens). Guess:
            about 2·7e9·600 FLOP of prefill each, plus ``generate``'s overhead.
        sampling_server_gpus: GPUs behind ``sampling.endpoint`` (``sampling.backend``
            ``openai``: the policy served by vLLM; ``sampling_tokens_per_s`` is then that
            server's rate per GPU, several times the ``generate`` default).
        labeler_server_gpus: GPUs behind ``labeling.endpoint`` (the Helm chart's
            ``servers.labeler.gpus``: 2); they set the labeling wall time.
        divide_server_gpus: GPUs behind ``labeling.llm_endpoint`` / ``povid.llm_endpoint``
            (the chart's ``servers.divide.gpus``: 1).
    """

    answer_tokens: float = 120.0
    claims_per_answer: float = 8.0
    pairs_per_prompt: float = 1.6
    eval_answer_tokens: float = 120.0
    sampling_tokens_per_s: float = 2000.0
    divide_claims_per_s: float = 80.0
    labeler_questions_per_s: float = 20.0
    dpo_pairs_per_s: float = 2.0
    eval_tokens_per_s: float = 600.0
    eval_yesno_per_s: float = 30.0
    sampling_server_gpus: int = 1
    labeler_server_gpus: int = 2
    divide_server_gpus: int = 1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("claims_per_answer", "pairs_per_prompt"):
                if value < 0:
                    raise ConfigError(f"{f.name} must be >= 0, got {value}")
            elif value <= 0:
                raise ConfigError(f"{f.name} must be > 0, got {value}")
