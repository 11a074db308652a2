"""Evaluation of depth models on the community protocols: dataset specs, one evaluation loop, `wedepth evaluate`.

`EVALUATION_DATASETS` records, per dataset, how its depth is decoded and how it is scored (depth range, crop, KB
crop, default focal); `build_evaluation_dataset` reads one; `evaluate_depth_model` runs batched inference sharded by
accelerate (flip TTA, KB crop with paste-back, per-image alignment) and averages the metrics over images. The training
loop calls `evaluate_depth_model` for validation; `main` is the `wedepth evaluate` command.
"""

import argparse
import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.data_loader import prepare_data_loader
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers.utils import logging

from .command_logging import Explanation, command_parser
from .constants import (
    AUTHORS_METRIC_NAMES,
    AUTHORS_MIN_VALID_PIXELS,
    DIODE_FOCAL,
    HYPERSIM_FOCAL,
    KB_CROP_SIZE,
    KITTI_FOCAL,
    METRIC_NAMES,
    NYU_FOCAL,
    PROTOCOL_METRIC_NAMES,
    PROTOCOLS,
    SILOG_DEFINITIONS,
    VKITTI2_FOCAL,
)
from .data.authors import AUTHORS_DATASETS, AuthorsEvaluationDataset
from .data.datasets import (
    BadSampleError,
    DepthListDataset,
    HFDepthDataset,
    bad_sample_message,
    kb_crop_box,
    normalize_images,
)
from .image_processing_wedepth import DEFAULT_MAX_PIXELS
from .inference import MODEL_LOADING_ERRORS, batches_by_size, model_loading_failure, predict_from_pixel_values
from .metrics import (
    ALIGNMENTS,
    CROPS,
    DepthMetricsAccumulator,
    align_depth,
    compute_authors_metrics,
    compute_depth_metrics,
    crop_mask,
    valid_depth_mask,
)


logger = logging.get_logger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    """How one evaluation dataset is read and scored.

    Attributes:
        name: registry key.
        layout: what is on disk (original release or common preprocessed form), for humans and error messages.
        min_depth, max_depth: valid ground truth is min_depth < gt < max_depth; predictions are clipped to this range.
        crop: evaluation crop (None, "eigen_nyu", "garg", "eigen_kitti").
        kb_crop: run the model on the KB crop (bottom 352 rows, centred 1216 columns) and paste the prediction back
            into a full-size zero map.
        depth_scale: raw depth units per metre (None: the user must give it).
        depth_decoding: see `wedepth_hf.data.datasets.read_depth`.
        default_focal: focal length (px) for list lines without one (None: lines must give it).
        default_split_file: list file looked up in the data root when none is given (None: it must be given).
    """

    name: str
    layout: str
    min_depth: float
    max_depth: float
    crop: str | None
    kb_crop: bool = False
    depth_scale: float | None = 1.0
    depth_decoding: str = "auto"
    default_focal: float | None = None
    default_split_file: str | None = None

    def evaluation_arguments(self) -> dict[str, Any]:
        """The `evaluate_depth_model` arguments the dataset fixes: its valid depth range and its crops."""
        return dict(min_depth=self.min_depth, max_depth=self.max_depth, crop=self.crop, kb_crop=self.kb_crop)


_LIST = "list layout: a text file of lines '<rgb> <depth> <focal>', paths relative to the data root"


def _projected_lidar_spec(name: str, layout: str) -> DatasetSpec:
    """A driving dataset in its common preprocessed form, LiDAR projected to uint16 PNG / 256, scored as KITTI is
    (0.001-80 m, Garg crop, the model run on the KB crop)."""
    return DatasetSpec(name, layout, 1e-3, 80.0, "garg", kb_crop=True, depth_scale=256.0, depth_decoding="png")


