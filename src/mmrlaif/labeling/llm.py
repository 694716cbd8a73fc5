"""LLM-based divide step: claim extraction and question rewriting by an instruct causal LM.

Prompts follow the RLAIF-V reference: the extractor is shown the item's own question and the
answer and asked for self-contained factual sentences with opinions excluded, as a ``- ``
bullet list, the whole prompt cut to 300 words (``utils/llama3_8b_inference.py``);
the question builder rewrites a claim as a general yes/no question keeping tense and negation.
Output that cannot be parsed is counted and logged with the raw text, never a crash.

Both take a ``generate`` callable prompt -> completion text: a :class:`TextGenerator` over a
model loaded in-process, or an :class:`~mmrlaif.models.openai_client.OpenAITextGenerator`
over an OpenAI-compatible endpoint (as vLLM serves); :func:`text_generators` picks one.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmrlaif.labeling.claims import ANSWER_SUFFIX, Claim

logger = logging.getLogger(__name__)

EXTRACT_PROMPT = (
    "You are an expert in extracting facts from the given question-answer pair for an image. "
    "Your task is to extract the facts in the answer, rewrite them into self-contained "
    "sentences, and exclude opinions or subjective statements. Output the facts as a list, "
    "each line beginning with '- '.\n"
    "Question: {question}\nAnswer: {answer}\nFacts:\n"
)
QUESTION_PROMPT = (
    "Rewrite the statement as a general question that can be answered with yes or no. Keep "
    "the tense and any negation of the statement.\nStatement: {claim}\nQuestion:"
)
MAX_WORDS = 300
#: Token budgets of a claim list and of a rewritten question.
EXTRACT_TOKENS = 256
QUESTION_TOKENS = 48


def truncate_words(text: str, max_words: int = MAX_WORDS) -> str:
    """``text`` up to the end of its ``max_words``-th whitespace-separated word (the spacing
    and line breaks before it kept; the whole text when it is shorter)."""
    match = re.match(rf"(?:\s*\S+){{0,{max_words}}}", text)
    head = match.group(0) if match else ""
    return text if len(head.split()) < max_words else head


def parse_bullets(text: str) -> list[str] | None:
    """Claims from a ``- `` bullet list; ``None`` when the text holds no bullet line."""
    items = [
        line.strip()[2:].strip() for line in text.splitlines() if line.strip().startswith("- ")
    ]
    items = [i for i in items if i]
    return items or None


class TextGenerator:
    """Greedy completion of a text prompt by a causal LM (decoded, special tokens removed)."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, budget: int):
        self.model = model
        self.tokenizer = tokenizer
        self.budget = budget

    @torch.no_grad()
    def __call__(self, prompt: str) -> str:
        enc = self.tokenizer(prompt, return_tensors="pt").to(self.model.device)
        out = self.model.generate(
            **enc,
            max_new_tokens=self.budget,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


class LLMClaimExtractor:
    """Claims extracted by an instruct LLM.

    Args:
        generate: Prompt -> completion (greedy; budget about :data:`EXTRACT_TOKENS`).
        question: The question shown to the LLM when :meth:`extract` is given none.

    Attributes:
        counts: ``unparsed_extraction`` for outputs with no bullet list.
    """

    def __init__(
        self, generate: Callable[[str], str], question: str = "Describe the image."
    ) -> None:
        self.generate = generate
        self.question = question
        self.counts: Counter[str] = Counter()

    def extract(self, response: str, question: str = "") -> list[Claim]:
        """The claims of ``response``, the answer to ``question`` (``self.question`` when
        empty), with the whole prompt cut to 300 words as the reference cuts it; [] if the
        LLM's output is unparsable."""
        if not response.strip():
            return []
        prompt = truncate_words(
            EXTRACT_PROMPT.format(question=question or self.question, answer=response)
        )
        raw = self.generate(prompt)
        items = parse_bullets(raw)
        if items is None:
            self.counts["unparsed_extraction"] += 1
            logger.warning("claim extractor output is not a bullet list: %r", raw[:500])
            return []
        return [Claim(item) for item in items]


class LLMQuestionBuilder:
    """Yes/no questions rewritten from claims by an instruct LLM.

    Args:
        generate: Prompt -> completion (greedy; budget about :data:`QUESTION_TOKENS`).

    Attributes:
        counts: ``unparsed_question`` for outputs that are not a question (the claim is then
            asked as "Is it true that ...?").
    """

    def __init__(self, generate: Callable[[str], str]) -> None:
        self.generate = generate
        self.counts: Counter[str] = Counter()

    def question(self, claim: Claim) -> str:
        """The verification question of ``claim``, with the answer-format suffix."""
        raw = self.generate(QUESTION_PROMPT.format(claim=claim.text))
        line = next((ln.strip() for ln in raw.splitlines() if ln.strip()), "")
        if not line.endswith("?"):
            self.counts["unparsed_question"] += 1
            logger.warning("question builder output is not a question: %r", raw[:300])
            line = f"Is it true that {claim.text.rstrip('.')}?"
        return f"{line}{ANSWER_SUFFIX}"


def text_generators(
    name_or_path: str, endpoint: str | None = None, trust_remote_code: bool = False
) -> Callable[[int], Callable[[str], str]]:
    """A factory ``budget -> generate`` of greedy generators by one instruct LLM.

    Args:
        name_or_path: The model to load here, or its served name when ``endpoint`` is set.
        endpoint: Base URL of an OpenAI-compatible API (e.g. ``http://vllm:8000/v1``): the
            generators then call ``<endpoint>/completions`` through one shared client (API key
            from ``OPENAI_API_KEY``) and nothing is loaded here.
        trust_remote_code: Passed to ``from_pretrained`` when the model is loaded here.
    """
    if endpoint:
        from mmrlaif.models.openai_client import OpenAIClient, OpenAITextGenerator

        client = OpenAIClient(endpoint)
        return lambda budget: OpenAITextGenerator(client, name_or_path, budget)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, trust_remote_code=trust_remote_code
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    return lambda budget: TextGenerator(model, tokenizer, budget)
