import torch

from mmrlaif.labeling.claims import Claim
from mmrlaif.labeling.llm import (
    EXTRACT_PROMPT,
    QUESTION_PROMPT,
    LLMClaimExtractor,
    LLMQuestionBuilder,
    parse_bullets,
    truncate_words,
)
from mmrlaif.models.tiny import build_tiny_causal_lm

RESPONSE = "There is a cup and a dog. It is lovely."
FACTS = "- There is a cup.\n- There is a dog.</s>"
CLAIM = "There is a cup."
QUESTION = " Is there a cup?</s>"


def test_parse_bullets_and_truncation():
    assert parse_bullets("- a\n-b\n  - c \n- ") == ["a", "c"]
    assert parse_bullets("no list here") is None
    assert truncate_words("a b c d", 2) == "a b"
    assert len(truncate_words("w " * 400).split()) == 300


def trained_lm():
    """A tiny causal LM overfit to answer the two prompts the way an instruct model would."""
    extract = EXTRACT_PROMPT.format(question="Describe the image.", answer=RESPONSE)
    rewrite = QUESTION_PROMPT.format(claim=CLAIM)
    texts = [extract + FACTS, rewrite + QUESTION]
    model, tok = build_tiny_causal_lm([*texts, extract, rewrite], hidden=64, layers=2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    batch = tok(texts, return_tensors="pt", padding=True, padding_side="right")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    for _ in range(150):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval(), tok


def test_llm_extractor_and_question_builder_with_a_tiny_lm():
    model, tok = trained_lm()
    extractor = LLMClaimExtractor(model, tok, max_new_tokens=24)
    claims = extractor.extract(RESPONSE)
    assert [c.text for c in claims] == ["There is a cup.", "There is a dog."]
    assert extractor.counts == {}
    builder = LLMQuestionBuilder(model, tok, max_new_tokens=12)
    assert builder.question(Claim(CLAIM)) == "Is there a cup? Please answer yes or no."


def test_unparsable_outputs_are_counted_not_fatal():
    model, tok = build_tiny_causal_lm([EXTRACT_PROMPT, QUESTION_PROMPT], hidden=32, layers=1)
    extractor = LLMClaimExtractor(model, tok, max_new_tokens=8)
    assert extractor.extract(RESPONSE) == []
    assert extractor.extract("") == []  # empty responses are not sent at all
    assert extractor.counts == {"unparsed_extraction": 1}
    builder = LLMQuestionBuilder(model, tok, max_new_tokens=4)
    q = builder.question(Claim("The cup is red."))
    assert q == "Is it true that The cup is red? Please answer yes or no."
    assert builder.counts == {"unparsed_question": 1}
