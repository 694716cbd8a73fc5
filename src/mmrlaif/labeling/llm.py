"""LLM-based divide step: claim extraction and question rewriting by a chat/instruct causal LM.

As in the RLAIF-V reference (``utils/llama3_8b_inference.py``), every prompt is one user turn
rendered through the model's chat template (``apply_chat_template`` with the generation
prompt in-process, ``/chat/completions`` over an endpoint), sampled at the configured
temperature / top-p / top-k (the reference: 0.2 / 0.9 / the implicit 50) with a per-call seed
derived from a configured seed and the prompt. A model without a chat template (a base LM) is
an error, never a raw-text fallback: the prompts are instructions, not text to continue.

Two prompt formats (:data:`PROMPT_FORMATS`):

- ``instruct``: the project's prompts for a general instruct model. The extractor is shown
  the item's own question and the answer and asked for self-contained factual sentences,
  opinions excluded, as a ``- `` bullet list, the whole prompt cut to ``max_words``
  whitespace-separated words; the question builder gets all of a response's claims as a list
  and rewrites each as a general yes/no question, keeping tense and negation.
- ``rlaifv_finetuned``: the reference's exact prompt strings, cut (the extraction prompt, on
  single spaces) and parsed (its ``get_facts``) as the reference does, for its released
  fine-tuned "split" and "changeq" Llama-3-8B models.

In both, one question-rewrite call is made per response (its claims in a list) and the
questions are zipped back onto the claims in order; a list with fewer questions than claims
fails the response (the reference drops such a response's pairs), extra ones are dropped (the
reference's ``zip``). Output that cannot be parsed is counted and logged with the raw text,
never a crash.

Both parts take a ``generate`` callable prompt -> completion text: a :class:`TextGenerator`
over a model loaded in-process, or an :class:`~mmrlaif.models.openai_client.OpenAITextGenerator`
over an OpenAI-compatible endpoint (as vLLM serves); :func:`text_generators` picks one.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from mmrlaif.labeling.claims import ANSWER_SUFFIX, Claim
from mmrlaif.models.openai_client import OpenAIClient, OpenAITextGenerator, call_seed
from mmrlaif.models.seeded import SeededGumbelSampler

logger = logging.getLogger(__name__)

PromptFormat = Literal["instruct", "rlaifv_finetuned"]
#: The prompt formats of the divide step.
PROMPT_FORMATS: tuple[str, ...] = ("instruct", "rlaifv_finetuned")

EXTRACT_PROMPT = (
    "You are an expert in extracting facts from the given question-answer pair for an image. "
    "Your task is to extract the facts in the answer, rewrite them into self-contained "
    "sentences, and exclude opinions or subjective statements. Output the facts as a list, "
    "each line beginning with '- '.\n"
    "Question: {question}\nAnswer: {answer}\nFacts:\n"
)
QUESTIONS_PROMPT = (
    "Rewrite each statement below as a general question that can be answered with yes or no. "
    "Keep the tense and any negation of the statement and add nothing. Output the questions "
    "as a list in the order of the statements, one per statement, each line beginning with "
    "'- '.\nStatements:\n{statements}\nQuestions:\n"
)

# The reference's prompts, verbatim (RLAIF-V utils/llama3_8b_inference.py,
# wrap_prompt_divide_to_list and wrap_prompt_changeq_to_list), including their spacing.
RLAIFV_SPLIT_PROMPT = (
    "You are an expert in extracting facts from the given question-answer pair for an image. "
    "Your task is to extract and rewrite the facts mentioned in the question-answer pair into "
    "self-contained sentences. Exclude opinions or subjective statements.\n\n"
    "You should present your result in the following format:\n"
    "### Facts:\n- {Extracted fact 1}\n- {Extracted fact 2}\n- ...\n\n"
    "### Question-answer pair:\nQuestion: "
)
RLAIFV_CHANGEQ_PROMPT = (
    "You are an expert at modifying a given declarative sentence into a general question "
    "sentence. Your task is to modify the given declarative sentences one by one into a "
    "general question form. Do not change tenses or add extra content.\n"
    "    If the given declarative sentence contains not, no or negative meaning words, you "
    "need to check the modified general interrogative sentence to make sure that the "
    "generated general question sentence retains words with not , no or negative meaning "
    "words.\n\n"
    "You should present your result in the following format:\n"
    "### Modified sentences:\n- {Modified sentence 1}\n- {Modified sentence 2}\n- ...\n\n"
    "### Declarative sentences:"
)

#: The reference's cut of the extraction prompt, in words.
MAX_WORDS = 300
#: The reference's new-token budget of a call (extraction and question rewrite alike).
MAX_NEW_TOKENS = 256


def truncate_words(text: str, max_words: int = MAX_WORDS) -> str:
    """``text`` up to the end of its ``max_words``-th whitespace-separated word (the spacing
    and line breaks before it kept; the whole text when it is shorter)."""
    match = re.match(rf"(?:\s*\S+){{0,{max_words}}}", text)
    head = match.group(0) if match else ""
    return text if len(head.split()) < max_words else head


def truncate_spaces(text: str, max_words: int = MAX_WORDS) -> str:
    """The reference's cut: the first ``max_words`` pieces of ``text`` split on single spaces
    (``' '.join(text.split(' ')[:max_words])``; a line break does not separate words)."""
    return " ".join(text.split(" ")[:max_words])


def parse_bullets(text: str) -> list[str] | None:
    """Items of a ``- `` bullet list; ``None`` when the text holds no bullet line."""
    items = [
        line.strip()[2:].strip() for line in text.splitlines() if line.strip().startswith("- ")
    ]
    items = [i for i in items if i]
    return items or None


def parse_rlaifv_list(text: str) -> list[str] | None:
    """The reference's ``get_facts``: every non-empty line of the stripped text that holds no
    ``###``, less its first character (the ``-``), stripped; ``None`` when there is none.

    Unlike the reference, an item left empty is dropped (it would be an empty question)."""
    items = []
    for line in text.strip().split("\n"):
        if line == "" or "###" in line:
            continue
        item = line[1:].strip()
        if item:
            items.append(item)
    return items or None


def _check_format(prompt_format: str) -> None:
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format {prompt_format!r} is not one of {PROMPT_FORMATS}")


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokens that end a reply: the tokenizer's EOS, the model's generation-config EOS
    ids, and Llama-3's ``<|eot_id|>`` when the vocabulary has it (the reference's
    terminators)."""
    ids: list[int] = []
    configured = getattr(model.generation_config, "eos_token_id", None)
    configured = configured if isinstance(configured, list) else [configured]
    vocab = tokenizer.get_vocab()
    eot = vocab.get("<|eot_id|>")
    for i in [tokenizer.eos_token_id, *configured, eot]:
        if i is not None and i not in ids:
            ids.append(int(i))
    return ids


