"""WEDepthForDepthEstimation: shapes, loss, gradients, the frozen VFM, prompts blocked from prompts, deformable
attention, dtypes, loading, and the documented errors."""

import pytest
import torch
from transformers import AutoModelForDepthEstimation, Dinov2Config, Dinov2Model, SwinConfig, SwinForImageClassification
from transformers.modeling_outputs import DepthEstimatorOutput

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation
from wedepth_hf.modeling_wedepth import multi_scale_deformable_attention


def _labels(batch: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, height, width, generator=generator) * 8 + 0.5


@pytest.mark.parametrize("size", [(37, 53), (64, 96), (15, 130), (9, 11), (100, 30)])
def test_any_input_size_gives_positive_depth_at_that_size(tiny_model, size: tuple[int, int]) -> None:
    tiny_model.eval()
    with torch.no_grad():
        output = tiny_model(torch.randn(2, 3, *size))
    assert isinstance(output, DepthEstimatorOutput)
    assert output.predicted_depth.shape == (2, *size)
    assert torch.isfinite(output.predicted_depth).all()
    assert (output.predicted_depth > 0).all()
    assert output.loss is None


def test_batch_elements_are_independent_in_eval(tiny_model) -> None:
    tiny_model.eval()
    images = torch.randn(3, 3, 40, 56)
    with torch.no_grad():
        batched = tiny_model(images).predicted_depth
        single = tiny_model(images[1:2]).predicted_depth
    torch.testing.assert_close(batched[1:2], single, rtol=1e-4, atol=1e-5)


def _silog(prediction: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, variance_focus: float) -> torch.Tensor:
    """The authors' SiLogLoss: d = log(gt + 1e-6) - log(pred + 1e-6) over the valid pixels of the batch."""
    difference = (labels[valid] + 1e-6).log() - (prediction[valid] + 1e-6).log()
    return torch.sqrt((difference**2).mean() - variance_focus * difference.mean() ** 2)


def test_loss_is_silog_over_pixels_above_min_depth(tiny_model) -> None:
    config = tiny_model.config
    assert (config.min_depth, config.max_depth) == (0.01, None)  # the authors' training mask: gt > 0.01 only
    labels = _labels(2, 40, 56)
    labels[0, :10] = config.min_depth  # invalid: not above min_depth
    labels[1, 3, 4] = float("nan")  # invalid: not finite
    labels[1, :, :5] = 80.0  # valid: no upper bound
    output = tiny_model(torch.randn(2, 3, 40, 56), labels=labels)
    valid = labels > config.min_depth
    expected = _silog(output.predicted_depth.detach(), labels, valid, config.silog_lambda)
    assert torch.isfinite(output.loss)
    torch.testing.assert_close(output.loss.detach(), expected, rtol=1e-5, atol=1e-6)


def test_an_optional_max_depth_also_masks_the_loss(tiny_config) -> None:
    torch.manual_seed(0)
    model = WEDepthForDepthEstimation(tiny_config(max_depth=8.0)).eval()
    labels = _labels(1, 40, 56)
    labels[0, :, :5] = 8.0
    with torch.no_grad():
        output = model(torch.randn(1, 3, 40, 56), labels=labels)
    expected = _silog(output.predicted_depth, labels, (labels > 0.01) & (labels < 8.0), model.config.silog_lambda)
    torch.testing.assert_close(output.loss, expected, rtol=1e-5, atol=1e-6)


def test_labels_with_a_channel_dimension(tiny_model) -> None:
    tiny_model.eval()
    pixels, labels = torch.randn(1, 3, 33, 47), _labels(1, 33, 47)
    with torch.no_grad():
        flat = tiny_model(pixels, labels=labels).loss
        channel = tiny_model(pixels, labels=labels[:, None]).loss
    torch.testing.assert_close(flat, channel)


def test_labels_without_valid_pixels_give_zero_loss_that_backpropagates(tiny_model) -> None:
    labels = torch.zeros(2, 40, 56)
    labels[1] = float("nan")
    output = tiny_model(torch.randn(2, 3, 40, 56), labels=labels)
    assert output.loss.item() == 0.0
    output.loss.backward()
    gradients = [p.grad for p in tiny_model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in gradients)


