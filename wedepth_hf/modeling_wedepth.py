"""PyTorch WEDepth model (arXiv 2511.08036).

A trainable hierarchical depth encoder (Swin in the paper) is enhanced by a frozen DINOv2 used as a multi-level
feature enhancer: learnable prompts, conditioned on the encoder's features by extraction blocks, are run through the
frozen VFM stage by stage; the VFM's output prompts (injection 1) and its patch tokens (injection 2) are injected into
the encoder's maps; a multi-scale deformable-attention pixel decoder and four log-depth heads give metric depth.

Every module computes what the authors' released code computes (checked tensor for tensor against golden outputs
of that code, see `tests/test_parity.py`); where that code cannot run, this file does what it evidently intends (the
README lists each point). The frozen VFM is a plain `Dinov2Model` (attribute `vfm`) whose structure and weights are
never modified: this module only calls its embeddings and layers. This file imports only torch, transformers and its
sibling configuration file (it travels to the Hub as remote code).
"""

import contextlib
import copy
import hashlib
import importlib
import json
import logging as std_logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoBackbone, AutoConfig, Dinov2Model, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import DepthEstimatorOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, load_state_dict
from transformers.models.auto.modeling_auto import MODEL_FOR_BACKBONE_MAPPING
from transformers.models.dinov2.modeling_dinov2 import eager_attention_forward
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, cached_file, logging
from transformers.utils.hub import resolve_revision

from .configuration_wedepth import NUM_STAGES, WEDepthConfig


logger = logging.get_logger(__name__)

