import json
import math
import urllib.request

import pytest

from mmrlaif import io
from mmrlaif.labeling.http_labeler import OpenAIYesNoLabeler, verdict_from_top_logprobs
from mmrlaif.labeling.labeler import LabelerError, VLMYesNoLabeler
from mmrlaif.models.server import VLMChatServer


def test_verdict_from_top_logprobs_by_hand():
    top = [
        {"token": " Yes", "logprob": math.log(0.5)},
        {"token": "yes", "logprob": math.log(0.1)},
        {"token": " No", "logprob": math.log(0.3)},
        {"token": " maybe", "logprob": math.log(0.1)},
    ]
    v = verdict_from_top_logprobs(top)
    assert v.p_yes == pytest.approx(0.6) and v.p_no == pytest.approx(0.3) and v.accepted


@pytest.mark.integration
def test_http_labeler_matches_the_local_labeler_over_real_http(small_world, tiny_model):
    model, processor = tiny_model
    prompts = io.read_rows(small_world.prompts("align"))[:3]
    images = [io.cell_to_image(p["image"], p["prompt_id"]) for p in prompts]
    questions = [
        f"Is there a {n} in the image? Please answer yes or no." for n in ("cup", "dog", "tree")
    ]
    local = VLMYesNoLabeler(model, processor, prefix_cache=False).answer(images, questions)
    with VLMChatServer(model, processor, model_name="tiny") as server:
        assert server.url.startswith("http://127.0.0.1:")
        # an untrained model spreads its mass over the whole vocabulary, so ask for all of it
        # (vLLM caps top_logprobs at 20; a trained labeler puts yes/no on top)
        vocab = len(processor.tokenizer)
        labeler = OpenAIYesNoLabeler(server.url, "tiny", top_logprobs=vocab, max_in_flight=2)
        remote = labeler.answer(images, questions)
        assert server.requests == 3
        assert labeler.stats.requests == 3 and labeler.stats.retries == 0
        # a bad request is a 400 with a message, not a crash
        req = urllib.request.Request(
            server.url + "/chat/completions",
            data=json.dumps({"messages": []}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 400
    for a, b in zip(local, remote, strict=True):
        assert b.p_yes == pytest.approx(a.p_yes, abs=1e-5)
        assert b.p_no == pytest.approx(a.p_no, abs=1e-5)
        assert a.accepted == b.accepted


def test_unreachable_endpoint_is_retried_then_named():
    labeler = OpenAIYesNoLabeler("http://127.0.0.1:9/v1", "x", retries=2, backoff=0.01, timeout=2)
    from PIL import Image

    with pytest.raises(LabelerError, match="unreachable at http://127.0.0.1:9/v1"):
        labeler.answer([Image.new("RGB", (4, 4))], ["Is there a cup?"])
    assert labeler.stats.requests == 3 and labeler.stats.retries == 2
    assert labeler.stats.failures == 1
