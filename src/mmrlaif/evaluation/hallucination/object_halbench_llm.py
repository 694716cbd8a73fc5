"""Object HalBench's GPT path: an LLM lists the objects of each answer, then CHAIR counts them.

RLAIF-V's published Object HalBench figures come from this path of
``eval/eval_gpt_obj_halbench.py`` (``--use_gpt``): ``gpt-3.5-turbo-0613`` is asked, with the
prompt below as the system message, for the objects an answer names; answers of three words or
fewer get no request and no objects. The reply is read as a JSON list (inside a ```json fence,
or the last line of a reply that contains ``["``). Each object is then normalised with spaCy
``en_core_web_trf`` (``get_pred_objs_match``): the lemmas of ``"a <object>"`` are merged into
two-word names; where that yields one, it is kept, otherwise the object's nouns (tags ``NN``,
``NNS``, ``NNP``, ``NNPS``; consecutive ones joined) are. Duplicates per answer are dropped.
The rest is the lexicon path's counting (:mod:`.chair`), without its tokenisation.

Here the extractor is any OpenAI-compatible endpoint (``eval.benchmarks.objhal_extractor: llm``).
Where spaCy's model is missing, the objects' nouns come from NLTK (tagger and WordNet lemmas), or
without the tagger every word of the object is a noun; either is recorded and the figures are
marked approximate.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from mmrlaif.evaluation.hallucination.chair import ChairResult, ChairVocabulary, chair_counts
from mmrlaif.evaluation.hallucination.nlp import ReferenceNlp, reference_marks
from mmrlaif.evaluation.hallucination.object_halbench import (
    object_halbench_metrics,
    reference_answer_text,
)
from mmrlaif.models.openai_client import EndpointError, OpenAIClient

logger = logging.getLogger(__name__)

#: The reference's extraction prompt (``prompt_template``), sent as the system message.
EXTRACTION_PROMPT = """You are an expert in image objects extraction according to a question answer pair. We asked an examiner to answer a question about a picture.

[Start of Question]

<image> {question}

[End of Question]