_SUPPORTED_VFM_ATTENTION = ("sdpa", "eager")
"""The VFM attention implementations the prompted stages are tested with (`prompted_attention` calls them unmasked)."""


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
    rows = rows / (rows[-1:] + 1e-6) * scale
    cols = cols / (cols[-1:] + 1e-6) * scale
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
) -> torch.Tensor:
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
        (B, T, heads, head_dim), as transformers' attention functions return it.
    """
    attention = ALL_ATTENTION_FUNCTIONS.get_interface(module.config._attn_implementation, eager_attention_forward)
    options = {"dropout": module.attention_dropout if module.training else 0.0, "scaling": module.scaling}
    prompts, _ = attention(
        module, query[:, :, :num_prompts], key[:, :, num_prompts:], value[:, :, num_prompts:], None, **options
    )
    tokens, _ = attention(module, query[:, :, num_prompts:], key, value, None, **options)
    return torch.cat((prompts, tokens), dim=1)


def prompted_vfm_layer(layer: nn.Module, hidden_states: torch.Tensor, num_prompts: int) -> torch.Tensor:
    """A frozen transformers `Dinov2Layer` over [prompts, CLS, patches] with `prompted_attention` as its attention.

    The layer's own modules, in its order: norm, q/k/v projections, attention, output projection, layer scale and
    residual; norm, MLP, layer scale and residual (drop-path is the identity: the VFM stays in eval mode). Nothing of
    the layer is changed or patched.
    """
    attention = layer.attention
    normed = layer.norm1(hidden_states)
    heads_shape = (*normed.shape[:-1], -1, attention.head_dim)
    query, key, value = (
        projection(normed).view(heads_shape).transpose(1, 2)
        for projection in (attention.q_proj, attention.k_proj, attention.v_proj)
    )
    attended = prompted_attention(attention, query, key, value, num_prompts).flatten(2)
    hidden_states = layer.drop_path(layer.layer_scale1(attention.o_proj(attended))) + hidden_states
    return layer.drop_path(layer.layer_scale2(layer.mlp(layer.norm2(hidden_states)))) + hidden_states


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

    def forward(
        self, vfm: Dinov2Model, vfm_pixel_values: torch.Tensor, context_maps: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Returns the four stages' back-projected prompts (B, P, D) and the last stage's patch map (B, D, h, w)."""
        batch_size = vfm_pixel_values.shape[0]
        patch_size = vfm.config.patch_size
        grid = (vfm_pixel_values.shape[2] // patch_size, vfm_pixel_values.shape[3] // patch_size)
        tokens = vfm.embeddings(vfm_pixel_values)
        stage_starts = [0] + [end + 1 for end in self.stage_layers[:-1]]

        output_prompts: list[torch.Tensor] = []
        for stage, prompts in enumerate(self.stage_prompts()):
            prompts = prompts.unsqueeze(0).expand(batch_size, -1, -1)
            if output_prompts:
                prompts = prompts + output_prompts[-1]
            lifted = self.extraction_blocks[stage](prompts, context_maps[stage]).to(tokens.dtype)
            hidden_states = torch.cat((lifted, tokens), dim=1)
            layers = list(vfm.encoder.layer[stage_starts[stage] : self.stage_layers[stage] + 1])
            if self.gradient_checkpointing and torch.is_grad_enabled():
                hidden_states = self._gradient_checkpointing_func(self.run_stage, layers, hidden_states)
            else:
                hidden_states = self.run_stage(layers, hidden_states)
            tokens = hidden_states[:, self.prompt_num :]
            output_prompts.append(self.prompt_projections[stage](hidden_states[:, : self.prompt_num]))

        patch_map = unflatten_map(self.patch_projection(tokens[:, 1:]), *grid)
        return output_prompts, patch_map


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


def level_sizes_tensor(spatial_shapes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
    """(levels, 2) float32 (width, height) of each level.

    Written by device-side fills: `torch.tensor(list, device=...)` would be a host-to-device copy, which synchronises.
    """
    level_sizes = torch.empty(len(spatial_shapes), 2, dtype=torch.float32, device=device)
    for level, (height, width) in enumerate(spatial_shapes):
        level_sizes[level, 0], level_sizes[level, 1] = width, height
    return level_sizes


def pad_value_levels(value: torch.Tensor, spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
    """Each head's value maps, each framed by one pixel of zeros, flattened and concatenated.

    (B, sum(h * w), heads, head_dim) -> (B, heads, sum((h + 2) * (w + 2)), head_dim). The frame stands for the zero
    padding outside each map: every bilinear corner of a sampling position clamped to [-1, size] is then a row of this
    table, so the sampling needs no bounds test. Head-major, so that a sample's corners are nearby rows.
    """
    batch_size, _, num_heads, head_dim = value.shape
    framed_length = sum((height + 2) * (width + 2) for height, width in spatial_shapes)
    table = value.new_zeros(batch_size, num_heads, framed_length, head_dim)
    start = 0
    # Each level copied once, straight into its frame's interior.
    for level, (height, width) in zip(value.split([h * w for h, w in spatial_shapes], dim=1), spatial_shapes):
        framed = table[:, :, start : start + (height + 2) * (width + 2)].view(
            batch_size, num_heads, height + 2, width + 2, head_dim
        )
        framed[:, :, 1:-1, 1:-1] = level.view(batch_size, height, width, num_heads, head_dim).permute(0, 3, 1, 2, 4)
        start += (height + 2) * (width + 2)
    return table


def _corner_weights(attention: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """(..., 4) weights of each sample's bilinear corners (y0 x0, y0 x1, y1 x0, y1 x1) times its attention weight.

    `attention`: (...); `fractions`: (..., 2), the sample's (x, y) position within its corner cell, in [0, 1].
    """
    fraction_x, fraction_y = fractions.unbind(-1)
    upper = attention - attention * fraction_y
    lower = attention * fraction_y
    return torch.stack(
        (upper - upper * fraction_x, upper * fraction_x, lower - lower * fraction_x, lower * fraction_x), -1
    )


class _DeformableGather(torch.autograd.Function):
    """The weighted gather of every query's bilinear corners (one `embedding_bag`), with a backward made for it.

    Autograd's own `embedding_bag` backward sorts every corner of every sample to scatter the value gradient; here the
    samples are sorted once by their top-left row, each corner's gradient is a transposed gather (`embedding_bag` of
    the output gradient over the sorted samples), and the four are shifted into place level by level. The weights'
    gradient comes from the per-corner dot products of value rows and output gradient, folded through the bilinear
    formula per sample instead of per corner.
    """

    @staticmethod
    def forward(
        ctx: Any,
        table: torch.Tensor,
        base_rows: torch.Tensor,
        attention: torch.Tensor,
        fractions: torch.Tensor,
        corner_steps: torch.Tensor,
        layout: tuple[int, int, tuple[tuple[int, int, tuple[int, int, int]], ...]],
    ) -> torch.Tensor:
        """`table`: (R, head_dim) framed value rows; `base_rows`: (N, J) top-left row of each of a bag's J samples;
        `attention`: (N, J); `fractions`: (N, J, 2); `corner_steps`: (J, 4) row offsets of the four corners;
        `layout`: (planes, rows per plane, per level (first row, rows, steps of corners 1-3)). Returns (N, head_dim)."""
        num_bags = base_rows.shape[0]
        indices = (base_rows[..., None] + corner_steps).view(num_bags, -1)
        weights = _corner_weights(attention, fractions).to(table.dtype).view(num_bags, -1)
        ctx.save_for_backward(table, base_rows, attention, fractions, corner_steps)
        ctx.layout = layout
        return F.embedding_bag(indices, table, mode="sum", per_sample_weights=weights)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        table, base_rows, attention, fractions, corner_steps = ctx.saved_tensors
        grad_output = grad_output.contiguous()
        num_bags, samples = base_rows.shape
        grad_table = grad_attention = grad_fractions = None
        bag_ids = torch.arange(num_bags, device=base_rows.device)[:, None]
        if ctx.needs_input_grad[0]:
            sorted_rows, order = torch.sort(base_rows.flatten())
            first_sample = torch.searchsorted(sorted_rows, torch.arange(table.shape[0], device=table.device))
            bags = bag_ids.expand(num_bags, samples).reshape(-1)[order]
            weights = _corner_weights(attention.flatten()[order], fractions.view(-1, 2)[order])
            weights = weights.to(table.dtype).T.contiguous()
            corners = [
                F.embedding_bag(bags, grad_output, first_sample, mode="sum", per_sample_weights=corner_weights)
                for corner_weights in weights
            ]
            grad_table = corners[0]
            planes, plane_rows, levels = ctx.layout
            per_plane = grad_table.view(planes, plane_rows, -1)
            for first_row, rows, steps in levels:
                level = per_plane[:, first_row : first_row + rows]
                for corner, step in zip(corners[1:], steps):
                    level[:, step:] += corner.view(planes, plane_rows, -1)[:, first_row : first_row + rows - step]
        if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
            indices = (base_rows[..., None] + corner_steps).flatten()
            taps = samples * 4
            offsets = torch.arange(0, num_bags * taps, taps, device=indices.device)
            # <value row, output gradient> of every corner of every sample.
            products = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                grad_output, table, indices, offsets, bag_ids.expand(num_bags, taps).reshape(-1), 0
            )
            corner00, corner01, corner10, corner11 = products.view(num_bags, samples, 4).to(attention.dtype).unbind(-1)
            fraction_x, fraction_y = fractions.unbind(-1)
            upper = corner00 + (corner01 - corner00) * fraction_x
            lower = corner10 + (corner11 - corner10) * fraction_x
            if ctx.needs_input_grad[2]:
                grad_attention = upper + (lower - upper) * fraction_y
            if ctx.needs_input_grad[3]:
                grad_x = attention * (corner01 - corner00 + (corner11 - corner10 - corner01 + corner00) * fraction_y)
                grad_fractions = torch.stack((grad_x, attention * (lower - upper)), dim=-1)
        return grad_table, None, grad_attention, grad_fractions, None, None


def deformable_sample(
    padded_value: torch.Tensor,
    spatial_shapes: list[tuple[int, int]],
    level_sizes: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """The attention-weighted sum of bilinear samples of every query, as one weighted gather (`embedding_bag`).

    Each sample's four bilinear corners are rows of `padded_value` (see `pad_value_levels`); their bilinear weights
    times the sample's attention weight are the gather's per-row weights. This is the CUDA kernel's arithmetic
    (position `location * size - 0.5`, zero outside the map) without materialising the samples: positions are computed
    in float32 at least, and the gather reads `head_dim` contiguous numbers per corner.

    Args:
        padded_value: (B, heads, S', head_dim), `pad_value_levels` of the value.
        spatial_shapes: (h, w) of each level.
        level_sizes: (levels, 2) float32 (width, height) of each level (`level_sizes_tensor`).
        sampling_locations: (B, Q, heads, levels, points, 2), (x, y) normalised to [0, 1].
        attention_weights: (B, Q, heads, levels, points).

    Returns:
        (B, Q, heads * head_dim).
    """
    batch_size, num_heads, padded_length, head_dim = padded_value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    compute_dtype = torch.promote_types(sampling_locations.dtype, torch.float32)
    sizes = level_sizes.to(compute_dtype)[:, None, :]  # (levels, 1, 2), broadcast over points
    pixels = sampling_locations.to(compute_dtype) * sizes - 0.5
    # Top-left corners of positions clamped to the zero frame [-1, size] (beyond it a sample reads zeros only, as it
    # does there; NaN goes to -1, a valid row, and stays NaN in the fractions). Flooring has no gradient; a position at
    # or beyond `size` has none either (all its corners are outside the map, as `grid_sample` counts them).
    clamped = torch.minimum(torch.where(pixels.detach() > -1, pixels.detach(), -1.0), sizes)
    corners = torch.minimum(clamped.floor(), sizes - 1)
    cell_positions = pixels - corners
    fractions = torch.where(cell_positions >= 1, 1.0, cell_positions.clamp(min=0.0))
    # Row of each top-left corner in its (image, head) plane: level start + (y + 1) * framed width + (x + 1), exact in
    # float32 below 2**24 rows per plane.
    framed = level_sizes.to(compute_dtype) + 2
    framed_areas = framed[:, 0] * framed[:, 1]
    level_starts = framed_areas.cumsum(0) - framed_areas
    positions = level_starts[:, None] + (corners[..., 1] + 1) * framed[:, None, 0] + (corners[..., 0] + 1)
    planes = torch.arange(batch_size * num_heads, device=positions.device) * padded_length
    base_rows = positions.to(torch.int64) + planes.view(batch_size, 1, num_heads, 1, 1)
    row_steps = framed[:, 0].to(torch.int64)
    corner_steps = torch.stack((torch.zeros_like(row_steps), torch.ones_like(row_steps), row_steps, row_steps + 1), -1)
    corner_steps = corner_steps[:, None, :].expand(num_levels, num_points, 4).reshape(-1, 4)
    level_layout = []
    first_row = 0
    for height, width in spatial_shapes:
        rows = (height + 2) * (width + 2)
        level_layout.append((first_row, rows, (1, width + 2, width + 3)))
        first_row += rows
    samples = num_levels * num_points
    sampled = _DeformableGather.apply(
        padded_value.reshape(-1, head_dim),
        base_rows.view(-1, samples),
        attention_weights.to(compute_dtype).reshape(-1, samples),
        fractions.view(-1, samples, 2),
        corner_steps,
        (batch_size * num_heads, padded_length, tuple(level_layout)),
    )
    return sampled.view(batch_size, num_queries, num_heads * head_dim)


def multi_scale_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention in plain PyTorch (any device and dtype).

    The same arithmetic as Deformable DETR's CUDA kernel: bilinear sampling at pixel position `location * size - 0.5`,
    zero outside the map (see `deformable_sample`).

    Args:
        value: (B, S, heads, head_dim), the levels' tokens concatenated, S = sum(h * w).
        spatial_shapes: (h, w) of each level, in the order of `value`.
        sampling_locations: (B, Q, heads, levels, points, 2), (x, y) normalised to [0, 1].
        attention_weights: (B, Q, heads, levels, points), softmax-normalised over levels * points.

    Returns:
        (B, Q, heads * head_dim).
    """
    level_sizes = level_sizes_tensor(spatial_shapes, value.device)
    padded_value = pad_value_levels(value, spatial_shapes)
    return deformable_sample(padded_value, spatial_shapes, level_sizes, sampling_locations, attention_weights)


class WEDepthMultiScaleDeformableAttention(nn.Module):
    """Each query attends to a few learned sampling points around its reference point on every level."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        hidden = config.decoder_hidden_size
        self.num_heads = config.decoder_attention_heads
        self.num_levels = NUM_STAGES
        self.num_points = config.decoder_sampling_points
        samples = self.num_heads * self.num_levels * self.num_points
        self.sampling_offsets = nn.Linear(hidden, samples * 2)
        self.attention_weights = nn.Linear(hidden, samples)
        self.value_proj = nn.Linear(hidden, hidden)
        self.output_proj = nn.Linear(hidden, hidden)

    def padded_value(self, values: torch.Tensor, spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
        """What the queries sample: the value projection of every token, per head, framed (`pad_value_levels`)."""
        batch_size, length, hidden_size = values.shape
        value = self.value_proj(values).view(batch_size, length, self.num_heads, hidden_size // self.num_heads)
        return pad_value_levels(value, spatial_shapes)

    def attend(
        self,
        queries: torch.Tensor,
        reference_points: torch.Tensor,
        padded_value: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        level_sizes: torch.Tensor,
    ) -> torch.Tensor:
        """The attention output of `queries` (B, Q, C), whose reference points are `reference_points` (Q, 2), over
        `padded_value` (from `padded_value`); any subset of the queries gives the same rows as all of them."""
        batch_size, num_queries, _ = queries.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        offsets = self.sampling_offsets(queries).view(batch_size, num_queries, heads, levels, points, 2)
        weights = self.attention_weights(queries).view(batch_size, num_queries, heads, levels * points)
        weights = weights.softmax(dim=-1).view(batch_size, num_queries, heads, levels, points)
        # Exact conversions for float32/64 (the points and sizes are float32, the sizes integers).
        reference = reference_points[None, :, None, None, None, :].to(offsets.dtype)
        locations = reference + offsets / level_sizes[None, None, None, :, None, :].to(offsets.dtype)
        return self.output_proj(deformable_sample(padded_value, spatial_shapes, level_sizes, locations, weights))

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
        padded_value = self.padded_value(values, spatial_shapes)
        return self.attend(queries, reference_points, padded_value, spatial_shapes, level_sizes)


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
        padded_value: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        level_sizes: torch.Tensor,
    ) -> torch.Tensor:
        """The layer's output for some of its tokens (attention residual, then feed-forward residual)."""
        queries = self.self_attn_layer_norm(hidden_states) + position
        attended = self.self_attn.attend(queries, reference_points, padded_value, spatial_shapes, level_sizes)
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
        padded_value = self.self_attn.padded_value(hidden_states, spatial_shapes)
        batch_size, num_tokens, _ = hidden_states.shape
        attention = self.self_attn
        taps_per_token = batch_size * attention.num_heads * attention.num_levels * attention.num_points * 4
        # Under autograd every chunk's tensors would be kept for the backward anyway: one chunk.
        chunk = num_tokens if torch.is_grad_enabled() else max(1, _DEFORMABLE_CHUNK_TAPS // taps_per_token)
        if chunk >= num_tokens:
            return self.update(hidden_states, position, reference_points, padded_value, spatial_shapes, level_sizes)
        output = torch.empty_like(hidden_states)
        for start in range(0, num_tokens, chunk):
            tokens = slice(start, start + chunk)
            output[:, tokens] = self.update(
                hidden_states[:, tokens],
                position[:, tokens],
                reference_points[tokens],
                padded_value,
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
            y = torch.linspace(0.5, height - 0.5, height, dtype=torch.float32, device=device) / height
            x = torch.linspace(0.5, width - 0.5, width, dtype=torch.float32, device=device) / width
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


# --------------------------------------------------------------------------------------------------------------------
# The frozen VFM by reference: fingerprint, source, VFM-free folders
# --------------------------------------------------------------------------------------------------------------------

_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "proxies")
"""`from_pretrained` arguments that say how to reach the Hub; they apply to the VFM's source too (`revision` and
`subfolder` do not: they name the WEDepth repo's, and the VFM's revision is the recorded one)."""


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """ "sha256:<hex>" over a state dict, in name order: every name, dtype, shape and the raw bytes.

    The same weights give the same fingerprint on any machine and device; any change of a value, dtype or shape
    (including a cast) gives another one.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy())
    return f"sha256:{digest.hexdigest()}"


def vfm_fingerprint(vfm: nn.Module) -> str:
    """The `state_fingerprint` of a VFM's state dict: what `WEDepthConfig.vfm_fingerprint` records."""
    return state_fingerprint(vfm.state_dict())


def load_vfm_with_record(name_or_path: str, **hub_kwargs: Any) -> tuple[Dinov2Model, dict[str, str | None]]:
    """A DINOv2 checkpoint and the config fields that record where its weights come from: the Hub id (or the folder,
    made absolute), the commit the Hub revision resolved to (the model is loaded from that very commit), and the
    weights' fingerprint."""
    local = Path(name_or_path)
    commit = None
    if not local.is_dir():
        resolved = resolve_revision(
            name_or_path,
            hub_kwargs.get("revision"),
            token=hub_kwargs.get("token"),
            local_files_only=hub_kwargs.get("local_files_only", False),
            cache_dir=hub_kwargs.get("cache_dir"),
        )
        commit = getattr(resolved, "resolved", None) or (
            resolved if resolved is not None and re.fullmatch(r"[0-9a-f]{40}", resolved) else None
        )
    vfm = Dinov2Model.from_pretrained(name_or_path, **{**hub_kwargs, "revision": commit or hub_kwargs.get("revision")})
    record = {
        "vfm_pretrained_name_or_path": str(local.resolve()) if local.is_dir() else name_or_path,
        "vfm_revision": commit,
        "vfm_fingerprint": vfm_fingerprint(vfm),
    }
    return vfm, record


def check_vfm_attention(attention: str | None) -> None:
    """Raise unless the VFM's attention implementation is one the prompted stages are tested with (None: default)."""
    if attention is not None and attention not in _SUPPORTED_VFM_ATTENTION:
        raise ValueError(
            f"The prompted VFM stages are built and tested with {_SUPPORTED_VFM_ATTENTION} attention, not "
            f"{attention!r}; load with `attn_implementation='sdpa'` (the default) or 'eager'."
        )


def _describe_source(config: WEDepthConfig) -> str:
    revision = f" at revision {config.vfm_revision}" if config.vfm_revision else ""
    return f"{config.vfm_pretrained_name_or_path}{revision}"


def load_vfm_source(config: WEDepthConfig, **hub_kwargs: Any) -> Dinov2Model:
    """The frozen VFM a VFM-free WEDepth checkpoint refers to, loaded from its recorded source and revision (through
    the Hub cache like any `from_pretrained`) and checked against the recorded fingerprint."""
    if config.vfm_pretrained_name_or_path is None:
        raise ValueError("This WEDepth config records no VFM source; pass `vfm=` (a loaded Dinov2Model).")
    try:
        vfm = Dinov2Model.from_pretrained(
            config.vfm_pretrained_name_or_path,
            revision=config.vfm_revision,
            attn_implementation=config.vfm_config._attn_implementation,
            **{key: value for key, value in hub_kwargs.items() if key in _HUB_KWARGS},
        )
    except OSError as error:
        raise OSError(
            f"This WEDepth checkpoint does not include its frozen VFM; it needs {_describe_source(config)}, which "
            f"could not be loaded ({error}). Make it reachable (network access, the Hub cache, or the recorded "
            "folder), or pass an already-loaded model: from_pretrained(..., vfm=Dinov2Model.from_pretrained(...))."
        ) from error
    check_vfm(vfm, config)
    return vfm


def check_vfm(vfm: nn.Module, config: WEDepthConfig) -> None:
    """Raise unless `vfm` is a `Dinov2Model` whose weights have the fingerprint `config` records."""
    if not isinstance(vfm, Dinov2Model):
        raise TypeError(f"`vfm` must be a transformers Dinov2Model, got {type(vfm).__name__}.")
    if config.vfm_fingerprint is None:
        raise ValueError("This WEDepth config records no VFM fingerprint, so no VFM can be checked against it.")
    actual = vfm_fingerprint(vfm)
    if actual != config.vfm_fingerprint:
        raise ValueError(
            f"The VFM is not the one this WEDepth checkpoint was trained with ({_describe_source(config)}): its "
            f"weights' fingerprint is {actual}, the recorded one {config.vfm_fingerprint}. A different checkpoint, "
            "revision or dtype gives a different VFM; load the recorded one (in float32 as saved)."
        )


def _saved_weights(name_or_path: str | os.PathLike, hub_kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a `save_pretrained` folder (or Hub repo) holds: one safetensors file or its shards."""
    single = cached_file(name_or_path, SAFE_WEIGHTS_NAME, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    files = [single] if single is not None else []
    if not files:
        index = cached_file(name_or_path, SAFE_WEIGHTS_INDEX_NAME, **hub_kwargs)
        shards = sorted(set(json.loads(Path(index).read_text())["weight_map"].values()))
        files = [cached_file(name_or_path, shard, **hub_kwargs) for shard in shards]
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        weights.update(load_state_dict(file))
    return weights


_LOADING_LOGGER = "transformers.modeling_utils"
"""The logger of transformers' loading report (missing, unexpected and mismatched tensors)."""


@contextlib.contextmanager
def _held_log_records(name: str) -> Iterator[list[std_logging.LogRecord]]:
    """Hold back what the logger `name` logs inside the block: the records are collected in the yielded list, for the
    caller to emit (`_emit`) or to replace by an error that says what they would have."""
    records: list[std_logging.LogRecord] = []

    def hold(record: std_logging.LogRecord) -> bool:
        records.append(record)
        return False

    target = std_logging.getLogger(name)
    target.addFilter(hold)
    try:
        yield records
    finally:
        target.removeFilter(hold)


def _emit(records: list[std_logging.LogRecord]) -> None:
    """Log held records as they would have been logged."""
    for record in records:
        std_logging.getLogger(record.name).handle(record)


def _loading_problem(info: Mapping[str, Any], ignore_mismatched_sizes: bool) -> str | None:
    """What makes a loaded WEDepth model unusable, from transformers' loading info: tensors whose shapes do not fit
    the config (unless the caller asked to ignore that), and any frozen-VFM tensor the checkpoint did not provide,
    which would be randomly initialised. None when there is nothing."""
    mismatched = sorted((name, tuple(saved), tuple(expected)) for name, saved, expected in info["mismatched_keys"])
    if mismatched and not ignore_mismatched_sizes:
        name, saved, expected = mismatched[0]
        return (
            f"{len(mismatched)} tensor(s) of the checkpoint do not have the shapes its config gives the model (e.g. "
            f"{name}: {saved} in the checkpoint, {expected} in the model); its weights and config.json do not belong "
            "together."
        )
    absent = sorted(
        {key for key in info["missing_keys"] if key.startswith("vfm.")}
        | {name for name, _, _ in mismatched if name.startswith("vfm.")}
    )
    if absent:
        return (
            f"The checkpoint does not provide {len(absent)} of the frozen VFM's tensors (e.g. {absent[0]}), and the "
            "VFM is never initialised at random. A folder saved with include_vfm=False says so in its config.json "
            '("vfm_in_checkpoint": false) and gets its VFM from the recorded source; otherwise use a complete folder.'
        )
    return None


def _target_dtype(requested: Any) -> torch.dtype | None:
    """The dtype `from_pretrained(dtype=requested)` gives the weights: None for "auto" (the checkpoint's own) or a
    per-module dict (left to transformers), the default dtype for None."""
    if requested is None:
        return torch.get_default_dtype()
    if isinstance(requested, torch.dtype):
        return requested
    if isinstance(requested, str) and requested != "auto" and isinstance(getattr(torch, requested, None), torch.dtype):
        return getattr(torch, requested)
    return None


def _check_same_vfm(vfm: nn.Module, verified: Mapping[str, torch.Tensor]) -> None:
    """Raise unless every tensor of the loaded `vfm` equals the verified one of that name (cast to its dtype)."""
    for name, tensor in vfm.state_dict().items():
        reference = verified.get(name)
        if reference is None or not torch.equal(tensor, reference.to(tensor.device, tensor.dtype)):
            raise ValueError(f"The loaded VFM's tensor {name} is not the verified VFM's; nothing of it may differ.")


def set_layer_norm_eps(module: nn.Module, eps: float) -> None:
    """Give every `nn.LayerNorm` inside `module` the epsilon `eps`.

    transformers' Swin builds its patch-embedding, patch-merging and stage-output norms with PyTorch's default 1e-5
    and only its blocks' norms with `config.layer_norm_eps`; the authors' Swin uses 1e-6 in every norm.
    """
    for submodule in module.modules():
        if isinstance(submodule, nn.LayerNorm):
            submodule.eps = eps


class WEDepthForDepthEstimation(WEDepthPreTrainedModel):
    """WEDepth: metric depth from one image with a frozen DINOv2 as a multi-level feature enhancer.

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
        self.depth_heads = nn.ModuleList(WEDepthDepthHead(config) for _ in range(NUM_STAGES))
        self.post_init()
        self.freeze_vfm()

    # ---- frozen parts ---------------------------------------------------------------------------------------------

    def _unused_encoder_parameters(self) -> list[nn.Parameter]:
        """Encoder parameters its backbone forward never uses (Swin's final `swin.layernorm`).

        transformers lists them as the backbone's `_keys_to_ignore_on_load_missing`. Left trainable they would get
        weight decay for nothing and make distributed data parallel fail on unused parameters.
        """
        patterns = [re.compile(pattern) for pattern in (type(self.encoder)._keys_to_ignore_on_load_missing or [])]
        return [
            parameter
            for name, parameter in self.encoder.named_parameters()
            if any(pattern.search(name) for pattern in patterns)
        ]

    def freeze_vfm(self) -> None:
        """Set every VFM parameter (and the encoder's unused ones) to `requires_grad=False`, the VFM to eval mode."""
        self.vfm.requires_grad_(False)
        self.vfm.eval()
        for parameter in self._unused_encoder_parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> "WEDepthForDepthEstimation":
        """Like `nn.Module.train`, but the frozen VFM stays frozen and in eval mode (no dropout or drop-path)."""
        super().train(mode)
        self.freeze_vfm()
        return self

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike | None,
        *model_args: Any,
        vfm: Dinov2Model | None = None,
        **kwargs: Any,
    ) -> Any:
        """`PreTrainedModel.from_pretrained`, for self-contained and VFM-free checkpoints, with the frozen VFM verified,
        then frozen again (loading re-creates every parameter with `requires_grad=True`).

        A folder written with `save_pretrained(include_vfm=False)` holds every weight but the frozen VFM's; its
        config records the VFM's source, revision and fingerprint. The VFM is then loaded from that source, as any
        `from_pretrained` would (Hub cache, `local_files_only`, `token`, `cache_dir` apply), and checked against the
        fingerprint; an unreachable source or a mismatch raises, and nothing is re-initialised.

        Whatever the config says about where the VFM is, the VFM the model ends up with is checked: a checkpoint that
        does not provide every VFM tensor is an error (the VFM is never initialised at random), and where the config
        records a fingerprint, the loaded VFM must have it (checked on the checkpoint's own bytes, before the cast to
        `dtype`). A tensor whose shape does not fit the config is an error too (unless `ignore_mismatched_sizes`).

        Args:
            vfm: an already-loaded `Dinov2Model` to use as the frozen VFM, shared, not copied: after a fingerprint
                check it becomes this model's `vfm`, so several WEDepth models (e.g. NYU and KITTI) hold one set of
                VFM weights. It must be on the device and in the dtype the model is loaded to.
        """
        hub_kwargs = {key: kwargs[key] for key in (*_HUB_KWARGS, "revision", "subfolder") if key in kwargs}
        config = kwargs.get("config")
        # A config instance as it is (under remote code, Auto classes hold another copy of the config class).
        if not isinstance(config, PreTrainedConfig):
            config = WEDepthConfig.from_pretrained(
                config if config is not None else pretrained_model_name_or_path, **hub_kwargs
            )
        ignore_mismatched_sizes = kwargs.pop("ignore_mismatched_sizes", False)
        output_loading_info = kwargs.pop("output_loading_info", False)
        load = super().from_pretrained
        if config.vfm_in_checkpoint:
            requested = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
            target = _target_dtype(requested)
            # With a fingerprint to check, the checkpoint is loaded in its own dtype, checked, then cast as asked.
            cast_after_check = config.vfm_fingerprint is not None and target is not None
            arguments = (pretrained_model_name_or_path, *model_args)
            kwargs["dtype"] = "auto" if cast_after_check else requested
            verified_state = None
        else:
            if "state_dict" in kwargs:
                raise ValueError("A VFM-free checkpoint is loaded from its folder; `state_dict=` cannot be combined.")
            weights = _saved_weights(pretrained_model_name_or_path, hub_kwargs)
            if vfm is not None:
                check_vfm(vfm, config)
            source = vfm if vfm is not None else load_vfm_source(config, **hub_kwargs)
            verified_state = source.state_dict()
            weights.update({f"vfm.{name}": tensor for name, tensor in verified_state.items()})
            loading = {key: value for key, value in kwargs.items() if key not in hub_kwargs and key != "config"}
            config_overrides = {key: loading.pop(key) for key in list(loading) if key in WEDepthConfig.__annotations__}
            config = type(config).from_dict({**config.to_dict(), **config_overrides})
            arguments = (None, *model_args)
            kwargs = {**loading, "config": config, "state_dict": weights}
            cast_after_check = False
        # transformers' report of missing or mismatched tensors is held back while the problems it shows are turned
        # into one error; it is logged as usual when the model is loaded.
        records: list[std_logging.LogRecord] = []
        try:
            with _held_log_records(_LOADING_LOGGER) as records:
                model, info = load(*arguments, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
        except BaseException:
            _emit(records)
            raise
        problem = _loading_problem(info, ignore_mismatched_sizes)
        if problem is not None:
            raise ValueError(f"{pretrained_model_name_or_path}: {problem}")
        _emit(records)
        if verified_state is not None:
            _check_same_vfm(model.vfm, verified_state)
        elif config.vfm_fingerprint is not None:
            actual = vfm_fingerprint(model.vfm)
            if actual != config.vfm_fingerprint:
                source = f" ({_describe_source(config)})" if config.vfm_pretrained_name_or_path else ""
                raise ValueError(
                    f"{pretrained_model_name_or_path}: its frozen VFM is not the one its config records{source}: the "
                    f"weights' fingerprint is {actual}, the recorded one "
                    f"{config.vfm_fingerprint}. Its VFM tensors were changed, or saved after the VFM was modified or "
                    "cast; use the folder as it was saved."
                )
        if cast_after_check and model.dtype != target:
            model.to(target)
            model.config.dtype = target
        if not config.vfm_in_checkpoint:
            model.config._name_or_path = str(pretrained_model_name_or_path)
        if vfm is not None:
            model.attach_vfm(vfm, verified=not config.vfm_in_checkpoint)
        model.freeze_vfm()
        return (model, info) if output_loading_info else model

    def attach_vfm(self, vfm: Dinov2Model, verified: bool = False) -> None:
        """Use `vfm` (a loaded `Dinov2Model`, shared, not copied) as this model's frozen VFM.

        Its weights must equal the VFM this model holds (or, with `verified=True`, already passed `check_vfm`); it
        must be on this model's device and in its dtype.
        """
        if not isinstance(vfm, Dinov2Model):
            raise TypeError(f"`vfm` must be a transformers Dinov2Model, got {type(vfm).__name__}.")
        if not verified and vfm_fingerprint(vfm) != vfm_fingerprint(self.vfm):
            raise ValueError("The given `vfm` differs from the VFM stored in this checkpoint; it cannot replace it.")
        reference = (
            self.encoder.embeddings.patch_embeddings.projection.weight
            if hasattr(self.encoder, "embeddings")
            else next(self.encoder.parameters())
        )
        weight = vfm.embeddings.patch_embeddings.projection.weight
        if (weight.device, weight.dtype) != (reference.device, reference.dtype):
            raise ValueError(
                f"The shared VFM is on {weight.device} in {weight.dtype}, the model on {reference.device} in "
                f"{reference.dtype}; load both to the same device and dtype."
            )
        check_vfm_attention(vfm.config._attn_implementation)
        self.vfm = vfm
        self.freeze_vfm()

    def record_vfm_source(self, name_or_path: str, **hub_kwargs: Any) -> None:
        """Record that this model's VFM is the DINOv2 at `name_or_path` (Hub id or folder), after checking that its
        weights are exactly that checkpoint's, so that `save_pretrained(include_vfm=False)` can refer to it (e.g. for
        a model converted from the authors' code, whose VFM is `facebook/dinov2-large`)."""
        _, record = load_vfm_with_record(name_or_path, **hub_kwargs)
        if record["vfm_fingerprint"] != vfm_fingerprint(self.vfm):
            raise ValueError(f"This model's VFM is not {name_or_path}: their weights differ.")
        for key, value in record.items():
            setattr(self.config, key, value)

    def save_pretrained(
        self, save_directory: str | os.PathLike, *args: Any, include_vfm: bool = True, **kwargs: Any
    ) -> Any:
        """`PreTrainedModel.save_pretrained` (safetensors, config, remote code).

        With `include_vfm=False`, every weight but the frozen VFM's is written, and the config records the VFM's
        source, revision and fingerprint, which `from_pretrained` loads and checks: for DINOv2-L, 1.2 GB less per
        checkpoint. It needs a VFM whose source was recorded when its weights were loaded (`from_pretrained_backbones`,
        a VFM-free checkpoint, or `record_vfm_source`) and that still matches it.

        With the VFM included, `from_pretrained` checks it against the recorded fingerprint; a VFM that no longer has
        it (modified, or cast to another dtype) is saved with no fingerprint in the folder's config, and a warning.
        """
        if not include_vfm:
            if self.config.vfm_pretrained_name_or_path is None or self.config.vfm_fingerprint is None:
                raise ValueError(
                    "This model's VFM has no recorded source (it was not loaded by from_pretrained_backbones or from a "
                    "VFM-free checkpoint), so a VFM-free folder could not be loaded again: save with include_vfm=True, "
                    "or call model.record_vfm_source('facebook/dinov2-...') first."
                )
            if vfm_fingerprint(self.vfm) != self.config.vfm_fingerprint:
                raise ValueError(
                    f"This model's VFM no longer matches its recorded source ({_describe_source(self.config)}): it was "
                    f"modified or cast. Save with include_vfm=True."
                )
            state_dict = kwargs.pop("state_dict", None)
            state_dict = self.state_dict() if state_dict is None else state_dict
            kwargs["state_dict"] = {name: tensor for name, tensor in state_dict.items() if not name.startswith("vfm.")}
        previous = (self.config.vfm_in_checkpoint, self.config.vfm_fingerprint)
        if include_vfm and self.config.vfm_fingerprint is not None:
            given = kwargs.get("state_dict")
            saved = self.vfm.state_dict() if given is None else {k[4:]: v for k, v in given.items() if k[:4] == "vfm."}
            if state_fingerprint(saved) != self.config.vfm_fingerprint:
                logger.warning(
                    "The VFM saved to %s no longer has the fingerprint recorded for %s (it was modified or cast), so "
                    "the folder's config records none and loading it cannot check its VFM.",
                    save_directory,
                    _describe_source(self.config),
                )
                self.config.vfm_fingerprint = None
        self.config.vfm_in_checkpoint = include_vfm
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.config.vfm_in_checkpoint, self.config.vfm_fingerprint = previous

    @classmethod
    def from_pretrained_backbones(
        cls,
        config: WEDepthConfig | str = "large",
        vfm_name_or_path: str | None = None,
        encoder_name_or_path: str | None = None,
        **hub_kwargs: Any,
    ) -> "WEDepthForDepthEstimation":
        """A fresh model for training: pretrained VFM and encoder weights, new modules randomly initialised.

        Args:
            config: a `WEDepthConfig` or a preset name ("small", "base", "large"). Its VFM architecture, and its encoder
                architecture when the encoder comes from a transformers checkpoint, are replaced by those of the
                pretrained checkpoints; all other fields are kept, including the encoder's `drop_path_rate` and
                `layer_norm_eps` (the authors' Swin recipe, not the checkpoint's).
            vfm_name_or_path: Hub id or local folder of a DINOv2 checkpoint. Defaults to
                `config.vfm_pretrained_name_or_path`.
            encoder_name_or_path: Hub id or local folder of the encoder checkpoint (e.g. a Swin classification
                model), or a local `.pth`/`.pt`/`.bin`/`.safetensors` file with a Swin state dict in the Swin
                repository's or timm's layout (e.g. the authors' starting point `swin_base_patch4_window7_224.pth`).
                Such a file is read without running code and converted for `config.encoder_config`, whose
                architecture it must have (`wedepth_hf.conversion.load_swin_checkpoint`). Defaults to
                `config.encoder_pretrained_name_or_path`.
            hub_kwargs: passed to every `from_pretrained` call (`revision`, `token`, `cache_dir`, ...).
        """
        if isinstance(config, str):
            config = WEDepthConfig.from_preset(config)
        vfm_source = vfm_name_or_path or config.vfm_pretrained_name_or_path
        encoder_source = encoder_name_or_path or config.encoder_pretrained_name_or_path
        if not vfm_source or not encoder_source:
            raise ValueError(
                "Pass `vfm_name_or_path` and `encoder_name_or_path` (Hub ids or local folders), or a config that "
                "records them (`WEDepthConfig.from_preset(...)`)."
            )
        encoder_source = os.fspath(encoder_source)
        if not os.path.isfile(encoder_source) and encoder_source.endswith((".pth", ".pt", ".bin", ".safetensors")):
            raise FileNotFoundError(f"No encoder checkpoint file at {encoder_source}.")
        vfm, vfm_record = load_vfm_with_record(vfm_source, **hub_kwargs)
        if os.path.isfile(encoder_source):
            # A Swin-repository / timm state dict for the config's own Swin. Imported by name: a relative import
            # statement would make transformers ship conversion.py (and the package it needs) with the remote code.
            conversion = importlib.import_module(".conversion", __package__)
            encoder_config = copy.deepcopy(config.encoder_config)
            encoder_config.out_features = [name for name in encoder_config.stage_names if name != "stem"]
            encoder_state, _ = conversion.load_swin_checkpoint(encoder_source, encoder_config)
        else:
            encoder_config = AutoConfig.from_pretrained(encoder_source, **hub_kwargs)
            if type(encoder_config) not in MODEL_FOR_BACKBONE_MAPPING:
                raise ValueError(
                    f"{encoder_source} is a {type(encoder_config).__name__} checkpoint, which has no transformers "
                    "backbone; WEDepth's encoder must be a backbone with four stages (e.g. Swin, ConvNeXt, ResNet)."
                )
            encoder_config.out_features = [name for name in encoder_config.stage_names if name != "stem"]
            # The checkpoint gives the architecture; the training recipe (stochastic depth, LayerNorm eps) stays
            # WEDepth's.
            for recipe_key in ("drop_path_rate", "layer_norm_eps"):
                setattr(encoder_config, recipe_key, getattr(config.encoder_config, recipe_key))
            # The backbone class itself, not AutoBackbone.from_pretrained, which cannot read local folders.
            backbone_class = MODEL_FOR_BACKBONE_MAPPING[type(encoder_config)]
            encoder = backbone_class.from_pretrained(encoder_source, config=encoder_config, **hub_kwargs)
            encoder_config, encoder_state = encoder.config, encoder.state_dict()

        values = config.to_dict()
        for key in ("vfm_config", "encoder_config", "model_type", "transformers_version", "architectures", "auto_map"):
            values.pop(key, None)
        if vfm.config.num_hidden_layers != config.vfm_config.num_hidden_layers:
            values["vfm_stage_layers"] = None
        values.update(
            vfm_config=vfm.config.to_dict(),
            encoder_config=encoder_config.to_dict(),
            encoder_pretrained_name_or_path=encoder_source,
            **vfm_record,
        )
        model = cls(WEDepthConfig(**values))
        model.vfm.load_state_dict(vfm.state_dict(), strict=True)
        model.encoder.load_state_dict(encoder_state, strict=True)
        model.freeze_vfm()
        return model

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

    # ---- forward --------------------------------------------------------------------------------------------------

    def _check_inputs(self, pixel_values: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        if pixel_values.ndim != 4:
            raise ValueError(
                f"`pixel_values` must have shape (batch, 3, height, width), got {tuple(pixel_values.shape)}."
            )
        batch_size, channels, height, width = pixel_values.shape
        if channels != 3:
            raise ValueError(
                f"`pixel_values` must have 3 (RGB) channels, got {channels} (shape {tuple(pixel_values.shape)}). "
                f"Use WEDepthImageProcessor, which converts grayscale and RGBA images to RGB."
            )
        if batch_size == 0 or height == 0 or width == 0:
            raise ValueError(f"`pixel_values` is empty: shape {tuple(pixel_values.shape)}.")
        if self.training and batch_size * math.ceil(height / 32) * math.ceil(width / 32) < 2:
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

    @staticmethod
    def _check_output_size(output_size: Any, labels: torch.Tensor | None) -> tuple[int, int] | None:
        if output_size is None:
            return None
        size = tuple(output_size) if isinstance(output_size, (tuple, list, torch.Size)) else ()
        if len(size) != 2 or not all(isinstance(value, int) and value > 0 for value in size):
            raise ValueError(f"`output_size` must be (height, width), two positive integers; got {output_size!r}.")
        if labels is not None:
            raise ValueError("`output_size` cannot be combined with `labels`: the loss is computed at the input size.")
        return size

    def _encoder_maps(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's four normed stage maps; each must be about 1/4, 1/8, 1/16, 1/32 of the input."""
        feature_maps = list(self.encoder(pixel_values).feature_maps)
        height, width = pixel_values.shape[-2:]
        for stage, feature_map in enumerate(feature_maps):
            stride = 4 * 2**stage
            expected = [(size // stride, -(-size // stride)) for size in (height, width)]
            if not all(low <= got <= high for (low, high), got in zip(expected, feature_map.shape[-2:])):
                raise ValueError(
                    f"Encoder stage {stage + 1} must have stride {stride} (a {expected[0][1]}x{expected[1][1]} map for "
                    f"a {height}x{width} input), got {tuple(feature_map.shape[-2:])}. WEDepth needs an encoder with "
                    f"four stages at strides 4/8/16/32."
                )
        return feature_maps

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

    def _depth_from_heads(self, decoded: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """The four log-depth heads; their depths averaged at the finest head's size, then resized to `size`
        (bilinear, align_corners=True, as the authors): (B, H, W), in float32 at least."""
        log_depths = [head(feature_map) for head, feature_map in zip(self.depth_heads, decoded)]
        output_dtype = torch.promote_types(log_depths[-1].dtype, torch.float32)
        finest_size = log_depths[-1].shape[-2:]
        depth = torch.stack(
            [
                F.interpolate(log_depth.to(output_dtype).exp(), size=finest_size, mode="bilinear", align_corners=True)
                for log_depth in log_depths
            ]
        ).mean(dim=0)
        return F.interpolate(depth, size=size, mode="bilinear", align_corners=True)[:, 0]

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        output_size: tuple[int, int] | None = None,
        **kwargs: Any,
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

        Returns:
            `DepthEstimatorOutput` with `predicted_depth` of shape `(batch_size, height, width)` (or `output_size`):
            positive metric depth in metres, in float32 at least whatever the model's dtype; `loss`, the SILog loss,
            when labels are given.
        """
        labels = self._check_inputs(pixel_values, labels)
        output_size = self._check_output_size(output_size, labels)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not torch.is_autocast_enabled(pixel_values.device.type):
            pixel_values = pixel_values.to(self.encoder.dtype)
        height, width = pixel_values.shape[-2:]

        # Trainable encoder; its streams A (to be enhanced) and B (context for the prompts).
        stream_a, stream_b = self.stream_split(self._encoder_maps(pixel_values))
        # Frozen VFM, steered by prompts conditioned on stream B.
        output_prompts, vfm_map = self.prompted_vfm(self.vfm, self.vfm_input(pixel_values), stream_b)
        # Injection 1 (prompts) at each scale, then injection 2 (the VFM's patch tokens). Maps are released as soon as
        # they are used (in inference; autograd keeps what it needs): at stride 4 each is a large part of the memory.
        del stream_b
        enhanced = [
            injection(pixels, prompts)
            for injection, pixels, prompts in zip(self.prompt_injections, stream_a, output_prompts)
        ]
        del stream_a
        injected = self.feature_injection(enhanced, vfm_map)
        del enhanced
        decoded = self.pixel_decoder(injected)
        del injected

        predicted_depth = self._depth_from_heads(decoded, output_size or (height, width))
        loss = None
        if labels is not None:
            valid = torch.isfinite(labels) & (labels > self.config.min_depth)
            if self.config.max_depth is not None:
                valid = valid & (labels < self.config.max_depth)
            loss = silog_loss(predicted_depth, labels, valid, self.config.silog_lambda)

        if not return_dict:
            return (loss, predicted_depth) if loss is not None else (predicted_depth,)
        return DepthEstimatorOutput(loss=loss, predicted_depth=predicted_depth)


__all__ = ["WEDepthPreTrainedModel", "WEDepthForDepthEstimation"]
