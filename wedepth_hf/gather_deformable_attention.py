"""Multi-scale deformable attention as one weighted gather with a backward made for it (WEDepth's fast path).

`WEDepthConfig.deformable_attention_implementation = "gather"` selects it; the readable `grid_sample` form it computes
the same as (values and gradients) is `grid_sample_deformable_attention` in `modeling_wedepth.py`. Each sample's four
bilinear corners are read from a table of the value maps framed by zeros, with the corner weights times the attention
weight as per-row weights of one `embedding_bag`: no (queries x points) sample tensor is materialised, and the backward
scatters the value gradient without autograd's sort of every corner. This file imports only torch (it travels to the
Hub as remote code with `modeling_wedepth.py`).
"""

from typing import Any

import torch
import torch.nn.functional as F


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


def _corner_weights(attention: torch.Tensor, fractions: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The weights of each sample's bilinear corners (y0 x0, y0 x1, y1 x0, y1 x1) times its attention weight, stacked
    along `dim` (default: (..., 4)).

    `attention`: (...); `fractions`: (..., 2), the sample's (x, y) position within its corner cell, in [0, 1].
    """
    fraction_x, fraction_y = fractions.unbind(-1)
    upper = attention - attention * fraction_y
    lower = attention * fraction_y
    return torch.stack(
        (upper - upper * fraction_x, upper * fraction_x, lower - lower * fraction_x, lower * fraction_x), dim
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
        # A bag's taps corner by corner, (N, 4, J): the corner steps then add along contiguous rows of J samples; in
        # int32 where the table allows (half the index memory, which a forward writes fresh each time).
        index_dtype = torch.int32 if table.shape[0] < 2**31 else torch.int64
        steps = corner_steps.T.to(index_dtype).contiguous()
        indices = (base_rows.to(index_dtype)[:, None, :] + steps).view(num_bags, -1)
        weights = _corner_weights(attention, fractions, dim=1).to(table.dtype).view(num_bags, -1)
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


def _level_layout(spatial_shapes: list[tuple[int, int]]) -> tuple[tuple[int, int, tuple[int, int, int]], ...]:
    """Where each level's rows start in a padded (image, head) plane, how many it has, and the row steps from a
    top-left corner to its other three corners: what the gather's backward folds the corners' gradients with."""
    level_layout = []
    first_row = 0
    for height, width in spatial_shapes:
        rows = (height + 2) * (width + 2)
        level_layout.append((first_row, rows, (1, width + 2, width + 3)))
        first_row += rows
    return tuple(level_layout)


def _corner_cells(
    sampling_locations: torch.Tensor, level_sizes: torch.Tensor, columns: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-left bilinear corner (x, y) of every sample and its position within that cell, both (B * Q, heads *
    levels * points * 2), from normalised `sampling_locations` (B, Q, heads, levels, points, 2) at the CUDA kernel's
    pixel position `location * size - 0.5`.

    Per-level constants are laid out along the (head, level, point, x|y) columns of a (B * Q, columns) view, so that
    every operation broadcasts over rows only (broadcasts over the short inner dimensions run element by element).
    """
    sizes = level_sizes[None, :, None, :].expand(*columns, 2).reshape(-1)
    pixels = sampling_locations.reshape(-1, sizes.numel()) * sizes - 0.5
    # Top-left corners of positions clamped to the zero frame [-1, size] (beyond it a sample reads zeros only, as it
    # does there; NaN goes to -1, a valid row, and stays NaN in the fractions). Flooring has no gradient; a position at
    # or beyond `size` has none either (all its corners are outside the map, as `grid_sample` counts them).
    clamped = torch.minimum(torch.where(pixels.detach() > -1, pixels.detach(), -1.0), sizes)
    corners = torch.minimum(clamped.floor(), sizes - 1)
    cell_positions = pixels - corners
    return corners, torch.where(cell_positions >= 1, 1.0, cell_positions.clamp(min=0.0))


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
    columns = (num_heads, num_levels, num_points)
    corners, fractions = _corner_cells(sampling_locations.to(compute_dtype), level_sizes.to(compute_dtype), columns)
    # Row of each top-left corner in its (image, head) plane: level start + (y + 1) * framed width + (x + 1), exact in
    # float32 below 2**24 rows per plane.
    framed = level_sizes.to(compute_dtype) + 2
    framed_areas = framed[:, 0] * framed[:, 1]
    level_starts = (framed_areas.cumsum(0) - framed_areas)[None, :, None].expand(columns).reshape(-1)
    framed_widths = framed[None, :, None, 0].expand(columns).reshape(-1)
    corners = corners.view(batch_size * num_queries, -1, 2)
    positions = level_starts + (corners[..., 1] + 1) * framed_widths + (corners[..., 0] + 1)
    planes = torch.arange(batch_size * num_heads, device=positions.device) * padded_length
    base_rows = positions.to(torch.int64).view(batch_size, num_queries, num_heads, -1) + planes.view(
        batch_size, 1, num_heads, 1
    )
    row_steps = framed[:, 0].to(torch.int64)
    corner_steps = torch.stack((torch.zeros_like(row_steps), torch.ones_like(row_steps), row_steps, row_steps + 1), -1)
    corner_steps = corner_steps[:, None, :].expand(num_levels, num_points, 4).reshape(-1, 4)
    samples = num_levels * num_points
    sampled = _DeformableGather.apply(
        padded_value.reshape(-1, head_dim),
        base_rows.view(-1, samples),
        attention_weights.to(compute_dtype).reshape(-1, samples),
        fractions.view(-1, samples, 2),
        corner_steps,
        (batch_size * num_heads, padded_length, _level_layout(spatial_shapes)),
    )
    return sampled.view(batch_size, num_queries, num_heads * head_dim)


def multi_scale_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention as one weighted gather, in plain PyTorch (any device and dtype).

    The same arithmetic as Deformable DETR's CUDA kernel and as `grid_sample_deformable_attention`: bilinear sampling
    at pixel position `location * size - 0.5`, zero outside the map (see `deformable_sample`). Arguments and result
    as `grid_sample_deformable_attention` in modeling_wedepth.py.
    """
    level_sizes = level_sizes_tensor(spatial_shapes, value.device)
    padded_value = pad_value_levels(value, spatial_shapes)
    return deformable_sample(padded_value, spatial_shapes, level_sizes, sampling_locations, attention_weights)


__all__ = ["deformable_sample", "level_sizes_tensor", "multi_scale_deformable_attention", "pad_value_levels"]