EVALUATION_DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "nyu",
            "NYU-Depth v2 Eigen test split in the BTS preprocessed form (not the original .mat): "
            f"{_LIST}; RGB .jpg + uint16 millimetre PNG, 480x640.",
            1e-3,
            10.0,
            "eigen_nyu",
            depth_scale=1000.0,
            depth_decoding="png",
            default_focal=NYU_FOCAL,
            default_split_file="nyudepthv2_test_files_with_gt.txt",
        ),
        DatasetSpec(
            "kitti",
            "KITTI Eigen test split, BTS list file (raw image path, annotated depth path, focal; 'None' = no ground "
            "truth): uint16 PNG / 256, full-size images (about 375x1242).",
            1e-3,
            80.0,
            "garg",
            kb_crop=True,
            depth_scale=256.0,
            depth_decoding="png",
            default_focal=KITTI_FOCAL,
            default_split_file="eigen_test_files_with_gt.txt",
        ),
        DatasetSpec(
            "sunrgbd",
            f"SUN RGB-D test images in the {_LIST}; the release's depth PNGs are uint16 millimetres with the bits "
            "rotated by 3 (mm = (v >> 3) | (v << 13) & 0xFFFF), read as such. Eigen crop scaled to the image size.",
            1e-3,
            8.0,
            "eigen_nyu",
            depth_scale=1000.0,
            depth_decoding="sunrgbd_png",
        ),
        DatasetSpec(
            "ibims",
            f"iBims-1 (original release images rgb/*.png and depth/*.png) in the {_LIST}; the depth PNGs store "
            "depth * 65535 / 50 (uint16), so depth_scale = 1310.7 raw units per metre; 480x640.",
            1e-3,
            10.0,
            "eigen_nyu",
            depth_scale=65535.0 / 50.0,
            depth_decoding="png",
        ),
        DatasetSpec(
            "diode_indoor",
            "DIODE val/indoors in its original release layout (scene/scan/<name>.png, <name>_depth.npy (H, W, 1) "
            "metres, <name>_depth_mask.npy): found by scanning the data root, or given by a list file; 768x1024.",
            1e-3,
            10.0,
            "eigen_nyu",
            depth_scale=1.0,
            depth_decoding="npy",
            default_focal=DIODE_FOCAL,
        ),
        DatasetSpec(
            "diode_outdoor",
            "DIODE val/outdoor in its original release layout (as diode_indoor); 768x1024.",
            1e-3,
            80.0,
            "garg",
            depth_scale=1.0,
            depth_decoding="npy",
            default_focal=DIODE_FOCAL,
        ),
        DatasetSpec(
            "hypersim",
            f"HyperSim test images in the {_LIST}, depth as .npy float metres converted beforehand from the release's "
            "HDF5 'depth_meters' files (HDF5 is not read here); those hold the distance to the camera centre, turned "
            "into planar depth with f = 886.81 px (768x1024; the list's focal when given).",
            1e-3,
            80.0,
            "eigen_nyu",
            depth_scale=1.0,
            depth_decoding="hypersim_distance",
            default_focal=HYPERSIM_FOCAL,
        ),
        DatasetSpec(
            "vkitti2",
            f"Virtual KITTI 2 (original release rgb_*.jpg and depth_*.png, 375x1242) in the {_LIST}; depth PNGs are "
            "uint16 centimetres (/100).",
            1e-3,
            80.0,
            "garg",
            kb_crop=True,
            depth_scale=100.0,
            depth_decoding="png",
            default_focal=VKITTI2_FOCAL,
        ),
        _projected_lidar_spec(
            "ddad",
            f"DDAD in the common preprocessed {_LIST} (not the original release, which stores LiDAR in its own "
            "format): depth projected to uint16 PNG / 256.",
        ),
        _projected_lidar_spec(
            "argoverse",
            f"Argoverse in the common preprocessed {_LIST} (not the original release): projected LiDAR depth as "
            "uint16 PNG / 256.",
        ),
        DatasetSpec(
            "diml_outdoor",
            f"DIML outdoor test images in the {_LIST}; depth PNGs read as uint16 millimetres (/1000).",
            2.0,
            80.0,
            "garg",
            depth_scale=1000.0,
            depth_decoding="png",
        ),
        DatasetSpec(
            "folder",
            f"Any directory in the {_LIST}; give depth_scale, min/max depth and crop.",
            1e-3,
            10.0,
            None,
            depth_scale=None,
            depth_decoding="auto",
        ),
        DatasetSpec(
            "hf",
            "A Hugging Face `datasets` dataset (Hub id, save_to_disk folder or load_dataset folder) with an image "
            "and a depth column (float metres, or integers with depth_scale).",
            1e-3,
            10.0,
            None,
            depth_scale=None,
        ),
    )
}


def resolve_spec(name: str, **overrides: Any) -> DatasetSpec:
    """The registry's spec for `name` with the non-None `overrides` (min_depth, max_depth, crop, ...) applied."""
    if name not in EVALUATION_DATASETS:
        raise ValueError(f"Unknown evaluation dataset {name!r}; choose one of {', '.join(EVALUATION_DATASETS)}.")
    given = {key: value for key, value in overrides.items() if value is not None}
    return dataclasses.replace(EVALUATION_DATASETS[name], **given)


def diode_entries(root: str | Path, focal: float = DIODE_FOCAL) -> list[tuple[str, str, float]]:
    """(rgb, depth, focal) entries of a DIODE release tree: every "<name>_depth.npy" with its "<name>.png"."""
    root = Path(root)
    entries = []
    for depth_path in sorted(root.rglob("*_depth.npy")):
        rgb_path = depth_path.with_name(depth_path.name[: -len("_depth.npy")] + ".png")
        if not rgb_path.is_file():
            raise FileNotFoundError(f"DIODE depth file {depth_path} has no image {rgb_path.name} beside it.")
        entries.append((str(rgb_path.relative_to(root)), str(depth_path.relative_to(root)), focal))
    if not entries:
        raise FileNotFoundError(
            f"No DIODE samples under {root}: expected <scene>/<scan>/<name>.png with <name>_depth.npy and "
            f"<name>_depth_mask.npy beside it, or pass a list file."
        )
    return entries


