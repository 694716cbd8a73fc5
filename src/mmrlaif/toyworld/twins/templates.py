"""The chat templates of the twins: each renders what the real checkpoint's template renders."""

# llava-hf/llava-1.5-7b-hf and llava-hf/llava-v1.6-vicuna-7b-hf (chat_template.json): every
# non-system message opens with its upper-cased role and ": ", then all of its images as
# "<image>\n", then each text part followed by one space; a system message is its text parts
# alone. Assistant text sits in a generation block, as in the real template, so that
# ``return_assistant_tokens_mask`` works. Only list contents are rendered: a plain-string content
# renders nothing, as with the real template (it filters the parts by their "type").
_LLAVA_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] != 'system' -%}{{ message['role'] | upper }}{{ ': ' }}{%- endif -%}"
    "{%- if message['content'] is not string -%}"
    "{%- for part in message['content'] if part['type'] == 'image' -%}{{ '<image>\\n' }}"
    "{%- endfor -%}"
    "{%- for part in message['content'] if part['type'] == 'text' -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ part['text'] + ' ' }}{% endgeneration %}"
    "{%- else -%}{{ part['text'] + ' ' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)

# Parts of the Qwen templates: an image part is any part typed "image" or carrying an "image"
# or "image_url" key; ``add_vision_id`` numbers the pictures and videos.
_QWEN_PARTS = (
    "{%- for part in parts -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{%- set counts.images = counts.images + 1 -%}"
    "{%- if add_vision_id -%}{{ 'Picture ' ~ counts.images ~ ': ' }}{%- endif -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{%- set counts.videos = counts.videos + 1 -%}"
    "{%- if add_vision_id -%}{{ 'Video ' ~ counts.videos ~ ': ' }}{%- endif -%}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

# Qwen/Qwen2.5-VL-7B-Instruct (the Qwen2-VL template): ChatML, with the default system prompt
# "You are a helpful assistant." when the conversation does not start with a system message.
_QWEN2_5_VL_TEMPLATE = (
    "{%- set counts = namespace(images=0, videos=0) -%}"
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- set parts = message['content'] -%}" + _QWEN_PARTS + "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# Qwen/Qwen3-VL-2B-Instruct: ChatML without a default system prompt; a leading system message
# renders its text parts; user turns render images and videos, assistant turns their text
# parts only. Other system messages (and tool turns, which the twin does not support) render
# nothing.
_QWEN3_VL_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ '<|im_start|>system\\n' }}"
    "{%- if messages[0]['content'] is string -%}{{ messages[0]['content'] }}"
    "{%- else -%}{%- for part in messages[0]['content'] if 'text' in part -%}{{ part['text'] }}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- set counts = namespace(images=0, videos=0) -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ '<|im_start|>user\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- set parts = message['content'] -%}" + _QWEN_PARTS + "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] if 'text' in part -%}{{ part['text'] }}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def _idefics_template(prefix: str) -> str:
    """The Idefics3/SmolVLM format: ``{prefix}User:<image>q<end_of_utterance>\\nAssistant:``.

    Each message is its capitalised role, ``:`` when its first part is an image and ``: ``
    otherwise, its parts (text as is, an image as ``<image>``, a video as ``<video>``) and
    ``<end_of_utterance>\\n``. A plain-string content renders as ``Role: <end_of_utterance>\\n``
    (the real template iterates the string's characters and finds no typed parts).
    """
    return (
        "{{ '" + prefix + "' }}"
        "{%- for message in messages -%}"
        "{{ message['role'] | capitalize }}"
        "{%- if message['content'] is string -%}{{ ': ' }}"
        "{%- else -%}"
        "{%- if message['content'][0]['type'] == 'image' -%}{{ ':' }}{%- else -%}{{ ': ' }}"
        "{%- endif -%}"
        "{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
        "{%- elif part['type'] == 'image' -%}{{ '<image>' }}"
        "{%- elif part['type'] == 'video' -%}{{ '<video>' }}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- endif -%}"
        "{{ '<end_of_utterance>\\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
    )


# HuggingFaceM4/Idefics3-8B-Llama3 (its prompt opens with Llama 3's <|begin_of_text|>; the
# real template has no video parts, which the twin's never sees) and
# HuggingFaceTB/SmolVLM-256M-Instruct (opens with <|im_start|>).
_IDEFICS3_TEMPLATE = _idefics_template("<|begin_of_text|>")
_SMOLVLM_TEMPLATE = _idefics_template("<|im_start|>")

# google/gemma-3-4b-it: BOS, then <start_of_turn>{user|model}\n ... <end_of_turn>\n turns that
# must alternate user/model; a leading system message's text (its first part's, for a list)
# plus a blank line prefixes the first turn; texts are stripped, images are <start_of_image>.
_GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- else -%}{%- set first_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}"
    "{%- endif -%}"
    "{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set first_prefix = '' -%}{%- set turns = messages -%}"
    "{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 is even) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{{ '<start_of_turn>' }}{{ 'model' if message['role'] == 'assistant' else message['role'] }}"
    "{{ '\\n' }}{%- if loop.first -%}{{ first_prefix }}{%- endif -%}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] | trim }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- else -%}{{ raise_exception('Invalid content type') }}"
    "{%- endif -%}"
    "{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

# OpenGVLab/InternVL3-1B-hf: ChatML without a default system prompt; an image part is
# "<IMG_CONTEXT>\n" (the processor expands it to <img><IMG_CONTEXT>...</img>), a video "<video>\n".
_INTERNVL_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<IMG_CONTEXT>\\n' }}"
    "{%- elif part['type'] == 'video' -%}{{ '<video>\\n' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