class TextGenerator:
    """A chat reply of a causal LM to one user turn, sampled with a per-call seed (decoded,
    special tokens removed).

    The prompt is the user message, rendered with ``tokenizer.apply_chat_template(...,
    add_generation_prompt=True)`` and tokenised without further special tokens. With
    ``temperature`` > 0 the next token is drawn from the temperature-scaled logits cut to
    ``top_k`` and ``top_p`` (Hugging Face's warpers, in ``generate``'s order) with the
    project's seeded Gumbel-max sampler (:mod:`mmrlaif.models.seeded`): a call's output
    depends only on the model, the prompt and its seed; ``temperature`` 0 is greedy.

    Args:
        model: The causal LM.
        tokenizer: Its tokenizer, with a chat template.
        budget: Most new tokens.
        temperature: Sampling temperature (0: greedy).
        top_p: Nucleus mass (1: off).
        top_k: Top-k cut (0: off).
        seed: Configured seed; each call draws with the seed
            :func:`~mmrlaif.models.openai_client.call_seed` derives from it and the prompt.

    Raises:
        ValueError: If the tokenizer has no chat template (a base LM).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        budget: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
    ) -> None:
        if not getattr(tokenizer, "chat_template", None):
            name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
            raise ValueError(
                f"the LLM's tokenizer ({name}) has no chat template: the divide step and the "
                "POVID injector send their prompts as a chat user turn, as the reference "
                "does; use a chat/instruct model (or give its tokenizer a chat_template)"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.budget = budget
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.seed = seed
        self.stops = stop_token_ids(model, tokenizer)

    def chat_prompt(self, prompt: str) -> str:
        """The text the model is given: ``prompt`` as one user turn, with the generation
        prompt."""
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def __call__(self, prompt: str) -> str:
        """The reply to ``prompt``, drawn with the call's own seed."""
        return self.complete(prompt, call_seed(self.seed, prompt))

    @torch.no_grad()
    def complete(self, prompt: str, seed: int) -> str:
        """The reply to ``prompt`` drawn with ``seed`` (unused when greedy)."""
        enc = self.tokenizer(
            self.chat_prompt(prompt), return_tensors="pt", add_special_tokens=False
        ).to(self.model.device)
        pad = self.tokenizer.pad_token_id
        common = {
            "max_new_tokens": self.budget,
            "pad_token_id": pad if pad is not None else self.stops[0],
            "eos_token_id": self.stops,
        }
        if self.temperature == 0:
            out = self.model.generate(**enc, do_sample=False, **common)
        else:
            processors = [TemperatureLogitsWarper(self.temperature)]
            if self.top_k > 0:
                processors.append(TopKLogitsWarper(self.top_k))
            if self.top_p < 1.0:
                processors.append(TopPLogitsWarper(self.top_p))
            processors.append(SeededGumbelSampler([seed], temperature=1.0))
            # the sampler leaves one finite logit: generate's own draw has a single choice
            out = self.model.generate(
                **enc,
                do_sample=True,
                temperature=1.0,
                top_k=None,
                top_p=None,
                logits_processor=LogitsProcessorList(processors),
                **common,
            )
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


