"""Depth metrics against hand computations, crops' exact indices, alignment and the accumulator."""

import math

import numpy as np
import pytest
import torch

from wedepth_hf.metrics import (
    METRIC_NAMES,
    DepthMetricsAccumulator,
    align_depth,
    compute_depth_metrics,
    crop_mask,
)


def box_mask(height: int, width: int, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
    mask = torch.zeros((height, width), dtype=torch.bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def test_metrics_by_hand_on_2x2() -> None:
    # Valid pixels (gt 0 is unmeasured): (p, g) = (1, 1), (2, 2.5), (3, 3). Only the second one is wrong.
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    gt = np.array([[1.0, 2.5], [3.0, 0.0]])
    metrics = compute_depth_metrics(pred, gt)
    log_ratio = math.log(2.0 / 2.5)  # e = ln p - ln g on the wrong pixel; 0 elsewhere
    expected = {
        "abs_rel": (0.5 / 2.5) / 3,
        "sq_rel": (0.25 / 2.5) / 3,
        "rmse": math.sqrt(0.25 / 3),
        "rmse_log": math.sqrt(log_ratio**2 / 3),
        "log10": abs(math.log10(0.8)) / 3,
        # mean(e^2) - mean(e)^2 = l^2/3 - l^2/9 = 2 l^2 / 9
        "silog": 100 * math.sqrt(2 * log_ratio**2 / 9),
        # max(2.5/2, 2/2.5) = 1.25 is NOT < 1.25 (strict): 2 of 3 pixels; < 1.25^2 all.
        "delta1": 2 / 3,
        "delta2": 1.0,
        "delta3": 1.0,
    }
    assert set(metrics) == set(METRIC_NAMES)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name


def test_torch_and_numpy_inputs_agree_and_perfect_prediction_is_zero_error() -> None:
    gt = torch.tensor([[1.0, 2.0], [3.0, 9.0]])
    metrics = compute_depth_metrics(gt.clone(), gt)
    assert metrics == pytest.approx({name: 0.0 for name in METRIC_NAMES[:6]} | {"delta1": 1, "delta2": 1, "delta3": 1})
    pred = gt * 1.1
    assert compute_depth_metrics(pred, gt) == pytest.approx(compute_depth_metrics(pred.numpy(), gt.numpy()))


def test_valid_range_is_strict() -> None:
    # gt equal to min or max depth is not valid: only the pixel at 2.0 counts.
    gt = np.array([[0.5, 2.0, 4.0]])
    pred = np.array([[1.0, 3.0, 1.0]])
    metrics = compute_depth_metrics(pred, gt, min_depth=0.5, max_depth=4.0)
    assert metrics["abs_rel"] == pytest.approx(0.5)
    assert metrics["rmse"] == pytest.approx(1.0)


def test_non_finite_and_out_of_range_predictions_are_clipped() -> None:
    gt = np.array([[1.0, 2.0, 1.0, 3.0]])
    pred = np.array([[np.nan, np.inf, -np.inf, 100.0]])
    # -> [0.5, 4.0, 0.5, 4.0] with range [0.5, 4]
    metrics = compute_depth_metrics(pred, gt, min_depth=0.5, max_depth=4.0)
    assert metrics["abs_rel"] == pytest.approx((0.5 / 1 + 2 / 2 + 0.5 / 1 + 1 / 3) / 4)
    assert all(math.isfinite(value) for value in metrics.values())


def test_prediction_of_another_size_is_resized_bilinearly() -> None:
    # [1, 3] to width 4 with half-pixel centres: [1, 1.5, 2.5, 3].
    pred = torch.tensor([[1.0, 3.0]])
    gt = torch.tensor([[1.0, 1.5, 2.5, 3.0]])
    assert compute_depth_metrics(pred, gt)["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    gt_other = torch.tensor([[1.0, 1.0, 2.5, 3.0]])
    assert compute_depth_metrics(pred, gt_other)["abs_rel"] == pytest.approx(0.5 / 4)


def test_no_valid_pixel_returns_none() -> None:
    assert compute_depth_metrics(np.ones((2, 2)), np.zeros((2, 2))) is None
    assert compute_depth_metrics(np.ones((2, 2)), np.full((2, 2), 20.0), max_depth=10.0) is None


def test_eigen_nyu_crop_indices_on_480x640() -> None:
    assert torch.equal(crop_mask(480, 640, "eigen_nyu"), box_mask(480, 640, (45, 471), (41, 601)))


def test_kitti_crop_indices_on_375x1242() -> None:
    # int(0.40810811 * 375) = 153, int(0.99189189 * 375) = 371, int(0.03594771 * 1242) = 44,
    # int(0.96405229 * 1242) = 1197, int(0.3324324 * 375) = 124, int(0.91351351 * 375) = 342.
    assert torch.equal(crop_mask(375, 1242, "garg"), box_mask(375, 1242, (153, 371), (44, 1197)))
    assert torch.equal(crop_mask(375, 1242, "eigen_kitti"), box_mask(375, 1242, (124, 342), (44, 1197)))
    assert bool(crop_mask(375, 1242, None).all())


def test_crop_restricts_the_scored_pixels() -> None:
    gt = np.ones((480, 640))
    pred = np.ones((480, 640))
    pred[:45] = 5.0  # wrong only outside the Eigen crop
    assert compute_depth_metrics(pred, gt, crop="eigen_nyu")["abs_rel"] == 0.0
    assert compute_depth_metrics(pred, gt)["abs_rel"] > 0.0


def test_unknown_crop_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="eigen_nyu.*garg.*eigen_kitti"):
        compute_depth_metrics(np.ones((2, 2)), np.ones((2, 2)), crop="eigen")


def test_alignment_recovers_known_scale_and_shift() -> None:
    generator = torch.Generator().manual_seed(0)
    gt = torch.rand(6, 7, generator=generator, dtype=torch.float64) * 5 + 1
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[0] = False
    # Pixels outside the mask must not enter the fit: corrupt them.
    corrupted = gt.clone()
    corrupted[0] = 100.0
    assert torch.allclose(align_depth(3.0 * corrupted, gt, mask, "median")[1:], gt[1:], atol=1e-12)
    assert torch.allclose(align_depth(0.5 * corrupted + 2.0, gt, mask, "least_squares")[1:], gt[1:], atol=1e-10)
    disparity = 0.25 / corrupted + 0.1
    aligned = align_depth(1.0 / disparity, gt, mask, "least_squares_disparity")
    assert torch.allclose(aligned[1:], gt[1:], atol=1e-10)
    assert torch.equal(align_depth(corrupted, gt, mask, "none"), corrupted)


def test_alignment_handles_non_positive_and_constant_predictions() -> None:
    gt = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    mask = torch.ones_like(gt, dtype=torch.bool)
    aligned = align_depth(torch.tensor([[0.0, -1.0], [2.0, 3.0]]), gt, mask, "least_squares_disparity")
    assert bool(torch.isfinite(aligned).all()) and bool((aligned > 0).all())
    constant = align_depth(torch.full((2, 2), 2.0), gt, mask, "least_squares")
    assert torch.allclose(constant, torch.full((2, 2), 2.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="least_squares_disparity"):
        align_depth(gt, gt, mask, "affine")


def test_accumulator_averages_per_image_and_counts_skipped() -> None:
    accumulator = DepthMetricsAccumulator(min_depth=1e-3, max_depth=10.0)
    # Image 1: one valid pixel, abs_rel 1.0. Image 2: three valid pixels, abs_rel 0. Per-image mean 0.5
    # (a pooled mean over pixels would give 0.25).
    accumulator.update(np.array([[2.0, 1.0]]), np.array([[1.0, 0.0]]))
    accumulator.update(np.ones((1, 3)), np.ones((1, 3)))
    accumulator.update(np.ones((1, 3)), np.zeros((1, 3)))  # no valid pixel
    assert accumulator.num_images == 2 and accumulator.num_skipped == 1
    assert accumulator.compute()["abs_rel"] == pytest.approx(0.5)
    assert all(math.isfinite(value) for value in accumulator.compute().values())


def test_accumulator_states_merge_like_one_accumulator() -> None:
    generator = torch.Generator().manual_seed(1)
    images = [
        (torch.rand(4, 4, generator=generator) + 0.5, torch.rand(4, 4, generator=generator) + 0.5) for _ in range(5)
    ]
    whole = DepthMetricsAccumulator()
    first, second = DepthMetricsAccumulator(), DepthMetricsAccumulator()
    for index, (pred, gt) in enumerate(images):
        whole.update(pred, gt)
        (first if index < 2 else second).update(pred, gt)
    second.update(torch.ones(4, 4), torch.zeros(4, 4))
    whole.update(torch.ones(4, 4), torch.zeros(4, 4))
    merged = DepthMetricsAccumulator()
    merged.load_state(first.state() + second.state())  # what accelerator.reduce(..., "sum") computes
    assert merged.num_images == 5 and merged.num_skipped == 1
    assert merged.compute() == pytest.approx(whole.compute(), rel=1e-12)
    batched = DepthMetricsAccumulator()
    batched.update(torch.stack([pred for pred, _ in images]), torch.stack([gt for _, gt in images]))
    assert batched.compute() == pytest.approx(whole.compute(), rel=1e-12)
