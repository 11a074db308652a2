"""What a run trains and validates on, built from its `TrainingConfig`: the train/validation datasets with the
augmentation, the per-epoch sampler, and the checks of the data sources made before a run writes anything.

- `build_datasets`: the datasets, augmentation and dropped validation samples (`TrainingData`), for every source
  (synthetic, NYU and KITTI lists, a `datasets` dataset), with a seeded hold-out of validation when asked.
- `check_data_sources`: the lists read and checked before a run writes anything (`TrainingDataError`).
- `EpochShuffleSampler`: a seeded order per epoch, the same after a resume.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import Dataset, Sampler, Subset
from transformers.utils import logging

from ..camera import median_training_camera
from ..constants import KB_CROP_SIZE, NYU_SIZE
from ..data.authors import AuthorsPreparedDataset
from ..data.datasets import HFDepthDataset, KITTIDepthDataset, NYUDepthDataset
from ..data.synthetic import (
    SyntheticDepthDataset,
    foreign_synthetic_entries,
    nyu_intrinsics,
    write_synthetic_nyu_layout,
)
from ..data.transforms import DepthAugmentation
from ..folders import listed_names
from .config import TrainingConfig, build_augmentation


logger = logging.get_logger(__name__)

# The folder of `<output_dir>` the synthetic data set is written to when `synthetic_data_dir` is not set.
SYNTHETIC_DATA_DIR = "data"


class TrainingDataError(ValueError):
    """The data a run is given cannot be read as asked: a missing folder or list file, a malformed line, a path that
    leaves the data root. Found before the run writes anything; the message names the file."""


@dataclass
class TrainingData:
    """What the loop trains and validates on: the training dataset (augmented by `augmentation`, which the loop
    moves to each epoch), the validation dataset (None: no validation) and the errors of the validation samples
    left out as bad (`on_bad_sample: skip`; see `drop_bad_samples`), and the training images' camera
    (`training_camera`)."""

    train: Dataset
    validation: Dataset | None
    augmentation: DepthAugmentation | None
    dropped_validation_samples: list[str] = field(default_factory=list)
    camera: dict[str, Any] | None = None


class CheckedSubset(Subset):
    """The samples of a dataset that loaded when checked; `dropped` holds the errors of those left out."""

    def __init__(self, dataset: Dataset, indices: Sequence[int], dropped: list[str]) -> None:
        """The samples `indices` of `dataset`, with the errors of those left out."""
        super().__init__(dataset, indices)
        self.dropped = dropped


class SkippingSubset(Subset):
    """The training part of a held-out split with `on_bad_sample: skip`: a bad sample is replaced by the next good
    sample of this part, never by a held-out validation one; `skipped` counts the replacements."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        """The samples `indices` of `dataset`, no replacement made yet."""
        super().__init__(dataset, indices)
        self.skipped = 0

    def __getitem__(self, index: int) -> Any:
        """Sample `index` of this part, or the next good one of it when that sample does not load."""
        for offset in range(len(self.indices)):
            candidate = self.indices[(index + offset) % len(self.indices)]
            try:
                return self.dataset[candidate]
            except (FileNotFoundError, ValueError) as error:
                self.skipped += 1
                logger.warning("Skipping bad training sample %d: %s", candidate, error)
        raise ValueError(f"Every one of the {len(self.indices)} training samples is bad; see the warnings above.")

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """The samples of `indices` (a batch), each through `__getitem__`'s skipping."""
        return [self[index] for index in indices]


