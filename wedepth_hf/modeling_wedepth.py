"""PyTorch WEDepth model (arXiv 2511.08036).

A trainable hierarchical depth encoder (Swin in the paper) is enhanced by a frozen DINOv2 used as a multi-level
feature enhancer: learnable prompts, conditioned on the encoder's features by extraction blocks, are run through the
frozen VFM stage by stage; the VFM's output prompts (injection 1) and its patch tokens (injection 2) are injected into
the encoder's maps; a multi-scale deformable-attention pixel decoder and four log-depth heads give metric depth.

The frozen VFM is a plain `Dinov2Model` (attribute `vfm`) whose structure and weights are never modified: this module
only calls its embeddings, layers and final norm. This file imports only torch, transformers and its sibling
configuration file (it travels to the Hub as remote code).
"""

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoBackbone, AutoConfig, Dinov2Model, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import DepthEstimatorOutput
from transformers.models.auto.modeling_auto import MODEL_FOR_BACKBONE_MAPPING
from transformers.utils import logging

from .configuration_wedepth import NUM_STAGES, WEDepthConfig


logger = logging.get_logger(__name__)

_SUPPORTED_VFM_ATTENTION = ("sdpa", "eager")


# --------------------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------------------


def sine_position_encoding(
    height: int, width: int, num_channels: int, device: torch.device, dtype: torch.dtype, temperature: float = 1e4
) -> torch.Tensor:
    """2-D sine position encoding of a (height, width) grid, as (height * width, num_channels).

    Coordinates are normalised to (0, 2*pi] so the encoding means "relative position in the image" at every scale.
    Half the channels encode y, half x; each half alternates sin and cos over geometric frequencies.
    """
    half = num_channels // 2
    exponents = torch.arange(half, device=device, dtype=torch.float32)
    frequencies = temperature ** (2 * torch.div(exponents, 2, rounding_mode="floor") / half)
    y = (torch.arange(height, device=device, dtype=torch.float32) + 1) / height * (2 * math.pi)
    x = (torch.arange(width, device=device, dtype=torch.float32) + 1) / width * (2 * math.pi)
    pos_y = y[:, None] / frequencies
    pos_x = x[:, None] / frequencies
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    encoding = torch.cat(
        (pos_y[:, None, :].expand(height, width, half), pos_x[None, :, :].expand(height, width, half)), dim=2
    )
    return encoding.reshape(height * width, num_channels).to(dtype)


class WEDepthAttention(nn.Module):
    """Multi-head attention through `scaled_dot_product_attention`; queries and keys/values may differ."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.o_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        batch_size, query_length, hidden_size = query.shape
        key_length = key.shape[1]
        q = self.q_proj(query).view(batch_size, query_length, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(key).view(batch_size, key_length, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(value).view(batch_size, key_length, self.num_heads, self.head_dim).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v)
        attended = attended.transpose(1, 2).reshape(batch_size, query_length, hidden_size)
        return self.o_proj(attended)


class WEDepthPromptSelfAttention(nn.Module):
    """Pre-norm residual self-attention among prompt tokens."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(config.prompt_dim, eps=config.layer_norm_eps)
        self.attention = WEDepthAttention(config.prompt_dim, config.prompt_attention_heads)

    def forward(self, prompts: torch.Tensor) -> torch.Tensor:
        normed = self.norm(prompts)
        return prompts + self.attention(normed, normed, normed)