def build_evaluation_dataset(
    spec: DatasetSpec,
    data_root: str | Path,
    split_file: str | Path | None = None,
    *,
    image_root: str | Path | None = None,
    depth_root: str | Path | None = None,
    split: str = "validation",
    image_column: str = "image",
    depth_column: str = "depth_map",
    allow_paths_outside_root: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Dataset:
    """A full-size evaluation dataset for `spec` (KB crop is left to the evaluator).

    For "hf", `data_root` is the Hub id or folder and `split`/`image_column`/`depth_column` apply. For list-layout
    sets, `split_file` defaults to the spec's default list file inside `data_root`; DIODE without a list file is
    scanned in its release layout. A list path that leads outside its root is an error unless
    `allow_paths_outside_root`. An image or depth file of more than `max_pixels` pixels (0: any) is refused before
    it is decoded. A ground-truth map without a valid pixel is returned as it is: the evaluator skips the image and
    counts it.
    """
    if spec.name == "hf":
        return HFDepthDataset(
            str(data_root),
            split,
            image_column=image_column,
            depth_column=depth_column,
            depth_scale=spec.depth_scale,
            default_focal=spec.default_focal,
            allow_empty_depth=True,
        )
    if spec.depth_scale is None:
        raise ValueError(
            f"Dataset {spec.name!r} needs a depth_scale (raw depth units per metre, e.g. 1000 for millimetre PNGs)."
        )
    if split_file is None:
        if spec.name.startswith("diode"):
            split_file = diode_entries(data_root, spec.default_focal or DIODE_FOCAL)
        elif spec.default_split_file is not None:
            split_file = spec.default_split_file
        else:
            raise ValueError(f"Dataset {spec.name!r} needs a split file ({spec.layout}).")
    return DepthListDataset(
        data_root,
        split_file,
        depth_scale=spec.depth_scale,
        image_root=image_root,
        depth_root=depth_root,
        default_focal=spec.default_focal,
        depth_decoding=spec.depth_decoding,
        allow_empty_depth=True,
        allow_paths_outside_root=allow_paths_outside_root,
        max_pixels=max_pixels,
    )


@dataclass
class EvaluationResult:
    """Mean metrics over the images with a valid pixel, how many were used and skipped, and the settings used."""

    metrics: dict[str, float]
    num_images: int
    num_skipped: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return dataclasses.asdict(self)


def predict_depth(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    flip_tta: bool = False,
    kb_crop: bool = False,
    kb_crop_size: tuple[int, int] = KB_CROP_SIZE,
    output_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """(B, H, W) float32 depth for uint8 images (B, 3, H, W) of one size, the way the evaluator predicts.

    With `flip_tta`, the mean of the prediction and the un-flipped prediction of the horizontally flipped image.
    With `kb_crop`, the model sees the KB crop and its prediction is pasted into a full-size zero map. With
    `output_size` (not with `kb_crop`), the depth is made at that size (see `model_depth`).
    """
    if kb_crop and output_size is not None:
        raise ValueError("predict_depth: give kb_crop or output_size, not both.")
    height, width = images.shape[-2:]
    top = left = 0
    if kb_crop:
        top, left = kb_crop_box(height, width, kb_crop_size)
        images = images[..., top : top + kb_crop_size[0], left : left + kb_crop_size[1]]
    depth = predict_from_pixel_values(model, normalize_images(images), flip_tta=flip_tta, output_size=output_size)
    if not kb_crop:
        return depth
    full = depth.new_zeros((depth.shape[0], height, width))
    full[:, top : top + depth.shape[1], left : left + depth.shape[2]] = depth
    return full


def evaluate_depth_model(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 1,
    min_depth: float,
    max_depth: float,
    crop: str | None = None,
    kb_crop: bool = False,
    kb_crop_size: tuple[int, int] = KB_CROP_SIZE,
    crop_on_kb_crop: bool = False,
    flip_tta: bool = False,
    alignment: str = "none",
    protocol: str = "community",
    accelerator: Any = None,
    num_workers: int = 0,
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate a depth model on a dataset of SAMPLEs; correct on one or many processes.

    The model (a `WEDepthForDepthEstimation`, or any module returning `predicted_depth` (B, H, W)) runs in eval mode
    under `torch.inference_mode`, in its own precision (a mixed-precision wrapper from `accelerator.prepare` and any
    enclosing autocast are set aside), on the device of its parameters; its training mode is restored afterwards.
    The dataloader is sharded over the processes of `accelerator` (a new `Accelerator()` if None) by accelerate's
    `prepare_data_loader`, which leaves the accelerator's own state (the loaders `save_state` checkpoints) alone;
    per-image metrics are gathered by `accelerator.gather_for_metrics`, which drops the samples duplicated to even
    out the last batch: every process returns the same result, over each image once. A batch may mix image sizes.

    Protocols:
        "community" (BTS/ZoeDepth; `METRIC_NAMES`): full-size SAMPLEs. Per image the prediction is resized to the
            ground truth's size (NaN -> min_depth, +-inf -> max/min_depth), aligned with `alignment` on the valid
            pixels (inside the KB crop when `kb_crop`) before clipping, then scored by `compute_depth_metrics`
            (valid: min_depth < gt < max_depth inside `crop`). Images without a valid pixel are counted in
            `num_skipped`. With `kb_crop` the evaluation crop is computed on the full frame the prediction is pasted
            into; `crop_on_kb_crop=True` scores the KB-cropped maps instead, with the crop box computed from their
            size, which is where the authors' KITTI class computes it.
        "authors" (their `util/metric.py` and the validation loop of their `train.py`; `AUTHORS_METRIC_NAMES`): the
            SAMPLEs carry the model's input "image", the ground truth "depth" and its valid "mask", as
            `wedepth_hf.data.AuthorsEvaluationDataset` prepares them. The model makes its depth at the ground
            truth's size, clamped to [min_depth, max_depth]; images with fewer than 10 pixels in the mask are
            skipped; `compute_authors_metrics` scores the rest. `crop`, `kb_crop` and `alignment` are not part of it.
    """
    _check_evaluation_arguments(protocol, alignment, batch_size, crop, kb_crop, crop_on_kb_crop)
    accelerator = accelerator if accelerator is not None else _new_accelerator()
    loader = _sharded_loader(dataset, batch_size, num_workers, accelerator)
    settings = dict(protocol=protocol, min_depth=min_depth, max_depth=max_depth, crop=crop, kb_crop=kb_crop)
    settings.update(flip_tta=flip_tta, alignment=alignment, batch_size=batch_size)
    settings.update(num_processes=accelerator.num_processes, silog=SILOG_DEFINITIONS[_silog_name(protocol)])
    if kb_crop:
        settings.update(kb_crop_size=list(kb_crop_size), crop_on_kb_crop=crop_on_kb_crop)
    names = PROTOCOL_METRIC_NAMES[protocol]
    accumulator = DepthMetricsAccumulator(min_depth=min_depth, max_depth=max_depth, crop=crop, metric_names=names)
    network = accelerator.unwrap_model(model)
    device = _model_device(network, accelerator)
    scoring = _Scoring(device, min_depth, max_depth, crop, kb_crop, tuple(kb_crop_size), crop_on_kb_crop, flip_tta)
    score = _score_authors_batch if protocol == "authors" else partial(_score_batch, alignment=alignment)
    with _evaluation_mode(network):
        _score_shards(partial(score, network, scoring=scoring), loader, accelerator, accumulator, progress)
    _warn_of_skipped_images(accumulator.num_skipped, protocol)
    return EvaluationResult(accumulator.compute(), accumulator.num_images, accumulator.num_skipped, settings)


def _warn_of_skipped_images(num_skipped: int, protocol: str) -> None:
    """Warn that images were left out of the means for having too few valid pixels (the protocol's minimum)."""
    if num_skipped:
        minimum = AUTHORS_MIN_VALID_PIXELS if protocol == "authors" else 1
        logger.warning("%d images had fewer than %d valid pixels and were skipped.", num_skipped, minimum)


def _new_accelerator() -> Any:
    """An `Accelerator()` for an evaluation given none: one process, or the process group a launcher started."""
    from accelerate import Accelerator

    return Accelerator()


def _sharded_loader(dataset: Dataset, batch_size: int, num_workers: int, accelerator: Any) -> DataLoader:
    """An in-order loader of lists of SAMPLEs, sharded over the accelerator's processes without registering it with
    the accelerator (whose `save_state` would then checkpoint it)."""
    return prepare_data_loader(
        DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=list),
        num_processes=accelerator.num_processes,
        process_index=accelerator.process_index,
    )


@contextmanager
def _evaluation_mode(network: torch.nn.Module) -> Iterator[None]:
    """Run `network` in eval mode, under `torch.inference_mode` and in its own precision (`own_precision`); its
    training mode is restored on exit."""
    was_training = network.training
    network.eval()
    try:
        with torch.inference_mode(), own_precision(network):
            yield
    finally:
        network.train(was_training)


def _silog_name(protocol: str) -> str:
    """The name of the SILog definition a protocol reports (`SILOG_DEFINITIONS`)."""
    return "silog_authors" if protocol == "authors" else "silog"


@contextmanager
def own_precision(network: torch.nn.Module) -> Iterator[None]:
    """Run `network` in its own precision: set aside the mixed-precision `forward` wrapper that
    `Accelerator.prepare` puts on the instance (restored on exit) and disable any enclosing autocast."""
    wrapper = network.__dict__.pop("forward", None)
    parameter = next(network.parameters(), None)
    device_type = parameter.device.type if parameter is not None else "cpu"
    try:
        with torch.autocast(device_type=device_type, enabled=False):
            yield
    finally:
        if wrapper is not None:
            network.forward = wrapper


def _check_evaluation_arguments(
    protocol: str, alignment: str, batch_size: int, crop: str | None, kb_crop: bool, crop_on_kb_crop: bool
) -> None:
    """Raise a clear error for an evaluation setting that does not exist or does not fit with the others."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")
    if alignment not in ALIGNMENTS:
        raise ValueError(f"Unknown alignment {alignment!r}; choose one of {', '.join(ALIGNMENTS)}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
    crop_mask(1, 1, crop)
    if crop_on_kb_crop and not kb_crop:
        raise ValueError("crop_on_kb_crop computes the evaluation crop on the KB crop: it needs kb_crop=True.")
    if protocol == "authors" and (crop is not None or kb_crop or alignment != "none"):
        raise ValueError(
            "The authors' protocol takes its crops and masks from the dataset (AuthorsEvaluationDataset) and scores "
            "metric depth as predicted: leave crop=None, kb_crop=False and alignment='none'."
        )


def _model_device(network: torch.nn.Module, accelerator: Any) -> torch.device:
    """The device of the model's parameters (the accelerator's for a model without any): where its inputs go."""
    parameter = next(network.parameters(), None)
    return parameter.device if parameter is not None else accelerator.device


@dataclass(frozen=True)
class _Scoring:
    """What scoring a batch needs besides the model: where the model runs, the valid depth range, the crops and
    whether to average with the flipped image (the arguments of `evaluate_depth_model` of the same names)."""

    device: torch.device
    min_depth: float
    max_depth: float
    crop: str | None
    kb_crop: bool
    kb_crop_size: tuple[int, int]
    crop_on_kb_crop: bool
    flip_tta: bool


def _score_shards(
    score: Callable[[list[dict[str, Any]]], torch.Tensor],
    loader: DataLoader,
    accelerator: Any,
    accumulator: DepthMetricsAccumulator,
    progress: bool,
) -> None:
    """Score this process's shard (`score` gives a batch's rows) and add every process's per-image metrics to
    `accumulator`, each image once."""
    bar = tqdm(loader, desc="evaluating", disable=not (progress and accelerator.is_main_process))
    for samples in bar:
        rows = score(samples)
        for row in accelerator.gather_for_metrics(rows.to(accelerator.device)).cpu():
            accumulator.add(dict(zip(accumulator.metric_names, row[:-1].tolist())) if row[-1] > 0 else None)


def _score_authors_batch(model: torch.nn.Module, samples: list[dict[str, Any]], scoring: _Scoring) -> torch.Tensor:
    """(len(samples), 10) float64 rows as `_score_batch`, scored as the authors' validation loop scores."""
    rows = torch.zeros((len(samples), len(AUTHORS_METRIC_NAMES) + 1), dtype=torch.float64)

    def sizes(index: int) -> tuple[int, ...]:
        return (*samples[index]["image"].shape[-2:], *samples[index]["depth"].shape[-2:])

    for indices in batches_by_size(range(len(samples)), sizes, len(samples)):
        for index in indices:
            if "mask" not in samples[index]:
                raise ValueError(
                    f"Sample {samples[index].get('id')} has no 'mask': the authors' protocol scores samples prepared "
                    f"by wedepth_hf.data.AuthorsEvaluationDataset (or AuthorsPreparedDataset)."
                )
        images = torch.stack([samples[index]["image"] for index in indices]).to(scoring.device)
        output_size = tuple(samples[indices[0]]["depth"].shape[-2:])
        depth = predict_depth(model, images, flip_tta=scoring.flip_tta, output_size=output_size)
        for index, prediction in zip(indices, depth.clamp(scoring.min_depth, scoring.max_depth)):
            sample = samples[index]
            metrics = compute_authors_metrics(prediction, sample["depth"].to(prediction.device), sample["mask"])
            _record_metrics(rows[index], metrics, AUTHORS_METRIC_NAMES)
    return rows


def _score_batch(
    model: torch.nn.Module, samples: list[dict[str, Any]], scoring: _Scoring, alignment: str
) -> torch.Tensor:
    """(len(samples), 10) float64: each image's metrics, aligned per `alignment` ("none", "median", ...), and a last
    column 1 (scored) or 0 (no valid pixel)."""
    rows = torch.zeros((len(samples), len(METRIC_NAMES) + 1), dtype=torch.float64)
    for indices in batches_by_size(range(len(samples)), lambda index: samples[index]["image"].shape[-2:], len(samples)):
        height, width = samples[indices[0]]["image"].shape[-2:]
        images = torch.stack([samples[index]["image"] for index in indices]).to(scoring.device)
        depth = predict_depth(
            model, images, flip_tta=scoring.flip_tta, kb_crop=scoring.kb_crop, kb_crop_size=scoring.kb_crop_size
        )
        for index, prediction in zip(indices, depth):
            target = samples[index]["depth"].to(device=prediction.device, dtype=torch.float64)
            if scoring.crop_on_kb_crop:
                prediction, target = _kb_cropped(prediction, target, scoring.kb_crop_size, samples[index].get("id"))
            prediction = _aligned_prediction(prediction, target, scoring, alignment, (height, width))
            metrics = compute_depth_metrics(
                prediction, target, min_depth=scoring.min_depth, max_depth=scoring.max_depth, crop=scoring.crop
            )
            _record_metrics(rows[index], metrics, METRIC_NAMES)
    return rows


def _record_metrics(row: torch.Tensor, metrics: dict[str, float] | None, names: Sequence[str]) -> None:
    """Write one image's metrics into its row of a batch's scores, in the order of `names`, and mark the row scored
    (last column 1); an image the protocol does not score (`metrics` None) keeps its row of zeros."""
    if metrics is not None:
        row[:-1] = torch.tensor([metrics[name] for name in names], dtype=torch.float64)
        row[-1] = 1.0


def _kb_cropped(
    prediction: torch.Tensor, target: torch.Tensor, kb_crop_size: tuple[int, int], name: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """The KB crop of a full-size (pasted-back) prediction and of its ground truth, for `crop_on_kb_crop`."""
    if target.shape != prediction.shape:
        raise ValueError(
            f"Sample {name}: crop_on_kb_crop needs ground truth of the image's size {tuple(prediction.shape)}, got "
            f"{tuple(target.shape)}."
        )
    top, left = kb_crop_box(*target.shape, kb_crop_size)
    rows, columns = slice(top, top + kb_crop_size[0]), slice(left, left + kb_crop_size[1])
    return prediction[rows, columns], target[rows, columns]


def _aligned_prediction(
    prediction: torch.Tensor, target: torch.Tensor, scoring: _Scoring, alignment: str, image_size: tuple[int, int]
) -> torch.Tensor:
    """The prediction at the target's size, non-finite values replaced, aligned per `alignment`."""
    min_depth, max_depth = scoring.min_depth, scoring.max_depth
    prediction = torch.nan_to_num(prediction.double(), nan=min_depth, posinf=max_depth, neginf=min_depth)
    if alignment == "none":
        return prediction
    if prediction.shape != target.shape:
        prediction = F.interpolate(prediction[None, None], size=target.shape, mode="bilinear", align_corners=False)[
            0, 0
        ]
    mask = valid_depth_mask(target, min_depth=min_depth, max_depth=max_depth, crop=scoring.crop)
    if scoring.kb_crop and not scoring.crop_on_kb_crop:
        # Only the pasted-back region holds predictions; the zero border must not enter the fit.
        kb_crop_size = scoring.kb_crop_size
        top, left = kb_crop_box(*image_size, kb_crop_size)
        region = torch.zeros_like(mask)
        scale_y, scale_x = target.shape[0] / image_size[0], target.shape[1] / image_size[1]
        region[
            int(top * scale_y) : int((top + kb_crop_size[0]) * scale_y),
            int(left * scale_x) : int((left + kb_crop_size[1]) * scale_x),
        ] = True
        mask &= region
    return align_depth(prediction, target, mask, alignment)


# ---- the `wedepth evaluate` command ----------------------------------------------------------------------------------


SUITES: dict[str, tuple[str, ...]] = {
    "paper": ("nyu", "kitti", "sunrgbd", "ibims", "argoverse", "ddad"),
    "paper_nyu": ("nyu", "sunrgbd", "ibims"),
    "paper_kitti": ("kitti", "argoverse", "ddad"),
}
"""The paper's evaluations: in-domain NYU and KITTI, then the zero-shot sets of an NYU model (SUN RGB-D, iBims-1) and
of a KITTI model (Argoverse, DDAD), all under the authors' protocol. `paper` runs all six with one model."""
SUITE_FOLDERS: dict[str, tuple[str, ...]] = {
    "nyu": ("nyu",),
    "kitti": ("kitti",),
    "sunrgbd": ("sunrgbd", "SUNRGBD"),
    "ibims": ("ibims", "ibims1_core_raw"),
    "argoverse": ("argoverse", "argo_out/val"),
    "ddad": ("ddad",),
}
"""Where `--suite` looks for each dataset under --data_root: our names first, then the authors' configs' folders."""

_COMMUNITY_ONLY = ("image_root", "depth_root", "depth_scale", "min_depth", "max_depth", "crop", "focal")


def build_parser() -> argparse.ArgumentParser:
    """The parser of `wedepth evaluate` (and `examples/evaluate.py`)."""
    parser = command_parser(
        "wedepth evaluate",
        (
            "Evaluate a depth checkpoint (folder or Hub id). --protocol community (default): one dataset of the "
            "community protocols (wedepth_hf.evaluation.EVALUATION_DATASETS); for `folder` give --depth_scale, "
            "--min_depth, --max_depth, --crop; for `hf` (a `datasets` dataset) --data_root is the Hub id or folder, "
            "with --split, --image_column, --depth_column. --protocol authors: one of the authors' six test sets, "
            "read, cropped, masked and scored as their code does. --suite paper: the paper's evaluation, every "
            "dataset found under --data_root, in one table. Runs on several GPUs under `accelerate launch`. Exit "
            "status: 0 done; 1 a runtime error (a model or sample that does not load, no image to score; one line); 2 "
            "a usage error, checked before the model is loaded; 130 stopped by Ctrl-C."
        ),
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or Hub id")
    parser.add_argument("--dataset", choices=sorted(EVALUATION_DATASETS), help="the dataset (not with --suite)")
    parser.add_argument(
        "--data_root", required=True, help="dataset root (for 'hf': Hub id or folder; for --suite: the folder of all)"
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, help="community (default) or authors (default with --suite)")
    parser.add_argument("--suite", choices=sorted(SUITES), help="evaluate a suite of datasets under --data_root")
    parser.add_argument("--split_file", help="list file (default: the dataset's usual list file in data_root)")
    parser.add_argument("--image_root", help="image folder, relative to data_root (default: data_root)")
    parser.add_argument("--depth_root", help="depth folder, relative to data_root (default: data_root)")
    parser.add_argument("--flip_tta", action="store_true", help="average with the prediction of the flipped image")
    parser.add_argument("--alignment", default="none", choices=ALIGNMENTS)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="precision of the model's weights and forward: float64 reproduces reference numbers to the last digit",
    )
    parser.add_argument("--output", type=Path, help="write the results as JSON here (and the table beside it, .md)")
    parser.add_argument("--update_model_card", type=Path, help="write the results into this model card (README.md)")
    _add_community_options(parser)
    parser.add_argument(
        "--allow_paths_outside_root",
        action="store_true",
        help="accept list lines that lead outside --data_root (or --image_root / --depth_root), by '..' or a link",
    )
    parser.add_argument(
        "--max_pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"refuse, before decoding, an image or depth file of more than N pixels (default {DEFAULT_MAX_PIXELS:,}, "
        "a guard against decompression bombs; 0: no limit)",
    )
    return parser


def _add_community_options(parser: argparse.ArgumentParser) -> None:
    """The options of `wedepth evaluate` that only the community protocol takes: depth decoding and range, crops, the
    KB crop, and the columns of an 'hf' dataset."""
    parser.add_argument("--depth_scale", type=float, help="raw depth units per metre (overrides the dataset's)")
    parser.add_argument("--min_depth", type=float, help="override the dataset's minimum valid depth")
    parser.add_argument("--max_depth", type=float, help="override the dataset's maximum valid depth")
    parser.add_argument("--crop", choices=("none", *CROPS), help="override the dataset's evaluation crop")
    parser.add_argument("--focal", type=float, help="focal length (px) for list lines without one")
    parser.add_argument("--kb_crop_size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=KB_CROP_SIZE)
    parser.add_argument("--no_kb_crop", action="store_true", help="run the model on full images for KB-crop datasets")
    parser.add_argument(
        "--crop_on_kb_crop",
        action="store_true",
        help="score the KB-cropped maps, with the crop box computed from the KB crop's size (where the authors' "
        "KITTI class computes it), instead of the prediction pasted into the full frame (the community standard)",
    )
    parser.add_argument("--split", default="validation", help="split of an 'hf' dataset")
    parser.add_argument("--image_column", default="image")
    parser.add_argument("--depth_column", default="depth_map")


def _check_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Usage errors before anything is loaded: the protocol's options, the suite's, and the output paths."""
    if args.suite is not None:
        if args.dataset is not None or args.split_file is not None:
            parser.error("--suite evaluates every dataset of the suite: drop --dataset and --split_file.")
        if args.protocol == "community":
            parser.error("--suite runs the paper's evaluation, which uses the authors' protocol: drop --protocol.")
        args.protocol = "authors"
    elif args.dataset is None:
        parser.error("give --dataset (or --suite).")
    args.protocol = args.protocol or "community"
    if args.protocol == "authors":
        if args.dataset is not None and args.dataset not in AUTHORS_DATASETS:
            parser.error(f"--protocol authors covers the authors' test sets: {', '.join(AUTHORS_DATASETS)}.")
        given = [f"--{name}" for name in _COMMUNITY_ONLY if getattr(args, name) is not None]
        given += [flag for flag in ("--no_kb_crop", "--crop_on_kb_crop") if getattr(args, flag[2:])]
        given += ["--alignment"] if args.alignment != "none" else []
        given += ["--kb_crop_size"] if tuple(args.kb_crop_size) != KB_CROP_SIZE else []
        if given:
            parser.error(
                f"{', '.join(given)}: not part of the authors' protocol, which takes each dataset's crops, masks and "
                f"depth range from their dataset class. Use --protocol community for these."
            )
    _check_numbers(args, parser)
    _check_output_paths(args, parser)


def _check_numbers(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Usage errors of the numeric options: counts, sizes and depths out of their range."""
    if args.batch_size < 1:
        parser.error(f"--batch_size must be at least 1, got {args.batch_size}.")
    if args.max_pixels < 0:
        parser.error(f"--max_pixels must be 0 (no limit) or more, got {args.max_pixels}.")
    if args.num_workers < 0:
        parser.error(f"--num_workers must be 0 (load in the main process) or more, got {args.num_workers}.")
    if min(args.kb_crop_size) < 1:
        parser.error(f"--kb_crop_size must be two positive sizes, got {' '.join(map(str, args.kb_crop_size))}.")
    for name in ("depth_scale", "min_depth", "max_depth", "focal"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            parser.error(f"--{name} must be a positive number, got {value}.")
    if args.min_depth is not None and args.max_depth is not None and args.min_depth >= args.max_depth:
        parser.error(f"--min_depth ({args.min_depth}) must be below --max_depth ({args.max_depth}).")


def _check_output_paths(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Usage errors of the files the results go to, found before the evaluation rather than after it."""
    if args.output is not None:
        if args.output.is_dir():
            parser.error(f"--output {args.output} is a folder; give a file name, e.g. {args.output / 'results.json'}.")
        if args.output.suffix.lower() == ".md":
            parser.error(
                f"--output {args.output}: the JSON report goes there and its Markdown table beside it, with the "
                f"suffix .md, which would overwrite it; give a .json name."
            )
        existing = next(folder for folder in args.output.absolute().parents if folder.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            parser.error(f"--output {args.output}: cannot write there ({existing} is not a writable folder).")
    if args.update_model_card is not None:
        if not args.update_model_card.is_file():
            parser.error(f"--update_model_card {args.update_model_card}: no such model card (README.md) to update.")
        if not os.access(args.update_model_card, os.R_OK | os.W_OK):
            parser.error(f"--update_model_card {args.update_model_card}: the file is not writable.")


def _command_spec(args: argparse.Namespace, parser: argparse.ArgumentParser) -> DatasetSpec:
    """The dataset's community spec with the command line's overrides applied."""
    spec = resolve_spec(
        args.dataset,
        depth_scale=args.depth_scale,
        min_depth=args.min_depth,
        max_depth=args.max_depth,
        default_focal=args.focal,
        kb_crop=False if args.no_kb_crop else None,
    )
    if args.crop is not None:
        spec = dataclasses.replace(spec, crop=None if args.crop == "none" else args.crop)
    if args.crop_on_kb_crop and not spec.kb_crop:
        parser.error(f"--crop_on_kb_crop needs a KB-crop dataset; {args.dataset} is evaluated on full images here.")
    return spec


def suite_folder(data_root: str | Path, name: str) -> Path | None:
    """The folder of dataset `name` under a suite's `data_root` (see `SUITE_FOLDERS`), or None when there is none."""
    for folder in SUITE_FOLDERS[name]:
        path = Path(data_root) / folder
        if path.is_dir():
            return path
    return None


def evaluate_authors_dataset(
    model: torch.nn.Module, dataset: AuthorsEvaluationDataset, **kwargs: Any
) -> EvaluationResult:
    """One of the authors' six test sets, as read by `AuthorsEvaluationDataset(name, data_root)`, scored as their code
    scores it (`evaluate_depth_model(protocol="authors")` at the dataset's depth range); the result's settings say
    where it was read from. `kwargs` go to `evaluate_depth_model` (accelerator, flip_tta, batch_size, ...)."""
    if not isinstance(dataset, AuthorsEvaluationDataset):
        raise TypeError(
            f"evaluate_authors_dataset scores an AuthorsEvaluationDataset, got {type(dataset).__name__}: pass "
            "AuthorsEvaluationDataset(name, data_root, split_file)."
        )
    spec = dataset.spec
    result = evaluate_depth_model(
        model, dataset, protocol="authors", min_depth=spec.min_depth, max_depth=spec.max_depth, **kwargs
    )
    result.settings.update(dataset=spec.name, data_root=str(dataset.root), split_file=dataset.split_file)
    return result


_SOURCE_OPTIONS = ("image_root", "depth_root", "split", "image_column", "depth_column")
"""The command's options that say where a community dataset's images and depth maps are (`build_evaluation_dataset`)."""


def _command_datasets(
    args: argparse.Namespace, spec: DatasetSpec | None, parser: argparse.ArgumentParser
) -> tuple[dict[str, Dataset], dict[str, str]]:
    """The command's datasets ({name: dataset}) and, for a suite, {name: the folder that was not found}. They are made
    before the model is loaded: a missing folder or list, a malformed line, a path outside the root or a missing
    OpenCV is a usage error."""
    datasets: dict[str, Dataset] = {}
    missing: dict[str, str] = {}
    reading = dict(max_pixels=args.max_pixels, allow_paths_outside_root=args.allow_paths_outside_root)
    try:
        if args.suite is not None:
            for name in SUITES[args.suite]:
                folder = suite_folder(args.data_root, name)
                if folder is None:
                    missing[name] = " or ".join(str(Path(args.data_root) / option) for option in SUITE_FOLDERS[name])
                    logger.warning("%s: no folder %s; it is left out of the table.", name, missing[name])
                    continue
                datasets[name] = AuthorsEvaluationDataset(name, folder, **reading)
        elif args.protocol == "authors":
            datasets[args.dataset] = AuthorsEvaluationDataset(args.dataset, args.data_root, args.split_file, **reading)
        else:
            sources = {option: getattr(args, option) for option in _SOURCE_OPTIONS}
            datasets[args.dataset] = build_evaluation_dataset(
                spec, args.data_root, args.split_file, **sources, **reading
            )
    except (FileNotFoundError, ValueError, ImportError) as error:
        parser.error(" ".join(str(error).split()))
    return datasets, missing


def _evaluate_command(
    args: argparse.Namespace,
    model: torch.nn.Module,
    accelerator: Any,
    spec: DatasetSpec | None,
    datasets: dict[str, Dataset],
) -> dict[str, EvaluationResult]:
    """{dataset: EvaluationResult} for the command's datasets (`_command_datasets`)."""
    common = dict(
        batch_size=args.batch_size, flip_tta=args.flip_tta, accelerator=accelerator, num_workers=args.num_workers
    )
    if args.protocol == "authors":
        results = {}
        for name, dataset in datasets.items():
            if args.suite is not None:
                logger.info("%s: %s", name, dataset.root)
            results[name] = evaluate_authors_dataset(model, dataset, **common)
        return results
    ((name, dataset),) = datasets.items()
    common.update(kb_crop_size=tuple(args.kb_crop_size), crop_on_kb_crop=args.crop_on_kb_crop, alignment=args.alignment)
    result = evaluate_depth_model(model, dataset, **spec.evaluation_arguments(), **common)
    return {name: result}


def results_report(
    results: dict[str, EvaluationResult], missing: dict[str, str], protocol: str, **settings: Any
) -> dict[str, Any]:
    """The JSON report of an evaluation: which protocol and which SILog, the metrics per dataset, the images used
    and skipped, the datasets not found, and the settings (of a suite's datasets under "datasets")."""
    silog = _silog_name(protocol)
    return {
        "protocol": protocol,
        "silog": {silog: SILOG_DEFINITIONS[silog]},
        "results": {name: result.metrics for name, result in results.items()},
        "num_images": {name: result.num_images for name, result in results.items()},
        "num_skipped": {name: result.num_skipped for name, result in results.items()},
        "missing": missing,
        "settings": {**settings, **_settings_of(results, settings.get("suite")), "torch": torch.__version__},
    }


def _settings_of(results: dict[str, EvaluationResult], suite: str | None) -> dict[str, Any]:
    """The evaluation settings of one dataset as they are, or of a suite's datasets by name."""
    if suite is None and len(results) == 1:
        return next(iter(results.values())).settings
    return {"datasets": {name: result.settings for name, result in results.items()}}


def report_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table: a row per dataset (a row of dashes for a dataset that was not found), then
    the protocol and SILog definition."""
    from .hub import results_table

    rows = dict(report["results"])
    rows.update({f"{name} (not found: {path})": {} for name, path in report["missing"].items()})
    names = PROTOCOL_METRIC_NAMES[report["protocol"]]
    table = results_table({name: rows[name] for name in rows}) if report["results"] else _empty_table(rows, names)
    ((silog, definition),) = report["silog"].items()
    return f"{table}\n\nProtocol: {report['protocol']}. {silog} = {definition}.\n"


def _empty_table(rows: dict[str, dict[str, float]], names: tuple[str, ...]) -> str:
    """The Markdown table of a report in which no dataset was scored: a row of dashes per dataset."""
    lines = ["| dataset | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {name} | " + " | ".join("-" for _ in names) + " |" for name in rows]
    return "\n".join(lines)


def _write_report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Log the table; write the JSON report, its Markdown table and the model card's results when asked."""
    from .hub import update_model_card_results

    table = report_table(report)
    used, skipped = report["num_images"], report["num_skipped"]
    counts = "".join(f"\n{name}: images used: {used[name]}, skipped: {skipped[name]}" for name in report["results"])
    logger.info("\n%s%s", table, counts)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        args.output.with_suffix(".md").write_text(table)
    if args.update_model_card is not None and report["results"]:
        update_model_card_results(args.update_model_card, report["results"], dataset_split="test")


def main(argv: Sequence[str] | None = None) -> int:
    """`wedepth evaluate`: load the model and dataset(s), evaluate, report; returns the exit status: 0 done, 1 a
    runtime error (a model or a sample that does not load, a report that cannot be written; one line), 2 a usage
    error (argparse), 130 stopped by Ctrl-C. `--debug` shows the traceback of a runtime error instead."""
    from .command_logging import configure_command_logging, run_command

    configure_command_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(lambda: _run_evaluation(args, parser), debug=args.debug, parser=parser, explain=_failure)


def _failure(error: Exception) -> Explanation | None:
    """The exit status and one line of a runtime error of `wedepth evaluate` (None: an unexpected error)."""
    from .command_logging import CommandError, one_line

    if isinstance(error, BadSampleError):
        return 1, bad_sample_message(error)
    if isinstance(error, (CommandError, OSError)):
        return 1, one_line(error)
    return None


def _run_evaluation(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The work of `wedepth evaluate` after parsing: check, read the datasets, load the model, score, report."""
    from accelerate import Accelerator

    _check_command(args, parser)
    spec = _command_spec(args, parser) if args.protocol == "community" else None
    datasets, missing = _command_datasets(args, spec, parser)
    accelerator = Accelerator()
    _check_process_group(accelerator.num_processes, parser)
    model = _command_model(args.model).to(accelerator.device, getattr(torch, args.dtype))
    results = _evaluate_command(args, model, accelerator, spec, datasets)
    unscored = [name for name, result in results.items() if result.num_images == 0]
    if unscored:
        # Every rank has the same (gathered) counts, so every rank stops here; no report of NaN metrics is written.
        logger.error(
            "No image of %s had enough valid ground-truth pixels (%s skipped): there is nothing to score, and no "
            "report was written. Check --depth_scale and the depth range (--min_depth, --max_depth).",
            ", ".join(unscored),
            ", ".join(str(results[name].num_skipped) for name in unscored),
        )
        accelerator.end_training()
        return 1
    if accelerator.is_main_process:
        _write_report(args, _command_report(args, results, missing, spec))
    # Every rank waits for the report, then leaves the process group together: a rank that exits while another
    # still holds the group aborts in the collective backend's destructor.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0


def _check_process_group(num_processes: int, parser: argparse.ArgumentParser) -> None:
    """Refuse processes that a launcher started but that formed no process group: each would score every image and
    write the same report."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > num_processes:
        parser.error(
            f"launched as {launched} processes, but they formed no process group (accelerate found no GPU). On CPUs "
            f"set ACCELERATE_USE_CPU=true: `ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes "
            f"{launched} -m wedepth_hf evaluate ...` (or torchrun)."
        )


def _command_model(name: str) -> torch.nn.Module:
    """The --model of `wedepth evaluate`, through `AutoModelForDepthEstimation`; one line (`CommandError`) when it
    does not load."""
    from transformers import AutoModelForDepthEstimation

    from . import WEDepthForDepthEstimation  # noqa: F401  (registers WEDepth with the Auto classes)
    from .command_logging import CommandError

    try:
        return AutoModelForDepthEstimation.from_pretrained(name)
    except MODEL_LOADING_ERRORS as error:
        raise CommandError(model_loading_failure(name, error)) from error


def _command_report(
    args: argparse.Namespace, results: dict[str, EvaluationResult], missing: dict[str, str], spec: DatasetSpec | None
) -> dict[str, Any]:
    """The JSON report of the command (`results_report`) with the command's settings."""
    options = ("model", "suite", "dataset", "data_root", "split_file", "dtype")
    settings = {option: getattr(args, option) for option in options}
    settings.update(data_root=str(args.data_root), depth_scale=spec.depth_scale if spec is not None else None)
    return results_report(results, missing, args.protocol, **settings)


__all__ = [
    "EVALUATION_DATASETS",
    "PROTOCOLS",
    "SUITES",
    "evaluate_authors_dataset",
    "own_precision",
    "report_table",
    "results_report",
    "suite_folder",
    "DatasetSpec",
    "EvaluationResult",
    "build_evaluation_dataset",
    "diode_entries",
    "evaluate_depth_model",
    "main",
    "predict_depth",
    "resolve_spec",
]
