"""The conversation format shared by SFT, sampling, labeling and DPO.

One format everywhere, so that training and inference tokenise identically (LLaVA-1.5 style):
``USER: <image>\\n{question} ASSISTANT:`` then `` {answer}</s>``. The tiny model's tokenizer
carries a chat template that renders exactly these strings (tested), so code that uses
``apply_chat_template`` and code that uses these helpers agree.
"""

from __future__ import annotations

IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, IMAGE_TOKEN)

#: Appended to every yes/no question, in training data and in labeling (RLAIF-V's wording).
ANSWER_SUFFIX = " Please answer yes or no."

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


def format_prompt(question: str) -> str:
    """The prompt string for an image and a question, ending where the answer starts."""
    return f"USER: {IMAGE_TOKEN}\n{question} ASSISTANT:"


def split_prompt(question: str) -> tuple[str, str]:
    """The prompt split where the image ends: a prefix shared by every question about an image
    (ending on the image token, a special token, so tokenisation splits cleanly there) and the
    question's own suffix. ``prefix + suffix == format_prompt(question)``."""
    return f"USER: {IMAGE_TOKEN}", f"\n{question} ASSISTANT:"


def format_completion(answer: str) -> str:
    """The completion string: a leading space, the answer, then the end-of-sequence token."""
    return f" {answer}{EOS_TOKEN}"


def user_message(question: str) -> list[dict]:
    """The user turn in the conversational layout (image slot first, then the question)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
