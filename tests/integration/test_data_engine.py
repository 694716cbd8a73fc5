import pytest
from datasets import load_dataset

from mmrlaif import io
from mmrlaif.config import ConfigError, LabelingConfig, ModelConfig, PairsConfig, SamplingConfig
from mmrlaif.labeling.stage import label_stage, make_divide
from mmrlaif.models.load import save_model
from mmrlaif.pairs.stage import pairs_stage
from mmrlaif.sampling.stage import sample_stage


@pytest.mark.integration
def test_sample_label_pair_stages_through_tables(small_world, tiny_model, tmp_path):
    policy = save_model(*tiny_model, tmp_path / "policy")
    prompts = small_world.prompts("align")
    samples = tmp_path / "samples.parquet"
    feedback = tmp_path / "feedback.parquet"
    pairs = tmp_path / "pairs.parquet"
    s = sample_stage(
        policy, ModelConfig(), SamplingConfig(n=4, max_new_tokens=12), prompts, samples
    )
    assert s.samples_out == 4 * s.prompts_in == 40
    f = label_stage(policy, ModelConfig(), LabelingConfig(), samples, prompts, feedback)
    assert f.samples_in == f.rows_out == 40
    rows = io.read_rows(feedback)
    assert all(r["score"] == -r["n_rejected"] for r in rows)
    p = pairs_stage(PairsConfig(), feedback, prompts, pairs)
    assert p.candidates_in == 40 and p.prompts_in == 10
    # every prompt is accounted for: pairs out, or a counted skip
    assert p.pairs_out <= 2 * 10
    table = load_dataset("parquet", data_files=str(pairs), split="train") if p.pairs_out else []
    assert len(table) == p.pairs_out


def test_labeling_config_errors_name_the_key():
    # caught when the section is built (config load), before any task runs
    with pytest.raises(ConfigError, match="labeler_name_or_path: labeler 'model' needs"):
        LabelingConfig(labeler="model")
    with pytest.raises(ConfigError, match="labeler_name_or_path: labeler 'openai' needs"):
        LabelingConfig(labeler="openai", endpoint="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="endpoint: labeler 'openai' needs"):
        LabelingConfig(labeler="openai", labeler_name_or_path="labeler")
    with pytest.raises(ConfigError, match="labeling.llm_name_or_path"):
        make_divide(LabelingConfig(extractor="llm"), ModelConfig())