class LLMClaimExtractor:
    """Claims extracted by an instruct LLM.

    Args:
        generate: Prompt -> completion (the reference's budget: :data:`MAX_NEW_TOKENS`).
        question: The question shown to the LLM when :meth:`extract` is given none.
        prompt_format: ``instruct`` or ``rlaifv_finetuned`` (see the module docstring).
        max_words: The whole prompt is cut to this many words.

    Attributes:
        counts: ``unparsed_extraction`` for outputs with no list.
    """

    def __init__(
        self,
        generate: Callable[[str], str],
        question: str = "Describe the image.",
        prompt_format: PromptFormat = "instruct",
        max_words: int = MAX_WORDS,
    ) -> None:
        _check_format(prompt_format)
        self.generate = generate
        self.question = question
        self.prompt_format = prompt_format
        self.max_words = max_words
        self.counts: Counter[str] = Counter()

    def prompt(self, response: str, question: str = "") -> str:
        """The extraction prompt of ``response``, the answer to ``question`` (``self.question``
        when empty), cut to ``max_words`` words as the reference cuts it."""
        question = question or self.question
        if self.prompt_format == "rlaifv_finetuned":
            content = f"{RLAIFV_SPLIT_PROMPT}{question}\nAnswer: {response}"
            return truncate_spaces(content, self.max_words)
        return truncate_words(
            EXTRACT_PROMPT.format(question=question, answer=response), self.max_words
        )

    def extract(self, response: str, question: str = "") -> list[Claim]:
        """The claims of ``response``, the answer to ``question``; [] if the LLM's output is
        unparsable (counted)."""
        if not response.strip():
            return []
        raw = self.generate(self.prompt(response, question))
        parse = parse_rlaifv_list if self.prompt_format == "rlaifv_finetuned" else parse_bullets
        items = parse(raw)
        if items is None:
            self.counts["unparsed_extraction"] += 1
            logger.warning("claim extractor output is not a list: %r", raw[:500])
            return []
        return [Claim(item) for item in items]