def test_gradients_reach_every_trainable_part_and_never_the_vfm(tiny_model) -> None:
    tiny_model.train()
    # One step first: the deformable attention's offset/weight layers start at zero, which blocks the gradient of the
    # position (level) embeddings on the very first step only.
    optimizer = torch.optim.SGD([p for p in tiny_model.parameters() if p.requires_grad], lr=1e-2)
    tiny_model(torch.randn(2, 3, 40, 56), labels=_labels(2, 40, 56)).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    output = tiny_model(torch.randn(2, 3, 40, 56), labels=_labels(2, 40, 56, seed=2))
    output.loss.backward()
    trainable = {name: p for name, p in tiny_model.named_parameters() if p.requires_grad}
    without_gradient = [name for name, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without_gradient == []
    for part in (
        "encoder.",
        "stream_split.",
        "prompted_vfm.prompt_embeddings",
        "prompted_vfm.extraction_blocks.",
        "prompted_vfm.prompt_projections.",
        "prompted_vfm.patch_projection.",
        "prompt_injections.",
        "feature_injection.",
        "pixel_decoder.",
        "depth_heads.",
    ):
        assert any(name.startswith(part) for name in trainable), part
    assert not any(name.startswith("vfm.") for name in trainable)
    assert all(p.grad is None for p in tiny_model.vfm.parameters())


def test_vfm_stays_frozen_in_eval_and_bit_identical_through_training(tiny_model) -> None:
    before = {name: tensor.clone() for name, tensor in tiny_model.vfm.state_dict().items()}
    encoder_before = tiny_model.encoder.swin.embeddings.patch_embeddings.projection.weight.clone()
    # A careless optimizer over *all* parameters, with weight decay: the VFM must still not move.
    optimizer = torch.optim.AdamW(tiny_model.parameters(), lr=1e-2, weight_decay=0.1)
    tiny_model.train()
    assert not tiny_model.vfm.training
    for step in range(3):
        optimizer.zero_grad()
        tiny_model(torch.randn(2, 3, 40, 56), labels=_labels(2, 40, 56, seed=step)).loss.backward()
        optimizer.step()
    assert not tiny_model.vfm.training
    assert all(not p.requires_grad for p in tiny_model.vfm.parameters())
    for name, tensor in tiny_model.vfm.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert not torch.equal(tiny_model.encoder.swin.embeddings.patch_embeddings.projection.weight, encoder_before)


def test_vfm_is_a_plain_dinov2(tiny_model) -> None:
    assert type(tiny_model.vfm) is Dinov2Model
    reference = Dinov2Model(tiny_model.config.vfm_config)
    assert list(reference.state_dict()) == list(tiny_model.vfm.state_dict())


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_prompts_do_not_attend_to_prompts(tiny_config, attention: str) -> None:
    torch.manual_seed(0)
    model = WEDepthForDepthEstimation._from_config(tiny_config(), attn_implementation=attention).eval()
    stages, vfm = model.prompted_vfm, model.vfm
    assert vfm.config._attn_implementation == attention
    tokens = vfm.embeddings(torch.randn(1, 3, 28, 42))
    prompts = torch.randn(1, stages.prompt_num, 32)
    layer = [vfm.encoder.layer[0]]
    with torch.no_grad():
        reference = stages.run_stage(layer, torch.cat((prompts, tokens), dim=1))
        changed = prompts.clone()
        changed[:, 0] = torch.randn(32) * 3  # not a constant shift, which LayerNorm would erase
        perturbed = stages.run_stage(layer, torch.cat((changed, tokens), dim=1))
    # Other prompts do not see prompt 0 ...
    torch.testing.assert_close(perturbed[:, 1 : stages.prompt_num], reference[:, 1 : stages.prompt_num])
    # ... but image tokens do: prompts steer the VFM.
    assert not torch.allclose(perturbed[:, stages.prompt_num :], reference[:, stages.prompt_num :])


def test_eager_and_sdpa_vfm_agree(tiny_config) -> None:
    outputs = []
    for attention in ("sdpa", "eager"):
        torch.manual_seed(0)
        model = WEDepthForDepthEstimation._from_config(tiny_config(), attn_implementation=attention).eval()
        assert model.vfm.config._attn_implementation == attention
        with torch.no_grad():
            outputs.append(model(torch.ones(1, 3, 40, 56)).predicted_depth)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)


def test_prompts_are_the_real_part_of_their_fft(tiny_model) -> None:
    stages = tiny_model.prompted_vfm
    expected = torch.fft.fft2(stages.prompt_embeddings.detach()).real
    torch.testing.assert_close(stages.stage_prompts().detach(), expected)
    assert stages.stage_prompts().shape == (4, tiny_model.config.prompt_num, tiny_model.config.prompt_dim)


