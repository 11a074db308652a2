"""Running a depth model: the one definition of flip test-time augmentation, batches of same-size inputs, and depth
for PIL images through an image processor (`predict_images`).

The evaluator (`wedepth_hf.evaluation`), `wedepth predict` (images and videos) and the demo all predict through these.
"""

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassError
from PIL import Image
from transformers.utils import logging

from .command_logging import one_line


logger = logging.get_logger(__name__)


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


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on the device's type, or nothing for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def predict_images(
    model: torch.nn.Module,
    processor: object,
    images: Sequence[Image.Image],
    device: torch.device,
    dtype: torch.dtype,
    flip_tta: bool,
    processing_size: int | None = None,
    max_pixels: int | None = None,
    focal_lengths: Sequence[float | None] | None = None,
    labels: Sequence[str] | None = None,
) -> torch.Tensor:
    """Metric depth (B, H, W) float32 on the CPU, at the images' sizes, for same-size images; flip TTA averages the
    prediction with the un-flipped prediction of the horizontally flipped input. `processing_size` overrides the
    processor's (the shorter side the model sees; 0: the image's own size), and so does `max_pixels` (the largest
    image a WEDepth processor takes; 0: any). `focal_lengths` (pixels at each image's resolution, None where
    unknown) rescale the depth from the training camera to each image's (`post_process_depth_estimation`).

    Under a reduced-precision `dtype`, an image whose depth has a non-finite value is predicted again in float32,
    with a warning that names it by `labels` (else by its index). A hostile-input probe once saw NaN depth for images
    1-12 px wide under CPU bfloat16 autocast, intermittently; float32 was always clean. A map that is still not
    finite is the model's, returned as it is for the caller to refuse.
    """
    settings: dict[str, int | None] = {} if processing_size is None else {"processing_size": processing_size or None}
    if max_pixels is not None and hasattr(processor, "max_pixels"):
        settings["max_pixels"] = max_pixels

    def depth_of(
        batch: Sequence[Image.Image], pass_dtype: torch.dtype, focals: Sequence[float | None] | None
    ) -> torch.Tensor:
        """One pass: process the images, predict under `pass_dtype` autocast, post-process."""
        pixel_values = processor(images=list(batch), return_tensors="pt", **settings)["pixel_values"].to(device)
        with torch.inference_mode(), _autocast(device, pass_dtype):
            depth = predict_from_pixel_values(model, pixel_values, flip_tta=flip_tta)
        outputs = {"predicted_depth": depth}
        camera = {} if focals is None else {"focal_length": list(focals)}
        sizes = [(image.height, image.width) for image in batch]
        results = processor.post_process_depth_estimation(outputs, target_sizes=sizes, **camera)
        return torch.stack([result["predicted_depth"].float().cpu() for result in results])

    depth = depth_of(images, dtype, focal_lengths)
    if dtype == torch.float32:
        return depth
    for index in range(len(images)):
        if bool(torch.isfinite(depth[index]).all()):
            continue
        logger.warning(
            "%s: the depth predicted under %s autocast has non-finite values; predicting it again in float32.",
            labels[index] if labels is not None else f"image {index}",
            str(dtype).removeprefix("torch."),
        )
        focals = None if focal_lengths is None else focal_lengths[index : index + 1]
        depth[index] = depth_of(images[index : index + 1], torch.float32, focals)[0]
    return depth


__all__ = ["accepts_output_size", "batches_by_size", "model_depth", "predict_from_pixel_values", "predict_images"]
