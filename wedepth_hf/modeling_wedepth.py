"""PyTorch WEDepth model (arXiv 2511.08036).

A trainable hierarchical depth encoder (Swin in the paper) is enhanced by a frozen DINOv2 used as a multi-level
feature enhancer: learnable prompts, conditioned on the encoder's features by extraction blocks, are run through the
frozen VFM stage by stage; the VFM's output prompts (injection 1) and its patch tokens (injection 2) are injected into
the encoder's maps; a multi-scale deformable-attention pixel decoder and four log-depth heads give metric depth.

Every module computes what the authors' released code computes (checked tensor for tensor against golden outputs
of that code, see `tests/test_parity.py`); where that code cannot run, this file does what it evidently intends (the
README lists each point). The frozen VFM is a plain `Dinov2Model` (attribute `vfm`) whose structure and weights are
never modified: this module only calls its embeddings and layers' modules (`prompted_vfm_layer` says which and why).

Sibling modules hold what a reader of the method need not meet first: `checkpointing_wedepth.py` how checkpoints store
the frozen VFM by reference, `gather_deformable_attention.py` the fast form of the deformable attention. This file
imports only torch, transformers and those siblings (they travel to the Hub together as remote code).
"""

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoBackbone, Dinov2Model, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import DepthEstimatorOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.dinov2.modeling_dinov2 import eager_attention_forward
from transformers.utils import logging

from .checkpointing_wedepth import (
    WEDepthCheckpointMixin,
    check_vfm,
    check_vfm_attention,
    load_vfm_source,
    load_vfm_with_record,
    state_fingerprint,
    vfm_fingerprint,
)
from .configuration_wedepth import NUM_STAGES, WEDepthConfig
from .gather_deformable_attention import (
    deformable_sample,
    level_sizes_tensor,
    multi_scale_deformable_attention,
    pad_value_levels,
)


logger = logging.get_logger(__name__)


# --------------------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------------------


def sine_position_encoding(height: int, width: int, num_channels: int, device: torch.device) -> torch.Tensor:
    """DETR's normalised 2-D sine position encoding of a (height, width) grid, as (num_channels, height, width).

    Rows and columns are numbered 1..n and scaled to (0, 2*pi] (with DETR's 1e-6 guard), so the encoding means
    "relative position in the image" at every scale. The first half of the channels encodes y, the second x; each
    half alternates sin and cos over geometric frequencies. Computed in float32, as the authors' code does.
    """
    num_features = num_channels // 2
    scale = 2 * math.pi
    rows = torch.arange(1, height + 1, device=device, dtype=torch.float32)
    cols = torch.arange(1, width + 1, device=device, dtype=torch.float32)
    rows = rows / (rows[-1] + 1e-6) * scale
    cols = cols / (cols[-1] + 1e-6) * scale
    frequencies = torch.arange(num_features, device=device, dtype=torch.float32)
    frequencies = 10000 ** (2 * torch.div(frequencies, 2, rounding_mode="floor") / num_features)

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions[:, None] / frequencies
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)

    encoding_y = encode(rows).T[:, :, None].expand(num_features, height, width)
    encoding_x = encode(cols).T[:, None, :].expand(num_features, height, width)
    return torch.cat((encoding_y, encoding_x), dim=0)


def in_float32_under_autocast(function: Any, *inputs: torch.Tensor) -> Any:
    """`function(*inputs)`; under autocast, with autocast off and the inputs cast to float32 instead.

    For the parts the authors keep in float32 (the deformable layers) or that must not be rounded to a low precision
    (the log-depth). Without autocast the inputs keep their dtype (float64 parity runs, low-precision weights).
    """
    device_type = inputs[0].device.type
    if not torch.is_autocast_enabled(device_type):
        return function(*inputs)
    with torch.autocast(device_type, enabled=False):
        return function(*(tensor.float() for tensor in inputs))


def flatten_map(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return feature_map.flatten(2).transpose(1, 2)


def unflatten_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)


