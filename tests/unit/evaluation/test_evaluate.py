from mmrlaif import io
from mmrlaif.config import EvalConfig
from mmrlaif.evaluation.evaluate import evaluate_policy, partner_share
from mmrlaif.toyworld import toy_lexicon

PARTNERS = {"cup": "saucer", "saucer": "cup", "fork": "knife", "knife": "fork"}


def test_partner_share_by_hand():
    lexicon = toy_lexicon()
    responses = [
        "There is a cup and a saucer.",  # saucer absent, partner of present cup -> partner
        "There is a fork and a car.",  # car absent, no present partner -> other
        "There is a knife.",  # knife absent, partner of present fork -> partner
        "There is a dog.",  # correct
    ]
    gt = [["cup"], ["fork"], ["fork"], ["dog"]]
    # 3 hallucinated objects, 2 of them absent partners -> 2/3
    assert partner_share(responses, gt, lexicon, PARTNERS) == 2 / 3
    assert partner_share(["There is a dog."], [["dog"]], lexicon, PARTNERS) == 0.0


def test_evaluate_policy_reports_every_figure(small_world, tiny_model):
    model, processor = tiny_model
    cfg = EvalConfig(max_new_tokens=8, batch_size=8, limit=5)
    report = evaluate_policy(
        model,
        processor,
        io.read_rows(small_world.prompts("eval")),
        io.read_rows(small_world.pope),
        toy_lexicon(),
        PARTNERS,
        cfg,
    )
    assert report.objects.n_responses == 5
    assert set(report.pope) == {"random", "popular", "adversarial"}
    for result in report.pope.values():
        assert result.n == 10  # 5 images x (1 yes + 1 no)
    figures = report.headline()
    assert {"object_hal", "response_hal", "cover", "pope_adversarial_accuracy"} <= set(figures)
    assert all(0.0 <= v <= 1.0 for v in figures.values())
    assert report.to_dict()["examples"][0]["prompt_id"] == "eval-00000"