[Start of Examiner's Answer]

{answer}

[End of Examiner's Answer]


Assume that the answer is correct, please identify all visible objects that are directly shown in the image. Please following the instructions in below:

1. You should only mention objects that are explicitly mentioned in the examiner's answer.
2. You should only extract the object names without the attributes of the objects.
3. You should not include the properties of the object, like the color, material, etc. as part of the object name in your result.
4. Make your answer precise. Present the results in a JSON list format: [\\"object_1\\", ..., \\"object_n\\"].
5. You should return an empty JSON list () if no visible objects can be found.
"""  # noqa: E501

#: The extractor RLAIF-V used.
DEFAULT_EXTRACTOR_MODEL = "gpt-3.5-turbo-0613"
#: spaCy model of the reference's post-processing.
DEFAULT_EXTRACTOR_SPACY_MODEL = "en_core_web_trf"
_NOUN_TAGS = ("NNP", "NNPS", "NN", "NNS")


def parse_object_list(content: str) -> list[Any]:
    """The reference's ``parse_object_list``: a ```json fenced list, else the last line of a
    reply containing ``["``.

    Raises:
        ValueError: If neither reads as JSON.
    """
    match = re.search(r"```json\n(.*?)\n```", content, re.DOTALL)
    if match:
        try:
            return json.loads(match.group(1))
        except json.JSONDecodeError:
            pass
    if '["' in content:
        try:
            return json.loads(content.strip().split("\n")[-1])
        except json.JSONDecodeError as exc:
            raise ValueError("Content is not json interpretable") from exc
    raise ValueError("Content is not json interpretable")


class LLMObjectExtractor:
    """Ask an OpenAI-compatible chat endpoint for the objects of an answer.

    Args:
        client: The endpoint.
        model: The model name on it.
        attempts: Requests per answer before giving up on an unreadable reply (the reference
            tries 100 times, then stops the evaluation).
    """

    def __init__(
        self, client: OpenAIClient, model: str = DEFAULT_EXTRACTOR_MODEL, attempts: int = 3
    ) -> None:
        self.client = client
        self.model = model
        self.attempts = attempts

    def __call__(self, question: str, answer: str, item: str) -> list[str]:
        """The objects the LLM lists for one answer (``[]`` for answers of <= 3 words).

        Raises:
            EndpointError: Naming the item, if the endpoint fails for good or no reply of
                ``attempts`` reads as a JSON list of strings.
        """
        if len(answer.strip().split()) <= 3:
            return []
        prompt = EXTRACTION_PROMPT.replace("{question}", question).replace("{answer}", answer)
        body = {"model": self.model, "messages": [{"role": "system", "content": prompt}]}
        what = f"the objects of {item} by {self.model!r}"
        problem = ""
        for _ in range(self.attempts):
            reply = self.client.post("/chat/completions", body, what)
            try:
                objects = parse_object_list(reply["choices"][0]["message"]["content"])
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if isinstance(objects, list) and all(isinstance(o, str) for o in objects):
                return objects
            problem = f"not a list of strings: {objects!r}"
        raise EndpointError(f"no readable object list from {self.model!r} for {item} ({problem})")


def _noun_phrases(tagged: Sequence[tuple[str, str]]) -> list[str]:
    """The reference's ``postagging``: runs of noun lemmas, joined by spaces."""
    phrases, current = [], ""
    for lemma, tag in tagged:
        if tag in _NOUN_TAGS:
            current += f" {lemma}"
        elif current:
            phrases.append(current.strip())
            current = ""
    if current:
        phrases.append(current.strip())
    return phrases


def refine_objects(
    objects: Sequence[str], vocabulary: ChairVocabulary, nlp: ReferenceNlp
) -> list[str]:
    """``get_pred_objs_match`` for one answer: each object's two-word names, else its nouns;
    duplicates dropped, order kept."""
    refined: list[str] = []
    for text in objects:
        tagged = nlp.lemma_tags(f"a {text}")
        doubles = vocabulary.merge_double_words([lemma for lemma, _ in tagged], keep_single=False)
        refined += doubles or _noun_phrases(tagged)
    return list(dict.fromkeys(refined))


def object_halbench_llm_metrics(
    questions: Sequence[str],
    responses: Sequence[str],
    ground_truth: Sequence[set[str] | frozenset[str]],
    vocabulary: ChairVocabulary,
    extractor: LLMObjectExtractor,
    nlp: ReferenceNlp,
    items: Sequence[str] | None = None,
) -> tuple[ChairResult, list[list[str]]]:
    """Object HalBench figures by the GPT path.

    Args:
        questions: The items' questions.
        responses: The answers (``Assistant:`` removed and stripped, as the script reads them).
        ground_truth: Per answer, its image's node words.
        vocabulary: ``synonyms_refine.txt`` in the ``rlaifv`` flavour.
        extractor: The LLM.
        nlp: spaCy/NLTK for the post-processing (fallbacks recorded there).
        items: Item names for messages (default ``answer <i>``).

    Returns:
        The figures and, per answer, the refined objects.
    """
    answers = [reference_answer_text(r) for r in responses]
    names = items or [f"answer {i}" for i in range(len(answers))]
    found, refined_all = [], []
    for question, answer, name in zip(questions, answers, names, strict=True):
        refined = refine_objects(extractor(question, answer, name), vocabulary, nlp)
        refined_all.append(refined)
        found.append(vocabulary.object_words(refined))
    return chair_counts(found, ground_truth, answers), refined_all


def score_object_halbench(
    questions: Sequence[str],
    responses: Sequence[str],
    ground_truth: Sequence[set[str] | frozenset[str]],
    vocabulary: ChairVocabulary,
    nlp: ReferenceNlp,
    extractor: LLMObjectExtractor | None = None,
    items: Sequence[str] | None = None,
) -> tuple[ChairResult, list[list[str]] | None, dict[str, Any]]:
    """Object HalBench by the GPT path when an ``extractor`` is given, else the lexicon path.

    Returns:
        The figures; the refined objects per answer (GPT path only); and the result as JSON
        data with its reference marks (:func:`~.nlp.reference_marks`) and ``extractor``.
    """
    objects = None
    if extractor is not None:
        result, objects = object_halbench_llm_metrics(
            questions, responses, ground_truth, vocabulary, extractor, nlp, items
        )
    else:
        result = object_halbench_metrics(responses, ground_truth, vocabulary, nlp)
    data = result.to_dict() | reference_marks(nlp)
    data["extractor"] = "llm" if extractor is not None else "lexicon"
    return result, objects, data