class EpochShuffleSampler(Sampler[int]):
    """A random order of the dataset per epoch, seeded by (seed, epoch): the same data order after a resume."""

    def __init__(self, num_samples: int, seed: int) -> None:
        """A sampler of `num_samples` indices in the order of (`seed`, epoch), at epoch 0."""
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of `epoch` (accelerate's dataloaders call this through `set_epoch`)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        """The indices in the order of the current epoch."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        """The number of samples of an epoch."""
        return self.num_samples


def synthetic_data_root(config: TrainingConfig) -> Path:
    """Where the synthetic NYU-layout data is written: `synthetic_data_dir`, or `<output_dir>/data`."""
    if config.synthetic_data_dir:
        return Path(config.synthetic_data_dir)
    return Path(config.output_dir) / SYNTHETIC_DATA_DIR


def check_data_sources(config: TrainingConfig) -> None:
    """Read the list files of a `dataset: nyu` / `kitti` run as its readers will (data root, image and depth roots,
    every line, paths inside the root unless `allow_paths_outside_root`), before the run writes anything; a
    `TrainingDataError` says what is wrong. The images themselves are read during training.

    For a synthetic run written to files, a `synthetic_data_dir` that holds anything the synthetic layout does not
    is refused: the run writes its lists and images there, over files of the same names."""
    if config.dataset == "synthetic" and config.synthetic_source == "files" and config.synthetic_data_dir:
        _check_synthetic_data_dir(Path(config.synthetic_data_dir))
    if config.dataset not in ("nyu", "kitti"):
        return
    try:
        _list_datasets(config, None, {"on_bad_sample": "raise"})
    except (FileNotFoundError, ValueError) as error:
        raise TrainingDataError(str(error)) from error


def _check_synthetic_data_dir(root: Path) -> None:
    """A `TrainingDataError` unless `root` is absent, empty or holds a synthetic layout and nothing else."""
    if not os.path.lexists(root):
        return
    if root.is_symlink() or not root.is_dir():
        raise TrainingDataError(f"synthetic_data_dir {root} is not a folder; give a new or empty folder.")
    foreign = foreign_synthetic_entries(root)
    if foreign:
        raise TrainingDataError(
            f"synthetic_data_dir {root} holds files the synthetic data set does not ({listed_names(foreign)}); the run "
            "writes train.txt, val.txt, train/ and val/ there, over files of those names. Give a new or empty folder."
        )


def drop_bad_samples(dataset: Dataset, *, log: bool = True) -> CheckedSubset:
    """Read every sample of `dataset` once and keep those that load: for validation with `on_bad_sample: skip`.

    A bad validation sample is left out and counted, never replaced by another one (which would then be scored
    twice and change the metric). `dataset` must raise on a bad sample (`on_bad_sample="raise"`).
    """
    good, dropped = [], []
    for index in range(len(dataset)):
        try:
            dataset[index]
        except (FileNotFoundError, ValueError) as error:
            dropped.append(str(error))
            if log:
                logger.warning("Validation: leaving out bad sample %d: %s", index, error)
            continue
        good.append(index)
    if not good:
        raise ValueError(f"Every one of the {len(dataset)} validation samples is bad; see the warnings above.")
    if dropped and log:
        logger.warning(
            "Validation: %d of %d samples left out as bad (on_bad_sample: skip drops bad validation samples; only "
            "training samples are replaced by the next good one).",
            len(dropped),
            len(dataset),
        )
    return CheckedSubset(dataset, good, dropped)


def build_datasets(config: TrainingConfig, accelerator: Accelerator | None = None) -> TrainingData:
    """The training dataset with its augmentation and the validation dataset without, for `config.dataset`.

    With `dataset: synthetic` and `synthetic_source: files` the synthetic set is written in the NYU list layout (main
    process) and read back with `NYUDepthDataset`, the loader real NYU data uses. With `eval_protocol: authors` the
    validation samples are prepared as the authors' class for the dataset prepares its test samples (crop, mask).

    `on_bad_sample` applies as such to training only: a skipped training sample is replaced by the next good one.
    Validation never substitutes a sample: with `raise` a bad validation sample stops the run when it is scored; with
    `skip` every validation sample is read once here and the bad ones are dropped and counted (`drop_bad_samples`;
    the validation dataset's `dropped` and `TrainingData.dropped_validation_samples`).
    """
    augmentation = build_augmentation(config)
    train, validation = _split_datasets(config, augmentation, accelerator)
    if validation is not None and config.on_bad_sample == "skip":
        validation = drop_bad_samples(validation, log=accelerator is None or accelerator.is_main_process)
    dropped = list(getattr(validation, "dropped", []))
    if validation is not None and config.eval_protocol == "authors":
        validation = AuthorsPreparedDataset(validation, config.dataset)
    return TrainingData(
        train=train,
        validation=validation,
        augmentation=augmentation,
        dropped_validation_samples=dropped,
        camera=training_camera(config, train),
    )


def training_camera(config: TrainingConfig, train: Dataset) -> dict[str, Any] | None:
    """The camera the exported model records (`WEDepthConfig.training_camera`): the median focal length of the
    training samples, before augmentation (a zoom multiplies it by at most 1 + `scale`), at their size; None for a
    `datasets` dataset without focal lengths."""
    while isinstance(train, Subset):
        train = train.dataset
    if isinstance(train, SyntheticDepthDataset):
        size = (config.synthetic_height, config.synthetic_width)
        source = f"synthetic scenes (the NYU-Depth v2 camera scaled to {size[1]}x{size[0]})"
        return median_training_camera([nyu_intrinsics(*size)[0]], size, source)
    if isinstance(train, HFDepthDataset):
        focal_lengths = train.dataset[train.focal_column] if train.focal_column else [train.default_focal]
        return median_training_camera(focal_lengths, None, f"{train.name} (median focal length)")
    sizes = {"nyu": NYU_SIZE, "kitti": KB_CROP_SIZE if config.kb_crop else None}
    size = (config.synthetic_height, config.synthetic_width) if config.dataset == "synthetic" else sizes[config.dataset]
    source = f"{config.dataset} training list {Path(str(config.train_split_file)).name} (median focal length)"
    return median_training_camera((focal for _, _, focal in train.entries), size, source)


def _holdout_indices(num_samples: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of range(num_samples) into (train, validation) with `fraction` of the samples in validation."""
    num_val = round(num_samples * fraction)
    if num_val < 1 or num_val >= num_samples:
        raise ValueError(
            f"`val_fraction` {fraction} of {num_samples} samples leaves {num_val} for validation and "
            f"{num_samples - num_val} for training; both need at least one."
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_samples, generator=generator).tolist()
    return sorted(order[num_val:]), sorted(order[:num_val])


def _split_datasets(
    config: TrainingConfig, transform: DepthAugmentation | None, accelerator: Accelerator | None
) -> tuple[Dataset, Dataset | None]:
    """(training, validation) before the validation check: validation datasets are built to raise on a bad sample.

    A source without its own validation split gives `val_fraction` of its training list (read without augmentation)
    to validation, seeded; with neither there is no validation.
    """
    train, validation, plain = _datasets_of_source(config, transform, accelerator)
    if validation is not None:
        return train, validation
    if config.val_fraction == 0.0:
        logger.warning(
            "No validation split (`val_split_file`, `hf_val_split` or `val_fraction`): no evaluation during training; "
            "the exported model is the final one."
        )
        return train, None
    train_indices, val_indices = _holdout_indices(len(train), config.val_fraction, config.seed)
    logger.info(
        "Held out %d of %d training samples for validation (seed %d)", len(val_indices), len(train), config.seed
    )
    part_class = SkippingSubset if config.on_bad_sample == "skip" else Subset
    return part_class(train, train_indices), Subset(plain, val_indices)


def _datasets_of_source(
    config: TrainingConfig, transform: DepthAugmentation | None, accelerator: Accelerator | None
) -> tuple[Dataset, Dataset | None, Dataset | None]:
    """(training, validation or None, the training list without augmentation for a hold-out or None) of the
    source `config.dataset` names."""
    strict = {"on_bad_sample": "raise"}
    # Validation held out of the training list: the training part skips within itself (`SkippingSubset`), so the
    # whole list is read strictly and no held-out sample can stand in for a bad training one.
    val_from_list = config.val_split_file is not None
    holdout = config.val_fraction > 0.0 and not (config.dataset in ("nyu", "kitti") and val_from_list)
    reading = strict if holdout else {"on_bad_sample": config.on_bad_sample}
    if config.dataset == "synthetic":
        return (*_synthetic_datasets(config, transform, accelerator, reading), None)
    if config.dataset == "hf":
        return _hf_datasets(config, transform, reading)
    return _list_datasets(config, transform, reading)


def _synthetic_datasets(
    config: TrainingConfig,
    transform: DepthAugmentation | None,
    accelerator: Accelerator | None,
    reading: dict[str, str],
) -> tuple[Dataset, Dataset]:
    """(training, validation) synthetic scenes: rendered in memory, or written in the NYU list layout (by the main
    process) and read back with `NYUDepthDataset`; `reading` is the training set's `on_bad_sample`."""
    if config.synthetic_source == "on_the_fly":
        size = {"height": config.synthetic_height, "width": config.synthetic_width}
        train = SyntheticDepthDataset(config.synthetic_num_train, seed=config.seed, transform=transform, **size)
        # Dataset seeds own disjoint ranges of scenes: the validation scenes are not training scenes.
        return train, SyntheticDepthDataset(config.synthetic_num_val, seed=config.seed + 1, **size)
    root = synthetic_data_root(config)
    if accelerator is None or accelerator.is_main_process:
        write_synthetic_nyu_layout(
            root,
            config.synthetic_num_train,
            config.synthetic_num_val,
            seed=config.seed,
            height=config.synthetic_height,
            width=config.synthetic_width,
        )
    if accelerator is not None:
        accelerator.wait_for_everyone()
    train = NYUDepthDataset(root, root / "train.txt", transform=transform, **reading)
    return train, NYUDepthDataset(root, root / "val.txt", on_bad_sample="raise")


def _hf_datasets(
    config: TrainingConfig, transform: DepthAugmentation | None, reading: dict[str, str]
) -> tuple[Dataset, Dataset | None, Dataset | None]:
    """(training, the `hf_val_split` or None, the training split without augmentation or None) of a `datasets`
    dataset; the validation split is used unless `val_fraction` asks for a hold-out."""

    def make(split: str, with_transform: bool) -> Dataset:
        """The dataset of `split`: augmented, reading as `reading` says, for training; strict without."""
        return HFDepthDataset(
            config.hf_dataset_name,
            split,
            image_column=config.hf_image_column,
            depth_column=config.hf_depth_column,
            depth_scale=config.hf_depth_scale,
            transform=transform if with_transform else None,
            **(reading if with_transform else {"on_bad_sample": "raise"}),
        )

    train = make(config.hf_train_split, True)
    if config.hf_val_split is not None and config.val_fraction == 0.0:
        return train, make(config.hf_val_split, False), None
    return train, None, make(config.hf_train_split, False)


def _list_datasets(
    config: TrainingConfig, transform: DepthAugmentation | None, reading: dict[str, str]
) -> tuple[Dataset, Dataset | None, Dataset | None]:
    """(training, the `val_split_file` list or None, the training list without augmentation or None) of NYU or
    KITTI list files."""
    dataset_class = NYUDepthDataset if config.dataset == "nyu" else KITTIDepthDataset
    extra: dict[str, Any] = dict(reading, allow_paths_outside_root=config.allow_paths_outside_root)
    if config.dataset == "kitti":
        extra.update(image_root=config.image_root, depth_root=config.depth_root, kb_crop=config.kb_crop)
    else:
        if config.image_root is not None:
            extra["image_root"] = config.image_root
        if config.depth_root is not None:
            extra["depth_root"] = config.depth_root
    train = dataset_class(config.data_root, config.train_split_file, transform=transform, **extra)
    # KITTI validation images keep their full size: the evaluator applies the KB crop and pastes back.
    extra.pop("kb_crop", None)
    extra.update(on_bad_sample="raise")
    if config.val_split_file is not None:
        return train, dataset_class(config.data_root, config.val_split_file, **extra), None
    return train, None, dataset_class(config.data_root, config.train_split_file, **extra)