def test_deformable_attention_samples_exact_pixels() -> None:
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (2, 5)]
    batch, heads, head_dim = 2, 2, 3
    value = torch.randn(batch, sum(h * w for h, w in shapes), heads, head_dim, generator=generator)
    # One query, one point per level placed on pixel centres; weight 1 on level 1 only.
    locations = torch.zeros(batch, 1, heads, len(shapes), 1, 2)
    locations[..., 0, 0, :] = torch.tensor([(2 + 0.5) / 4, (1 + 0.5) / 3])  # level 0: x=2, y=1
    locations[..., 1, 0, :] = torch.tensor([(4 + 0.5) / 5, (0 + 0.5) / 2])  # level 1: x=4, y=0
    weights = torch.zeros(batch, 1, heads, len(shapes), 1)
    weights[..., 1, 0] = 1.0
    output = multi_scale_deformable_attention(value, shapes, locations, weights)
    level1 = value[:, 12:].reshape(batch, 2, 5, heads, head_dim)
    torch.testing.assert_close(output[:, 0], level1[:, 0, 4].reshape(batch, heads * head_dim))
    # Half-and-half weights average the two pixels; between two pixels is bilinear.
    weights[..., 0, 0] = 0.5
    weights[..., 1, 0] = 0.5
    level0 = value[:, :12].reshape(batch, 3, 4, heads, head_dim)
    expected = 0.5 * level0[:, 1, 2] + 0.5 * level1[:, 0, 4]
    torch.testing.assert_close(
        multi_scale_deformable_attention(value, shapes, locations, weights)[:, 0],
        expected.reshape(batch, heads * head_dim),
    )
    locations[..., 0, 0, 0] = (1.5 + 0.5) / 4  # half-way between x=1 and x=2
    expected = 0.5 * (0.5 * (level0[:, 1, 1] + level0[:, 1, 2])) + 0.5 * level1[:, 0, 4]
    torch.testing.assert_close(
        multi_scale_deformable_attention(value, shapes, locations, weights)[:, 0],
        expected.reshape(batch, heads * head_dim),
    )


def test_save_and_load_round_trip(tmp_path, tiny_model) -> None:
    tiny_model.eval()
    tiny_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    for loader in (WEDepthForDepthEstimation, AutoModelForDepthEstimation):
        loaded = loader.from_pretrained(tmp_path)
        assert isinstance(loaded, WEDepthForDepthEstimation)
        assert all(not p.requires_grad for p in loaded.vfm.parameters())
        loaded.train()
        assert not loaded.vfm.training
        loaded.eval()
        images = torch.randn(1, 3, 45, 61)
        with torch.no_grad():
            assert torch.equal(loaded(images).predicted_depth, tiny_model(images).predicted_depth)


def test_from_pretrained_backbones_copies_weights_exactly(tmp_path, tiny_config) -> None:
    torch.manual_seed(3)
    vfm = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=8, num_attention_heads=2, image_size=28))
    encoder = SwinForImageClassification(
        SwinConfig(embed_dim=16, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2], window_size=4, num_labels=3)
    )
    vfm.save_pretrained(tmp_path / "vfm")
    encoder.save_pretrained(tmp_path / "encoder")

    model = WEDepthForDepthEstimation.from_pretrained_backbones(
        tiny_config(), vfm_name_or_path=str(tmp_path / "vfm"), encoder_name_or_path=str(tmp_path / "encoder")
    )
    # Architectures follow the checkpoints; the 8-layer VFM gets evenly spaced stage ends.
    assert model.config.vfm_config.num_hidden_layers == 8
    assert model.config.vfm_stage_layers == [1, 3, 5, 7]
    assert model.config.encoder_config.depths == [1, 1, 2, 1]
    assert model.config.vfm_pretrained_name_or_path == str(tmp_path / "vfm")
    for name, tensor in vfm.state_dict().items():
        assert torch.equal(model.vfm.state_dict()[name], tensor), name
    encoder_weights = model.encoder.state_dict()
    for name, tensor in encoder.swin.state_dict().items():
        assert torch.equal(encoder_weights[f"swin.{name}"], tensor), name
    assert all(not p.requires_grad for p in model.vfm.parameters())
    assert model.parameter_counts()["trainable"] > 0
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.randn(1, 3, 40, 56)).predicted_depth).all()


def test_from_pretrained_backbones_needs_sources(tiny_config) -> None:
    with pytest.raises(ValueError, match="vfm_name_or_path"):
        WEDepthForDepthEstimation.from_pretrained_backbones(tiny_config())


