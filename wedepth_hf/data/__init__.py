"""Depth data for WEDepth: dataset readers of the community layouts and of the authors' test sets, batching, synthetic
data and augmentations."""

from .authors import AUTHORS_DATASETS, AuthorsEvaluationDataset, AuthorsPreparedDataset, authors_prepare
from .datasets import (
    DEPTH_DECODINGS,
    KB_CROP_SIZE,
    KITTI_FOCAL,
    NYU_FOCAL,
    DepthListDataset,
    HFDepthDataset,
    KITTIDepthDataset,
    NYUDepthDataset,
    collate_depth_samples,
    hypersim_distance_to_depth,
    kb_crop_box,
    normalize_images,
    read_depth,
    read_rgb,
)
from .synthetic import SyntheticDepthDataset, render_synthetic_sample, write_synthetic_nyu_layout
from .transforms import DepthAugmentation


__all__ = [
    "AUTHORS_DATASETS",
    "AuthorsEvaluationDataset",
    "AuthorsPreparedDataset",
    "authors_prepare",
    "DEPTH_DECODINGS",
    "KB_CROP_SIZE",
    "KITTI_FOCAL",
    "NYU_FOCAL",
    "DepthAugmentation",
    "DepthListDataset",
    "HFDepthDataset",
    "KITTIDepthDataset",
    "NYUDepthDataset",
    "SyntheticDepthDataset",
    "collate_depth_samples",
    "hypersim_distance_to_depth",
    "kb_crop_box",
    "normalize_images",
    "read_depth",
    "read_rgb",
    "render_synthetic_sample",
    "write_synthetic_nyu_layout",
]
