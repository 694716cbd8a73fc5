import math

import pytest
import torch

from mmrlaif import io
from mmrlaif.labeling.claims import Claim, LexiconClaimExtractor, TemplateQuestionBuilder
from mmrlaif.labeling.feedback import label_samples
from mmrlaif.labeling.labeler import LabelerError, VLMYesNoLabeler, answer_token_ids
from mmrlaif.toyworld import toy_lexicon


def test_lexicon_claims_one_per_distinct_object():
    extractor = LexiconClaimExtractor(toy_lexicon())
    claims = extractor.extract("There is a coffee cup, a mug and a tennis ball. Not a hot dog.")
    # coffee cup and mug are both 'cup': one claim; 'hot dog' is excluded
    assert [c.subject for c in claims] == ["coffee cup", "tennis ball"]
    assert claims[0].text == "There is a coffee cup in the image."
    assert extractor.extract("") == []


def test_template_questions():
    builder = TemplateQuestionBuilder()
    q = builder.question(Claim("There is a mug in the image.", "mug"))
    assert q == "Is there a mug in the image? Please answer yes or no."
    with pytest.raises(ValueError, match="need a claim subject"):
        builder.question(Claim("The sky is blue."))


def test_answer_tokens_of_the_tiny_tokenizer(tiny_model):
    _, processor = tiny_model
    tok = processor.tokenizer
    yes = answer_token_ids(tok, ("yes", "Yes"))
    assert tok.convert_tokens_to_ids("ĠYes") in yes and tok.convert_tokens_to_ids("Ġyes") in yes
    with pytest.raises(ValueError, match="single token"):
        answer_token_ids(tok, ("antidisestablishmentarianism",))


def test_verdict_from_logits_by_hand(tiny_model):
    model, processor = tiny_model
    labeler = VLMYesNoLabeler(model, processor)
    vocab = len(processor.tokenizer)
    logits = torch.full((1, vocab), -1e4)
    # put log-probabilities 0.3 on ' Yes', 0.1 on ' yes', 0.5 on ' No', 0.1 on ' no'
    for token, p in (("ĠYes", 0.3), ("Ġyes", 0.1), ("ĠNo", 0.5), ("Ġno", 0.1)):
        logits[0, processor.tokenizer.convert_tokens_to_ids(token)] = math.log(p)
    (v,) = labeler.verdicts_from_logits(logits)
    assert v.p_yes == pytest.approx(0.4) and v.p_no == pytest.approx(0.6)
    assert not v.accepted
    with pytest.raises(LabelerError, match="NaN logits .* rows \\[1\\]"):
        labeler.verdicts_from_logits(torch.cat([logits, torch.full((1, vocab), float("nan"))]))


def test_feedback_scores_dedups_and_counts(small_world, tiny_model):
    model, processor = tiny_model
    prompts = io.read_rows(small_world.prompts("align"))[:2]
    a, b = prompts[0]["prompt_id"], prompts[1]["prompt_id"]
    samples = [
        {"prompt_id": a, "sample_idx": 0, "response": "There is a cup and a dog."},
        {"prompt_id": a, "sample_idx": 1, "response": "There is a mug."},
        {"prompt_id": a, "sample_idx": 2, "response": ""},
        {"prompt_id": a, "sample_idx": 3, "response": "I can see a cup."},
        {"prompt_id": b, "sample_idx": 0, "response": "There is a cup."},
        {"prompt_id": b, "sample_idx": 1, "response": "Nothing here."},
    ]
    labeler = VLMYesNoLabeler(model, processor)
    rows, stats = label_samples(
        samples, prompts, LexiconClaimExtractor(toy_lexicon()), TemplateQuestionBuilder(), labeler
    )
    # claims: 2 + 1 + 0 + 1 + 1 + 0 = 5; distinct (prompt, question): a/cup (asked twice),
    # a/dog, a/mug, b/cup -> 4 answered
    assert stats.questions_answered == 4 and stats.claims == 5
    assert stats.counts == {"empty_response": 1, "no_claims": 1}
    assert len(rows) == 6
    assert rows[3]["p_yes"] == rows[0]["p_yes"][:1]  # a/cup answered once, reused
    for r in rows:
        assert r["score"] == -sum(not x for x in r["accepted"]) == -r["n_rejected"]
        assert len(r["claims"]) == len(r["questions"]) == len(r["p_yes"]) == len(r["accepted"])
        assert all(
            acc == (y > n) for acc, y, n in zip(r["accepted"], r["p_yes"], r["p_no"], strict=True)
        )
    assert rows[2]["claims"] == [] and rows[2]["score"] == 0.0
    # no questions, no pairing (the reference's rule): the empty and the claimless answer
    assert [r["unpaired"] for r in rows] == [None, None, "empty_response", None, None, "no_claims"]
    # the same question on the same image gets the same verdict in every sample
    assert rows[0]["p_yes"][0] == pytest.approx(
        labeler.answer([io.cell_to_image(prompts[0]["image"], a)], [rows[0]["questions"][0]])[
            0
        ].p_yes
    )


