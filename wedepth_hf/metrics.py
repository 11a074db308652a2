"""Depth-estimation metrics of the community protocols, one implementation for every script.

`compute_depth_metrics` scores one image; `DepthMetricsAccumulator` averages per-image metrics over a dataset and
merges across processes; `align_depth` fits the per-image scale (and shift) of the affine-invariant protocols;
`valid_depth_mask` and `crop_mask` give the pixels a metric is computed on.
"""

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .constants import (
    AUTHORS_METRIC_NAMES,
    AUTHORS_MIN_VALID_PIXELS,
    EIGEN_KITTI_CROP_ROWS,
    EIGEN_NYU_CROP,
    GARG_CROP_ROWS,
    KITTI_CROP_COLUMNS,
    METRIC_NAMES,
    NYU_SIZE,
)


CROPS: tuple[str, ...] = ("eigen_nyu", "garg", "eigen_kitti")
ALIGNMENTS: tuple[str, ...] = ("none", "median", "least_squares", "least_squares_disparity")

# Smallest disparity an aligned inverse-depth map may take before it is turned back into depth (1e8 m, i.e. "far";
# the subsequent clipping to the dataset's range turns it into max_depth).
_MIN_DISPARITY = 1e-8


def _as_tensor(array: Any) -> torch.Tensor:
    """A float64 torch tensor from a numpy array or torch tensor, on the tensor's own device."""
    if isinstance(array, np.ndarray):
        return torch.from_numpy(np.asarray(array, dtype=np.float64))
    if isinstance(array, torch.Tensor):
        return array.detach().to(torch.float64)
    raise TypeError(f"Expected a numpy array or a torch tensor, got {type(array).__name__}.")


def _squeeze_2d(array: torch.Tensor, name: str) -> torch.Tensor:
    """(H, W) from (H, W), (1, H, W) or (1, 1, H, W); anything else is a caller error."""
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be one depth map of shape (H, W); got shape {tuple(array.shape)}.")
    return array


def crop_mask(height: int, width: int, crop: str | None, device: torch.device | None = None) -> torch.Tensor:
    """Boolean (H, W) mask of an evaluation crop; all True for `crop=None`.

    - "eigen_nyu": rows 45:471, cols 41:601 of a 480x640 image; other sizes scale these bounds with integer
      arithmetic (`45 * H // 480` etc.), which is exact at 480x640.
    - "garg": rows int(0.40810811 H):int(0.99189189 H), cols int(0.03594771 W):int(0.96405229 W).
    - "eigen_kitti": rows int(0.3324324 H):int(0.91351351 H), cols as "garg".
    """
    mask = torch.zeros((height, width), dtype=torch.bool, device=device)
    kitti_left, kitti_right = (int(fraction * width) for fraction in KITTI_CROP_COLUMNS)
    if crop is None:
        mask[:] = True
    elif crop == "eigen_nyu":
        top, bottom, left, right = EIGEN_NYU_CROP
        nyu_height, nyu_width = NYU_SIZE
        mask[
            top * height // nyu_height : bottom * height // nyu_height,
            left * width // nyu_width : right * width // nyu_width,
        ] = True
    elif crop in ("garg", "eigen_kitti"):
        rows = GARG_CROP_ROWS if crop == "garg" else EIGEN_KITTI_CROP_ROWS
        mask[int(rows[0] * height) : int(rows[1] * height), kitti_left:kitti_right] = True
    else:
        choices = ", ".join(repr(name) for name in CROPS)
        raise ValueError(f"Unknown crop {crop!r}; choose one of None, {choices}.")
    return mask


def valid_depth_mask(
    target: Any, *, min_depth: float = 1e-3, max_depth: float = 10.0, crop: str | None = None
) -> torch.Tensor:
    """Pixels a metric is computed on: min_depth < gt < max_depth (strict), finite, inside the crop."""
    target = _squeeze_2d(_as_tensor(target), "target")
    valid = torch.isfinite(target) & (target > min_depth) & (target < max_depth)
    return valid & crop_mask(target.shape[0], target.shape[1], crop, device=target.device)


