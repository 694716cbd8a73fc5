"""The conversation format shared by SFT, sampling, labeling, DPO and evaluation.

Every stage renders prompts and completions through one :class:`ChatFormat`, built from the
processor's own chat template, so that a model is prompted as it was trained to be and every
stage sees the same token ids for the same text:

- the prompt is the template's rendering of one user turn (image slot, then the question) with
  the generation prompt, system prompt included where the template adds one;
- the completion is what the template renders for the assistant turn, cut right after the
  family's end-of-turn token (``<|im_end|>``, ``<end_of_utterance>``, ``<end_of_turn>``...), or
  ended with the tokenizer's EOS token where the template writes none (llava-hf's LLaVA-1.5);
- a completion is never tokenised alone: it is the tail of ``tokenize(prompt + completion)``
  after ``tokenize(prompt)``, so no stray leading ``▁`` and the same BOS as at generation.

The tiny toy-world model's tokenizer carries :data:`CHAT_TEMPLATE`, which renders LLaVA-1.5's
``USER: <image>\\n{question} ASSISTANT:`` and `` {answer}</s>``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # no transformers (nor torch) for the tracking, world and pairs tasks
    from transformers import ProcessorMixin

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, IMAGE_TOKEN)

#: Appended to every yes/no question, in training data and in labeling (RLAIF-V's wording).
ANSWER_SUFFIX = " Please answer yes or no."

#: The tiny model's template (LLaVA-1.5's conversation format, EOS after the answer).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ 'USER: ' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<image>\\n' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ ' ' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ 'ASSISTANT: ' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '</s>' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)

# Stand-ins rendered through the template once, then replaced by the real texts.
_QUESTION = "QQQ7f3a1cQQQ"
_ANSWER = "AAA9e2b4dAAA"


class ChatFormatError(ValueError):
    """A chat template that cannot give a prompt / completion split, or a row whose text does
    not tokenise consistently (``row``: its index in the batch)."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