def test_unknown_prompt_id_is_named(small_world, tiny_model):
    model, processor = tiny_model
    with pytest.raises(KeyError, match="'ghost' has no prompt row"):
        label_samples(
            [{"prompt_id": "ghost", "sample_idx": 0, "response": "a cup"}],
            io.read_rows(small_world.prompts("align"))[:1],
            LexiconClaimExtractor(toy_lexicon()),
            TemplateQuestionBuilder(),
            VLMYesNoLabeler(model, processor),
        )


def test_prefix_cache_path_gives_the_naive_verdicts(small_world, tiny_model):
    model, processor = tiny_model
    prompts = io.read_rows(small_world.prompts("align"))[:3]
    images = [io.cell_to_image(p["image"], p["prompt_id"]) for p in prompts]
    names = ["cup", "coffee cup", "dog", "tennis ball", "knife"]
    pairs = [
        (img, f"Is there a {n} in the image? Please answer yes or no.")
        for img in images
        for n in names
    ]
    fast = VLMYesNoLabeler(model, processor, batch_size=4, prefix_cache=True)
    naive = VLMYesNoLabeler(model, processor, batch_size=4, prefix_cache=False)
    a = fast.answer([i for i, _ in pairs], [q for _, q in pairs])
    b = naive.answer([i for i, _ in pairs], [q for _, q in pairs])
    assert [v.accepted for v in a] == [v.accepted for v in b]
    for x, y in zip(a, b, strict=True):
        assert x.p_yes == pytest.approx(y.p_yes, abs=1e-5)
        assert x.p_no == pytest.approx(y.p_no, abs=1e-5)
    # 3 images: 3 prefix passes + 2 suffix passes each (5 questions, batches of 4)
    assert fast.forward_passes == 3 + 3 * 2
    assert naive.forward_passes == 4  # 15 questions in batches of 4


def test_prefix_and_suffix_tokens_concatenate_to_the_full_prompt(small_world, tiny_model):
    from mmrlaif.models.chat import ChatFormat

    _, processor = tiny_model
    chat = ChatFormat(processor)
    image = io.cell_to_image(io.read_rows(small_world.prompts("align"))[0]["image"], "p")
    question = "Is there a coffee cup in the image? Please answer yes or no."
    # LLaVA-1.5's format: the prefix ends on the image token, the suffix is the rest
    assert chat.prefix == "USER: <image>"
    assert chat.suffix(question) == f"\n{question} ASSISTANT:"
    full = processor(text=[chat.prompt(question)], images=[image])["input_ids"][0]
    head = processor(text=[chat.prefix], images=[image])["input_ids"][0]
    assert list(full) == list(head) + chat.suffix_ids([question])[0]


def test_missing_image_of_a_sampled_prompt_is_named(small_world, tiny_model):
    model, processor = tiny_model
    prompts = io.read_rows(small_world.prompts("align"))[:1]
    pid = prompts[0]["prompt_id"]
    prompts[0]["image"] = None
    with pytest.raises(io.ImageError, match=f"{pid}: image is missing"):
        label_samples(
            [{"prompt_id": pid, "sample_idx": 0, "response": "There is a cup."}],
            prompts,
            LexiconClaimExtractor(toy_lexicon()),
            TemplateQuestionBuilder(),
            VLMYesNoLabeler(model, processor),
        )


def test_each_distinct_response_and_claim_is_divided_once(small_world, tiny_model):
    model, processor = tiny_model
    prompts = io.read_rows(small_world.prompts("align"))[:1]
    pid = prompts[0]["prompt_id"]

    class CountingExtractor(LexiconClaimExtractor):
        calls = 0

        def extract(self, response, question=""):
            self.calls += 1
            return super().extract(response)

    class CountingBuilder(TemplateQuestionBuilder):
        calls = 0

        def questions(self, claims):
            self.calls += 1
            return super().questions(claims)

    extractor, builder = CountingExtractor(toy_lexicon()), CountingBuilder()
    samples = [
        {"prompt_id": pid, "sample_idx": i, "response": text}
        for i, text in enumerate(
            ["There is a cup.", "There is a cup.", "I can see a cup and a dog."]
        )
    ]
    rows, _ = label_samples(samples, prompts, extractor, builder, VLMYesNoLabeler(model, processor))
    assert extractor.calls == 2  # two distinct responses
    assert builder.calls == 2  # one call per distinct response's claims: [cup], [cup, dog]
    assert rows[0]["p_yes"] == rows[1]["p_yes"] == rows[2]["p_yes"][:1]


