"""The toy world's validation split in AMBER's layout: a fixture benchmark for selection."""

from mmrlaif import io
from mmrlaif.config import WorldConfig
from mmrlaif.evaluation.hallucination import BenchmarkOptions, run_benchmarks
from mmrlaif.evaluation.hallucination.amber import load_amber
from mmrlaif.evaluation.hallucination.common import DataRoot
from mmrlaif.evaluation.select import best_candidate
from mmrlaif.toyworld import build_world, object_names


def test_the_export_reads_as_amber_and_selection_picks_the_best_checkpoint(tmp_path):
    world = build_world(WorldConfig(seed=1, n_train=4, n_align=2, n_eval=2, n_val=6), tmp_path)
    rows = io.read_rows(world.prompts("val"))
    data = load_amber(DataRoot(world.amber, "amber"))  # AMBER's own loader and checks
    assert len(data.queries) == 6
    for row, query in zip(rows, data.queries, strict=True):
        annotation = data.annotations[query.id]
        assert list(annotation.truth) == list(row["objects"])
        assert set(annotation.hallu) == set(object_names()) - set(row["objects"])
    absent = {q.id: next(iter(data.annotations[q.id].hallu)) for q in data.queries}
    truth = {q.id: list(data.annotations[q.id].truth) for q in data.queries}
    prompt_ids = {q.query: q for q in data.queries}
    assert len(prompt_ids) == 1  # one generative prompt: "Describe this image."

    def answers(hallucinate: bool):
        calls = iter(q.id for q in data.queries[2:])  # the selection slice skips 2

        def answer(batch):
            out = []
            for _ in batch:
                qid = next(calls)
                said = truth[qid] + ([absent[qid]] if hallucinate else [])
                out.append("There is a " + " and a ".join(said) + ".")
            return out

        return answer

    options = BenchmarkOptions(limit=3, skip={"amber": 2})  # items 3, 4, 5 of 6
    figures = {
        name: run_benchmarks(
            ["amber"], {"amber": world.amber}, answers(bad), options=options
        ).headline
        for name, bad in (("step-1", False), ("final", True))
    }
    # step-1 names every object and nothing else; final adds one absent object per answer
    n_true = sum(len(truth[q.id]) for q in data.queries[2:5])
    assert figures["step-1"]["amber_chair"] == 0.0 and figures["step-1"]["amber_cover"] == 1.0
    assert figures["final"]["amber_chair"] == 3 / (n_true + 3)
    assert best_candidate("amber_object_f1", figures) == "step-1"
