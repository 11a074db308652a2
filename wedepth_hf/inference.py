"""Running a depth model: the one definition of flip test-time augmentation, and batches of same-size inputs.

The evaluator (`wedepth_hf.evaluation`) and the command line (`wedepth predict`) both predict through these.
"""

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassError

from .command_logging import one_line


Item = TypeVar("Item")


MODEL_LOADING_ERRORS = (OSError, ValueError, TypeError, RuntimeError, StrictDataclassError)
"""What loading a model folder a user gives can raise: a missing or unreadable folder, a config with a wrong type or an
absurd size, a tensor of the wrong shape, a missing or changed VFM."""


def model_loading_failure(name: str, error: BaseException) -> str:
    """The one line that says why the model `name` did not load (messages of transformers' own checks span several)."""
    reason = one_line(error).removeprefix(f"{name}: ")
    return f"Could not load a depth model from {name!r}: {reason}"


def accepts_output_size(model: torch.nn.Module) -> bool:
    """Whether the model's forward takes `output_size` (WEDepth does: it resizes its depth to that size itself)."""
    return "output_size" in inspect.signature(model.forward).parameters


def model_depth(
    model: torch.nn.Module, pixel_values: torch.Tensor, output_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """(B, H, W) depth from `model(pixel_values=...)`'s `predicted_depth`, at `output_size` (default: the input's
    size), in float32 (float64 from a float64 model).

    Works for any transformers depth model (a `ModelOutput` or a dict with `predicted_depth` of shape (B, H, W) or
    (B, 1, H, W)). A model whose forward takes `output_size` (WEDepth) makes its depth at that size itself; any other
    model's depth is resized bilinearly.
    """
    size = tuple(output_size) if output_size is not None else tuple(pixel_values.shape[-2:])
    if output_size is not None and accepts_output_size(model):
        outputs = model(pixel_values=pixel_values, output_size=size)
    else:
        outputs = model(pixel_values=pixel_values)
    depth = outputs["predicted_depth"] if isinstance(outputs, Mapping) else getattr(outputs, "predicted_depth", None)
    if depth is None:
        raise TypeError(f"The model returned {type(outputs).__name__} without `predicted_depth`.")
    if depth.ndim == 4 and depth.shape[1] == 1:
        depth = depth[:, 0]
    if depth.ndim != 3 or depth.shape[0] != pixel_values.shape[0]:
        raise ValueError(f"`predicted_depth` must have shape (B, H, W); got {tuple(depth.shape)}.")
    depth = depth.to(torch.promote_types(depth.dtype, torch.float32))
    if tuple(depth.shape[-2:]) != size:
        depth = F.interpolate(depth[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return depth


def predict_from_pixel_values(
    model: torch.nn.Module,
    pixel_values: torch.Tensor,
    *,
    flip_tta: bool = False,
    output_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """(B, H, W) depth (as `model_depth`) for normalised `pixel_values`, at `output_size` (default: the input's
    size); with `flip_tta`, the mean of the prediction and the un-flipped prediction of the horizontally flipped
    input."""
    depth = model_depth(model, pixel_values, output_size)
    if flip_tta:
        depth = 0.5 * (depth + model_depth(model, pixel_values.flip(-1), output_size).flip(-1))
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


__all__ = ["accepts_output_size", "batches_by_size", "model_depth", "predict_from_pixel_values"]