class WEDepthMLP(nn.Module):
    """Two-layer GELU MLP."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


def flatten_map(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return feature_map.flatten(2).transpose(1, 2)


def unflatten_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)


# --------------------------------------------------------------------------------------------------------------------
# Encoder streams
# --------------------------------------------------------------------------------------------------------------------


class WEDepthStreamProjection(nn.Module):
    """Projects one encoder stage to width D and splits it into stream A (to be enhanced) and stream B (context)."""

    def __init__(self, in_channels: int, config: WEDepthConfig) -> None:
        super().__init__()
        self.projection = nn.Conv2d(in_channels, 2 * config.prompt_dim, kernel_size=1)

    def forward(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stream_a, stream_b = self.projection(feature_map).chunk(2, dim=1)
        return stream_a, stream_b


# --------------------------------------------------------------------------------------------------------------------
# VFM branch: extraction blocks and prompted VFM stages
# --------------------------------------------------------------------------------------------------------------------


class WEDepthExtractionLayer(nn.Module):
    """One extraction iteration: prompts cross-attend to a stream-B map (gated residual), then self-attend."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        self.prompt_norm = nn.LayerNorm(config.prompt_dim, eps=config.layer_norm_eps)
        self.context_norm = nn.LayerNorm(config.prompt_dim, eps=config.layer_norm_eps)
        self.cross_attention = WEDepthAttention(config.prompt_dim, config.prompt_attention_heads)
        self.gamma = nn.Parameter(torch.ones(config.prompt_dim))
        self.self_attention = WEDepthPromptSelfAttention(config)

    def forward(self, prompts: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        queries = self.prompt_norm(prompts)
        context = self.context_norm(context)
        prompts = prompts + self.gamma * self.cross_attention(queries, context, context)
        return self.self_attention(prompts)


class WEDepthExtractionBlock(nn.Module):
    """Conditions a stage's prompts on the encoder (stream B) and lifts them from width D to the VFM's width."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        vfm_width = config.vfm_config.hidden_size
        self.layers = nn.ModuleList(WEDepthExtractionLayer(config) for _ in range(config.extraction_depth))
        self.lift_norm = nn.LayerNorm(config.prompt_dim, eps=config.layer_norm_eps)
        self.lift = WEDepthMLP(config.prompt_dim, vfm_width, vfm_width)

    def forward(self, prompts: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            prompts = layer(prompts, context)
        return self.lift(self.lift_norm(prompts))


class WEDepthPromptedVFMStages(nn.Module):
    """Runs the frozen VFM in four stages, each with its own prompts prepended under a prompt-to-prompt mask.

    Stage i owns `prompt_num` learnable tokens of width D, used through the real part of their 2-D FFT over
    (token, channel). Before the stage, an extraction block conditions them on stream-B map i and lifts them to the
    VFM width; they are prepended to the token sequence and pass through the stage's frozen layers under a mask that
    blocks prompt->prompt attention, so the prompts steer the VFM's activations without touching a weight. After the
    stage the output prompts are projected back to D (returned for injection 1, and added to the next stage's
    prompts); the last stage's normalised patch tokens are projected to D (returned for injection 2).
    """

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        vfm_width = config.vfm_config.hidden_size
        self.prompt_num = config.prompt_num
        self.stage_layers = list(config.vfm_stage_layers)
        self.prompt_embeddings = nn.Parameter(torch.zeros(NUM_STAGES, config.prompt_num, config.prompt_dim))
        self.extraction_blocks = nn.ModuleList(WEDepthExtractionBlock(config) for _ in range(NUM_STAGES))
        self.prompt_output_norms = nn.ModuleList(
            nn.LayerNorm(vfm_width, eps=config.layer_norm_eps) for _ in range(NUM_STAGES)
        )
        self.prompt_output_projections = nn.ModuleList(nn.Linear(vfm_width, config.prompt_dim) for _ in range(NUM_STAGES))
        self.patch_projection = nn.Linear(vfm_width, config.prompt_dim)
        self.gradient_checkpointing = False

    def stage_prompts(self) -> torch.Tensor:
        """The four stages' initial prompts: real part of the 2-D FFT of the learnable tokens, (4, P, D)."""
        # FFT kernels exist for float32/64 only; the result is cast back to the parameter's dtype.
        return torch.fft.fft2(self.prompt_embeddings.float()).real.to(self.prompt_embeddings.dtype)

    def prompt_mask(self, num_tokens: int, reference: torch.Tensor) -> torch.Tensor:
        """Additive attention mask (1, 1, T, T) over [prompts; image tokens] that blocks prompt->prompt attention.

        Additive (0 where allowed, the dtype's minimum where blocked) for both eager and SDPA attention: one mask
        serves both, and on CPU SDPA's fused kernel runs it about 10% faster than a boolean mask. It is built in the
        attention's compute dtype, which is the autocast dtype when autocast is on. No row is fully blocked (every
        token may attend to the image tokens), so the softmax stays finite.
        """
        device_type = reference.device.type
        dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else reference.dtype
        total = self.prompt_num + num_tokens
        mask = torch.zeros(1, 1, total, total, dtype=dtype, device=reference.device)
        mask[:, :, : self.prompt_num, : self.prompt_num] = torch.finfo(dtype).min
        return mask

    def run_stage(
        self, vfm: Dinov2Model, layers: list[nn.Module], prompts: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """One VFM stage over [prompts; tokens]."""
        hidden_states = torch.cat((prompts, tokens), dim=1)
        for layer in layers:
            hidden_states = layer(hidden_states, mask)
        return hidden_states

    def forward(
        self, vfm: Dinov2Model, vfm_pixel_values: torch.Tensor, context_maps: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Returns the four stages' output prompts (B, P, D) and the last stage's patch map (B, D, h, w)."""
        batch_size = vfm_pixel_values.shape[0]
        patch_size = vfm.config.patch_size
        grid = (vfm_pixel_values.shape[2] // patch_size, vfm_pixel_values.shape[3] // patch_size)
        tokens = vfm.embeddings(vfm_pixel_values)
        mask = self.prompt_mask(tokens.shape[1], tokens)
        initial_prompts = self.stage_prompts()
        stage_starts = [0] + [end + 1 for end in self.stage_layers[:-1]]

        output_prompts: list[torch.Tensor] = []
        carried: torch.Tensor | None = None
        for stage in range(NUM_STAGES):
            prompts = initial_prompts[stage].unsqueeze(0).expand(batch_size, -1, -1)
            if carried is not None:
                prompts = prompts + carried
            lifted = self.extraction_blocks[stage](prompts, flatten_map(context_maps[stage])).to(tokens.dtype)
            layers = list(vfm.encoder.layer[stage_starts[stage] : self.stage_layers[stage] + 1])
            if self.gradient_checkpointing and torch.is_grad_enabled():
                hidden_states = self._gradient_checkpointing_func(self.run_stage, vfm, layers, lifted, tokens, mask)
            else:
                hidden_states = self.run_stage(vfm, layers, lifted, tokens, mask)
            tokens = hidden_states[:, self.prompt_num :]
            carried = self.prompt_output_projections[stage](
                self.prompt_output_norms[stage](hidden_states[:, : self.prompt_num])
            )
            output_prompts.append(carried)

        patch_tokens = vfm.layernorm(tokens)[:, 1:]
        patch_map = unflatten_map(self.patch_projection(patch_tokens), *grid)
        return output_prompts, patch_map


# --------------------------------------------------------------------------------------------------------------------
# Injections
# --------------------------------------------------------------------------------------------------------------------


class WEDepthPromptInjectionLayer(nn.Module):
    """Pixels (plus position encoding) cross-attend to prompts, then an MLP; both residual."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        width = config.prompt_dim
        self.pixel_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.prompt_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.cross_attention = WEDepthAttention(width, config.prompt_attention_heads)
        self.mlp_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.mlp = WEDepthMLP(width, int(width * config.injection_mlp_ratio), width)

    def forward(self, pixels: torch.Tensor, position: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        prompts = self.prompt_norm(prompts)
        pixels = pixels + self.cross_attention(self.pixel_norm(pixels) + position, prompts, prompts)
        return pixels + self.mlp(self.mlp_norm(pixels))


class WEDepthPromptInjection(nn.Module):
    """Injection 1 at one scale: the stage's output prompts (after one self-attention) enhance stream-A pixels."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        self.prompt_self_attention = WEDepthPromptSelfAttention(config)
        self.layers = nn.ModuleList(WEDepthPromptInjectionLayer(config) for _ in range(config.injection_depth))

    def forward(self, stream_a: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        _, channels, height, width = stream_a.shape
        prompts = self.prompt_self_attention(prompts)
        position = sine_position_encoding(height, width, channels, stream_a.device, stream_a.dtype)
        pixels = flatten_map(stream_a)
        for layer in self.layers:
            pixels = layer(pixels, position, prompts)
        return unflatten_map(pixels, height, width)


class WEDepthFeatureInjection(nn.Module):
    """Injection 2 at one scale: resized VFM patch map -> 1x1 conv, depthwise 3x3 conv, BN, ReLU -> added to pixels."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        width = config.prompt_dim
        self.pointwise = nn.Conv2d(width, width, kernel_size=1)
        self.depthwise = nn.Conv2d(width, width, kernel_size=3, padding=1, groups=width)
        self.norm = nn.BatchNorm2d(width)
        self.act = nn.ReLU()

    def forward(self, pixels: torch.Tensor, vfm_map: torch.Tensor, image_extent: tuple[int, int]) -> torch.Tensor:
        """`image_extent`: rows/cols of `pixels` that cover the image (the rest is encoder padding, left at zero)."""
        height, width = pixels.shape[-2:]
        resized = F.interpolate(vfm_map, size=image_extent, mode="bilinear", align_corners=False)
        resized = F.pad(resized, (0, width - image_extent[1], 0, height - image_extent[0]))
        return pixels + self.act(self.norm(self.depthwise(self.pointwise(resized))))


# --------------------------------------------------------------------------------------------------------------------
# Deformable pixel decoder
# --------------------------------------------------------------------------------------------------------------------


def multi_scale_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention in plain PyTorch (bilinear `grid_sample`, any device and dtype).

    Args:
        value: (B, S, heads, head_dim), the levels' tokens concatenated, S = sum(h * w).
        spatial_shapes: (h, w) of each level, in the order of `value`.
        sampling_locations: (B, Q, heads, levels, points, 2), (x, y) normalised to [0, 1].
        attention_weights: (B, Q, heads, levels, points), softmax-normalised over levels * points.

    Returns:
        (B, Q, heads * head_dim).
    """
    batch_size, _, num_heads, head_dim = value.shape
    _, num_queries, _, _, num_points, _ = sampling_locations.shape
    value_levels = value.split([height * width for height, width in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1
    output = None
    for level, (height, width) in enumerate(spatial_shapes):
        level_value = value_levels[level].flatten(2).transpose(1, 2)
        level_value = level_value.reshape(batch_size * num_heads, head_dim, height, width)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled = F.grid_sample(level_value, level_grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        level_weights = attention_weights[:, :, :, level].transpose(1, 2).reshape(
            batch_size * num_heads, 1, num_queries, num_points
        )
        contribution = (sampled * level_weights).sum(dim=-1)
        output = contribution if output is None else output + contribution
    return output.view(batch_size, num_heads * head_dim, num_queries).transpose(1, 2)


class WEDepthSamplingOffsets(nn.Linear):
    """Predicts each query's sampling offsets; initialised to rings of points around the reference point."""

    def __init__(self, hidden_size: int, num_heads: int, num_levels: int, num_points: int) -> None:
        super().__init__(hidden_size, num_heads * num_levels * num_points * 2)
        self.num_heads, self.num_levels, self.num_points = num_heads, num_levels, num_points


class WEDepthSamplingWeights(nn.Linear):
    """Predicts each query's attention weights over its sampling points; initialised to uniform weights."""


class WEDepthMultiScaleDeformableAttention(nn.Module):
    """Each query attends to a few learned sampling points around its reference point on every level."""

    def __init__(self, hidden_size: int, num_heads: int, num_levels: int, num_points: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.sampling_offsets = WEDepthSamplingOffsets(hidden_size, num_heads, num_levels, num_points)
        self.attention_weights = WEDepthSamplingWeights(hidden_size, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(hidden_size, hidden_size)
        self.output_proj = nn.Linear(hidden_size, hidden_size)

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
        batch_size, num_queries, hidden_size = queries.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        value = self.value_proj(values).view(batch_size, values.shape[1], heads, hidden_size // heads)
        offsets = self.sampling_offsets(queries).view(batch_size, num_queries, heads, levels, points, 2)
        weights = self.attention_weights(queries).view(batch_size, num_queries, heads, levels * points)
        weights = weights.softmax(dim=-1).view(batch_size, num_queries, heads, levels, points)
        locations = reference_points[None, :, None, None, None, :].to(offsets.dtype) + offsets / level_sizes[
            None, None, None, :, None, :
        ].to(offsets.dtype)
        attended = multi_scale_deformable_attention(value, spatial_shapes, locations, weights)
        return self.output_proj(attended)


class WEDepthDeformableEncoderLayer(nn.Module):
    """Post-norm deformable self-attention over all levels, then a feed-forward block."""

    def __init__(self, config: WEDepthConfig, num_levels: int) -> None:
        super().__init__()
        hidden = config.decoder_hidden_size
        self.self_attention = WEDepthMultiScaleDeformableAttention(
            hidden, config.decoder_attention_heads, num_levels, config.decoder_sampling_points
        )
        self.attention_norm = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, config.decoder_ffn_dim), nn.ReLU(), nn.Linear(config.decoder_ffn_dim, hidden))
        self.ffn_norm = nn.LayerNorm(hidden)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        level_sizes: torch.Tensor,
    ) -> torch.Tensor:
        attended = self.self_attention(
            hidden_states + position, reference_points, hidden_states, spatial_shapes, level_sizes
        )
        hidden_states = self.attention_norm(hidden_states + attended)
        return self.ffn_norm(hidden_states + self.ffn(hidden_states))


def _group_norm(num_channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, num_channels), num_channels)


class WEDepthDeformablePixelDecoder(nn.Module):
    """Multi-scale deformable-attention pixel decoder with an FPN (Mask2Former / iDisc style).

    The three coarsest maps (strides 8/16/32) are refined jointly by deformable-attention layers; an FPN step adds
    the stride-4 map. Returns four maps of width `decoder_hidden_size`, finest first.
    """

    num_attention_levels = NUM_STAGES - 1

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        hidden = config.decoder_hidden_size
        self.input_projections = nn.ModuleList(
            nn.Sequential(nn.Conv2d(config.prompt_dim, hidden, kernel_size=1), _group_norm(hidden))
            for _ in range(self.num_attention_levels)
        )
        self.level_embeddings = nn.Parameter(torch.zeros(self.num_attention_levels, hidden))
        self.layers = nn.ModuleList(
            WEDepthDeformableEncoderLayer(config, self.num_attention_levels) for _ in range(config.decoder_layers)
        )
        self.lateral_projection = nn.Sequential(nn.Conv2d(config.prompt_dim, hidden, kernel_size=1), _group_norm(hidden))
        self.fpn_output = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, bias=False), _group_norm(hidden), nn.ReLU()
        )

    @staticmethod
    def reference_points(spatial_shapes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
        """Normalised (x, y) centre of every token of every level, (sum(h * w), 2)."""
        points = []
        for height, width in spatial_shapes:
            y = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
            x = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
            grid_y, grid_x = torch.meshgrid(y, x, indexing="ij")
            points.append(torch.stack((grid_x.flatten(), grid_y.flatten()), dim=-1))
        return torch.cat(points, dim=0)

    def forward(self, feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        # Coarsest level first: stride 32, 16, 8.
        attention_maps = [
            projection(feature_map)
            for projection, feature_map in zip(self.input_projections, feature_maps[:0:-1])
        ]
        spatial_shapes = [(m.shape[2], m.shape[3]) for m in attention_maps]
        channels = attention_maps[0].shape[1]
        tokens = torch.cat([flatten_map(m) for m in attention_maps], dim=1)
        position = torch.cat(
            [
                sine_position_encoding(height, width, channels, tokens.device, tokens.dtype) + self.level_embeddings[level]
                for level, (height, width) in enumerate(spatial_shapes)
            ],
            dim=0,
        ).unsqueeze(0)
        reference_points = self.reference_points(spatial_shapes, tokens.device)
        # (width, height) per level, written by device-side fills: `torch.tensor(list, device=...)` would be a
        # host-to-device copy, which synchronises.
        level_sizes = torch.empty(len(spatial_shapes), 2, dtype=torch.float32, device=tokens.device)
        for level, (height, width) in enumerate(spatial_shapes):
            level_sizes[level, 0], level_sizes[level, 1] = width, height
        for layer in self.layers:
            tokens = layer(tokens, position, reference_points, spatial_shapes, level_sizes)
        refined = [
            unflatten_map(level_tokens, height, width)
            for level_tokens, (height, width) in zip(
                tokens.split([height * width for height, width in spatial_shapes], dim=1), spatial_shapes
            )
        ]
        finest = self.lateral_projection(feature_maps[0])
        finest = finest + F.interpolate(refined[-1], size=finest.shape[-2:], mode="bilinear", align_corners=False)
        finest = self.fpn_output(finest)
        return [finest, *refined[::-1]]


class WEDepthLogDepthOutput(nn.Conv2d):
    """The 1x1 convolution that outputs log-depth; initialised small so a fresh model predicts about 1 m everywhere."""

    def __init__(self, in_channels: int) -> None:
        super().__init__(in_channels, 1, kernel_size=1)


class WEDepthDepthHead(nn.Module):
    """One scale's head: BN, conv, 2x transposed conv, conv, BN, 1x1 conv -> log-depth at twice the map's size."""

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__()
        hidden, width = config.decoder_hidden_size, config.head_hidden_size
        self.layers = nn.Sequential(
            nn.BatchNorm2d(hidden),
            nn.Conv2d(hidden, width, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, width, kernel_size=2, stride=2),
            nn.ReLU(),
            nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            WEDepthLogDepthOutput(width),
        )

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.layers(feature_map)


# --------------------------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------------------------


def silog_loss(
    predicted_depth: torch.Tensor, labels: torch.Tensor, valid_mask: torch.Tensor, variance_focus: float
) -> torch.Tensor:
    """Scale-invariant log loss sqrt(mean(d^2) - lambda * mean(d)^2), d = log(pred) - log(gt), over valid pixels.

    Computed in float32 over all valid pixels of the batch. Without a valid pixel the loss is an exact zero that
    still belongs to the graph (its gradient is zero, never NaN).
    """
    count = valid_mask.sum().float()
    # Invalid pixels become log(1) - log(1) = 0, so they add nothing to either sum.
    safe_prediction = torch.where(valid_mask, predicted_depth.float(), torch.ones_like(predicted_depth, dtype=torch.float32))
    safe_labels = torch.where(valid_mask, labels.float(), torch.ones_like(labels, dtype=torch.float32))
    difference = safe_prediction.log() - safe_labels.log()
    denominator = count.clamp(min=1.0)
    mean_square = difference.square().sum() / denominator
    mean = difference.sum() / denominator
    variance = (mean_square - variance_focus * mean.square()).clamp(min=0.0)
    return torch.sqrt(variance + 1e-12) * (count > 0).float()


# --------------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------------


class WEDepthPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading behaviour shared by WEDepth models."""

    config: WEDepthConfig
    config_class = WEDepthConfig
    base_model_prefix = "wedepth"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["Dinov2Layer"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        # transformers skips modules without parameters of their own, so each special init sits on the parameter's
        # own module.
        if isinstance(module, WEDepthSamplingOffsets):
            init.zeros_(module.weight)
            thetas = torch.arange(module.num_heads, dtype=torch.float32) * (2.0 * math.pi / module.num_heads)
            directions = torch.stack((thetas.cos(), thetas.sin()), dim=-1)
            directions = directions / directions.abs().max(dim=-1, keepdim=True).values
            directions = directions[:, None, None, :].repeat(1, module.num_levels, module.num_points, 1)
            directions = directions * torch.arange(1, module.num_points + 1, dtype=torch.float32)[None, None, :, None]
            init.copy_(module.bias, directions.flatten())
        elif isinstance(module, WEDepthSamplingWeights):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, WEDepthLogDepthOutput):
            init.trunc_normal_(module.weight, std=std)
            init.zeros_(module.bias)
        elif isinstance(module, WEDepthPromptedVFMStages):
            init.trunc_normal_(module.prompt_embeddings, std=std)
        elif isinstance(module, WEDepthExtractionLayer):
            init.ones_(module.gamma)
        elif isinstance(module, WEDepthDeformablePixelDecoder):
            init.normal_(module.level_embeddings, std=1.0)
        elif isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)):
            super()._init_weights(module)


class WEDepthForDepthEstimation(WEDepthPreTrainedModel):
    """WEDepth: metric depth from one image with a frozen DINOv2 as a multi-level feature enhancer.

    Attributes:
        encoder: the trainable depth encoder (a transformers backbone, Swin in the paper).
        vfm: the frozen VFM, a plain `Dinov2Model`, never modified: `requires_grad=False` and eval mode always.
        stream_projections: per scale, the projection to width D and the split into streams A and B.
        prompted_vfm: prompts, extraction blocks and the staged pass of the frozen VFM.
        prompt_injections: injection 1 (VFM output prompts -> stream-A pixels), one per scale.
        feature_injections: injection 2 (VFM patch tokens -> enhanced maps), one per scale.
        pixel_decoder: the multi-scale deformable-attention pixel decoder with its FPN.
        depth_heads: four log-depth heads, averaged after exponentiation.
    """

    def __init__(self, config: WEDepthConfig) -> None:
        super().__init__(config)
        attention = config.vfm_config._attn_implementation
        if attention is not None and attention not in _SUPPORTED_VFM_ATTENTION:
            raise ValueError(
                f"The VFM runs with a prompt mask, which {attention!r} attention cannot take; use one of "
                f"{_SUPPORTED_VFM_ATTENTION} (`attn_implementation='sdpa'`)."
            )
        self.encoder = AutoBackbone.from_config(config.encoder_config)
        self.vfm = Dinov2Model(config.vfm_config)
        self.stream_projections = nn.ModuleList(
            WEDepthStreamProjection(channels, config) for channels in self.encoder.channels
        )
        self.prompted_vfm = WEDepthPromptedVFMStages(config)
        self.prompt_injections = nn.ModuleList(WEDepthPromptInjection(config) for _ in range(NUM_STAGES))
        self.feature_injections = nn.ModuleList(WEDepthFeatureInjection(config) for _ in range(NUM_STAGES))
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
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """`PreTrainedModel.from_pretrained`, then freeze the VFM again (loading re-creates every parameter with
        `requires_grad=True`)."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.freeze_vfm()
        return loaded

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
            config: a `WEDepthConfig` or a preset name ("small", "base", "large"). Its VFM and encoder architectures
                are replaced by those of the pretrained checkpoints; all other fields are kept.
            vfm_name_or_path: Hub id or local folder of a DINOv2 checkpoint. Defaults to
                `config.vfm_pretrained_name_or_path`.
            encoder_name_or_path: Hub id or local folder of the encoder checkpoint (e.g. a Swin classification
                model). Defaults to `config.encoder_pretrained_name_or_path`.
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
        vfm = Dinov2Model.from_pretrained(vfm_source, **hub_kwargs)
        encoder_config = AutoConfig.from_pretrained(encoder_source, **hub_kwargs)
        if type(encoder_config) not in MODEL_FOR_BACKBONE_MAPPING:
            raise ValueError(
                f"{encoder_source} is a {type(encoder_config).__name__} checkpoint, which has no transformers backbone; "
                f"WEDepth's encoder must be a backbone with four stages (e.g. Swin, ConvNeXt, ResNet)."
            )
        encoder_config.out_features = [name for name in encoder_config.stage_names if name != "stem"]
        # The backbone class itself, not AutoBackbone.from_pretrained, which cannot read local folders.
        backbone_class = MODEL_FOR_BACKBONE_MAPPING[type(encoder_config)]
        encoder = backbone_class.from_pretrained(encoder_source, config=encoder_config, **hub_kwargs)

        values = config.to_dict()
        for key in ("vfm_config", "encoder_config", "model_type", "transformers_version", "architectures", "auto_map"):
            values.pop(key, None)
        if vfm.config.num_hidden_layers != config.vfm_config.num_hidden_layers:
            values["vfm_stage_layers"] = None
        values.update(
            vfm_config=vfm.config.to_dict(),
            encoder_config=encoder.config.to_dict(),
            vfm_pretrained_name_or_path=vfm_source,
            encoder_pretrained_name_or_path=encoder_source,
        )
        model = cls(WEDepthConfig(**values))
        model.vfm.load_state_dict(vfm.state_dict(), strict=True)
        model.encoder.load_state_dict(encoder.state_dict(), strict=True)
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

    def _encoder_maps(self, padded: torch.Tensor) -> list[torch.Tensor]:
        feature_maps = list(self.encoder(padded).feature_maps)
        height, width = padded.shape[-2:]
        for stage, feature_map in enumerate(feature_maps):
            stride = 4 * 2**stage
            if tuple(feature_map.shape[-2:]) != (height // stride, width // stride):
                raise ValueError(
                    f"Encoder stage {stage + 1} must have stride {stride} (a {height // stride}x{width // stride} map "
                    f"for a {height}x{width} input), got {tuple(feature_map.shape[-2:])}. WEDepth needs an encoder "
                    f"with four stages at strides 4/8/16/32."
                )
        return feature_maps

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> DepthEstimatorOutput | tuple[torch.Tensor, ...]:
        r"""
        Args:
            pixel_values (`torch.Tensor` of shape `(batch_size, 3, height, width)`):
                ImageNet-normalised images (see `WEDepthImageProcessor`), any height and width.
            labels (`torch.Tensor` of shape `(batch_size, height, width)` or `(batch_size, 1, height, width)`):
                Ground-truth depth in metres. Pixels outside (min_depth, max_depth) are ignored by the loss.

        Returns:
            `DepthEstimatorOutput` with `predicted_depth` of shape `(batch_size, height, width)`: positive metric depth
            in metres at the input's size, in float32 whatever the model's dtype; `loss`, the SILog loss, when labels
            are given.
        """
        labels = self._check_inputs(pixel_values, labels)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not torch.is_autocast_enabled(pixel_values.device.type):
            pixel_values = pixel_values.to(self.encoder.dtype)
        height, width = pixel_values.shape[-2:]

        # Trainable encoder on the input padded to a multiple of 32; its streams A (enhanced) and B (context).
        padded_height, padded_width = math.ceil(height / 32) * 32, math.ceil(width / 32) * 32
        padded = F.pad(pixel_values, (0, padded_width - width, 0, padded_height - height))
        streams = [
            projection(feature_map)
            for projection, feature_map in zip(self.stream_projections, self._encoder_maps(padded))
        ]

        # Frozen VFM on the input resized to a multiple of its patch size, steered by prompts.
        patch_size = self.config.vfm_config.patch_size
        vfm_size = (max(patch_size, height // patch_size * patch_size), max(patch_size, width // patch_size * patch_size))
        vfm_pixels = F.interpolate(pixel_values, size=vfm_size, mode="bilinear", align_corners=False)
        output_prompts, vfm_map = self.prompted_vfm(self.vfm, vfm_pixels, [stream_b for _, stream_b in streams])

        # Injections 1 and 2 into stream A at each scale.
        enhanced = []
        for stage, (stream_a, _) in enumerate(streams):
            stride = 4 * 2**stage
            extent = (math.ceil(height / stride), math.ceil(width / stride))
            pixels = self.prompt_injections[stage](stream_a, output_prompts[stage])
            enhanced.append(self.feature_injections[stage](pixels, vfm_map, extent))

        # Deformable pixel decoder, four log-depth heads; depths averaged at the finest head's size.
        decoded = self.pixel_decoder(enhanced)
        log_depths = [head(feature_map) for head, feature_map in zip(self.depth_heads, decoded)]
        finest_size = log_depths[0].shape[-2:]
        depth = torch.stack(
            [
                F.interpolate(log_depth.float().exp(), size=finest_size, mode="bilinear", align_corners=False)
                for log_depth in log_depths
            ]
        ).mean(dim=0)
        depth = F.interpolate(depth, size=(padded_height, padded_width), mode="bilinear", align_corners=False)
        predicted_depth = depth[:, 0, :height, :width]

        loss = None
        if labels is not None:
            valid = (labels > self.config.min_depth) & (labels < self.config.max_depth)
            loss = silog_loss(predicted_depth, labels, valid, self.config.silog_lambda)

        if not return_dict:
            return (loss, predicted_depth) if loss is not None else (predicted_depth,)
        return DepthEstimatorOutput(loss=loss, predicted_depth=predicted_depth)


__all__ = ["WEDepthPreTrainedModel", "WEDepthForDepthEstimation"]