def test_parameter_counts(tiny_model) -> None:
    counts = tiny_model.parameter_counts()
    assert counts["total"] == sum(p.numel() for p in tiny_model.parameters())
    assert counts["vfm"] == sum(p.numel() for p in tiny_model.vfm.parameters())
    assert counts["frozen"] == counts["vfm"] + sum(p.numel() for p in tiny_model.encoder.swin.layernorm.parameters())
    assert counts["trainable"] + counts["frozen"] == counts["total"]
    assert counts["encoder"] + counts["vfm"] + counts["new_modules"] == counts["total"]


def test_bfloat16_weights(tmp_path, tiny_model) -> None:
    tiny_model.save_pretrained(tmp_path)
    model = WEDepthForDepthEstimation.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert model.vfm.embeddings.cls_token.dtype == torch.bfloat16
    with torch.no_grad():
        depth = model(torch.randn(1, 3, 40, 56)).predicted_depth
    assert depth.dtype == torch.float32 and torch.isfinite(depth).all() and (depth > 0).all()


def test_bfloat16_autocast_training_step(tiny_model) -> None:
    tiny_model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = tiny_model(torch.randn(2, 3, 40, 56), labels=_labels(2, 40, 56))
    assert torch.isfinite(output.loss)
    output.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in tiny_model.parameters() if p.grad is not None)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config) -> None:
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = WEDepthForDepthEstimation(
            tiny_config(
                encoder_config={
                    "model_type": "swin",
                    "embed_dim": 16,
                    "depths": [1, 1, 1, 1],
                    "num_heads": [1, 1, 2, 2],
                    "window_size": 4,
                    "drop_path_rate": 0.0,
                }
            )
        )
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert model.prompted_vfm.gradient_checkpointing
        model.train()
        loss = model(torch.ones(1, 3, 40, 56), labels=_labels(1, 40, 56)).loss
        loss.backward()
        results.append((loss.detach(), model.prompted_vfm.prompt_embeddings.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


def test_return_dict_false(tiny_model) -> None:
    outputs = tiny_model(torch.randn(2, 3, 32, 32), labels=_labels(2, 32, 32), return_dict=False)
    assert len(outputs) == 2 and outputs[0].ndim == 0 and outputs[1].shape == (2, 32, 32)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 1, 32, 32), "3 \\(RGB\\) channels"),
        ((1, 4, 32, 32), "3 \\(RGB\\) channels"),
        ((3, 32, 32), "batch, 3, height, width"),
        ((1, 3, 0, 32), "empty"),
        ((0, 3, 32, 32), "empty"),
    ],
)
def test_bad_pixel_values(tiny_model, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_model(torch.randn(*shape))


@pytest.mark.parametrize("shape", [(2, 32, 31), (1, 32, 32), (2, 2, 32, 32), (32, 32)])
def test_labels_of_the_wrong_shape(tiny_model, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="`labels` must be depth maps of shape"):
        tiny_model(torch.randn(2, 3, 32, 32), labels=torch.rand(*shape))


def test_encoder_with_wrong_strides(tiny_config) -> None:
    config = tiny_config(
        encoder_config={
            "model_type": "swin",
            "patch_size": 2,
            "embed_dim": 16,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 2, 2],
            "window_size": 4,
        }
    )
    model = WEDepthForDepthEstimation(config)
    with pytest.raises(ValueError, match="must have stride 4"):
        model(torch.randn(1, 3, 64, 64))


def test_unsupported_vfm_attention(tiny_config) -> None:
    config = tiny_config()
    config.vfm_config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="attn_implementation=.sdpa."):
        WEDepthForDepthEstimation(config)


