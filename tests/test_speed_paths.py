"""The fast paths against the computations they replace.

The prompted VFM layers run without a mask (two attention calls) and must compute what the authors' additive-mask
attention computes; the deformable attention is one weighted gather with its own backward and must compute, with the
same gradients, what the per-level `grid_sample` formulation of the authors' harness computes.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AttentionInterface, Dinov2Config, Dinov2Model
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from wedepth_hf import WEDepthConfig, modeling_wedepth
from wedepth_hf.modeling_wedepth import (
    WEDepthDeformableEncoderLayer,
    level_sizes_tensor,
    multi_scale_deformable_attention,
    prompted_vfm_layer,
)


# ---- prompted VFM layers ---------------------------------------------------------------------------------------------


def masked_layer(layer: torch.nn.Module, hidden_states: torch.Tensor, num_prompts: int) -> torch.Tensor:
    """The authors' computation: the layer under a (1, 1, T, T) additive mask of -1e9 on prompt -> prompt pairs."""
    total = hidden_states.shape[1]
    mask = torch.zeros(1, 1, total, total, dtype=hidden_states.dtype)
    mask[:, :, :num_prompts, :num_prompts] = -1e9
    return layer(hidden_states, mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_prompted_layer_matches_the_masked_layer(attention: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    config = Dinov2Config(
        hidden_size=48,
        num_hidden_layers=1,
        num_attention_heads=3,
        image_size=28,
        layerscale_value=0.7,
        attn_implementation=attention,
    )
    layer = Dinov2Model(config).eval().to(dtype).encoder.layer[0]
    assert layer.attention.config._attn_implementation == attention
    hidden_states = torch.randn(2, 7 + 20, 48, dtype=dtype) * 2
    outputs, gradients = [], []
    for run in (masked_layer, prompted_vfm_layer):
        inputs = hidden_states.clone().requires_grad_()
        output = run(layer, inputs, 7)
        output.backward(torch.cos(torch.arange(output.numel(), dtype=dtype)).view_as(output))
        outputs.append(output.detach())
        gradients.append(inputs.grad)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    for actual, expected in ((outputs[1], outputs[0]), (gradients[1], gradients[0])):
        torch.testing.assert_close(actual, expected, rtol=tolerance, atol=tolerance * expected.abs().max().item())


def test_prompted_stages_make_two_unmasked_attention_calls_per_layer(tiny_model) -> None:
    """Through the attention function registered for the VFM's implementation; no (T, T) mask anywhere."""
    calls = []

    def recording_sdpa(module, query, key, value, attention_mask, **kwargs):
        calls.append((query.shape[2], key.shape[2], attention_mask))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("wedepth_test_recording_sdpa", recording_sdpa)
    tiny_model.eval()
    pixel_values = torch.randn(1, 3, 28, 42)
    with torch.no_grad():
        reference = tiny_model(pixel_values).predicted_depth
        tiny_model.vfm.config._attn_implementation = "wedepth_test_recording_sdpa"
        recorded = tiny_model(pixel_values).predicted_depth
    prompts, tokens = tiny_model.config.prompt_num, 1 + 2 * 3
    layers = tiny_model.config.vfm_stage_layers[-1] + 1
    assert calls == [(prompts, tokens, None), (tokens, prompts + tokens, None)] * layers
    torch.testing.assert_close(recorded, reference)


# ---- deformable attention --------------------------------------------------------------------------------------------


def grid_sample_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """The reference: per level, `grid_sample` (bilinear, zeros, align_corners=False) then the weighted sum, as the
    authors' harness (`ms_deform_attn_pytorch`) and this package before the gather computed it."""
    batch_size, _, num_heads, head_dim = value.shape
    _, num_queries, _, _, num_points, _ = sampling_locations.shape
    levels = value.split([height * width for height, width in spatial_shapes], dim=1)
    output = 0
    for level, (height, width) in enumerate(spatial_shapes):
        level_value = levels[level].permute(0, 2, 3, 1).reshape(batch_size * num_heads, head_dim, height, width)
        grid = 2 * sampling_locations[:, :, :, level].transpose(1, 2).flatten(0, 1) - 1
        sampled = F.grid_sample(level_value, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        weights = (
            attention_weights[:, :, :, level]
            .transpose(1, 2)
            .reshape(batch_size * num_heads, 1, num_queries, num_points)
        )
        output = output + (sampled * weights).sum(-1)
    return output.view(batch_size, num_heads * head_dim, num_queries).transpose(1, 2)


SHAPES = [(3, 4), (5, 7), (1, 9), (2, 1)]


def deformable_inputs(dtype: torch.dtype, queries: int = 13) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Values, locations (a third outside the maps, some on pixel centres, borders and the frame) and weights."""
    generator = torch.Generator().manual_seed(0)
    batch, heads, head_dim, points = 2, 3, 5, 4
    value = torch.randn(batch, sum(h * w for h, w in SHAPES), heads, head_dim, generator=generator, dtype=dtype)
    locations = torch.rand(batch, queries, heads, len(SHAPES), points, 2, generator=generator, dtype=dtype) * 1.6 - 0.3
    # In pixels: a pixel centre, half-way to the zero frame, the frame's centre and beyond it, at both ends of a map.
    sizes = torch.tensor([[w, h] for h, w in SHAPES], dtype=dtype)[:, None, :]
    near, far = torch.tensor([1.0, -0.5, -1.0, -2.0], dtype=dtype), torch.tensor([-1.0, -0.5, 0.0, 1.0], dtype=dtype)
    locations[:, 0, 0] = (near[:, None] + 0.5) / sizes
    locations[:, 1, 0] = (sizes + far[:, None] + 0.5) / sizes
    weights = torch.rand(batch, queries, heads, len(SHAPES), points, generator=generator, dtype=dtype)
    return value, locations, weights


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_deformable_attention_and_its_gradients_match_grid_sample(dtype: torch.dtype) -> None:
    inputs = deformable_inputs(dtype)
    results = []
    for attention in (grid_sample_deformable_attention, multi_scale_deformable_attention):
        leaves = [tensor.clone().requires_grad_() for tensor in inputs]
        output = attention(leaves[0], SHAPES, leaves[1], leaves[2])
        output.backward(torch.sin(torch.arange(output.numel(), dtype=dtype)).view_as(output))
        results.append([output.detach()] + [leaf.grad for leaf in leaves])
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    for name, actual, expected in zip(("output", "value", "locations", "weights"), results[1], results[0]):
        torch.testing.assert_close(
            actual,
            expected,
            rtol=tolerance,
            atol=tolerance * expected.abs().max().item(),
            msg=lambda message, name=name: f"{name}: {message}",
        )


def test_deformable_layer_chunks_tokens_in_inference_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inference takes the tokens in chunks (here of 3 tokens, the last one shorter); the result is the same."""
    torch.manual_seed(0)
    config = WEDepthConfig(decoder_hidden_size=24, decoder_attention_heads=2, decoder_sampling_points=2)
    layer = WEDepthDeformableEncoderLayer(config)
    torch.nn.init.normal_(layer.self_attn.sampling_offsets.bias, std=2.0)
    shapes = [(2, 3), (3, 2), (1, 2), (1, 2)]
    tokens = torch.randn(2, sum(h * w for h, w in shapes), 24)
    position = torch.randn(1, tokens.shape[1], 24)
    reference_points = torch.rand(tokens.shape[1], 2)
    level_sizes = level_sizes_tensor(shapes, tokens.device)
    whole = layer(tokens, position, reference_points, shapes, level_sizes)
    taps_per_token = 2 * 2 * 4 * 2 * 4
    monkeypatch.setattr(modeling_wedepth, "_DEFORMABLE_CHUNK_TAPS", 3 * taps_per_token)
    calls = []
    sample = modeling_wedepth.deformable_sample
    monkeypatch.setattr(
        modeling_wedepth, "deformable_sample", lambda *args: calls.append(args[3].shape[1]) or sample(*args)
    )
    with torch.no_grad():
        chunked = layer(tokens, position, reference_points, shapes, level_sizes)
    assert calls == [3, 3, 3, 3, 3, 1]
    torch.testing.assert_close(chunked, whole.detach(), rtol=1e-6, atol=1e-6)


def test_deformable_attention_keeps_a_nan_location_to_its_query() -> None:
    """A NaN location gives NaN for its query only (no out-of-range row is read)."""
    value, locations, weights = deformable_inputs(torch.float32)
    reference = multi_scale_deformable_attention(value, SHAPES, locations, weights)
    locations[0, 4, 1, 2, 0, 0] = math.nan
    output = multi_scale_deformable_attention(value, SHAPES, locations, weights)
    assert output[0, 4].isnan().any()
    output[0, 4] = reference[0, 4]
    torch.testing.assert_close(output, reference)


def test_deformable_attention_compiles_forward_and_backward() -> None:
    """`torch.compile` traces the gather and its custom backward as one graph (`aot_eager` generates no code)."""
    import torch._dynamo

    inputs = deformable_inputs(torch.float32, queries=4)

    def loss(value: torch.Tensor, locations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return multi_scale_deformable_attention(value, SHAPES, locations, weights).square().sum()

    gradients = []
    torch._dynamo.reset()
    for run in (loss, torch.compile(loss, backend="aot_eager", fullgraph=True)):
        leaves = [tensor.clone().requires_grad_() for tensor in inputs]
        run(*leaves).backward()
        gradients.append([leaf.grad for leaf in leaves])
    torch._dynamo.reset()
    for actual, expected in zip(*gradients):
        torch.testing.assert_close(actual, expected)


# ---- wedepth predict's default dtype ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "device", "native", "expected"),
    [
        (None, "cpu", True, torch.bfloat16),
        (None, "cpu", False, torch.float32),
        (None, "cuda", True, torch.float32),
        ("float32", "cpu", True, torch.float32),
        ("bfloat16", "cpu", False, torch.bfloat16),
    ],
)
def test_predict_defaults_to_bfloat16_on_cpus_with_native_bfloat16(
    monkeypatch: pytest.MonkeyPatch, name: str | None, device: str, native: bool, expected: torch.dtype
) -> None:
    from wedepth_hf import cli, predict

    monkeypatch.setattr(predict, "cpu_has_native_bfloat16", lambda: native)
    assert predict.resolve_dtype(name, torch.device(device)) == expected
    assert cli.build_parser().parse_args(["predict", "x.png", "--model", "m", "--output-dir", "o"]).dtype is None
