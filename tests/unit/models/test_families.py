"""The family layer on the real architectures (tiny twins): detection, freezing, LoRA targets."""

import re

import pytest

from mmrlaif.config import ConfigError, load_config
from mmrlaif.families import FAMILIES, TWIN_FAMILIES, UnknownFamilyError, parse_twin_spec
from mmrlaif.models.families import (
    family_of,
    freeze_vision_encoder,
    lora_target_regex,
    submodule,
    vision_encoder_parameters,
)
from mmrlaif.toyworld.twins import build_twin

FAMILY_OF_TWIN = {"qwen2_5_vl": "qwen2_vl", "smolvlm": "idefics3"}


@pytest.fixture(scope="module", params=TWIN_FAMILIES)
def twin(request):
    return request.param, build_twin(request.param)[0]


def test_each_twin_is_detected_as_its_family(twin):
    name, model = twin
    assert family_of(model).name == FAMILY_OF_TWIN.get(name, name)


def test_every_path_of_the_family_exists_on_the_real_architecture(twin):
    _, model = twin
    family = family_of(model)
    for path in (family.vision_encoder, family.language_model, *family.projector):
        submodule(model, path)  # raises naming the model class and the path if missing


def test_full_fine_tuning_freezes_the_encoder_and_keeps_the_projector(twin):
    _, model = twin
    family = family_of(model)
    encoder = vision_encoder_parameters(model, family)
    n = freeze_vision_encoder(model, family)
    assert n == sum(p.numel() for p in encoder.values()) > 0
    assert all(not p.requires_grad for p in encoder.values())
    for path in family.projector:
        part = submodule(model, path)
        params = [part] if not hasattr(part, "parameters") else list(part.parameters())
        assert params and all(p.requires_grad for p in params), path
    lm = submodule(model, family.language_model)
    assert all(p.requires_grad for p in lm.parameters())


def test_lora_targets_only_the_language_model(twin):
    _, model = twin
    family = family_of(model)
    pattern = re.compile(lora_target_regex(model, family))
    matched = [n for n, _ in model.named_modules() if pattern.fullmatch(n)]
    assert matched
    assert all(n.startswith(family.language_model + ".") for n in matched)
    lm_linear = [
        n
        for n, m in submodule(model, family.language_model).named_modules()
        if n.rsplit(".", 1)[-1] in ("q_proj", "v_proj", "down_proj")
    ]
    assert len(matched) >= len(lm_linear)  # every decoder layer's projections


def test_unknown_types_are_named_with_the_supported_ones():
    with pytest.raises(UnknownFamilyError, match=r"'blip-2' is not a supported.*llava_onevision"):
        family_of("blip-2")
    assert family_of("blip-2", explicit="llava") is FAMILIES["llava"]
    with pytest.raises(UnknownFamilyError, match=r"unknown model family 'blip'; supported: llava"):
        family_of("llava", explicit="blip")


def test_family_and_twin_names_are_checked_when_the_config_loads():
    with pytest.raises(ConfigError, match=r"model.family: unknown model family 'qwen'"):
        load_config("configs/tiny_cpu.yaml", {"model.family": "qwen"})
    assert parse_twin_spec("twin:smolvlm") == ("smolvlm", 0)
    assert parse_twin_spec("twin:internvl@4") == ("internvl", 4)
    with pytest.raises(ValueError, match="twin:<family>"):
        parse_twin_spec("twin:")