def test_reject_threshold_rejects_only_confident_noes(small_world):
    from mmrlaif.labeling.labeler import Verdict

    # shares of "no": 0.3/(0.6+0.3) = 1/3, 0.35/(0.05+0.35) = 0.875, 0.46/(0.04+0.46) = 0.92
    verdicts = [Verdict(0.6, 0.3), Verdict(0.05, 0.35), Verdict(0.04, 0.46)]

    class Scripted:
        def answer(self, images, questions):
            return verdicts[: len(questions)]

    prompts = io.read_rows(small_world.prompts("align"))[:1]
    samples = [
        {"prompt_id": prompts[0]["prompt_id"], "sample_idx": 0, "response": "A cup, a dog, a ball."}
    ]
    parts = (LexiconClaimExtractor(toy_lexicon()), TemplateQuestionBuilder(), Scripted())
    [rlaifv] = label_samples(samples, prompts, *parts)[0]
    [strict] = label_samples(samples, prompts, *parts, reject_threshold=0.9)[0]
    assert rlaifv["accepted"] == [True, False, False] and rlaifv["score"] == -2.0
    assert strict["accepted"] == [True, True, False] and strict["score"] == -1.0
    assert Verdict(0.0, 0.0).accepted_at(0.5) is Verdict(0.0, 0.0).accepted is False
    assert Verdict(0.0, 0.0).accepted_at(0.9) is False  # no evidence for "yes" at any threshold
    assert Verdict(0.3, 0.3).accepted_at(0.5) is False and Verdict(0.3, 0.3).accepted_at(0.51)


def test_a_template_without_a_prefix_falls_back_to_full_passes_once(
    small_world, tiny_model, caplog
):
    # the question before the image: no special token precedes it, no per-image prefix
    model, processor = tiny_model
    processor.chat_template = processor.tokenizer.chat_template = (
        "{%- for m in messages -%}{%- if m['role'] == 'user' -%}USER: "
        "{%- for p in m['content'] if p['type'] == 'text' -%}{{ p['text'] }}{%- endfor -%}"
        "{{ ' <image>\\n' }}{%- else -%}ASSISTANT: "
        "{%- for p in m['content'] if p['type'] == 'text' -%}{{ p['text'] }}{%- endfor -%}"
        "</s>{%- endif -%}{%- endfor -%}{%- if add_generation_prompt -%}ASSISTANT:{%- endif -%}"
    )
    prompts = io.read_rows(small_world.prompts("align"))[:2]
    images = [io.cell_to_image(p["image"], p["prompt_id"]) for p in prompts for _ in range(3)]
    questions = ["Is there a cup in the image? Please answer yes or no."] * len(images)
    with caplog.at_level("WARNING", logger="mmrlaif.labeling.labeler"):
        labeler = VLMYesNoLabeler(model, processor, batch_size=4, prefix_cache=True)
        cached = labeler.answer(images, questions)
        labeler.answer(images, questions)
    assert not labeler.prefix_cache
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "no prefix cache, full passes" in caplog.records[0].message
    assert labeler.forward_passes == 2 * 2  # 6 questions in batches of 4, twice
    full = VLMYesNoLabeler(model, processor, batch_size=4, prefix_cache=False)
    for a, b in zip(cached, full.answer(images, questions), strict=True):
        assert a.p_yes == b.p_yes


def test_failed_extraction_or_question_rewrite_keeps_a_response_out_of_pairing(small_world):
    from mmrlaif.labeling.llm import LLMClaimExtractor, LLMQuestionBuilder

    prompts = io.read_rows(small_world.prompts("align"))[:1]
    pid = prompts[0]["prompt_id"]

    def extract(prompt: str) -> str:  # the LLM: a bullet list, except for one answer
        if "garbled" in prompt:
            return "I cannot help with that."
        return (
            "- There is a cup.\n- There is a saucer." if "saucer" in prompt else "- There is a cup."
        )

    rewrites: list[str] = []

    def rewrite(prompt: str) -> str:  # the LLM: one question per claim, except for two
        rewrites.append(prompt)
        if "knife" in prompt:
            return "The knife."  # no list
        return "- Is there a cup?"  # one question, even for two claims

    class Constant:  # a labeler that says yes to everything
        def answer(self, images, questions):
            from mmrlaif.labeling.labeler import Verdict

            return [Verdict(0.9, 0.1) for _ in questions]

    samples = [
        {"prompt_id": pid, "sample_idx": i, "response": r}
        for i, r in enumerate(["A cup.", "garbled text", "A knife.", "A cup.", "A cup, a saucer."])
    ]
    extractor = LLMClaimExtractor(lambda p: extract(p) if "knife" not in p else "- A knife.")
    rows, stats = label_samples(
        samples, prompts, extractor, LLMQuestionBuilder(rewrite), Constant()
    )
    assert [r["unpaired"] for r in rows] == [
        None,
        "unparsed_extraction",
        "unparsed_question",
        None,  # the same text as sample 0, divided once: its outcome is reused
        "mismatched_questions",  # two claims, one question: the reference drops such pairs
    ]
    assert stats.counts == {
        "unparsed_extraction": 1,
        "unparsed_question": 1,
        "mismatched_questions": 1,
    }
    assert len(rewrites) == 3  # one rewrite call per distinct response, all its claims at once
    assert "- There is a cup.\n- There is a saucer.\n" in rewrites[2]