class LLMQuestionBuilder:
    """Yes/no questions rewritten from a response's claims by an instruct LLM, one call per
    response, as in the reference.

    Args:
        generate: Prompt -> completion (the reference's budget: :data:`MAX_NEW_TOKENS`).
        prompt_format: ``instruct`` or ``rlaifv_finetuned`` (see the module docstring).

    Attributes:
        counts: ``unparsed_question`` for outputs with no list, ``mismatched_questions`` for
            lists with fewer questions than claims. Either way each claim is then asked as
            "Is it true that ...?" and the response is kept out of pairing.
    """

    def __init__(
        self, generate: Callable[[str], str], prompt_format: PromptFormat = "instruct"
    ) -> None:
        _check_format(prompt_format)
        self.generate = generate
        self.prompt_format = prompt_format
        self.counts: Counter[str] = Counter()

    def prompt(self, claims: Sequence[Claim]) -> str:
        """The rewrite prompt of ``claims``, all in one list."""
        if self.prompt_format == "rlaifv_finetuned":
            return RLAIFV_CHANGEQ_PROMPT + "".join(f"\n- {c.text}\n" for c in claims)
        return QUESTIONS_PROMPT.format(statements="\n".join(f"- {c.text}" for c in claims))

    def questions(self, claims: Sequence[Claim]) -> list[str]:
        """The verification questions of ``claims`` in order, with the answer-format suffix."""
        if not claims:
            return []
        raw = self.generate(self.prompt(claims))
        parse = parse_rlaifv_list if self.prompt_format == "rlaifv_finetuned" else parse_bullets
        items = parse(raw)
        if items is None or len(items) < len(claims):
            reason = "unparsed_question" if items is None else "mismatched_questions"
            self.counts[reason] += 1
            logger.warning("question builder: %s for %d claims: %r", reason, len(claims), raw[:500])
            return [f"Is it true that {c.text.rstrip('.')}?{ANSWER_SUFFIX}" for c in claims]
        return [f"{q}{ANSWER_SUFFIX}" for q in items[: len(claims)]]

    def question(self, claim: Claim) -> str:
        """The verification question of one claim (a list of one)."""
        return self.questions([claim])[0]


def text_generators(
    name_or_path: str,
    endpoint: str | None = None,
    trust_remote_code: bool = False,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
) -> Callable[[int], Callable[[str], str]]:
    """A factory ``budget -> generate`` of chat generators by one instruct LLM.

    Args:
        name_or_path: The model to load here, or its served name when ``endpoint`` is set.
        endpoint: Base URL of an OpenAI-compatible API (e.g. ``http://vllm:8000/v1``): the
            generators then call ``<endpoint>/chat/completions`` through one shared client
            (API key from ``OPENAI_API_KEY``) and nothing is loaded here.
        trust_remote_code: Passed to ``from_pretrained`` when the model is loaded here.
        temperature: Sampling temperature (0, the default: greedy).
        top_p: Nucleus mass (1: off).
        top_k: Top-k cut (0: off).
        seed: Configured seed; each call draws with the seed
            :func:`~mmrlaif.models.openai_client.call_seed` derives from it and the prompt.

    Raises:
        ValueError: If the model loaded here has no chat template.
    """
    sampling = {"temperature": temperature, "top_p": top_p, "top_k": top_k, "seed": seed}
    if endpoint:
        client = OpenAIClient(endpoint)
        return lambda budget: OpenAITextGenerator(client, name_or_path, budget, **sampling)

    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"{name_or_path} has no chat template (a base LM?): the LLM parts send their "
            "prompts as a chat user turn, as the reference does; use a chat/instruct model"
        )
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, trust_remote_code=trust_remote_code
    ).eval()
    return lambda budget: TextGenerator(model, tokenizer, budget, **sampling)