def prepare_prediction(pred: Any, size: tuple[int, int], *, min_depth: float, max_depth: float) -> torch.Tensor:
    """Float64 (H, W) prediction at `size`: NaN -> min_depth, +inf -> max_depth, -inf -> min_depth, clipped to
    [min_depth, max_depth] before the bilinear resize (so non-finite values cannot spread) and after it."""
    pred = _squeeze_2d(_as_tensor(pred), "pred")
    pred = torch.nan_to_num(pred, nan=min_depth, posinf=max_depth, neginf=min_depth).clamp(min_depth, max_depth)
    if tuple(pred.shape) != tuple(size):
        pred = F.interpolate(pred[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
    return pred.clamp(min_depth, max_depth)


def _metrics_on_valid(pred: torch.Tensor, gt: torch.Tensor, *, authors_silog: bool = False) -> dict[str, float]:
    """The nine metrics from 1-D float64 tensors of valid predicted and ground-truth depths: `silog` (KITTI
    benchmark), or with `authors_silog` the authors' `silog_authors` (lambda 0.5, no x100)."""
    ratio = torch.maximum(gt / pred, pred / gt)
    diff = gt - pred
    log_error = torch.log(pred) - torch.log(gt)
    values = {
        "abs_rel": (diff.abs() / gt).mean(),
        "sq_rel": (diff**2 / gt).mean(),
        "rmse": torch.sqrt((diff**2).mean()),
        "rmse_log": torch.sqrt((log_error**2).mean()),
        "log10": (torch.log10(pred) - torch.log10(gt)).abs().mean(),
        "delta1": (ratio < 1.25).double().mean(),
        "delta2": (ratio < 1.25**2).double().mean(),
        "delta3": (ratio < 1.25**3).double().mean(),
    }
    if authors_silog:
        values["silog_authors"] = torch.sqrt((log_error**2).mean() - 0.5 * log_error.mean() ** 2)
        names = AUTHORS_METRIC_NAMES
    else:
        # Rounding can make the variance of a constant log error a tiny negative number: clamp before the root.
        values["silog"] = 100.0 * torch.sqrt(((log_error**2).mean() - log_error.mean() ** 2).clamp(min=0.0))
        names = METRIC_NAMES
    return {name: float(values[name]) for name in names}


def compute_authors_metrics(pred: Any, target: Any, mask: Any) -> dict[str, float] | None:
    """The authors' metrics of one image (their `util/metric.py`, with `silog_authors`) on the pixels of `mask`.

    `pred` must already be at the target's size and clamped to the dataset's range, as their loop does. Returns None
    for an image with fewer than 10 pixels in `mask`, which their loop skips. Computed in float64 (theirs in float32).
    """
    pred = _squeeze_2d(_as_tensor(pred), "pred")
    target = _squeeze_2d(_as_tensor(target), "target").to(pred.device)
    mask = _squeeze_2d(torch.as_tensor(mask), "mask").to(device=pred.device, dtype=torch.bool)
    if pred.shape != target.shape or mask.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and mask {tuple(mask.shape)} must have one size."
        )
    if int(mask.sum()) < AUTHORS_MIN_VALID_PIXELS:
        return None
    return _metrics_on_valid(pred[mask], target[mask], authors_silog=True)


def compute_depth_metrics(
    pred: Any,
    target: Any,
    *,
    min_depth: float = 1e-3,
    max_depth: float = 10.0,
    crop: str | None = None,
) -> dict[str, float] | None:
    """Metrics of one predicted depth map against its ground truth, in float64.

    Args:
        pred: predicted depth (H', W') in metres, numpy or torch; resized bilinearly to the target's size if needed,
            NaN -> min_depth, +inf -> max_depth, -inf -> min_depth, then clipped to [min_depth, max_depth].
        target: ground-truth depth (H, W) in metres; 0 (or anything outside the range) means no measurement.
        min_depth, max_depth: a pixel is valid when min_depth < gt < max_depth (strict).
        crop: None, "eigen_nyu", "garg" or "eigen_kitti" (see `crop_mask`).

    Returns:
        {abs_rel, sq_rel, rmse, rmse_log, log10, silog, delta1, delta2, delta3}, or None when no pixel is valid.
    """
    target = _squeeze_2d(_as_tensor(target), "target")
    valid = valid_depth_mask(target, min_depth=min_depth, max_depth=max_depth, crop=crop)
    if not bool(valid.any()):
        return None
    pred = prepare_prediction(pred, tuple(target.shape), min_depth=min_depth, max_depth=max_depth).to(target.device)
    return _metrics_on_valid(pred[valid], target[valid])


def align_depth(pred: Any, target: Any, mask: Any, mode: str) -> torch.Tensor:
    """Per-image alignment of a prediction to the ground truth on `mask` (the affine-invariant protocols).

    Modes:
        "none": the prediction unchanged.
        "median": scale s = median(gt) / median(pred) over the mask.
        "least_squares": scale and shift in depth, argmin_{s,t} sum (s * pred + t - gt)^2 over the mask.
        "least_squares_disparity": scale and shift in inverse depth, argmin_{s,t} sum (s / pred + t - 1 / gt)^2; the
            aligned disparity is clamped to at least 1e-8 (non-positive disparity means "infinitely far") and
            turned back into depth. Non-positive predicted depths are clamped to 1e-8 m before inverting.

    A constant prediction has no least-squares scale: the fit then uses s = 0 and t = mean of the target (its
    minimum-norm solution in the shift). With an empty mask, or a zero median, the prediction is returned
    unchanged. Returns a float64 (H, W) tensor on the prediction's device; clip it to the dataset's range afterwards.
    """
    if mode not in ALIGNMENTS:
        choices = ", ".join(repr(name) for name in ALIGNMENTS)
        raise ValueError(f"Unknown alignment {mode!r}; choose one of {choices}.")
    pred = _squeeze_2d(_as_tensor(pred), "pred")
    target = _squeeze_2d(_as_tensor(target), "target").to(pred.device)
    mask = _squeeze_2d(torch.as_tensor(mask), "mask").to(device=pred.device, dtype=torch.bool)
    if mode == "none" or not bool(mask.any()):
        return pred
    if mode == "median":
        pred_median = pred[mask].median()
        if pred_median == 0:
            return pred
        return pred * (target[mask].median() / pred_median)
    if mode == "least_squares":
        scale, shift = _fit_scale_shift(pred[mask], target[mask])
        return scale * pred + shift
    disparity = 1.0 / pred.clamp(min=_MIN_DISPARITY)
    scale, shift = _fit_scale_shift(disparity[mask], 1.0 / target[mask])
    return 1.0 / (scale * disparity + shift).clamp(min=_MIN_DISPARITY)


def _fit_scale_shift(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form least squares y ~ s * x + t over 1-D float64 tensors (s = 0 when x is constant)."""
    x_mean, y_mean = x.mean(), y.mean()
    x_centered = x - x_mean
    variance = (x_centered**2).sum()
    scale = (x_centered * (y - y_mean)).sum() / variance if variance > 0 else torch.zeros_like(x_mean)
    return scale, y_mean - scale * x_mean


class DepthMetricsAccumulator:
    """Running per-image mean of the depth metrics over a dataset (per image, then averaged over images).

    `metric_names` are the metrics each image brings to `add` (`AUTHORS_METRIC_NAMES` for the authors' protocol);
    `update` scores an image with the community protocol. Images without a valid pixel are skipped and counted in
    `num_skipped`, never averaged in as NaN. To merge
    across processes, sum the `state()` tensors and load the sum back, e.g. with accelerate:

        state = accelerator.reduce(accumulator.state(accelerator.device), reduction="sum")
        accumulator.load_state(state)

    (`evaluate_depth_model` instead gathers per-image metrics with `accelerator.gather_for_metrics`, which also drops
    the samples duplicated to even out the last batch.)
    """

    def __init__(
        self,
        *,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        crop: str | None = None,
        metric_names: tuple[str, ...] = METRIC_NAMES,
    ) -> None:
        self.metric_names = tuple(metric_names)
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.crop = crop
        crop_mask(1, 1, crop)  # Validates the crop name now rather than at the first update.
        self.reset()

    def reset(self) -> None:
        """Forget every image seen so far."""
        self._sums = torch.zeros(len(self.metric_names), dtype=torch.float64)
        self.num_images = 0
        self.num_skipped = 0

    def add(self, metrics: dict[str, float] | None) -> None:
        """Add one image's metrics (None: an image without a valid pixel, counted as skipped)."""
        if metrics is None:
            self.num_skipped += 1
            return
        self._sums += torch.tensor([metrics[name] for name in self.metric_names], dtype=torch.float64)
        self.num_images += 1

    def update(self, pred: Any, target: Any, **kwargs: Any) -> dict[str, float] | None:
        """Score one image (or a batch (B, H, W) of images) with this accumulator's settings, which `kwargs`
        (min_depth, max_depth, crop) may override, and add it. Returns the last image's metrics."""
        settings = {"min_depth": self.min_depth, "max_depth": self.max_depth, "crop": self.crop, **kwargs}
        pred, target = _as_tensor(pred), _as_tensor(target)
        if target.ndim == 3 and target.shape[0] > 1:
            if pred.ndim != 3 or pred.shape[0] != target.shape[0]:
                raise ValueError(
                    f"A batch of {target.shape[0]} targets needs as many predictions; got shape {tuple(pred.shape)}."
                )
            metrics = None
            for image_pred, image_target in zip(pred, target):
                metrics = compute_depth_metrics(image_pred, image_target, **settings)
                self.add(metrics)
            return metrics
        metrics = compute_depth_metrics(pred, target, **settings)
        self.add(metrics)
        return metrics

    def state(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Float64 tensor [sum of each metric..., num_images, num_skipped]: summing these merges accumulators."""
        counts = torch.tensor([self.num_images, self.num_skipped], dtype=torch.float64)
        return torch.cat([self._sums, counts]).to(device if device is not None else "cpu")

    def load_state(self, state: torch.Tensor) -> None:
        """Replace this accumulator's totals with a (summed) `state()` tensor."""
        state = state.detach().to("cpu", torch.float64)
        size = len(self.metric_names)
        if state.shape != (size + 2,):
            raise ValueError(f"Expected a state of shape ({size + 2},); got {tuple(state.shape)}.")
        self._sums = state[:size].clone()
        self.num_images = int(round(float(state[-2])))
        self.num_skipped = int(round(float(state[-1])))

    def merge(self, other: "DepthMetricsAccumulator") -> None:
        """Add another accumulator's images to this one (same process)."""
        self.load_state(self.state() + other.state())

    def compute(self) -> dict[str, float]:
        """Mean of each metric over the images with a valid pixel; NaN for every metric if there were none."""
        if self.num_images == 0:
            return {name: float("nan") for name in self.metric_names}
        return {name: float(value) / self.num_images for name, value in zip(self.metric_names, self._sums)}


__all__ = [
    "ALIGNMENTS",
    "CROPS",
    "METRIC_NAMES",
    "DepthMetricsAccumulator",
    "align_depth",
    "compute_authors_metrics",
    "compute_depth_metrics",
    "crop_mask",
    "prepare_prediction",
    "valid_depth_mask",
]