class WEDepthMLP(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


class WEDepthPerceiverAttention(nn.Module):
    """Perceiver-style attention of the extraction blocks and prompt injections: no output projection.

    The queries are layer-normed. For cross-attention (`normalize_context=True`) the keys/values come from the
    layer-normed context; for the authors' "self"-attention they come from the raw, un-normalised tokens (their
    `PerceiverSelfAttention` replaces the context norm by an identity when it is not cross-attention).
    """

    def __init__(self, config: WEDepthConfig, normalize_context: bool) -> None:
        super().__init__()
        width = config.prompt_dim
        self.num_heads = config.prompt_attention_heads
        self.query_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.context_norm = nn.LayerNorm(width, eps=config.layer_norm_eps) if normalize_context else None
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)

    def forward(self, hidden_states: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Attention of `hidden_states` (B, Q, D) to `context` (B, K, D), or to themselves when `context` is None."""
        batch_size, query_length, width = hidden_states.shape
        queries = self.query(self.query_norm(hidden_states))
        if context is None:
            context = hidden_states
        if self.context_norm is not None:
            context = self.context_norm(context)
        head_dim = width // self.num_heads
        q = queries.view(batch_size, query_length, self.num_heads, head_dim).transpose(1, 2)
        k = self.key(context).view(batch_size, -1, self.num_heads, head_dim).transpose(1, 2)
        v = self.value(context).view(batch_size, -1, self.num_heads, head_dim).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v)
        return attended.transpose(1, 2).reshape(batch_size, query_length, width)


# --------------------------------------------------------------------------------------------------------------------
# Encoder streams
# --------------------------------------------------------------------------------------------------------------------


class WEDepthStreamSplit(nn.Module):
    """Turns the encoder's four maps into stream A (to be enhanced) and stream B (context for the prompts).

    Per stage a 1x1 convolution to width D gives stream B; stream A is one depthwise 3x3 convolution of stream B,
    shared by all four scales (the authors' `SplitFeature` applies its first depthwise convolution at every scale).
    """

    def __init__(self, in_channels: list[int], config: WEDepthConfig) -> None:
        super().__init__()
        width = config.prompt_dim
        self.projections = nn.ModuleList(nn.Conv2d(channels, width, kernel_size=1) for channels in in_channels)
        self.depthwise = nn.Conv2d(width, width, kernel_size=3, padding=1, groups=width)

    def forward(self, feature_maps: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        stream_b = [projection(feature_map) for projection, feature_map in zip(self.projections, feature_maps)]
        stream_a = [self.depthwise(context) for context in stream_b]
        return stream_a, stream_b


# --------------------------------------------------------------------------------------------------------------------
# VFM branch: extraction blocks and prompted VFM stages
# --------------------------------------------------------------------------------------------------------------------


class WEDepthExtractionLayer(nn.Module):
    """One extraction iteration: gated cross-attention of the prompts to a stream-B map, then prompt self-attention."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        self.cross_attention = WEDepthPerceiverAttention(config, normalize_context=True)
        self.gamma = nn.Parameter(torch.ones(config.prompt_dim))
        self.self_attention = WEDepthPerceiverAttention(config, normalize_context=False)

    def forward(self, prompts: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        prompts = prompts + self.gamma * self.cross_attention(prompts, context)
        return prompts + self.self_attention(prompts)


class WEDepthExtractionBlock(nn.Module):
    """Conditions a stage's prompts on the encoder (stream B) and lifts them from width D to the VFM's width."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        width = config.prompt_dim
        self.layers = nn.ModuleList(WEDepthExtractionLayer(config) for _ in range(config.extraction_depth))
        self.lift = WEDepthMLP(width, width, config.vfm_config.hidden_size)

    def forward(self, prompts: torch.Tensor, context_map: torch.Tensor) -> torch.Tensor:
        context = flatten_map(context_map)
        for layer in self.layers:
            prompts = layer(prompts, context)
        return self.lift(prompts)


def prompted_attention(
    module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, num_prompts: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Self-attention over [prompts, CLS, patches] in which prompts do not attend to prompts, without a mask.

    The authors block one rectangle, prompt queries x prompt keys, with an additive -1e9 mask (exp() of it is 0).
    That is two unmasked attention calls: prompt queries over the [CLS, patch] keys, and [CLS, patch] queries over all
    keys. So no (T, T) mask is built and fused (flash) kernels, which take no arbitrary mask, can run: with sdpa,
    attention memory grows linearly in the tokens. Both calls go through the attention function transformers
    registers for the VFM's `attn_implementation` (`AttentionInterface`: sdpa, or eager).

    Args:
        module: the layer's `Dinov2Attention` (its config names the implementation; its scaling and dropout).
        query, key, value: (B, heads, T, head_dim) over [prompts, CLS, patches].
        num_prompts: the prompts in front.

    Returns:
        The attended values, (B, T, heads, head_dim) as transformers' attention functions return them, and the
        attention probabilities (B, heads, T, T), zero for prompt -> prompt, where the implementation gives them
        (eager; None for sdpa).
    """
    attention = ALL_ATTENTION_FUNCTIONS.get_interface(module.config._attn_implementation, eager_attention_forward)
    options = {"dropout": module.attention_dropout if module.training else 0.0, "scaling": module.scaling}
    prompts, prompt_weights = attention(
        module, query[:, :, :num_prompts], key[:, :, num_prompts:], value[:, :, num_prompts:], None, **options
    )
    tokens, token_weights = attention(module, query[:, :, num_prompts:], key, value, None, **options)
    weights = None
    if prompt_weights is not None and token_weights is not None:
        blocked = prompt_weights.new_zeros(*prompt_weights.shape[:-1], num_prompts)
        weights = torch.cat((torch.cat((blocked, prompt_weights), dim=-1), token_weights), dim=-2)
    return torch.cat((prompts, tokens), dim=1), weights


def prompted_vfm_layer(
    layer: nn.Module,
    hidden_states: torch.Tensor,
    num_prompts: int,
    attention_maps: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """A frozen transformers `Dinov2Layer` over [prompts, CLS, patches] with `prompted_attention` as its attention.

    `Dinov2Layer.forward` cannot be called here: its attention takes an additive mask only, which would rule out fused
    kernels and cost (T, T) memory. So this function reaches into the layer's internals and runs its own modules in
    its order: `norm1`, `attention.q_proj/k_proj/v_proj` (and `head_dim`, `scaling`, `attention_dropout`), attention,
    `attention.o_proj`, `layer_scale1` and residual; `norm2`, `mlp`, `layer_scale2` and residual (`drop_path` is the
    identity: the VFM stays in eval mode). Nothing of the layer is changed or patched; a transformers release that
    renames these attributes fails here loudly (tests/test_speed_paths.py checks the result against the layer itself).

    Args:
        layer: a `Dinov2Layer` of the frozen VFM.
        hidden_states: (B, T, C) over [prompts, CLS, patches].
        num_prompts: the prompts in front.
        attention_maps: if given, the layer's attention probabilities (`prompted_attention`) are appended to it
            (where the attention implementation gives them).
    """
    attention = layer.attention
    normed = layer.norm1(hidden_states)
    heads_shape = (*normed.shape[:-1], -1, attention.head_dim)
    query, key, value = (
        projection(normed).view(heads_shape).transpose(1, 2)
        for projection in (attention.q_proj, attention.k_proj, attention.v_proj)
    )
    attended, weights = prompted_attention(attention, query, key, value, num_prompts)
    if attention_maps is not None and weights is not None:
        attention_maps.append(weights)
    hidden_states = layer.drop_path(layer.layer_scale1(attention.o_proj(attended.flatten(2)))) + hidden_states
    return layer.drop_path(layer.layer_scale2(layer.mlp(layer.norm2(hidden_states)))) + hidden_states


@dataclass
class WEDepthPromptedVFMOutput:
    """What the prompted VFM stages give the rest of the model, and what they record when asked.

    Args:
        output_prompts: the four stages' output prompts projected back to width D, each (B, P, D).
        patch_map: the last stage's patch tokens projected to width D, (B, D, h, w).
        hidden_states: with `output_hidden_states`, the VFM's embedding output and each layer's output over
            [CLS, patches], (B, 1 + h * w, C_vfm) each: the prompts are left out, so the shapes are a plain
            `Dinov2Model`'s.
        attentions: with `output_attentions` and an attention implementation that gives them (eager), each layer's
            attention probabilities over [prompts, CLS, patches], (B, heads, T, T), zero for prompt -> prompt.
    """

    output_prompts: list[torch.Tensor]
    patch_map: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class WEDepthPromptedVFMStages(nn.Module):
    """Runs the frozen VFM in four stages, each with its own prompts put in front of [CLS, patches].

    Stage k owns `prompt_num` learnable tokens of width D, used through the real part of their 2-D FFT. Before the
    stage they are added to the previous stage's back-projected prompts, conditioned on stream-B map k by an
    extraction block and lifted to the VFM width; the stage's frozen layers then run over [prompts, CLS, patches]
    where only prompt -> prompt attention is blocked (`prompted_vfm_layer`, no mask), so the prompts steer the VFM's
    activations without touching a weight. After the stage the output prompts are projected back to D (for injection
    1 and the next stage); after the last stage its patch tokens (no CLS, no final norm) are projected to D (for
    injection 2).
    """

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        width, vfm_width = config.prompt_dim, config.vfm_config.hidden_size
        self.prompt_num = config.prompt_num
        self.stage_layers = list(config.vfm_stage_layers)
        self.prompt_embeddings = nn.Parameter(torch.zeros(NUM_STAGES, config.prompt_num, width))
        self.extraction_blocks = nn.ModuleList(WEDepthExtractionBlock(config) for _ in range(NUM_STAGES))
        self.prompt_projections = nn.ModuleList(WEDepthMLP(vfm_width, width, width) for _ in range(NUM_STAGES))
        self.patch_projection = WEDepthMLP(vfm_width, width, width)
        self.gradient_checkpointing = False

    def stage_prompts(self) -> torch.Tensor:
        """The four stages' learnable prompts as used: Re(FFT over channels, then over tokens), (4, P, D)."""
        # FFT kernels exist for float32/64 only; the result is cast back to the parameter's dtype.
        dtype = torch.promote_types(self.prompt_embeddings.dtype, torch.float32)
        return torch.fft.fft2(self.prompt_embeddings.to(dtype)).real.to(self.prompt_embeddings.dtype)

    def run_stage(self, layers: list[nn.Module], hidden_states: torch.Tensor) -> torch.Tensor:
        """One VFM stage: its frozen layers over [prompts, CLS, patches], prompts not attending to prompts."""
        for layer in layers:
            hidden_states = prompted_vfm_layer(layer, hidden_states, self.prompt_num)
        return hidden_states

    def run_recorded_stage(
        self,
        layers: list[nn.Module],
        hidden_states: torch.Tensor,
        layer_outputs: list[torch.Tensor],
        attention_maps: list[torch.Tensor] | None,
    ) -> torch.Tensor:
        """`run_stage`, appending each layer's [CLS, patches] output (and attention probabilities) to the lists.

        The recorded tokens are the very tensors the next layer reads (joined again to the prompts), so that they are
        on the gradient path; the attention probabilities are assembled from the two attention calls and are not."""
        for layer in layers:
            hidden_states = prompted_vfm_layer(layer, hidden_states, self.prompt_num, attention_maps)
            tokens = hidden_states[:, self.prompt_num :]
            layer_outputs.append(tokens)
            hidden_states = torch.cat((hidden_states[:, : self.prompt_num], tokens), dim=1)
        return hidden_states

    def forward(
        self,
        vfm: Dinov2Model,
        vfm_pixel_values: torch.Tensor,
        context_maps: list[torch.Tensor],
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> WEDepthPromptedVFMOutput:
        """The four stages' back-projected prompts (B, P, D) and the last stage's patch map (B, D, h, w), with the
        VFM's hidden states and attentions when asked (then without gradient checkpointing of the stages)."""
        batch_size = vfm_pixel_values.shape[0]
        patch_size = vfm.config.patch_size
        grid = (vfm_pixel_values.shape[2] // patch_size, vfm_pixel_values.shape[3] // patch_size)
        tokens = vfm.embeddings(vfm_pixel_values)
        stage_starts = [0] + [end + 1 for end in self.stage_layers[:-1]]
        recording = output_hidden_states or output_attentions
        layer_outputs: list[torch.Tensor] = [tokens]
        attention_maps: list[torch.Tensor] | None = [] if output_attentions else None

        output_prompts: list[torch.Tensor] = []
        for stage, prompts in enumerate(self.stage_prompts()):
            prompts = prompts.unsqueeze(0).expand(batch_size, -1, -1)
            if output_prompts:
                prompts = prompts + output_prompts[-1]
            lifted = self.extraction_blocks[stage](prompts, context_maps[stage]).to(tokens.dtype)
            hidden_states = torch.cat((lifted, tokens), dim=1)
            layers = list(vfm.encoder.layer[stage_starts[stage] : self.stage_layers[stage] + 1])
            if recording:
                hidden_states = self.run_recorded_stage(layers, hidden_states, layer_outputs, attention_maps)
            elif self.gradient_checkpointing and torch.is_grad_enabled():
                hidden_states = self._gradient_checkpointing_func(self.run_stage, layers, hidden_states)
            else:
                hidden_states = self.run_stage(layers, hidden_states)
            tokens = hidden_states[:, self.prompt_num :]
            output_prompts.append(self.prompt_projections[stage](hidden_states[:, : self.prompt_num]))

        return WEDepthPromptedVFMOutput(
            output_prompts=output_prompts,
            patch_map=unflatten_map(self.patch_projection(tokens[:, 1:]), *grid),
            hidden_states=tuple(layer_outputs) if output_hidden_states else None,
            attentions=tuple(attention_maps) if attention_maps is not None else None,
        )


# --------------------------------------------------------------------------------------------------------------------
# Injections
# --------------------------------------------------------------------------------------------------------------------


class WEDepthInjectionMLP(nn.Module):
    """Pre-norm MLP of the prompt injection: LayerNorm, Linear D -> rD, GELU, Linear rD -> D."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        width = config.prompt_dim
        hidden = int(width * config.injection_mlp_ratio)
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(hidden_states))))


class WEDepthPromptInjectionLayer(nn.Module):
    """Pixels cross-attend to the prompts, then an MLP; both residual."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        self.cross_attention = WEDepthPerceiverAttention(config, normalize_context=True)
        self.mlp = WEDepthInjectionMLP(config)

    def forward(self, pixels: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        pixels = pixels + self.cross_attention(pixels, prompts)
        return pixels + self.mlp(pixels)


class WEDepthPromptInjection(nn.Module):
    """Injection 1 at one scale: the stage's VFM output prompts enhance the stream-A pixels.

    A sine position encoding is added to the pixels (and stays), the prompts get one residual self-attention, then
    each layer lets the pixels cross-attend to the prompts and applies a residual MLP.
    """

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        self.prompt_self_attention = WEDepthPerceiverAttention(config, normalize_context=False)
        self.layers = nn.ModuleList(WEDepthPromptInjectionLayer(config) for _ in range(config.injection_depth))

    def forward(self, stream_a: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        _, channels, height, width = stream_a.shape
        position = sine_position_encoding(height, width, channels, stream_a.device).to(stream_a.dtype)
        pixels = flatten_map(stream_a + position)
        prompts = prompts + self.prompt_self_attention(prompts)
        for layer in self.layers:
            pixels = layer(pixels, prompts)
        return unflatten_map(pixels, height, width)


class WEDepthFeatureInjection(nn.Module):
    """Injection 2: the last VFM stage's patch map, resized to each scale, is fused into the enhanced pixels.

    Per scale: a = a + dw(a); x = a + 1x1(v); x = x + dw'(x); BN; ReLU; then one 1x1 convolution shared by all
    scales (the authors' `FuseFuture`).
    """

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        width = config.prompt_dim

        def depthwise() -> nn.Conv2d:
            return nn.Conv2d(width, width, kernel_size=3, padding=1, groups=width)

        self.pixel_convs = nn.ModuleList(depthwise() for _ in range(NUM_STAGES))
        self.vfm_projections = nn.ModuleList(nn.Conv2d(width, width, kernel_size=1) for _ in range(NUM_STAGES))
        self.fused_convs = nn.ModuleList(depthwise() for _ in range(NUM_STAGES))
        self.norms = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(NUM_STAGES))
        self.act = nn.ReLU()
        self.output_projection = nn.Conv2d(width, width, kernel_size=1)

    def forward(self, pixel_maps: list[torch.Tensor], vfm_map: torch.Tensor) -> list[torch.Tensor]:
        fused_maps = []
        for stage, pixels in enumerate(pixel_maps):
            vfm_features = F.interpolate(vfm_map, size=pixels.shape[-2:], mode="bilinear", align_corners=False)
            pixels = pixels + self.pixel_convs[stage](pixels)
            fused = pixels + self.vfm_projections[stage](vfm_features)
            fused = fused + self.fused_convs[stage](fused)
            fused_maps.append(self.output_projection(self.act(self.norms[stage](fused))))
        return fused_maps


# --------------------------------------------------------------------------------------------------------------------
# Deformable pixel decoder
# --------------------------------------------------------------------------------------------------------------------


_DEFORMABLE_CHUNK_TAPS = 2**22
"""Bilinear taps (batch x queries x heads x levels x points x 4 corners) a deformable encoder layer computes at once
without autograd: its tokens are taken in chunks of at most this many taps, which bounds the temporaries of inference
(about 100 MB) at any image size."""


def grid_sample_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention, the readable way: per level, `grid_sample` every query's points, then the
    attention-weighted sum over levels and points.

    Deformable DETR's CUDA kernel computes the same (bilinear sampling at pixel position `location * size - 0.5`, zero
    outside the map, i.e. `grid_sample(align_corners=False, padding_mode="zeros")`), as Mask2Former's
    `multi_scale_deformable_attention` does. `config.deformable_attention_implementation = "grid_sample"` selects it;
    the "gather" implementation (`gather_deformable_attention.py`) computes the same values and gradients without
    materialising the (queries x points) samples.

    Args:
        value: (B, S, heads, head_dim), the levels' tokens concatenated, S = sum(h * w).
        spatial_shapes: (h, w) of each level, in the order of `value`.
        sampling_locations: (B, Q, heads, levels, points, 2), (x, y) normalised to [0, 1].
        attention_weights: (B, Q, heads, levels, points), softmax-normalised over levels * points.

    Returns:
        (B, Q, heads * head_dim).
    """
    batch_size, _, num_heads, head_dim = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    level_values = value.split([height * width for height, width in spatial_shapes], dim=1)
    sampling_grids = 2 * sampling_locations - 1  # grid_sample's [-1, 1] coordinates
    sampled_levels = []
    for level, (height, width) in enumerate(spatial_shapes):
        # (B, h * w, heads, head_dim) -> (B * heads, head_dim, h, w)
        level_value = level_values[level].permute(0, 2, 3, 1).reshape(batch_size * num_heads, head_dim, height, width)
        # (B, Q, heads, points, 2) -> (B * heads, Q, points, 2)
        level_grid = sampling_grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled_levels.append(
            F.grid_sample(level_value, level_grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        )
    # (B * heads, head_dim, Q, levels * points), weighted by (B * heads, 1, Q, levels * points) and summed.
    samples = torch.stack(sampled_levels, dim=-2).flatten(-2)
    weights = attention_weights.transpose(1, 2).reshape(batch_size * num_heads, 1, num_queries, num_levels * num_points)
    output = (samples * weights).sum(-1)
    return output.view(batch_size, num_heads * head_dim, num_queries).transpose(1, 2)


class WEDepthMultiScaleDeformableAttention(nn.Module):
    """Each query attends to a few learned sampling points around its reference point on every level.

    The sampling runs as `config.deformable_attention_implementation` says: "grid_sample"
    (`grid_sample_deformable_attention`) or "gather" (`deformable_sample`, the same values and gradients).
    """

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        hidden = config.decoder_hidden_size
        self.implementation = config.deformable_attention_implementation
        self.num_heads = config.decoder_attention_heads
        self.num_levels = NUM_STAGES
        self.num_points = config.decoder_sampling_points
        samples = self.num_heads * self.num_levels * self.num_points
        self.sampling_offsets = nn.Linear(hidden, samples * 2)
        self.attention_weights = nn.Linear(hidden, samples)
        self.value_proj = nn.Linear(hidden, hidden)
        self.output_proj = nn.Linear(hidden, hidden)

    def sampled_value(self, values: torch.Tensor, spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
        """What the queries sample: the value projection of every token, per head, (B, S, heads, head_dim); for the
        gather, framed by zeros (`pad_value_levels`)."""
        batch_size, length, hidden_size = values.shape
        value = self.value_proj(values).view(batch_size, length, self.num_heads, hidden_size // self.num_heads)
        return pad_value_levels(value, spatial_shapes) if self.implementation == "gather" else value

    def attend(
        self,
        queries: torch.Tensor,
        reference_points: torch.Tensor,
        sampled_value: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        level_sizes: torch.Tensor,
    ) -> torch.Tensor:
        """The attention output of `queries` (B, Q, C), whose reference points are `reference_points` (Q, 2), over
        `sampled_value` (from `sampled_value`); any subset of the queries gives the same rows as all of them."""
        batch_size, num_queries, _ = queries.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        offsets = self.sampling_offsets(queries)
        weights = self.attention_weights(queries).view(batch_size, num_queries, heads, levels * points)
        weights = weights.softmax(dim=-1).view(batch_size, num_queries, heads, levels, points)
        # location = reference + offset / level size, per (head, level, point, x|y) column of the offsets: the sizes
        # and reference points laid out along those columns, so that no operand broadcasts over the short inner
        # dimensions (which CPUs run element by element). Exact conversions for float32/64 (the points and sizes are
        # float32, the sizes integers).
        sizes = level_sizes.to(offsets.dtype)[None, :, None, :].expand(heads, levels, points, 2).reshape(-1)
        reference = reference_points.to(offsets.dtype).repeat(1, heads * levels * points)
        locations = (reference + offsets / sizes).view(batch_size, num_queries, heads, levels, points, 2)
        if self.implementation == "gather":
            attended = deformable_sample(sampled_value, spatial_shapes, level_sizes, locations, weights)
        else:
            attended = grid_sample_deformable_attention(sampled_value, spatial_shapes, locations, weights)
        return self.output_proj(attended)

    def forward(
        self,
        queries: torch.Tensor,
        reference_points: torch.Tensor,
        values: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        level_sizes: torch.Tensor,
    ) -> torch.Tensor:
        """`reference_points`: (Q, 2) normalised (x, y), shared by all levels and images; `level_sizes`: (levels, 2)
        (width, height) of each level, which turns pixel offsets into normalised ones."""
        sampled_value = self.sampled_value(values, spatial_shapes)
        return self.attend(queries, reference_points, sampled_value, spatial_shapes, level_sizes)


class WEDepthDeformableEncoderLayer(nn.Module):
    """Pre-norm deformable self-attention over all levels, then a GELU feed-forward block; both residual.

    The queries are the normed tokens plus their position; the sampled values are the un-normed tokens. Everything
    after the value projection is per token, so inference takes the tokens in chunks (`_DEFORMABLE_CHUNK_TAPS`).
    """

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        hidden = config.decoder_hidden_size
        self.self_attn_layer_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.self_attn = WEDepthMultiScaleDeformableAttention(config)
        self.final_layer_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(hidden, config.decoder_ffn_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(config.decoder_ffn_dim, hidden)

    def update(
        self,
        hidden_states: torch.Tensor,
        position: torch.Tensor,
        reference_points: torch.Tensor,
        sampled_value: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        level_sizes: torch.Tensor,
    ) -> torch.Tensor:
        """The layer's output for some of its tokens (attention residual, then feed-forward residual)."""
        queries = self.self_attn_layer_norm(hidden_states) + position
        attended = self.self_attn.attend(queries, reference_points, sampled_value, spatial_shapes, level_sizes)
        hidden_states = hidden_states + attended
        return hidden_states + self.fc2(self.act(self.fc1(self.final_layer_norm(hidden_states))))

    def forward(
        self,
        hidden_states: torch.Tensor,
        position: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        level_sizes: torch.Tensor,
    ) -> torch.Tensor:
        sampled_value = self.self_attn.sampled_value(hidden_states, spatial_shapes)
        batch_size, num_tokens, _ = hidden_states.shape
        attention = self.self_attn
        taps_per_token = batch_size * attention.num_heads * attention.num_levels * attention.num_points * 4
        # Under autograd every chunk's tensors would be kept for the backward anyway: one chunk.
        chunk = num_tokens if torch.is_grad_enabled() else max(1, _DEFORMABLE_CHUNK_TAPS // taps_per_token)
        if chunk >= num_tokens:
            return self.update(hidden_states, position, reference_points, sampled_value, spatial_shapes, level_sizes)
        output = torch.empty_like(hidden_states)
        for start in range(0, num_tokens, chunk):
            tokens = slice(start, start + chunk)
            output[:, tokens] = self.update(
                hidden_states[:, tokens],
                position[:, tokens],
                reference_points[tokens],
                sampled_value,
                spatial_shapes,
                level_sizes,
            )
        return output


class WEDepthInputAdapter(nn.Module):
    """1x1 convolution to the decoder width, then GroupNorm with one group."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        hidden = config.decoder_hidden_size
        self.projection = nn.Conv2d(config.prompt_dim, hidden, kernel_size=1)
        self.norm = nn.GroupNorm(1, hidden)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.norm(self.projection(feature_map))


class WEDepthConvNormAct(nn.Module):
    """Convolution without bias, BatchNorm, GELU: each output, lateral and FPN convolution of the pixel decoder."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = nn.GELU()

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(feature_map)))


class WEDepthDeformablePixelDecoder(nn.Module):
    """iDisc's multi-scale deformable-attention pixel decoder with a top-down FPN, over all four scales.

    Inside the decoder, levels run coarse to fine (level 0 = stride 32): the order of the deformable attention's level
    axis and of the top-down path. Each level's map is adapted to the decoder width; the deformable layers refine all
    levels jointly, in float32 even under autocast (as the authors force); then, coarse to fine,
    y_l = fpn_l(lateral_l(map_l) + output_l(refined_l) + nearest_up(y_(l-1))).
    """

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        hidden, width = config.decoder_hidden_size, config.prompt_dim
        self.input_adapters = nn.ModuleList(WEDepthInputAdapter(config) for _ in range(NUM_STAGES))
        self.level_embeddings = nn.Parameter(torch.zeros(NUM_STAGES, hidden))
        self.layers = nn.ModuleList(WEDepthDeformableEncoderLayer(config) for _ in range(config.decoder_layers))
        self.output_convs = nn.ModuleList(WEDepthConvNormAct(hidden, hidden, 1) for _ in range(NUM_STAGES))
        self.lateral_convs = nn.ModuleList(WEDepthConvNormAct(width, hidden, 1) for _ in range(NUM_STAGES))
        self.fpn_convs = nn.ModuleList(WEDepthConvNormAct(hidden, hidden, 3) for _ in range(NUM_STAGES))

    @staticmethod
    def reference_points(spatial_shapes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
        """Normalised (x, y) centre of every token of every level, (sum(h * w), 2), in float32."""
        points = []
        for height, width in spatial_shapes:
            # i + 0.5 exactly, as linspace(0.5, size - 0.5, size) gives it; arange also exports with symbolic sizes.
            y = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
            x = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
            grid_y, grid_x = torch.meshgrid(y, x, indexing="ij")
            points.append(torch.stack((grid_x.flatten(), grid_y.flatten()), dim=-1))
        return torch.cat(points, dim=0)

    def deformable_layers(self, tokens: torch.Tensor, spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
        """The deformable layers over all levels' tokens (B, sum(h * w), C), with their positions and references."""
        device = tokens.device
        position = torch.cat(
            [
                flatten_map(sine_position_encoding(height, width, tokens.shape[2], device)[None])
                + self.level_embeddings[level]
                for level, (height, width) in enumerate(spatial_shapes)
            ],
            dim=1,
        ).to(tokens.dtype)
        reference_points = self.reference_points(spatial_shapes, device)
        level_sizes = level_sizes_tensor(spatial_shapes, device)
        for layer in self.layers:
            tokens = layer(tokens, position, reference_points, spatial_shapes, level_sizes)
        return tokens

    def refine(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        """The levels' maps (coarse to fine) adapted to the decoder width, then refined jointly by the deformable
        layers, in float32 even under autocast; returns the refined maps, coarse to fine. Only the current layer's
        tokens are kept (the adapted maps are not)."""
        spatial_shapes = [(m.shape[2], m.shape[3]) for m in levels]
        tokens = torch.cat([flatten_map(adapter(m)) for adapter, m in zip(self.input_adapters, levels)], dim=1)
        tokens = in_float32_under_autocast(lambda tokens: self.deformable_layers(tokens, spatial_shapes), tokens)
        return [
            unflatten_map(level_tokens, height, width)
            for level_tokens, (height, width) in zip(
                tokens.split([height * width for height, width in spatial_shapes], dim=1), spatial_shapes
            )
        ]

    def forward(self, feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """`feature_maps`: the four injected maps, finest first (strides 4..32). Returns four maps, coarse to fine."""
        levels = feature_maps[::-1]
        refined = self.refine(levels)
        outputs: list[torch.Tensor] = []
        for level, (feature_map, refined_map) in enumerate(zip(levels, refined)):
            # In-place sums: no autograd node needs the convolutions' outputs themselves.
            fused = self.lateral_convs[level](feature_map)
            fused += self.output_convs[level](refined_map)
            if outputs:
                fused += F.interpolate(outputs[-1], size=fused.shape[-2:], mode="nearest")
            outputs.append(self.fpn_convs[level](fused))
        return outputs


class WEDepthDepthHead(nn.Module):
    """One level's head: BN, conv 3x3, 2x transposed conv, conv 3x3, BN, 1x1 conv -> log-depth at twice the map's size.

    There is no nonlinearity between the layers, as in the authors' `ProjectOut`.
    """

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        hidden, width = config.decoder_hidden_size, config.head_hidden_size
        self.input_norm = nn.BatchNorm2d(hidden)
        self.conv1 = nn.Conv2d(hidden, width, kernel_size=3, padding=1)
        self.upsample = nn.ConvTranspose2d(width, width, kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.log_depth = nn.Conv2d(width, 1, kernel_size=1)
        for conv in (self.conv1, self.upsample, self.conv2, self.log_depth):
            conv.kaiming_normal_init = True  # the authors' head initialisation, applied by `_init_weights`

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        hidden_states = self.upsample(self.conv1(self.input_norm(feature_map)))
        # The log-depth is exponentiated: rounded to bfloat16 (steps of 2**-6 from 2 to 4, i.e. 7.4 to 55 m) it alone
        # would move the depth by up to 0.8%. So under autocast the last 1x1 convolution runs in float32.
        return in_float32_under_autocast(self.log_depth, self.norm(self.conv2(hidden_states)))


class WEDepthDepthHeads(nn.ModuleList):
    """The four log-depth heads (coarse to fine, as the decoder's levels); their depths are averaged.

    A `ModuleList` (its weights are `depth_heads.<level>.*`) whose forward combines the heads.
    """

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__(WEDepthDepthHead(config) for _ in range(NUM_STAGES))

    def forward(self, decoded: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """The heads' depths (exp of their log-depths) averaged at the finest head's size, then resized to `size`
        (bilinear, align_corners=True, as the authors): (B, H, W), in float32 at least."""
        log_depths = [head(feature_map) for head, feature_map in zip(self, decoded)]
        output_dtype = torch.promote_types(log_depths[-1].dtype, torch.float32)
        finest_size = log_depths[-1].shape[-2:]
        depth = torch.stack(
            [
                F.interpolate(log_depth.to(output_dtype).exp(), size=finest_size, mode="bilinear", align_corners=True)
                for log_depth in log_depths
            ]
        ).mean(dim=0)
        return F.interpolate(depth, size=size, mode="bilinear", align_corners=True)[:, 0]


# --------------------------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------------------------


def silog_loss(
    predicted_depth: torch.Tensor, labels: torch.Tensor, valid_mask: torch.Tensor, variance_focus: float
) -> torch.Tensor:
    """Scale-invariant log loss sqrt(mean(d^2) - lambda * mean(d)^2), d = log(gt + 1e-6) - log(pred + 1e-6).

    The authors' `SiLogLoss`, over the valid pixels of the whole batch, in float32 at least. Without a valid pixel the
    loss is an exact zero that still belongs to the graph (its gradient is zero, never NaN).
    """
    dtype = torch.promote_types(predicted_depth.dtype, torch.float32)
    count = valid_mask.sum().to(dtype)
    # Invalid pixels become log(1) - log(1) = 0, so they add nothing to either sum.
    safe_prediction = torch.where(valid_mask, predicted_depth.to(dtype) + 1e-6, 1.0)
    safe_labels = torch.where(valid_mask, labels.to(dtype) + 1e-6, 1.0)
    difference = safe_labels.log() - safe_prediction.log()
    denominator = count.clamp(min=1.0)
    mean_square = difference.square().sum() / denominator
    mean = difference.sum() / denominator
    variance = (mean_square - variance_focus * mean.square()).clamp(min=0.0)
    return torch.sqrt(variance + 1e-12) * (count > 0).to(dtype)


# --------------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------------


def _default_init(module: nn.Module) -> None:
    """PyTorch's own initialisation of a Linear or convolution (Kaiming-uniform, a = sqrt(5)), as the authors' modules
    get by default."""
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        fan_in = module.weight.shape[1] * module.weight[0][0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(module.bias, -bound, bound)


class WEDepthPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading behaviour shared by WEDepth models.

    New modules are initialised as the authors' code initialises them (their layers' PyTorch defaults, Deformable
    DETR's scheme for the pixel decoder, Kaiming for the heads); the encoder and the VFM keep their own schemes.
    """

    config: WEDepthConfig
    config_class = WEDepthConfig
    base_model_prefix = "wedepth"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["Dinov2Layer"]

    def _init_weights(self, module: nn.Module) -> None:
        # transformers initialises children before parents, and skips (in remote code) modules without parameters of
        # their own; so each special scheme sits on a module with its own parameter, or is declared on the layer.
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            _default_init(module)
            if getattr(module, "kaiming_normal_init", False):
                init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)):
            super()._init_weights(module)
        elif isinstance(module, WEDepthPromptedVFMStages):
            # Uniform +-sqrt(6 / (3 * p * p + D)), p the VFM patch size (VPT's prompt initialisation).
            patch_size = self.config.vfm_config.patch_size
            bound = math.sqrt(6.0 / (3 * patch_size * patch_size + self.config.prompt_dim))
            init.uniform_(module.prompt_embeddings, -bound, bound)
        elif isinstance(module, WEDepthExtractionLayer):
            init.ones_(module.gamma)
        elif isinstance(module, WEDepthDeformablePixelDecoder):
            _init_pixel_decoder(module)


def _init_pixel_decoder(decoder: "WEDepthDeformablePixelDecoder") -> None:
    """Deformable DETR's initialisation as iDisc applies it, on top of the layers' defaults."""
    init.normal_(decoder.level_embeddings)
    for adapter in decoder.input_adapters:
        init.xavier_uniform_(adapter.projection.weight)
        init.zeros_(adapter.projection.bias)
    for layer in decoder.layers:
        init.xavier_uniform_(layer.fc1.weight)
        init.xavier_uniform_(layer.fc2.weight)
        attention = layer.self_attn
        # Rings of 1..num_points pixels around the reference point in each head's direction, uniform weights.
        init.zeros_(attention.sampling_offsets.weight)
        thetas = torch.arange(attention.num_heads, dtype=torch.float32) * (2.0 * math.pi / attention.num_heads)
        directions = torch.stack((thetas.cos(), thetas.sin()), dim=-1)
        directions = directions / directions.abs().max(dim=-1, keepdim=True).values
        directions = directions[:, None, None, :].repeat(1, attention.num_levels, attention.num_points, 1)
        directions = directions * torch.arange(1, attention.num_points + 1, dtype=torch.float32)[None, None, :, None]
        init.copy_(attention.sampling_offsets.bias, directions.flatten())
        init.zeros_(attention.attention_weights.weight)
        init.zeros_(attention.attention_weights.bias)
        for linear in (attention.value_proj, attention.output_proj):
            init.xavier_uniform_(linear.weight)
            init.zeros_(linear.bias)
    for block in (*decoder.output_convs, *decoder.lateral_convs, *decoder.fpn_convs):
        init.kaiming_uniform_(block.conv.weight, a=1)


def check_depth_inputs(pixel_values: torch.Tensor, labels: torch.Tensor | None, training: bool) -> torch.Tensor | None:
    """Raise a clear error for images or labels the model cannot take; returns the labels as (B, H, W)."""
    if pixel_values.ndim != 4:
        raise ValueError(f"`pixel_values` must have shape (batch, 3, height, width), got {tuple(pixel_values.shape)}.")
    batch_size, channels, height, width = pixel_values.shape
    if channels != 3:
        raise ValueError(
            f"`pixel_values` must have 3 (RGB) channels, got {channels} (shape {tuple(pixel_values.shape)}). "
            f"Use WEDepthImageProcessor, which converts grayscale and RGBA images to RGB."
        )
    if batch_size == 0 or height == 0 or width == 0:
        raise ValueError(f"`pixel_values` is empty: shape {tuple(pixel_values.shape)}.")
    if training and batch_size * math.ceil(height / 32) * math.ceil(width / 32) < 2:
        raise ValueError(
            f"In train mode the BatchNorm layers need at least two values per channel at stride 32, but a batch "
            f"of {batch_size} image(s) of {height}x{width} gives a 1x1 map: use a batch of 2 or more, or images "
            f"larger than 32 pixels in height or width (or call model.eval() to predict)."
        )
    if labels is None:
        return None
    if labels.ndim == 4 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (batch_size, height, width):
        raise ValueError(
            f"`labels` must be depth maps of shape (batch, height, width) = {(batch_size, height, width)} or "
            f"(batch, 1, height, width), matching `pixel_values`; got {tuple(labels.shape)}."
        )
    return labels


def check_output_size(output_size: Any, labels: torch.Tensor | None) -> tuple[int, int] | None:
    """`output_size` as (height, width), or a clear error."""
    if output_size is None:
        return None
    size = tuple(output_size) if isinstance(output_size, (tuple, list, torch.Size)) else ()
    if len(size) != 2 or not all(isinstance(value, int) and value > 0 for value in size):
        raise ValueError(f"`output_size` must be (height, width), two positive integers; got {output_size!r}.")
    if labels is not None:
        raise ValueError("`output_size` cannot be combined with `labels`: the loss is computed at the input size.")
    return size


def check_encoder_strides(feature_maps: tuple[torch.Tensor, ...], height: int, width: int) -> None:
    """Raise unless the encoder's four maps are about 1/4, 1/8, 1/16, 1/32 of a `height` x `width` input."""
    for stage, feature_map in enumerate(feature_maps):
        stride = 4 * 2**stage
        expected = [(size // stride, -(-size // stride)) for size in (height, width)]
        if not all(low <= got <= high for (low, high), got in zip(expected, feature_map.shape[-2:])):
            raise ValueError(
                f"Encoder stage {stage + 1} must have stride {stride} (a {expected[0][1]}x{expected[1][1]} map for "
                f"a {height}x{width} input), got {tuple(feature_map.shape[-2:])}. WEDepth needs an encoder with "
                f"four stages at strides 4/8/16/32."
            )


def set_layer_norm_eps(module: nn.Module, eps: float) -> None:
    """Give every `nn.LayerNorm` inside `module` the epsilon `eps`.

    transformers' Swin builds its patch-embedding, patch-merging and stage-output norms with PyTorch's default 1e-5
    and only its blocks' norms with `config.layer_norm_eps`; the authors' Swin uses 1e-6 in every norm.
    """
    for submodule in module.modules():
        if isinstance(submodule, nn.LayerNorm):
            submodule.eps = eps


def _silog_loss_on_valid_labels(
    predicted_depth: torch.Tensor, labels: torch.Tensor, config: WEDepthConfig
) -> torch.Tensor:
    """The SILog loss over the labelled pixels: finite labels above `config.min_depth` and, where it is set, below
    `config.max_depth`."""
    valid = torch.isfinite(labels) & (labels > config.min_depth)
    if config.max_depth is not None:
        valid = valid & (labels < config.max_depth)
    return silog_loss(predicted_depth, labels, valid, config.silog_lambda)


def _select_hidden_states(
    hidden_states: tuple[torch.Tensor, ...] | None, indices: list[int] | tuple[int, ...] | None
) -> tuple[torch.Tensor | None, ...] | None:
    """`hidden_states` with only those at `indices` (negative ones count from the end) kept and the others None, as
    transformers' models return them; all of them when no indices are given."""
    if hidden_states is None or indices is None:
        return hidden_states
    kept = {index % len(hidden_states) for index in indices}
    return tuple(state if index in kept else None for index, state in enumerate(hidden_states))


class WEDepthForDepthEstimation(WEDepthCheckpointMixin, WEDepthPreTrainedModel):
    """WEDepth: metric depth from one image with a frozen DINOv2 as a multi-level feature enhancer.

    Checkpoint storage (the frozen VFM by reference, `from_pretrained_backbones`) comes from `WEDepthCheckpointMixin`.

    Attributes:
        encoder: the trainable depth encoder (a transformers backbone, Swin in the paper).
        vfm: the frozen VFM, a plain `Dinov2Model`, never modified: `requires_grad=False` and eval mode always.
        stream_split: the encoder maps as stream A (to be enhanced) and stream B (context), width D.
        prompted_vfm: prompts, extraction blocks and the staged pass of the frozen VFM.
        prompt_injections: injection 1 (VFM output prompts -> stream-A pixels), one per scale.
        feature_injection: injection 2 (the last VFM stage's patch tokens -> every scale).
        pixel_decoder: the multi-scale deformable-attention pixel decoder with its FPN.
        depth_heads: four log-depth heads (coarse to fine, as the decoder's levels), averaged after exponentiation.
    """

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__(config)
        check_vfm_attention(config.vfm_config._attn_implementation)
        self.encoder = AutoBackbone.from_config(config.encoder_config)
        set_layer_norm_eps(self.encoder, config.encoder_config.layer_norm_eps)
        self.vfm = Dinov2Model(config.vfm_config)
        self.stream_split = WEDepthStreamSplit(list(self.encoder.channels), config)
        self.prompted_vfm = WEDepthPromptedVFMStages(config)
        self.prompt_injections = nn.ModuleList(WEDepthPromptInjection(config) for _ in range(NUM_STAGES))
        self.feature_injection = WEDepthFeatureInjection(config)
        self.pixel_decoder = WEDepthDeformablePixelDecoder(config)
        self.depth_heads = WEDepthDepthHeads(config)
        self.post_init()
        self.freeze_vfm()

    def get_input_embeddings(self) -> nn.Module:
        """The trainable encoder's patch embedding (the image's first trainable layer; the VFM's is frozen)."""
        return self.encoder.get_input_embeddings()

    def freeze_vfm(self) -> None:
        """Set every VFM parameter to `requires_grad=False` and the VFM to eval mode; likewise the encoder parameters
        its backbone forward never uses (its `_keys_to_ignore_on_load_missing`, Swin's final `swin.layernorm`), which
        would otherwise get weight decay for nothing and make distributed data parallel fail on unused parameters."""
        self.vfm.requires_grad_(False)
        self.vfm.eval()
        patterns = [re.compile(pattern) for pattern in (type(self.encoder)._keys_to_ignore_on_load_missing or [])]
        for name, parameter in self.encoder.named_parameters():
            if any(pattern.search(name) for pattern in patterns):
                parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> "WEDepthForDepthEstimation":
        """Like `nn.Module.train`, but the frozen VFM stays frozen and in eval mode (no dropout or drop-path)."""
        super().train(mode)
        self.freeze_vfm()
        return self

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts: total, trainable, frozen, and per part (encoder, vfm, new modules)."""
        total = sum(parameter.numel() for parameter in self.parameters())
        trainable = sum(parameter.numel() for parameter in self.parameters() if parameter.requires_grad)
        encoder = sum(parameter.numel() for parameter in self.encoder.parameters())
        vfm = sum(parameter.numel() for parameter in self.vfm.parameters())
        return {
            "total": total,
            "trainable": trainable,
            "frozen": total - trainable,
            "encoder": encoder,
            "vfm": vfm,
            "new_modules": total - encoder - vfm,
        }

    def vfm_input(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image as the VFM sees it: resized down (bilinear) to a multiple of the patch size when it is not one.

        Inputs smaller than one patch are resized up to one patch (the authors' code fails on them).
        """
        patch_size = self.config.vfm_config.patch_size
        height, width = pixel_values.shape[-2:]
        if height % patch_size == 0 and width % patch_size == 0:
            return pixel_values
        size = (max(patch_size, height // patch_size * patch_size), max(patch_size, width // patch_size * patch_size))
        return F.interpolate(pixel_values, size=size, mode="bilinear", align_corners=False)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_size: tuple[int, int] | None = None,
        output_hidden_states: bool | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> DepthEstimatorOutput | tuple[torch.Tensor, ...]:
        r"""
        Args:
            pixel_values (`torch.Tensor` of shape `(batch_size, 3, height, width)`):
                ImageNet-normalised images (see `WEDepthImageProcessor`), any height and width.
            labels (`torch.Tensor` of shape `(batch_size, height, width)` or `(batch_size, 1, height, width)`):
                Ground-truth depth in metres. Pixels at or below `config.min_depth` (and, if set, at or above
                `config.max_depth`) or not finite are ignored by the loss.
            output_size (`tuple[int, int]`, *optional*):
                (height, width) of `predicted_depth`; defaults to the input's. The averaged head depth is resized
                straight to this size (bilinear, align_corners=True), as the authors' forward resizes it to its
                ground truth's size; that is not the same as resizing an input-size map afterwards. Not with
                `labels`, which are at the input's size.
            output_hidden_states (`bool` or `list[int]`, *optional*):
                Return `hidden_states`: the encoder backbone's (its `BackboneOutput.hidden_states`; for Swin the
                patch embedding and each stage's output as (B, C, h, w) maps), then the VFM's: its embedding output
                and each layer's output over [CLS, patches], (B, 1 + h * w, C_vfm), the stage's prompts left out so
                that they have a plain `Dinov2Model`'s shapes. Given indices (negative ones count from the end), only
                those, the others None, as in transformers' models. Defaults to `config.output_hidden_states`.
            output_attentions (`bool`, *optional*):
                Return `attentions`: the encoder's (its `BackboneOutput.attentions`), then each VFM layer's attention
                probabilities over [prompts, CLS, patches], (B, heads, T, T), zero for prompt -> prompt. Like
                transformers' models, only attention implementations that compute the probabilities (eager) give
                them. Defaults to `config.output_attentions`.
            return_dict (`bool`, *optional*):
                Return a `DepthEstimatorOutput` rather than a tuple. Defaults to `config.return_dict`.

        Returns:
            `DepthEstimatorOutput` with `predicted_depth` of shape `(batch_size, height, width)` (or `output_size`):
            positive metric depth in metres, in float32 at least whatever the model's dtype; `loss`, the SILog loss,
            when labels are given; `hidden_states` and `attentions` when asked. As a tuple: the same fields that are
            not None, in that order.
        """
        labels = check_depth_inputs(pixel_values, labels, self.training)
        output_size = check_output_size(output_size, labels)
        config = self.config
        hidden_state_indices = output_hidden_states if isinstance(output_hidden_states, (list, tuple)) else None
        output_hidden_states = bool(
            config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        return_dict = config.return_dict if return_dict is None else return_dict
        decoded, hidden_states, attentions = self._features(pixel_values, output_hidden_states, output_attentions)
        predicted_depth = self.depth_heads(decoded, output_size or tuple(pixel_values.shape[-2:]))
        loss = None if labels is None else _silog_loss_on_valid_labels(predicted_depth, labels, config)
        output = DepthEstimatorOutput(
            loss=loss,
            predicted_depth=predicted_depth,
            hidden_states=_select_hidden_states(hidden_states, hidden_state_indices),
            attentions=attentions,
        )
        return output if return_dict else output.to_tuple()

    def _features(
        self, pixel_values: torch.Tensor, output_hidden_states: bool, output_attentions: bool | None
    ) -> tuple[list[torch.Tensor], tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
        """The pixel decoder's maps for `pixel_values` (the whole network before the depth heads), and the encoder's
        then the VFM's hidden states and attentions where asked for (else None)."""
        if not torch.is_autocast_enabled(pixel_values.device.type):
            pixel_values = pixel_values.to(self.encoder.dtype)
        height, width = pixel_values.shape[-2:]

        # Trainable encoder; its streams A (to be enhanced) and B (context for the prompts).
        encoder_outputs = self.encoder(
            pixel_values, output_hidden_states=output_hidden_states, output_attentions=output_attentions
        )
        check_encoder_strides(encoder_outputs.feature_maps, height, width)
        stream_a, stream_b = self.stream_split(list(encoder_outputs.feature_maps))
        # Frozen VFM, steered by prompts conditioned on stream B.
        vfm_outputs = self.prompted_vfm(
            self.vfm, self.vfm_input(pixel_values), stream_b, output_hidden_states, output_attentions
        )
        # Injection 1 (prompts) at each scale, then injection 2 (the VFM's patch tokens). Maps are released as soon as
        # they are used (in inference; autograd keeps what it needs): at stride 4 each is a large part of the memory.
        del stream_b
        enhanced = [
            injection(pixels, prompts)
            for injection, pixels, prompts in zip(self.prompt_injections, stream_a, vfm_outputs.output_prompts)
        ]
        del stream_a
        injected = self.feature_injection(enhanced, vfm_outputs.patch_map)
        del enhanced
        decoded = self.pixel_decoder(injected)
        hidden_states = attentions = None
        if output_hidden_states:
            hidden_states = tuple(encoder_outputs.hidden_states or ()) + vfm_outputs.hidden_states
        if output_attentions:
            attentions = tuple(encoder_outputs.attentions or ()) + vfm_outputs.attentions
        return decoded, hidden_states, attentions


__all__ = [
    "WEDepthForDepthEstimation",
    "WEDepthPreTrainedModel",
    # Defined in the sibling modules, importable from here as before they moved.
    "WEDepthCheckpointMixin",
    "check_vfm",
    "check_vfm_attention",
    "deformable_sample",
    "level_sizes_tensor",
    "load_vfm_source",
    "load_vfm_with_record",
    "multi_scale_deformable_attention",
    "pad_value_levels",
    "state_fingerprint",
    "vfm_fingerprint",
]
