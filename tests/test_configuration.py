"""WEDepthConfig: presets, serialisation, and the documented errors for bad architectures."""

import pytest
from transformers import AutoConfig, ConvNextConfig, Dinov2Config, SwinConfig

from wedepth_hf import WEDepthConfig
from wedepth_hf.configuration_wedepth import default_vfm_stage_layers


def test_default_stage_ends_match_the_paper() -> None:
    assert default_vfm_stage_layers(12) == [2, 5, 8, 11]
    assert default_vfm_stage_layers(24) == [5, 11, 17, 23]
    assert default_vfm_stage_layers(40) == [9, 19, 29, 39]


@pytest.mark.parametrize(
    ("preset", "vfm_width", "vfm_layers", "encoder_width", "stage_layers"),
    [
        ("small", 384, 12, 96, [2, 5, 8, 11]),
        ("base", 768, 12, 96, [2, 5, 8, 11]),
        ("large", 1024, 24, 128, [4, 11, 17, 23]),
    ],
)
def test_presets(preset: str, vfm_width: int, vfm_layers: int, encoder_width: int, stage_layers: list[int]) -> None:
    config = WEDepthConfig.from_preset(preset)
    assert isinstance(config.vfm_config, Dinov2Config)
    assert isinstance(config.encoder_config, SwinConfig)
    assert config.vfm_config.hidden_size == vfm_width
    assert config.vfm_config.num_hidden_layers == vfm_layers
    assert config.encoder_config.embed_dim == encoder_width
    assert config.encoder_config.out_features == ["stage1", "stage2", "stage3", "stage4"]
    assert config.vfm_stage_layers == stage_layers
    assert config.vfm_pretrained_name_or_path.startswith("facebook/dinov2-")
    assert config.encoder_pretrained_name_or_path.startswith("microsoft/swin-")


def test_large_preset_is_the_paper_setting() -> None:
    config = WEDepthConfig.from_preset("large")
    assert (config.prompt_num, config.prompt_dim, config.extraction_depth, config.injection_depth) == (50, 384, 2, 1)
    assert (config.decoder_hidden_size, config.decoder_layers, config.decoder_attention_heads) == (256, 4, 4)
    assert (config.decoder_sampling_points, config.decoder_ffn_dim, config.silog_lambda) == (4, 512, 0.5)


def test_preset_overrides_and_unknown_preset() -> None:
    assert WEDepthConfig.from_preset("small", max_depth=80.0).max_depth == 80.0
    with pytest.raises(ValueError, match="Unknown WEDepth preset 'huge'"):
        WEDepthConfig.from_preset("huge")


def test_round_trip_through_json(tmp_path, tiny_config) -> None:
    config = tiny_config(max_depth=80.0, vfm_stage_layers=[0, 1, 2, 3])
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, WEDepthConfig)
    assert loaded.max_depth == 80.0
    assert loaded.vfm_stage_layers == [0, 1, 2, 3]
    assert loaded.vfm_config.hidden_size == config.vfm_config.hidden_size
    assert loaded.encoder_config.depths == config.encoder_config.depths


@pytest.mark.parametrize(
    ("stage_layers", "message"),
    [
        ([0, 1, 2], "one entry per stage"),
        ([0, 1, 2, 4], "out of range"),
        ([-1, 1, 2, 3], "out of range"),
        ([0, 2, 1, 3], "strictly increasing"),
        ([0, 1, 1, 3], "strictly increasing"),
        ([0, 1, 2, 2], "strictly increasing"),
        ([0, 1, 2, 2.0], "strictly increasing"),
    ],
)
def test_bad_stage_layers(tiny_config, stage_layers: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_config(vfm_stage_layers=stage_layers)


def test_stage_layers_must_end_at_the_last_layer(tiny_config) -> None:
    config = tiny_config(
        vfm_config={"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 6, "num_attention_heads": 2}
    )
    assert config.vfm_stage_layers == [0, 2, 3, 5]
    with pytest.raises(ValueError, match="must end at the last VFM layer"):
        tiny_config(
            vfm_config={"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 6, "num_attention_heads": 2},
            vfm_stage_layers=[0, 1, 2, 3],
        )


def test_encoder_without_four_stages(tiny_config) -> None:
    with pytest.raises(ValueError, match="exactly four stages"):
        tiny_config(encoder_config={"model_type": "swin", "embed_dim": 16, "depths": [1, 1, 1], "num_heads": [1, 1, 2]})
    with pytest.raises(ValueError, match="must be a transformers backbone config"):
        tiny_config(encoder_config={"model_type": "vit", "hidden_size": 32, "num_attention_heads": 2})


def test_other_four_stage_backbones_are_accepted(tiny_config) -> None:
    config = tiny_config(encoder_config=ConvNextConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1]))
    assert config.encoder_config.out_features == ["stage1", "stage2", "stage3", "stage4"]


def test_vfm_must_be_dinov2(tiny_config) -> None:
    with pytest.raises(ValueError, match="must be a Dinov2Config"):
        tiny_config(vfm_config={"model_type": "vit", "hidden_size": 32, "num_attention_heads": 2})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prompt_dim": 30, "prompt_attention_heads": 3}, "multiple of 4"),
        ({"prompt_dim": 32, "prompt_attention_heads": 3}, "divisible by its number of attention heads"),
        ({"min_depth": 5.0, "max_depth": 1.0}, "min_depth < max_depth"),
        ({"silog_lambda": 1.0}, "silog_lambda"),
        ({"prompt_num": 0}, "prompt_num"),
    ],
)
def test_other_bad_values(tiny_config, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)
