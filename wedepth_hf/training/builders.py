"""What a run trains and trains on, built from its `TrainingConfig`: the model (with SyncBatchNorm for multi-GPU
runs), the augmentation, the train/validation datasets, the per-epoch sampler, AdamW and the learning-rate schedule.

- `build_model`: a WEDepth checkpoint (`init_from`), pretrained backbones, or a random init from a config dict.
- `build_datasets`: the datasets, augmentation and dropped validation samples (`TrainingData`), for every source
  (synthetic, NYU and KITTI lists, a `datasets` dataset), with a seeded hold-out of validation when asked;
  `check_data_sources`: the lists read and checked before a run writes anything.
- `build_optimizer`: AdamW over the trainable parameters (all decayed, as the authors' train.py, or with norms,
  biases, embeddings and gates exempt); `build_scheduler`: a linear warm-up from `warmup_start_ratio` then a cosine to
  `min_lr_ratio` (the authors' `WarmupCosineSchedule` at 0.1 and 0.1).
- `maybe_sync_batchnorm`: SyncBatchNorm for multi-GPU runs, as the authors' train.py.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset, Sampler, Subset
from transformers.utils import logging

from ..configuration_wedepth import WEDepthConfig
from ..data.authors import AuthorsPreparedDataset
from ..data.transforms import DepthAugmentation
from ..modeling_wedepth import WEDepthForDepthEstimation


if TYPE_CHECKING:  # config imports this module: `TrainingConfig` checks its augmentation with `build_augmentation`
    from .config import TrainingConfig


logger = logging.get_logger(__name__)

# Substrings of a parameter's own name (the part after the last dot) that exempt it from weight decay when
# `decay_all_trainable_parameters` is false: prompts, position / level embeddings, Swin's relative position bias
# tables and gamma gates. Matched on the leaf only, so that e.g. "prompt_block.proj.weight" is still decayed.
NO_DECAY_NAME_PATTERNS = (
    "prompt",
    "position",
    "level_embed",
    "relative_position_bias_table",
    "gamma",
)
# Device types on which PyTorch's SyncBatchNorm runs in a distributed run (it raises a ValueError on CPU tensors).
SYNC_BATCHNORM_DEVICE_TYPES = ("cuda", "xpu", "hpu")
# The folder of `<output_dir>` the synthetic data set is written to when `synthetic_data_dir` is not set.
SYNTHETIC_DATA_DIR = "data"


class TrainingDataError(ValueError):
    """The data a run is given cannot be read as asked: a missing folder or list file, a malformed line, a path that
    leaves the data root. Found before the run writes anything; the message names the file."""


# ---- model -----------------------------------------------------------------------------------------------------------


def build_model(config: TrainingConfig) -> WEDepthForDepthEstimation:
    """The model to train: a WEDepth checkpoint (`init_from`), pretrained backbones, or a random init from config."""
    if config.init_from is not None:
        logger.info("Fine-tuning the WEDepth checkpoint %s", config.init_from)
        model = WEDepthForDepthEstimation.from_pretrained(config.init_from)
    elif config.pretrained_backbones:
        model_config = WEDepthConfig.from_preset(config.preset, **config.model_config)
        logger.info("Building WEDepth (%s) from pretrained backbones", config.preset)
        model = WEDepthForDepthEstimation.from_pretrained_backbones(
            model_config, vfm_name_or_path=config.vfm_name_or_path, encoder_name_or_path=config.encoder_name_or_path
        )
    elif config.preset is not None:
        model = WEDepthForDepthEstimation(WEDepthConfig.from_preset(config.preset, **config.model_config))
    else:
        model = WEDepthForDepthEstimation(WEDepthConfig(**config.model_config))
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model


def maybe_sync_batchnorm(
    model: torch.nn.Module, *, enabled: bool, num_processes: int, device: torch.device, is_main_process: bool = True
) -> torch.nn.Module:
    """The model with its BatchNorm layers converted to SyncBatchNorm when `enabled` and several processes train on
    a device type that supports it (the authors' train.py converts before DDP); otherwise the model unchanged.

    SyncBatchNorm keeps the parameters, buffers and state-dict keys of the layers it replaces, so a saved folder
    loads into plain `nn.BatchNorm2d` layers. PyTorch's SyncBatchNorm refuses CPU tensors in a distributed run, so
    CPU runs (e.g. over gloo) keep plain, per-process BatchNorm; that is logged once, by `is_main_process`.
    """
    batch_norms = sum(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules())
    if not enabled or num_processes < 2 or batch_norms == 0:
        return model
    if device.type not in SYNC_BATCHNORM_DEVICE_TYPES:
        if is_main_process:
            logger.warning(
                "sync_batchnorm: PyTorch's SyncBatchNorm does not run on %s tensors in a distributed run; keeping "
                "plain BatchNorm (%d layers), whose batch statistics are computed per process.",
                device.type,
                batch_norms,
            )
        return model
    logger.info("Converting %d BatchNorm layers to SyncBatchNorm across %d processes", batch_norms, num_processes)
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


# ---- augmentation and data -------------------------------------------------------------------------------------------


def build_augmentation(config: TrainingConfig) -> DepthAugmentation | None:
    """The training augmentation (`wedepth_hf.data.transforms.DepthAugmentation`), or None when `augment` is off."""
    if not config.augment:
        return None
    return DepthAugmentation(
        flip=config.flip,
        rotation=config.rotation,
        scale=config.scale,
        translation=config.translation,
        brightness=config.brightness,
        contrast=config.contrast,
        saturation=config.saturation,
        gamma=config.gamma,
        hue=config.hue,
        op_weights=config.augment_op_weights,
        num_ops_probs=config.augment_num_ops_probs,
        seed=config.seed,
    )


@dataclass
class TrainingData:
    """What the loop trains and validates on: the training dataset (augmented by `augmentation`, which the loop
    moves to each epoch), the validation dataset (None: no validation) and the errors of the validation samples
    left out as bad (`on_bad_sample: skip`; see `drop_bad_samples`)."""

    train: Dataset
    validation: Dataset | None
    augmentation: DepthAugmentation | None
    dropped_validation_samples: list[str] = field(default_factory=list)


class CheckedSubset(Subset):
    """The samples of a dataset that loaded when checked; `dropped` holds the errors of those left out."""

    def __init__(self, dataset: Dataset, indices: Sequence[int], dropped: list[str]) -> None:
        super().__init__(dataset, indices)
        self.dropped = dropped


class SkippingSubset(Subset):
    """The training part of a held-out split with `on_bad_sample: skip`: a bad sample is replaced by the next good
    sample of this part, never by a held-out validation one; `skipped` counts the replacements."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        super().__init__(dataset, indices)
        self.skipped = 0

    def __getitem__(self, index: int) -> Any:
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
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of `epoch` (accelerate's dataloaders call this through `set_epoch`)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
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
    from ..data.synthetic import foreign_synthetic_entries

    if not os.path.lexists(root):
        return
    if root.is_symlink() or not root.is_dir():
        raise TrainingDataError(f"synthetic_data_dir {root} is not a folder; give a new or empty folder.")
    foreign = foreign_synthetic_entries(root)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise TrainingDataError(
            f"synthetic_data_dir {root} holds files the synthetic data set does not ({shown}); the run writes "
            "train.txt, val.txt, train/ and val/ there, over files of those names. Give a new or empty folder."
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


def build_datasets(config: TrainingConfig, accelerator: Any | None = None) -> TrainingData:
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
        train=train, validation=validation, augmentation=augmentation, dropped_validation_samples=dropped
    )


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
    config: TrainingConfig, transform: DepthAugmentation | None, accelerator: Any | None
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
    config: TrainingConfig, transform: DepthAugmentation | None, accelerator: Any | None
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
    config: TrainingConfig, transform: DepthAugmentation | None, accelerator: Any | None, reading: dict[str, str]
) -> tuple[Dataset, Dataset]:
    """(training, validation) synthetic scenes: rendered in memory, or written in the NYU list layout (by the main
    process) and read back with `NYUDepthDataset`; `reading` is the training set's `on_bad_sample`."""
    from .. import data

    if config.synthetic_source == "on_the_fly":
        from ..data.synthetic import SyntheticDepthDataset

        size = {"height": config.synthetic_height, "width": config.synthetic_width}
        train = SyntheticDepthDataset(config.synthetic_num_train, seed=config.seed, transform=transform, **size)
        # Dataset seeds own disjoint ranges of scenes: the validation scenes are not training scenes.
        return train, SyntheticDepthDataset(config.synthetic_num_val, seed=config.seed + 1, **size)
    from ..data.synthetic import write_synthetic_nyu_layout

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
    train = data.NYUDepthDataset(root, root / "train.txt", transform=transform, **reading)
    return train, data.NYUDepthDataset(root, root / "val.txt", on_bad_sample="raise")


def _hf_datasets(
    config: TrainingConfig, transform: DepthAugmentation | None, reading: dict[str, str]
) -> tuple[Dataset, Dataset | None, Dataset | None]:
    """(training, the `hf_val_split` or None, the training split without augmentation or None) of a `datasets`
    dataset; the validation split is used unless `val_fraction` asks for a hold-out."""
    from .. import data

    def make(split: str, with_transform: bool) -> Dataset:
        return data.HFDepthDataset(
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
    from .. import data

    dataset_class = data.NYUDepthDataset if config.dataset == "nyu" else data.KITTIDepthDataset
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


# ---- optimiser and schedule ------------------------------------------------------------------------------------------


def no_weight_decay(name: str, parameter: torch.nn.Parameter) -> bool:
    """Whether a parameter is exempt from weight decay when exemptions are on: every 1-D parameter (biases, norm
    weights, 1-D gates) and those whose own name (after the last dot) holds a `NO_DECAY_NAME_PATTERNS` entry."""
    leaf = name.rsplit(".", 1)[-1]
    return parameter.ndim <= 1 or any(pattern in leaf for pattern in NO_DECAY_NAME_PATTERNS)


def build_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only (the frozen VFM is left out).

    With `decay_all_trainable_parameters` (the authors' `AdamW(model.parameters(), weight_decay=0.01)`): one group,
    every parameter decayed by `weight_decay`. Without: a decayed group and a group exempt per `no_weight_decay`.
    """
    trainable = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    if not trainable:
        raise ValueError("The model has no trainable parameter.")
    if config.decay_all_trainable_parameters:
        groups = [{"params": [parameter for _, parameter in trainable], "weight_decay": config.weight_decay}]
    else:
        decay = [parameter for name, parameter in trainable if not no_weight_decay(name, parameter)]
        exempt = [parameter for name, parameter in trainable if no_weight_decay(name, parameter)]
        groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": exempt, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        [group for group in groups if group["params"]],
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
    )


def lr_factor(
    step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float, *, warmup_start_ratio: float
) -> float:
    """Learning-rate multiplier for optimizer step `step` (0-based): linear from `warmup_start_ratio` at step 0
    towards 1 over `warmup_steps` steps, then a cosine from 1 down to `min_lr_ratio` at `total_steps` (flat after).

    With both ratios 0.1 this is the authors' `WarmupCosineSchedule`: 0.1 + 0.9 * step / warmup, then
    0.1 + 0.9 * 0.5 * (1 + cos(pi * progress)). A start of 0 begins at 0 (the first step then has learning rate 0).
    """
    if step < warmup_steps:
        return warmup_start_ratio + (1.0 - warmup_start_ratio) * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float,
    num_processes: int = 1,
    *,
    warmup_start_ratio: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    """`lr_factor` as a `LambdaLR` over optimizer steps, stepped once per optimizer step.

    accelerate's prepared scheduler steps once per process at each optimizer step, so the lambda divides its counter
    by `num_processes`: the schedule is the same in optimizer steps whatever the number of GPUs.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda count: lr_factor(
            count // num_processes, warmup_steps, total_steps, min_lr_ratio, warmup_start_ratio=warmup_start_ratio
        ),
    )