def user_message(question: str) -> list[dict[str, Any]]:
    """The user turn in the conversational layout (image slot first, then the question)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def assistant_message(answer: str) -> list[dict[str, Any]]:
    """The assistant turn in the conversational layout."""
    return [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def message_text(messages: Sequence[Mapping[str, Any]] | str) -> str:
    """The text of a one-turn message list (the question or the answer); a string as is.

    Raises:
        ValueError: If the messages hold no text part.
    """
    if isinstance(messages, str):
        return messages
    texts = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
            continue
        texts.extend(p["text"] for p in content if p.get("type") == "text" and p.get("text"))
    if not texts:
        raise ValueError(f"no text in messages {list(messages)!r}")
    return "".join(texts)


class ChatFormat:
    """Prompts, completions and their token ids for one processor, from its chat template.

    Args:
        processor: A VLM processor with a chat template (``processor.chat_template``).

    Raises:
        ChatFormatError: If the processor has no chat template, or its template renders the
            assistant turn in a way that does not continue the generation prompt.
    """

    def __init__(self, processor: ProcessorMixin) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        if not getattr(processor, "chat_template", None):
            raise ChatFormatError(
                f"{type(processor).__name__} has no chat template: every stage prompts the model "
                "through it (save the processor with the model's chat_template)"
            )
        tok = self.tokenizer
        prompt = self._render(user_message(_QUESTION), generation=True)
        full = self._render(user_message(_QUESTION) + assistant_message(_ANSWER), generation=False)
        if prompt.count(_QUESTION) != 1 or not full.startswith(prompt):
            raise ChatFormatError(
                f"{type(processor).__name__}'s chat template: the assistant turn does not continue "
                "the generation prompt (or the question is not rendered once)"
            )
        self._before, self._after = prompt.split(_QUESTION)
        lead, tail = full[len(prompt) :].split(_ANSWER)
        specials = self._special_tokens()
        end = min(
            ((tail.find(s), s) for s in specials if s in tail), default=(-1, ""), key=lambda x: x[0]
        )
        if end[0] >= 0:
            self.end_of_turn = end[1]
            self._answer_tail = tail[: end[0] + len(end[1])]
        elif tok.eos_token:
            self.end_of_turn = tok.eos_token
            self._answer_tail = tail.rstrip() + tok.eos_token
        else:
            raise ChatFormatError("the template ends no turn with a special token and no EOS")
        self._answer_lead = lead
        # The template may write the BOS itself (Gemma 3): then the tokenizer must not add one.
        self.add_special_tokens = not (tok.bos_token and prompt.startswith(tok.bos_token))
        # The prefix shared by every question about an image ends on the last special token
        # before the question (the image slot's end), so tokenisation splits cleanly there.
        cut = max(
            (self._before.rfind(s) + len(s) for s in specials if s in self._before), default=-1
        )
        self._prefix = self._before[:cut] if cut > 0 else None
        self.stop_token_ids = sorted(
            {tok.convert_tokens_to_ids(self.end_of_turn)}
            | ({tok.eos_token_id} if tok.eos_token_id is not None else set())
        )

    def _render(self, messages: list[dict[str, Any]], generation: bool) -> str:
        return self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation
        )

    def _special_tokens(self) -> list[str]:
        tok = self.tokenizer
        added = [t.content for t in tok.added_tokens_decoder.values() if t.special]
        return sorted(set(added) | set(tok.all_special_tokens), key=len, reverse=True)

    # ---------------------------------------------------------------------------------- text

    def prompt(self, question: str) -> str:
        """The prompt for an image and a question, ending where the answer starts."""
        return f"{self._before}{question}{self._after}"

    def completion(self, answer: str) -> str:
        """The completion: the answer as the template frames it, ending on the end of turn."""
        return f"{self._answer_lead}{answer}{self._answer_tail}"

    @property
    def prefix(self) -> str | None:
        """The prompt's per-image prefix (up to the image slot's last special token), or
        ``None`` when no special token precedes the question."""
        return self._prefix

    def suffix(self, question: str) -> str:
        """The prompt after :attr:`prefix`: ``prefix + suffix(q) == prompt(q)``.

        Raises:
            ChatFormatError: If the template has no prefix to split at.
        """
        if self._prefix is None:
            raise ChatFormatError("no special token before the question: no per-image prefix")
        return self.prompt(question)[len(self._prefix) :]

    # ------------------------------------------------------------------------------- tokens

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (image slots unexpanded), special tokens as the prompt has."""
        return self.tokenizer(list(texts), add_special_tokens=self.add_special_tokens)["input_ids"]

    def continuation_ids(self, heads: Sequence[str], tails: Sequence[str]) -> list[list[int]]:
        """The ids ``tail`` adds after ``head``: ``tokenize(head + tail)`` minus
        ``tokenize(head)``, never ``tail`` tokenised alone.

        Raises:
            ChatFormatError: Naming the row whose head does not tokenise to a prefix of
                ``head + tail`` (a tokenizer merging across the boundary).
        """
        head_ids = self.tokenize(heads)
        full_ids = self.tokenize([h + t for h, t in zip(heads, tails, strict=True)])
        out = []
        for i, (h, f) in enumerate(zip(head_ids, full_ids, strict=True)):
            if f[: len(h)] != h:
                raise ChatFormatError(
                    f"{heads[i][-40:]!r} does not tokenise to a prefix of itself + "
                    f"{tails[i][:40]!r}",
                    row=i,
                )
            out.append(f[len(h) :])
        return out

    def suffix_ids(self, questions: Sequence[str]) -> list[list[int]]:
        """Ids of each question's :meth:`suffix` as they follow the prefix in the full prompt."""
        assert self._prefix is not None
        return self.continuation_ids(
            [self._prefix] * len(questions), [self.suffix(q) for q in questions]
        )

    def completion_ids(self, questions: Sequence[str], answers: Sequence[str]) -> list[list[int]]:
        """Ids of each answer's completion as it follows its prompt.

        Raises:
            ChatFormatError: As :meth:`continuation_ids`, or naming a row whose completion
                does not end on the end-of-turn token.
        """
        ids = self.continuation_ids(
            [self.prompt(q) for q in questions], [self.completion(a) for a in answers]
        )
        eot = self.tokenizer.convert_tokens_to_ids(self.end_of_turn)
        for i, row in enumerate(ids):
            if not row or row[-1] != eot:
                raise ChatFormatError(f"completion does not end on {self.end_of_turn}", row=i)
        return ids

    def encode_prompts(
        self,
        questions: Sequence[str],
        images: Sequence[Any],
        padding_side: str = "left",
    ):
        """The processor's batch (ids, mask, pixels...) of the prompts, one image each."""
        return self.processor(
            text=[self.prompt(q) for q in questions],
            images=[[image] for image in images],
            return_tensors="pt",
            padding=True,
            padding_side=padding_side,
            add_special_tokens=self.add_special_tokens,
        )

    def decode(self, ids: Sequence[int]) -> str:
        """Generated ids as answer text: special tokens dropped, whitespace stripped."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()
