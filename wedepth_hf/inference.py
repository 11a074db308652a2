"""Running a depth model: the one definition of flip test-time augmentation, and batches of same-size inputs.

The evaluator (`wedepth_hf.evaluation`) and the command line (`wedepth predict`) both predict through these.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F


Item = TypeVar("Item")


def model_depth(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """(B, H, W) float32 depth from `model(pixel_values=...)`'s `predicted_depth`, resized to the input if needed.

    Works for any transformers depth model (a `ModelOutput` or a dict with `predicted_depth` of shape (B, H, W) or
    (B, 1, H, W)).
    """
    outputs = model(pixel_values=pixel_values)
    depth = outputs["predicted_depth"] if isinstance(outputs, Mapping) else getattr(outputs, "predicted_depth", None)
    if depth is None:
        raise TypeError(f"The model returned {type(outputs).__name__} without `predicted_depth`.")
    if depth.ndim == 4 and depth.shape[1] == 1:
        depth = depth[:, 0]
    if depth.ndim != 3 or depth.shape[0] != pixel_values.shape[0]:
        raise ValueError(f"`predicted_depth` must have shape (B, H, W); got {tuple(depth.shape)}.")
    depth = depth.float()
    if depth.shape[-2:] != pixel_values.shape[-2:]:
        depth = F.interpolate(depth[:, None], size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return depth


def predict_from_pixel_values(
    model: torch.nn.Module, pixel_values: torch.Tensor, *, flip_tta: bool = False
) -> torch.Tensor:
    """(B, H, W) float32 depth for normalised `pixel_values`; with `flip_tta`, the mean of the prediction and the
    un-flipped prediction of the horizontally flipped input."""
    depth = model_depth(model, pixel_values)
    if flip_tta:
        depth = 0.5 * (depth + model_depth(model, pixel_values.flip(-1)).flip(-1))
    return depth


def batches_by_size(
    items: Sequence[Item], size_of: Callable[[Item], tuple[int, int]], batch_size: int
) -> Iterator[list[Item]]:
    """Batches of at most `batch_size` items of one size each (sizes in order of first appearance), so that every
    batch is one forward pass."""
    groups: dict[tuple[int, int], list[Item]] = {}
    for item in items:
        groups.setdefault(tuple(size_of(item)), []).append(item)
    for group in groups.values():
        for start in range(0, len(group), batch_size):
            yield group[start : start + batch_size]


__all__ = ["batches_by_size", "model_depth", "predict_from_pixel_values"]