@pytest.mark.parametrize("preset", ["small", "large"])
def test_fresh_model_starts_training_in_a_sane_depth_range(preset: str) -> None:
    """With the authors' Kaiming (fan-in) head initialisation, training starts from depths of metres to tens of metres
    (a fan-out initialisation of the 1x1 log-depth layer would give 1e-7 to 1e9 m)."""
    torch.manual_seed(0)
    config = WEDepthConfig.from_preset(
        preset,
        vfm_config={"model_type": "dinov2", "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 2},
        vfm_stage_layers=None,
    )
    model = WEDepthForDepthEstimation(config).train()
    with torch.no_grad():
        depth = model(torch.randn(2, 3, 64, 96)).predicted_depth
    assert 0.05 < depth.min() and depth.max() < 200.0 and depth.log().std() < 1.0


def test_random_init_is_the_authors(tiny_model) -> None:
    stages = tiny_model.prompted_vfm
    # Uniform +-sqrt(6 / (3 * 14 * 14 + D)).
    bound = (6 / (3 * 14 * 14 + tiny_model.config.prompt_dim)) ** 0.5
    assert stages.prompt_embeddings.abs().max() <= bound and stages.prompt_embeddings.abs().max() > 0.8 * bound
    assert all(
        torch.equal(layer.gamma, torch.ones_like(layer.gamma))
        for block in stages.extraction_blocks
        for layer in block.layers
    )
    decoder = tiny_model.pixel_decoder
    assert all(
        torch.equal(adapter.projection.bias, torch.zeros_like(adapter.projection.bias))
        for adapter in decoder.input_adapters
    )
    attention = decoder.layers[0].self_attn
    assert torch.equal(attention.sampling_offsets.weight, torch.zeros_like(attention.sampling_offsets.weight))
    # Rings of 1..num_points pixels around the reference point, uniform attention over the points.
    assert attention.sampling_offsets.bias.abs().max() == attention.num_points
    assert torch.equal(attention.attention_weights.weight, torch.zeros_like(attention.attention_weights.weight))
    assert torch.equal(attention.attention_weights.bias, torch.zeros_like(attention.attention_weights.bias))


# ---- speed changes: equivalence with the reference computations they replaced ----------------------------------------


def test_log_depth_leaves_the_heads_in_float32_under_autocast(tiny_model) -> None:
    """The log-depth is exponentiated, so it is not rounded to bfloat16 (up to 0.8% of the depth above 7.4 m)."""
    head = tiny_model.eval().depth_heads[-1]
    feature_map = torch.randn(1, tiny_model.config.decoder_hidden_size, 5, 7)
    with torch.no_grad():
        reference = head(feature_map)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden_states = head.norm(head.conv2(head.upsample(head.conv1(head.input_norm(feature_map)))))
            low_precision = head(feature_map)
    assert hidden_states.dtype == torch.bfloat16
    assert low_precision.dtype == torch.float32
    # The float32 projection of the bfloat16 features, not a bfloat16-rounded one.
    torch.testing.assert_close(low_precision, head.log_depth(hidden_states.float()), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(low_precision, reference, rtol=0.05, atol=0.05)


def test_bfloat16_autocast_inference_is_close_to_float32(tiny_model) -> None:
    tiny_model.eval()
    pixel_values = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        reference = tiny_model(pixel_values).predicted_depth
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low_precision = tiny_model(pixel_values).predicted_depth
    assert low_precision.dtype == torch.float32 and torch.isfinite(low_precision).all()
    torch.testing.assert_close(low_precision, reference, rtol=0.05, atol=0.0)


def test_torch_compile_captures_the_whole_forward(tiny_model) -> None:
    """The forward compiles as one graph (no graph break, no host sync) and computes what eager mode computes.

    `aot_eager` traces through dynamo and AOTAutograd without generating code, so the test stays fast on a CPU.
    """
    import torch._dynamo

    tiny_model.eval()
    pixel_values = torch.randn(2, 3, 40, 56)
    torch._dynamo.reset()
    compiled = torch.compile(tiny_model, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        reference = tiny_model(pixel_values).predicted_depth
        captured = compiled(pixel_values).predicted_depth
    torch._dynamo.reset()
    torch.testing.assert_close(captured, reference, rtol=1e-5, atol=1e-6)


def test_train_mode_needs_more_than_one_value_per_channel_at_stride_32(tiny_model) -> None:
    tiny_model.train()
    with pytest.raises(ValueError, match="at least two values per channel at stride 32.*larger than 32 pixels"):
        tiny_model(torch.randn(1, 3, 32, 30), labels=_labels(1, 32, 30))
    assert torch.isfinite(tiny_model(torch.randn(1, 3, 33, 30), labels=_labels(1, 33, 30)).loss)
    assert torch.isfinite(tiny_model(torch.randn(2, 3, 32, 30), labels=_labels(2, 32, 30)).loss)
    with torch.no_grad():
        assert tiny_model.eval()(torch.randn(1, 3, 32, 30)).predicted_depth.shape == (1, 32, 30)


# ---- deformable attention implementations ----------------------------------------------------------------------------

# The two kernels against each other, values and gradients: test_speed_paths.py; here the models built with either.


def test_models_with_either_deformable_attention_agree_with_their_gradients(tiny_config) -> None:
    """The same weights under both implementations: the same depth, loss and parameter gradients (float64).

    The sampling offsets are moved off whole pixels: at a whole-pixel position bilinear sampling has a kink, where
    the two implementations may take different one-sided derivatives."""
    torch.manual_seed(0)
    gather = WEDepthForDepthEstimation(tiny_config(deformable_attention_implementation="gather"))
    for layer in gather.pixel_decoder.layers:
        torch.nn.init.normal_(layer.self_attn.sampling_offsets.weight, std=0.1)
        torch.nn.init.normal_(layer.self_attn.sampling_offsets.bias, std=2.0)
    grid_sample = WEDepthForDepthEstimation(tiny_config(deformable_attention_implementation="grid_sample"))
    grid_sample.load_state_dict(gather.state_dict())
    models = {"gather": gather.double().train(), "grid_sample": grid_sample.double().train()}
    assert {layer.self_attn.implementation for layer in grid_sample.pixel_decoder.layers} == {"grid_sample"}
    pixel_values = torch.randn(2, 3, 40, 56, dtype=torch.float64)
    labels = _labels(2, 40, 56).double()
    outputs = {name: model(pixel_values, labels=labels) for name, model in models.items()}
    for output in outputs.values():
        output.loss.backward()
    torch.testing.assert_close(outputs["grid_sample"].predicted_depth, outputs["gather"].predicted_depth)
    torch.testing.assert_close(outputs["grid_sample"].loss, outputs["gather"].loss)
    gather_parameters = dict(models["gather"].named_parameters())
    for name, parameter in models["grid_sample"].named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(parameter.grad, gather_parameters[name].grad, msg=lambda m, n=name: n + m)


def test_unknown_deformable_attention_implementation(tiny_config) -> None:
    with pytest.raises(ValueError, match="`deformable_attention_implementation` must be one of"):
        tiny_config(deformable_attention_implementation="cuda")


# ---- transformers conventions ----------------------------------------------------------------------------------------


def test_forward_refuses_unknown_arguments(tiny_model) -> None:
    with pytest.raises(TypeError, match="label"):
        tiny_model(torch.randn(1, 3, 28, 42), label=torch.ones(1, 28, 42))


def test_hidden_states_are_the_encoders_then_the_vfms_without_prompts(tiny_model) -> None:
    tiny_model.eval()
    pixel_values = torch.randn(1, 3, 28, 42)
    with torch.no_grad():
        output = tiny_model(pixel_values, output_hidden_states=True)
        encoder_states = tiny_model.encoder(pixel_values, output_hidden_states=True).hidden_states
        vfm_states = tiny_model.vfm(pixel_values, output_hidden_states=True).hidden_states
        plain = tiny_model(pixel_values)
    assert output.attentions is None
    assert len(output.hidden_states) == len(encoder_states) + len(vfm_states)
    for ours, expected in zip(output.hidden_states, encoder_states):
        torch.testing.assert_close(ours, expected)
    vfm_part = output.hidden_states[len(encoder_states) :]
    assert [state.shape for state in vfm_part] == [state.shape for state in vfm_states]
    torch.testing.assert_close(vfm_part[0], vfm_states[0])  # the embeddings; the layers see the prompts too
    assert torch.equal(output.predicted_depth, plain.predicted_depth)
    assert tiny_model(pixel_values, return_dict=False, output_hidden_states=True)[1] is not None


def test_attentions_with_eager_attention(tiny_config) -> None:
    config = tiny_config()
    model = WEDepthForDepthEstimation._from_config(config, attn_implementation="eager").eval()
    with torch.no_grad():
        output = model(torch.randn(1, 3, 28, 42), output_attentions=True)
    vfm = config.vfm_config
    tokens = config.prompt_num + 1 + 2 * 3
    vfm_attentions = output.attentions[-vfm.num_hidden_layers :]
    assert len(output.attentions) == len(config.encoder_config.depths) + vfm.num_hidden_layers
    for attention in vfm_attentions:
        assert attention.shape == (1, vfm.num_attention_heads, tokens, tokens)
        prompts = config.prompt_num
        assert torch.equal(attention[:, :, :prompts, :prompts], torch.zeros_like(attention[:, :, :prompts, :prompts]))
        torch.testing.assert_close(attention.sum(-1), torch.ones(attention.shape[:-1]))


def test_input_embeddings_are_the_encoders_patch_embedding(tiny_model) -> None:
    assert tiny_model.get_input_embeddings() is tiny_model.encoder.swin.embeddings.patch_embeddings
