"""Training WEDepth with accelerate: configuration, data, optimiser, schedule, loop, checkpoints, export, Hub push.

`examples/train.py` is a thin wrapper around `main`. The pieces are reusable on their own:

- `TrainingConfig` (a dataclass): every key of the YAML configs; `load_training_config` reads a YAML file and applies
  overrides; `parse_training_args` adds a typed `--key value` command-line override for every field.
- `build_model`, `build_datasets`, `build_optimizer`, `build_scheduler`: the model (pretrained backbones, random init
  from a config dict, or a WEDepth checkpoint), the train/validation datasets, AdamW over the trainable parameters
  (all decayed, as the authors' train.py, or with norms, biases, embeddings and gates exempt), and a linear warm-up
  from `warmup_start_ratio` then a cosine to `min_lr_ratio` (the authors' `WarmupCosineSchedule` at 0.1 and 0.1).
- `maybe_sync_batchnorm`: SyncBatchNorm for multi-GPU runs, as the authors' train.py.
- `train`: the accelerate loop (mixed precision, gradient accumulation, clipping, multi-GPU), validation with
  `wedepth_hf.evaluation.evaluate_depth_model`, atomic checkpoints with exact resume, the export of the best model
  (by validation) with its image processor, remote code and model card, and the optional Hub upload.

Safety: secrets (`SECRET_FIELDS`, the Hub token) are never logged or written: `training_config.yaml`, trackers and
the model card hold `TrainingConfig.to_public_dict()`, and the card's command is rebuilt from it, never taken from
argv. One training per output folder (`OutputDirLock`, an OS lock), never over an earlier run without
`overwrite_output_dir`; resuming from an older checkpoint moves the abandoned branch aside (`abandon_later_work`).
Ctrl-C saves a checkpoint at the next step boundary (`TrainingInterrupted`, exit status 130); a damaged checkpoint
raises a `CheckpointError` naming the file and the previous checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import torch
import yaml
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from .configuration_wedepth import WEDepthConfig
from .data.transforms import DEFAULT_NUM_OPS_PROBS, DEFAULT_OP_WEIGHTS, check_num_ops_probs, resolve_op_weights
from .image_processing_wedepth import WEDepthImageProcessor
from .modeling_wedepth import WEDepthForDepthEstimation


logger = logging.getLogger(__name__)

DATASETS = ("synthetic", "nyu", "kitti", "hf")
LOWER_IS_BETTER = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")
HIGHER_IS_BETTER = ("delta1", "delta2", "delta3")
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step_"
TEMPORARY_PREFIX = ".tmp-"
STATE_FILE = "training_state.json"
MODEL_DIR = "model"
# Written into the exported folder with its weights: the step they are from (hidden, so never uploaded).
EXPORT_STEP_FILE = ".wedepth-export.json"
# An OS lock on this file in `output_dir` keeps a second training out while one runs.
LOCK_FILE = ".wedepth-training.lock"
# Checkpoints of a branch abandoned by resuming from an older checkpoint go to `checkpoints/abandoned-<time>/`.
ABANDONED_PREFIX = "abandoned-"
CONFIG_FILE = "training_config.yaml"
TRAIN_SCRIPT = "examples/train.py"
# Settings that are secrets: left out of every file, log, tracker and model card.
SECRET_FIELDS = ("hub_token",)
# The exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED_EXIT_STATUS = 130
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


@dataclass
class TrainingConfig:
    """Every setting of a WEDepth training run (the keys of `examples/configs/*.yaml`).

    Model: `init_from` (a WEDepth checkpoint to fine-tune) wins; else `pretrained_backbones: true` builds
    `from_pretrained_backbones(preset + model_config)`; else a random model from `preset` (optional) + `model_config`.
    Validation: a separate `val_split_file` / `hf_val_split`, or `val_fraction` of the training list held out (seeded).
    A test split is never used here: evaluate on it with `examples/evaluate.py`.
    Recipe: the defaults of the schedule (`warmup_start_ratio`, `min_lr_ratio`), of weight decay
    (`decay_all_trainable_parameters`), of the augmentation policy and of `sync_batchnorm` are the authors' train.py,
    so that a config which does not mention them trains as the paper did; the other behaviours are opt-in.
    """

    # output and run
    output_dir: str = "wedepth-output"
    overwrite_output_dir: bool = False
    seed: int = 42
    # model
    preset: str | None = "large"
    model_config: dict = field(default_factory=dict)
    pretrained_backbones: bool = True
    vfm_name_or_path: str | None = None
    encoder_name_or_path: str | None = None
    init_from: str | None = None
    # data
    dataset: str = "synthetic"
    data_root: str | None = None
    image_root: str | None = None
    depth_root: str | None = None
    train_split_file: str | None = None
    val_split_file: str | None = None
    val_fraction: float = 0.0
    on_bad_sample: str = "raise"
    hf_dataset_name: str | None = None
    hf_train_split: str = "train"
    hf_val_split: str | None = "validation"
    hf_image_column: str = "image"
    hf_depth_column: str = "depth_map"
    hf_depth_scale: float | None = None
    synthetic_source: str = "files"
    synthetic_data_dir: str | None = None
    synthetic_num_train: int = 64
    synthetic_num_val: int = 16
    synthetic_height: int = 240
    synthetic_width: int = 320
    kb_crop: bool = False
    # augmentation (the authors' policy and values, `wedepth_hf.data.transforms.DepthAugmentation`): flip with
    # probability `flip`, then 1-4 distinct operations drawn by weight; the strengths below are their ranges
    augment: bool = True
    flip: float = 0.5
    rotation: float = 5.0  # degrees, U(-r, r)
    scale: float = 0.1  # zoom U(1, 1 + s), zoom in only
    translation: float = 0.1  # fraction of the width / height, U(-t, t)
    brightness: float = 0.1  # factor 10 ** U(-b, b)
    contrast: float = 0.1  # factor 10 ** U(-c, c)
    saturation: float = 0.1  # factor 10 ** U(-s, s)
    gamma: float = 0.1  # exponent U(1 - g, 1 + g)
    hue: float = 0.1  # turns, U(-h, h)
    augment_op_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_OP_WEIGHTS))
    augment_num_ops_probs: list[float] = field(default_factory=lambda: list(DEFAULT_NUM_OPS_PROBS))
    # optimisation
    learning_rate: float = 2e-4
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    num_train_epochs: int = 20
    max_train_steps: int | None = None
    warmup_epochs: float = 3.0
    warmup_steps: int | None = None
    warmup_start_ratio: float = 0.1  # lr factor at step 0 of the linear warm-up (authors: 0.1)
    min_lr_ratio: float = 0.1  # lr factor at the end of the cosine (authors: 0.1)
    # true: weight decay on every trainable parameter (authors); false: biases, norms, embeddings, gates exempt
    decay_all_trainable_parameters: bool = True
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    dataloader_num_workers: int = 0
    dataloader_drop_last: bool = False
    sync_batchnorm: bool = True  # SyncBatchNorm when several GPU processes train (authors); CPU runs keep BatchNorm
    # evaluation
    eval_steps: int | None = None
    metric_for_best_model: str = "abs_rel"
    eval_min_depth: float | None = None
    eval_max_depth: float | None = None
    eval_crop: str | None = None
    eval_flip_tta: bool = False
    # checkpoints and logging
    checkpointing_steps: int | None = 500
    checkpoints_total_limit: int | None = 2
    resume_from_checkpoint: str | None = None
    logging_steps: int = 10
    log_with: str = "auto"
    # model card and Hub
    license: str = "apache-2.0"
    model_name: str | None = None
    # true: the exported folder holds the frozen VFM too; false (default): only what was trained, the VFM referenced
    # by source and fingerprint, when the model's VFM has a recorded source (pretrained backbones or a VFM-free init)
    export_full_model: bool = False
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False
    hub_token: str | None = field(default=None, repr=False)  # a secret: never logged, written or shown (SECRET_FIELDS)
    hub_revision: str | None = None

    def __post_init__(self) -> None:
        """Check the values a user can get wrong, before any expensive work starts."""
        if self.dataset not in DATASETS:
            raise ValueError(f"`dataset` must be one of {DATASETS}, got {self.dataset!r}.")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"`mixed_precision` must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}.")
        if self.metric_for_best_model not in LOWER_IS_BETTER + HIGHER_IS_BETTER:
            raise ValueError(
                f"`metric_for_best_model` must be one of {LOWER_IS_BETTER + HIGHER_IS_BETTER}, got "
                f"{self.metric_for_best_model!r}."
            )
        if self.synthetic_source not in ("files", "on_the_fly"):
            raise ValueError(f"`synthetic_source` must be 'files' or 'on_the_fly', got {self.synthetic_source!r}.")
        if self.on_bad_sample not in ("raise", "skip"):
            raise ValueError(f"`on_bad_sample` must be 'raise' or 'skip', got {self.on_bad_sample!r}.")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"`val_fraction` must lie in [0, 1), got {self.val_fraction}.")
        for name in ("min_lr_ratio", "warmup_start_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` must lie in [0, 1], got {getattr(self, name)}.")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                     "num_train_epochs", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}.")
        for name in ("max_train_steps", "eval_steps", "checkpointing_steps", "checkpoints_total_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be at least 1 or null, got {value}.")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("`push_to_hub` needs `hub_model_id` (e.g. --hub_model_id your-org/wedepth-nyu).")
        if self.init_from is None and not self.pretrained_backbones and self.preset is None and not self.model_config:
            raise ValueError(
                "No model to build: set `init_from` (a WEDepth checkpoint), `pretrained_backbones: true` with a "
                "`preset`, or a `model_config` (and/or `preset`) for a randomly initialised model."
            )
        if self.dataset in ("nyu", "kitti") and (self.data_root is None or self.train_split_file is None):
            raise ValueError(f"`dataset: {self.dataset}` needs `data_root` and `train_split_file`.")
        if self.dataset == "hf" and not self.hf_dataset_name:
            raise ValueError("`dataset: hf` needs `hf_dataset_name` (a Hub dataset id or a local dataset folder).")
        self._check_validation_split()
        # The full, checked augmentation policy (named weights replace the defaults), so that the saved
        # training_config.yaml and the model card state the policy used; errors now, before a model is built.
        try:
            self.augment_op_weights = resolve_op_weights(self.augment_op_weights)
            self.augment_num_ops_probs = list(check_num_ops_probs(self.augment_num_ops_probs, self.augment_op_weights))
        except ValueError as error:
            raise ValueError(f"Invalid `augment_op_weights` / `augment_num_ops_probs`: {error}") from error
        build_augmentation(self)

    def _check_validation_split(self) -> None:
        """Refuse a validation list that is the training list or a test list: the best model is chosen on it."""
        if self.val_split_file is None:
            return
        if self.train_split_file is not None and Path(self.val_split_file) == Path(self.train_split_file):
            raise ValueError(
                f"`val_split_file` is the training list ({self.val_split_file}); hold out part of it with "
                f"`val_fraction` instead."
            )
        if "test" in Path(self.val_split_file).name.lower():
            raise ValueError(
                f"`val_split_file` {self.val_split_file} looks like a test list: the best checkpoint is chosen on the "
                f"validation split, so a test list there reports tuned-on-test numbers. Hold out part of the training "
                f"list with `val_fraction` (and evaluate the test list with examples/evaluate.py), or give a "
                f"validation list whose name does not contain 'test'."
            )

    def to_public_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict without its secrets (`SECRET_FIELDS`): what `training_config.yaml`, the
        model card and trackers hold. It loads back with `load_training_config`; a push then takes its token from
        `HF_TOKEN` or the Hugging Face login, as the `huggingface_hub` client does."""
        values = dataclasses.asdict(self)
        for name in SECRET_FIELDS:
            values.pop(name)
        return values


# ---- configuration parsing ------------------------------------------------------------------------------------------


class _ConfigLoader(yaml.SafeLoader):
    """YAML loader that also reads exponent floats without a dot (`2e-4`, `1e-06`) as floats, as YAML 1.2 does."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _load_yaml(text: str) -> Any:
    """Parse YAML text with `_ConfigLoader` (safe: plain data only)."""
    return yaml.load(text, Loader=_ConfigLoader)


def _field_types() -> dict[str, Any]:
    """The resolved type annotation of every `TrainingConfig` field."""
    return get_type_hints(TrainingConfig)


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the non-None type of an annotation, whether None is allowed)."""
    arguments = get_args(annotation)
    if type(None) in arguments:  # `X | None` and `Optional[X]` alike
        return next(argument for argument in arguments if argument is not type(None)), True
    return annotation, False


def _parse_bool(text: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case) as a bool, or a ValueError."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _convert(name: str, value: Any) -> Any:
    """Convert a YAML or command-line value to the type of the `TrainingConfig` field `name`, or raise saying why."""
    base, optional = _base_type(_field_types()[name])
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if optional:
            return None
        raise ValueError(f"`{name}` cannot be null.")
    origin = get_origin(base) or base
    try:
        if origin is bool:
            return value if isinstance(value, bool) else _parse_bool(str(value))
        if origin in (dict, list):
            parsed = _load_yaml(value) if isinstance(value, str) else value
            if not isinstance(parsed, origin):
                raise ValueError(f"expected a {origin.__name__} (YAML), got {value!r}")
            return parsed
        if origin is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if origin is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError, yaml.YAMLError) as error:
        raise ValueError(f"Invalid value for `{name}`: {error}") from error


def _check_keys(keys: Sequence[str], source: str) -> None:
    """Raise on a key that is not a `TrainingConfig` field, suggesting the closest one."""
    valid = set(_field_types())
    for key in keys:
        if key not in valid:
            suggestion = difflib.get_close_matches(key, sorted(valid), n=1)
            hint = f" Did you mean `{suggestion[0]}`?" if suggestion else ""
            raise ValueError(f"Unknown training setting `{key}` in {source}.{hint} Valid keys: {sorted(valid)}.")


def load_training_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainingConfig:
    """A `TrainingConfig` from a YAML file (optional) with `overrides` applied on top; unknown keys are errors."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Training config {path} not found.")
        loaded = _load_yaml(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of training settings, got {type(loaded).__name__}.")
        _check_keys(list(loaded), str(path))
        values.update({key: _convert(key, value) for key, value in loaded.items()})
    if overrides:
        _check_keys(list(overrides), "the overrides")
        values.update({key: _convert(key, value) for key, value in overrides.items()})
    return TrainingConfig(**values)


def _unknown_arguments_message(unknown: Sequence[str], known: Sequence[str]) -> str:
    """The error for command-line arguments no option takes: the option names with a suggestion, never the values
    (a mistyped `--hub_tokn hf_...` must not print the token)."""
    names = [argument.split("=", 1)[0] for argument in unknown if argument.startswith("-")]
    parts = []
    for name in names:
        suggestion = difflib.get_close_matches(name, known, n=1)
        parts.append(f"{name}" + (f" (did you mean {suggestion[0]}?)" if suggestion else ""))
    values = len(unknown) - len(names)
    if values:
        parts.append(f"{values} value(s) without an option")
    return (
        f"unrecognized arguments: {', '.join(parts)}. Options are spelled out in full (no abbreviations); values are "
        f"not shown, as they may be secrets."
    )


def parse_training_args(argv: Sequence[str] | None = None) -> TrainingConfig:
    """Parse `--config FILE.yaml [--key value ...]`: every `TrainingConfig` field can be overridden, typed.

    Booleans take true/false or no value (`--push_to_hub`); lists and dicts take YAML (`--model_config '{...}'`);
    optional fields take `null`. Options must be spelled in full: an abbreviation (`--hub_tok`) is an error, not the
    option it would abbreviate, and the error names unknown options without echoing their values.
    """
    import argparse

    parser = argparse.ArgumentParser(
        description="Train WEDepth with accelerate. Any setting of the YAML config can be overridden as --key value.",
        allow_abbrev=False,
    )
    parser.add_argument("--config", type=str, default=None, help="YAML file of training settings")
    for field_info in dataclasses.fields(TrainingConfig):
        base, _ = _base_type(_field_types()[field_info.name])
        options: dict[str, Any] = {"default": argparse.SUPPRESS, "type": str, "metavar": "VALUE"}
        if (get_origin(base) or base) is bool:
            options.update(nargs="?", const="true")
        parser.add_argument(f"--{field_info.name}", **options)
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        options = ["--config", *(f"--{field_info.name}" for field_info in dataclasses.fields(TrainingConfig))]
        parser.error(_unknown_arguments_message(unknown, options))
    arguments = vars(namespace)
    config_path = arguments.pop("config")
    try:
        return load_training_config(config_path, arguments)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))


# ---- model, data, optimiser, schedule ---------------------------------------------------------------------------------


def build_model(config: TrainingConfig) -> WEDepthForDepthEstimation:
    """The model to train: a WEDepth checkpoint (`init_from`), pretrained backbones, or a random init from config."""
    if config.init_from is not None:
        logger.info("Fine-tuning the WEDepth checkpoint %s", config.init_from)
        model = WEDepthForDepthEstimation.from_pretrained(config.init_from)
    elif config.pretrained_backbones:
        if config.preset is None:
            raise ValueError("`pretrained_backbones: true` needs a `preset` (small, base or large).")
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


def build_augmentation(config: TrainingConfig) -> Any | None:
    """The training augmentation (`wedepth_hf.data.transforms.DepthAugmentation`), or None when `augment` is off."""
    if not config.augment:
        return None
    from .data.transforms import DepthAugmentation

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


def synthetic_data_root(config: TrainingConfig) -> Path:
    """Where the synthetic NYU-layout data is written: `synthetic_data_dir`, or `<output_dir>/data`."""
    return Path(config.synthetic_data_dir) if config.synthetic_data_dir else Path(config.output_dir) / "data"


class CheckedSubset(Subset):
    """The samples of a dataset that loaded when checked; `dropped` holds the errors of those left out."""

    def __init__(self, dataset: Dataset, indices: Sequence[int], dropped: list[str]) -> None:
        super().__init__(dataset, indices)
        self.dropped = dropped


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
            "training samples are replaced by the next good one).", len(dropped), len(dataset),
        )
    return CheckedSubset(dataset, good, dropped)


def build_datasets(config: TrainingConfig, accelerator: Any | None = None) -> tuple[Dataset, Dataset | None]:
    """(train dataset with augmentation, validation dataset without) for `config.dataset`.

    With `dataset: synthetic` and `synthetic_source: files` the synthetic set is written in the NYU list layout (main
    process) and read back with `NYUDepthDataset`, the loader real NYU data uses.

    `on_bad_sample` applies as such to training only: a skipped training sample is replaced by the next good one.
    Validation never substitutes a sample: with `raise` a bad validation sample stops the run when it is scored; with
    `skip` every validation sample is read once here and the bad ones are dropped and counted (`drop_bad_samples`;
    the returned dataset's `dropped`).
    """
    train, val = _build_datasets(config, accelerator)
    if val is not None and config.on_bad_sample == "skip":
        val = drop_bad_samples(val, log=accelerator is None or accelerator.is_main_process)
    return train, val


def _build_datasets(config: TrainingConfig, accelerator: Any | None) -> tuple[Dataset, Dataset | None]:
    """`build_datasets` before the validation check: validation datasets are built to raise on a bad sample."""
    from . import data

    transform = build_augmentation(config)
    strict = {"on_bad_sample": "raise"}
    val_from_list = config.val_split_file is not None
    # Validation held out of the training list: the training part skips within itself (`SkippingSubset`), so the
    # whole list is read strictly and no held-out sample can stand in for a bad training one.
    holdout = config.val_fraction > 0.0 and not (config.dataset in ("nyu", "kitti") and val_from_list)
    common = strict if holdout else {"on_bad_sample": config.on_bad_sample}
    if config.dataset == "synthetic":
        if config.synthetic_source == "on_the_fly":
            from .data.synthetic import SyntheticDepthDataset

            size = {"height": config.synthetic_height, "width": config.synthetic_width}
            train = SyntheticDepthDataset(config.synthetic_num_train, seed=config.seed, transform=transform, **size)
            # Dataset seeds own disjoint ranges of scenes: the validation scenes are not training scenes.
            val = SyntheticDepthDataset(config.synthetic_num_val, seed=config.seed + 1, **size)
            return train, val
        from .data.synthetic import write_synthetic_nyu_layout

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
        train = data.NYUDepthDataset(root, root / "train.txt", transform=transform, **common)
        val = data.NYUDepthDataset(root, root / "val.txt", **strict)
        return train, val

    if config.dataset == "hf":
        def make_hf(split: str, with_transform: bool) -> Dataset:
            return data.HFDepthDataset(
                config.hf_dataset_name,
                split,
                image_column=config.hf_image_column,
                depth_column=config.hf_depth_column,
                depth_scale=config.hf_depth_scale,
                transform=transform if with_transform else None,
                **(common if with_transform else strict),
            )

        train = make_hf(config.hf_train_split, True)
        if config.hf_val_split is not None and config.val_fraction == 0.0:
            return train, make_hf(config.hf_val_split, False)
        plain = make_hf(config.hf_train_split, False)
    else:
        dataset_class = data.NYUDepthDataset if config.dataset == "nyu" else data.KITTIDepthDataset
        extra: dict[str, Any] = dict(common)
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
        extra.update(strict)
        if val_from_list:
            return train, dataset_class(config.data_root, config.val_split_file, **extra)
        plain = dataset_class(config.data_root, config.train_split_file, **extra)

    if config.val_fraction == 0.0:
        logger.warning(
            "No validation split (`val_split_file`, `hf_val_split` or `val_fraction`): no evaluation during training; "
            "the exported model is the final one."
        )
        return train, None
    train_indices, val_indices = _holdout_indices(len(train), config.val_fraction, config.seed)
    logger.info("Held out %d of %d training samples for validation (seed %d)", len(val_indices), len(train), config.seed)
    part_class = SkippingSubset if config.on_bad_sample == "skip" else Subset
    return part_class(train, train_indices), Subset(plain, val_indices)


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
                "plain BatchNorm (%d layers), whose batch statistics are computed per process.", device.type,
                batch_norms,
            )
        return model
    logger.info("Converting %d BatchNorm layers to SyncBatchNorm across %d processes", batch_norms, num_processes)
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


# ---- checkpoints ------------------------------------------------------------------------------------------------------


def _checkpoint_step(path: Path) -> int | None:
    """N for a folder named `step_N`, else None."""
    match = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(checkpoints_dir: str | Path) -> list[Path]:
    """Complete checkpoints (`step_N` folders holding the training-state file), oldest first.

    A checkpoint is written under a temporary name and renamed when complete, and the state file is written last, so
    a run killed while saving never leaves a folder listed here.
    """
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    found = [
        path for path in checkpoints_dir.iterdir()
        if path.is_dir() and _checkpoint_step(path) is not None and (path / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda path: _checkpoint_step(path))


def find_latest_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    checkpoints = list_checkpoints(checkpoints_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_checkpoint(value: str, output_dir: str | Path) -> Path | None:
    """The checkpoint folder that `resume_from_checkpoint` names: "latest" (None when there is none yet) or a path."""
    if value == "latest":
        return find_latest_checkpoint(Path(output_dir) / CHECKPOINTS_DIR)
    path = Path(value)
    if not (path / STATE_FILE).is_file():
        raise ValueError(
            f"{path} is not a complete WEDepth training checkpoint (no {STATE_FILE}); pass a "
            f"{CHECKPOINTS_DIR}/{CHECKPOINT_PREFIX}N folder or `latest`."
        )
    return path


def save_checkpoint(accelerator: Any, checkpoints_dir: Path, state: dict[str, Any], total_limit: int | None) -> Path:
    """`accelerator.save_state` into a temporary folder, then the state JSON, then an atomic rename to `step_N`;
    older checkpoints beyond `total_limit` are deleted."""
    step = state["global_step"]
    final = checkpoints_dir / f"{CHECKPOINT_PREFIX}{step}"
    temporary = checkpoints_dir / f"{TEMPORARY_PREFIX}{CHECKPOINT_PREFIX}{step}"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
        checkpoints_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (temporary / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
        if total_limit is not None:
            for old in list_checkpoints(checkpoints_dir)[:-total_limit]:
                shutil.rmtree(old)
        logger.info("Saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


class CheckpointError(ValueError):
    """A checkpoint does not load (a damaged or truncated file, say); the message names the file and the previous
    complete checkpoint, with the command that resumes from it."""


def launch_command(num_processes: int, config_path: str | Path, *arguments: str) -> str:
    """The shell command that runs `examples/train.py --config config_path [arguments]` on `num_processes`
    processes: `python` for one, `accelerate launch` for more."""
    launcher = ["python"] if num_processes == 1 else ["accelerate", "launch", "--num_processes", str(num_processes)]
    return shlex.join([*launcher, TRAIN_SCRIPT, "--config", str(config_path), *arguments])


def resume_command(config: TrainingConfig, num_processes: int, checkpoint: Path) -> str:
    """The command that resumes the run of `config` (its saved public configuration) from `checkpoint`."""
    return launch_command(
        num_processes, Path(config.output_dir) / CONFIG_FILE, "--resume_from_checkpoint", str(checkpoint)
    )


def _token_note(config: TrainingConfig) -> str:
    """A reminder, for a run that pushes with a token given in its settings, that the saved configuration has none."""
    if config.push_to_hub and config.hub_token is not None:
        return "\n(the saved configuration holds no Hub token: add --hub_token again, or set HF_TOKEN)"
    return ""


def _damaged_file(checkpoint: Path) -> tuple[Path, str] | None:
    """The first file of `checkpoint` that does not read back (truncated or damaged) and why, or None."""
    from safetensors import safe_open

    for path in sorted(file for file in checkpoint.rglob("*") if file.is_file()):
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as handle:
                    for key in handle.keys():
                        handle.get_tensor(key)
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix in (".bin", ".pt", ".pth", ".pkl"):
                torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # any failure to read back is what is looked for
            return path, f"{type(error).__name__}: {error}"
    return None


def _checkpoint_error(
    config: TrainingConfig, num_processes: int, checkpoint: Path, error: Exception
) -> CheckpointError:
    """A `CheckpointError` for `checkpoint`: the file that does not read back, and the previous complete checkpoint."""
    damaged = _damaged_file(checkpoint)
    if damaged is not None:
        message = f"Cannot resume from {checkpoint}: {damaged[0]} is damaged or truncated ({damaged[1]})."
    else:
        message = f"Cannot resume from {checkpoint} ({type(error).__name__}: {error})."
    step = _checkpoint_step(checkpoint)
    earlier = [
        path for path in list_checkpoints(checkpoint.parent) if step is not None and _checkpoint_step(path) < step
    ]
    if earlier:
        message += (
            f" The previous complete checkpoint is {earlier[-1]}; resume from it with:\n  "
            f"{resume_command(config, num_processes, earlier[-1])}\n(resuming from it moves the later checkpoints, "
            f"this one included, to {checkpoint.parent / (ABANDONED_PREFIX + '<time>')}/)."
            + _token_note(config)
        )
    else:
        message += (
            f" There is no earlier complete checkpoint in {checkpoint.parent}; start over with "
            f"`--overwrite_output_dir true`."
        )
    return CheckpointError(message)


def read_checkpoint_state(config: TrainingConfig, num_processes: int, checkpoint: Path) -> dict[str, Any]:
    """The training state (`training_state.json`) of `checkpoint`, or a `CheckpointError` saying what to do."""
    try:
        return json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise _checkpoint_error(config, num_processes, checkpoint, error) from error


def load_checkpoint(accelerator: Any, config: TrainingConfig, checkpoint: Path) -> dict[str, Any]:
    """Restore the model, optimiser, scheduler and random states of `checkpoint`; return its training state.

    A file that does not read back raises a `CheckpointError` naming it and the previous complete checkpoint.
    """
    try:
        accelerator.load_state(str(checkpoint))
    except Exception as error:  # accelerate, safetensors and torch raise many types for a damaged file
        raise _checkpoint_error(config, accelerator.num_processes, checkpoint, error) from error
    return read_checkpoint_state(config, accelerator.num_processes, checkpoint)


# ---- the output folder: lock, earlier runs, abandoned branches -------------------------------------------------------


class OutputDirError(ValueError):
    """The output folder cannot be used as asked: another training holds it, or it holds an earlier run that this
    one would replace. The message says what to do."""


class OutputDirLock:
    """An exclusive OS lock (`fcntl.flock`) on `<output_dir>/.wedepth-training.lock`: one training per folder.

    The kernel releases the lock when its process ends, however it ends (kill -9 included), so a lock file left
    behind never blocks a later run. The file names its holder, for the error a second run gets.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / LOCK_FILE
        self._handle: Any = None

    def acquire(self) -> None:
        """Take the lock, or raise an `OutputDirError` naming the process that holds it."""
        try:
            import fcntl
        except ImportError:  # Windows has no flock
            logger.warning("No file lock on this platform: nothing keeps another training out of %s.", self.path.parent)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputDirError(
                f"Another training is using {self.path.parent} ({holder} holds {self.path}). Wait for it to end, or "
                f"give this run another --output_dir. The lock ends with its process: a killed run leaves nothing to "
                f"clean up."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"training process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _export_step(model_dir: Path) -> int | None:
    """The step whose weights the exported folder holds (`EXPORT_STEP_FILE`), or None when not recorded."""
    try:
        return int(json.loads((model_dir / EXPORT_STEP_FILE).read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def abandon_later_work(output_dir: str | Path, step: int) -> bool:
    """Move what a run did after `step` aside, when resuming from the checkpoint of `step` leaves it behind.

    The checkpoints after `step` go to `checkpoints/abandoned-<time>/`, where `latest` does not see them, and so does
    the exported model when it holds weights from after `step`. Each move is logged. Returns whether the exported
    model was moved (the best-model selection then starts again).
    """
    output_dir = Path(output_dir)
    checkpoints_dir, model_dir = output_dir / CHECKPOINTS_DIR, output_dir / MODEL_DIR
    folders = checkpoints_dir.iterdir() if checkpoints_dir.is_dir() else []
    later = sorted((path for path in folders if (_checkpoint_step(path) or 0) > step), key=_checkpoint_step)
    if not later:
        return False
    export_step = _export_step(model_dir)
    move_export = export_step is not None and export_step > step
    base = checkpoints_dir / f"{ABANDONED_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}"
    destination, suffix = base, 1
    while destination.exists():
        destination, suffix = base.with_name(f"{base.name}-{suffix}"), suffix + 1
    destination.mkdir()
    for path in later:
        os.replace(path, destination / path.name)
        logger.warning(
            "Resuming from step %d abandons the later checkpoint %s: moved to %s, where `latest` does not see it "
            "(delete it when you no longer need it).", step, path, destination / path.name,
        )
    if move_export:
        os.replace(model_dir, destination / MODEL_DIR)
        logger.warning(
            "The exported model %s held weights of step %d of the abandoned branch: moved to %s; the best model is "
            "chosen again from the evaluations after step %d.", model_dir, export_step, destination / MODEL_DIR, step,
        )
    return move_export


def _prepare_output_dir(config: TrainingConfig, num_processes: int) -> tuple[Path | None, bool]:
    """On the main process, under the lock: (the checkpoint to resume from or None, whether the best-model selection
    starts again). Refuses to replace an earlier run without `overwrite_output_dir`, moves an abandoned branch aside,
    and writes the public configuration (`training_config.yaml`)."""
    output_dir = Path(config.output_dir)
    checkpoints_dir, model_dir = output_dir / CHECKPOINTS_DIR, output_dir / MODEL_DIR
    resume_path = None
    if config.resume_from_checkpoint is not None:
        resume_path = resolve_checkpoint(config.resume_from_checkpoint, output_dir)
        if resume_path is None:
            logger.info("No checkpoint in %s yet: starting from scratch", checkpoints_dir)
    restart_selection = False
    if resume_path is not None:
        step = read_checkpoint_state(config, num_processes, resume_path)["global_step"]
        restart_selection = abandon_later_work(output_dir, step)
    elif config.overwrite_output_dir:
        shutil.rmtree(checkpoints_dir, ignore_errors=True)
        shutil.rmtree(model_dir, ignore_errors=True)
    elif list_checkpoints(checkpoints_dir):
        raise OutputDirError(
            f"{output_dir} already holds training checkpoints. Continue that run with "
            f"`--resume_from_checkpoint latest`, or start over with `--overwrite_output_dir true` (deletes "
            f"{checkpoints_dir} and {model_dir})."
        )
    elif model_dir.exists():
        raise OutputDirError(
            f"{output_dir} already holds an exported model ({model_dir}) and no checkpoint to resume from: this run "
            f"would replace it. Start over with `--overwrite_output_dir true` (deletes it), or give this run another "
            f"--output_dir."
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in checkpoints_dir.glob(f"{TEMPORARY_PREFIX}*") if checkpoints_dir.is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)
    (output_dir / CONFIG_FILE).write_text(yaml.safe_dump(config.to_public_dict(), sort_keys=False), encoding="utf-8")
    return resume_path, restart_selection


def claim_output_dir(config: TrainingConfig, accelerator: Any) -> tuple[OutputDirLock | None, Path | None, bool]:
    """Lock and prepare the output folder on the main process; every process gets the outcome.

    Returns (the lock, held by the main process only; the checkpoint to resume from; whether the best-model selection
    starts again). When the main process fails (folder locked, earlier run, damaged checkpoint) it raises the error
    and the other processes raise an `OutputDirError` pointing to it, rather than wait for a main process that stopped.
    """
    from accelerate.utils import broadcast_object_list

    lock = None
    outcome: list[Any] = [None]
    if accelerator.is_main_process:
        lock = OutputDirLock(config.output_dir)
        try:
            lock.acquire()
            outcome = [("ok", *_prepare_output_dir(config, accelerator.num_processes))]
        except Exception as error:
            lock.release()
            outcome = [("error", f"{type(error).__name__}: {error}")]
            broadcast_object_list(outcome, from_process=0)
            raise
    broadcast_object_list(outcome, from_process=0)
    if outcome[0][0] == "error":
        raise OutputDirError(f"The main process could not set up {config.output_dir}: {outcome[0][1]}")
    _, resume_path, restart_selection = outcome[0]
    return lock, resume_path, restart_selection


# ---- the loop ---------------------------------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    """What a training run produced: the exported model folder, the step reached, the loss and evaluation history."""

    output_dir: Path
    model_dir: Path
    global_step: int
    history: list[dict[str, float]] = field(default_factory=list)
    eval_history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None
    hub_url: str | None = None
    # errors of the validation samples left out as bad (`on_bad_sample: skip`; see `drop_bad_samples`)
    dropped_validation_samples: list[str] = field(default_factory=list)


def batch_seed(seed: int, epoch: int, batch_index: int, process_index: int) -> int:
    """The torch seed of one micro-batch: a function of its position in training only (exact resume)."""
    return (seed * 1_000_003 + epoch * 10_007 + batch_index) * 64 + process_index


def _is_better(value: float, best: float | None, metric: str) -> bool:
    """Whether `value` improves on `best` (lower is better for errors, higher for the delta accuracies)."""
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


def _resolve_trackers(log_with: str) -> list[str] | None:
    """accelerate `log_with` from the config: "auto" means tensorboard when installed, else python logging only."""
    import importlib.util

    names = [name.strip() for name in log_with.split(",") if name.strip()]
    if names in ([], ["none"]):
        return None
    if names == ["auto"]:
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") else None
    if "tensorboard" in names and importlib.util.find_spec("tensorboard") is None:
        raise ValueError("`log_with: tensorboard` needs tensorboard: `pip install tensorboard` (or `log_with: none`).")
    return names


def _flat_hparams(values: Mapping[str, Any]) -> dict[str, Any]:
    """Tracker-friendly hyper-parameters: scalars kept, everything else as a string."""
    return {
        key: value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
        for key, value in values.items()
    }


def _evaluate(model: torch.nn.Module, dataset: Dataset, config: TrainingConfig, accelerator: Any) -> dict[str, float]:
    """Validation metrics with `evaluate_depth_model` (the protocol used everywhere in the package)."""
    from .evaluation import evaluate_depth_model

    model_config = accelerator.unwrap_model(model).config
    result = evaluate_depth_model(
        accelerator.unwrap_model(model),
        dataset,
        batch_size=config.per_device_eval_batch_size,
        min_depth=config.eval_min_depth if config.eval_min_depth is not None else model_config.min_depth,
        max_depth=config.eval_max_depth if config.eval_max_depth is not None else model_config.max_depth,
        crop=config.eval_crop,
        kb_crop=config.kb_crop,
        flip_tta=config.eval_flip_tta,
        accelerator=accelerator,
        num_workers=config.dataloader_num_workers,
        progress=False,
    )
    return {key: float(value) for key, value in result.metrics.items()}


def exports_vfm(config: TrainingConfig, model: WEDepthForDepthEstimation) -> bool:
    """Whether the exported folder includes the frozen VFM: with `export_full_model`, or when the model's VFM has no
    recorded source to refer to (a randomly initialised VFM, say)."""
    return config.export_full_model or model.config.vfm_fingerprint is None


def _save_model(model: torch.nn.Module, accelerator: Any, folder: Path, include_vfm: bool, step: int) -> None:
    """`save_pretrained` (safetensors, remote code; the frozen VFM only with `include_vfm`) into `folder` through a
    temporary folder renamed at the end, with the step of the weights (`EXPORT_STEP_FILE`)."""
    if accelerator.is_main_process:
        temporary = folder.parent / f"{TEMPORARY_PREFIX}{folder.name}"
        shutil.rmtree(temporary, ignore_errors=True)
        accelerator.unwrap_model(model).save_pretrained(
            temporary, state_dict=accelerator.get_state_dict(model), include_vfm=include_vfm
        )
        (temporary / EXPORT_STEP_FILE).write_text(json.dumps({"global_step": step}), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(temporary, folder)
    accelerator.wait_for_everyone()


def _card_metadata(config: TrainingConfig, model: WEDepthForDepthEstimation) -> dict[str, Any]:
    """Base models, datasets and dataset types for the model card."""
    base_models: list[str] = []
    if config.init_from is not None and not Path(config.init_from).exists():
        base_models.append(config.init_from)
    elif config.init_from is None and config.pretrained_backbones:
        for source in (model.config.vfm_pretrained_name_or_path, model.config.encoder_pretrained_name_or_path):
            if source and not Path(source).exists():
                base_models.append(source)
    datasets = [config.hf_dataset_name] if config.dataset == "hf" and not Path(config.hf_dataset_name).exists() else []
    display_name = f"{config.dataset} (validation)"
    dataset_types = {display_name: datasets[0] if datasets else config.dataset}
    return {"base_models": base_models, "datasets": datasets, "dataset_types": dataset_types,
            "display_name": display_name}


def export_model_folder(
    model: torch.nn.Module,
    accelerator: Any,
    config: TrainingConfig,
    model_dir: Path,
    *,
    best_metrics: dict[str, float] | None,
    best_step: int | None,
    global_step: int,
    train_shortest_edge: int | None = None,
    dropped_validation_samples: int = 0,
) -> None:
    """Complete the exported folder: weights (when not already the best ones), image processor, model card.

    The image processor resizes to the resolution of training (`train_shortest_edge`, the shorter side of the
    training batches). The card records the command and public configuration that reproduce the run, never argv.
    """
    from .hub import render_model_card, vfm_storage_text

    unwrapped = accelerator.unwrap_model(model)
    include_vfm = exports_vfm(config, unwrapped)
    if best_metrics is None:
        _save_model(model, accelerator, model_dir, include_vfm, global_step)
    if not accelerator.is_main_process:
        return
    if train_shortest_edge is None:
        logger.warning("No training batch seen: the exported image processor keeps its default resolution.")
        WEDepthImageProcessor().save_pretrained(model_dir)
    else:
        WEDepthImageProcessor(do_resize=True, size={"shortest_edge": train_shortest_edge}).save_pretrained(model_dir)
    metadata = _card_metadata(config, unwrapped)
    counts = unwrapped.parameter_counts()
    description = (
        f"Parameters: {counts['total'] / 1e6:.2f}M in all, {counts['trainable'] / 1e6:.2f}M trained, the frozen VFM "
        f"{counts['vfm'] / 1e6:.2f}M; trained on depths above {unwrapped.config.min_depth} m"
        + (f" and below {unwrapped.config.max_depth} m." if unwrapped.config.max_depth is not None else ".")
        + " "
        + vfm_storage_text(unwrapped.config, include_vfm)
    )
    if best_metrics is not None:
        selection = (
            f"the weights with the best validation `{config.metric_for_best_model}` "
            f"({best_metrics[config.metric_for_best_model]:.4f}, step {best_step} of {global_step})"
        )
    else:
        selection = f"the weights after the last step ({global_step}); no validation split was configured"
    if dropped_validation_samples:
        selection += (
            f"; {dropped_validation_samples} bad validation sample(s) were left out of validation "
            f"(`on_bad_sample: skip`)"
        )
    card = render_model_card(
        model_name=config.model_name or (config.hub_model_id or Path(config.output_dir).name).split("/")[-1],
        repo_id=config.hub_model_id or str(model_dir),
        results={metadata["display_name"]: best_metrics} if best_metrics else None,
        base_models=metadata["base_models"],
        datasets=metadata["datasets"],
        dataset_types=metadata["dataset_types"],
        results_split="validation",
        license=config.license,
        training_command=(
            f"# with the configuration below saved as {CONFIG_FILE} (the run wrote it to its output folder);\n"
            f"# secrets such as the Hub token are never recorded: give them with HF_TOKEN or `hf auth login`\n"
            + launch_command(accelerator.num_processes, CONFIG_FILE)
        ),
        training_config=config.to_public_dict(),
        model_description=description,
        selection_text=selection,
    )
    card.save(model_dir / "README.md")


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C. `checkpoint` is where it can resume from (None: nothing to resume) and
    `resume_command` the command that does it; the message says both."""

    def __init__(self, message: str, checkpoint: Path | None, resume_command: str) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.resume_command = resume_command


class _StopRequested(Exception):
    """Every process agreed to stop at this step boundary (a Ctrl-C reached at least one of them)."""


class _InterruptRequest:
    """While active, the first Ctrl-C (SIGINT) asks training to stop at the next step boundary, where a checkpoint is
    saved; a second Ctrl-C interrupts at once. Only the main thread can install it; elsewhere Ctrl-C is unchanged.

    Data-loader worker processes forked meanwhile inherit the handler and ignore Ctrl-C: the terminal sends it to
    them too, and a worker that quit would break the batches still to come before the step boundary. A second SIGINT
    within `REPEAT_AFTER_S` of the first is the same Ctrl-C (torchrun and accelerate forward the terminal's to the
    processes that already got it) and is ignored.
    """

    REPEAT_AFTER_S = 1.0

    def __init__(self) -> None:
        self.requested = False
        self._requested_at = 0.0
        self._previous: Any = None
        self._pid = os.getpid()

    def __enter__(self) -> _InterruptRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:
            return
        if self.requested:
            if time.monotonic() - self._requested_at < self.REPEAT_AFTER_S:
                return
            raise KeyboardInterrupt
        self.requested, self._requested_at = True, time.monotonic()
        logger.warning("Ctrl-C: stopping after this step and saving a checkpoint (Ctrl-C again to stop at once).")

    def agreed(self, accelerator: Any) -> bool:
        """Whether any process was asked to stop; every process gets the same answer (one all-reduce per step)."""
        if accelerator.num_processes == 1:
            return self.requested
        flag = torch.tensor([float(self.requested)], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)


def _interruption(
    config: TrainingConfig, num_processes: int, step: int, checkpoint: Path | None, saved: bool
) -> TrainingInterrupted:
    """The `TrainingInterrupted` of a run stopped at `step`, saying where and how to resume."""
    if checkpoint is None:
        command = launch_command(num_processes, Path(config.output_dir) / CONFIG_FILE, "--overwrite_output_dir", "true")
        message = (
            f"Training interrupted (Ctrl-C) after step {step}, with no checkpoint to resume from. Start again with:\n"
            f"  {command}"
        )
    else:
        command = resume_command(config, num_processes, checkpoint)
        where = f"saved the checkpoint {checkpoint}" if saved else f"the latest complete checkpoint is {checkpoint}"
        message = f"Training interrupted (Ctrl-C) after step {step}; {where}. Resume with:\n  {command}"
    return TrainingInterrupted(message + _token_note(config), checkpoint, command)


def train(config: TrainingConfig) -> TrainingResult:
    """Run a full training as `config` says; return where the model went and the loss/evaluation history.

    One training at a time per `output_dir` (an OS lock; `OutputDirError` otherwise), and never over an earlier run's
    checkpoints or exported model without `overwrite_output_dir`. Resuming from a checkpoint older than others moves
    the later ones aside (`abandon_later_work`). Ctrl-C saves a checkpoint at the next step boundary and raises
    `TrainingInterrupted` (a `KeyboardInterrupt`) with the command that resumes; a damaged checkpoint raises a
    `CheckpointError`. Raises `wedepth_hf.hub.HubUploadError` when the final upload fails (the folder is kept).
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    output_dir = Path(config.output_dir)
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=_resolve_trackers(config.log_with),
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    lock, resume_path, restart_selection = claim_output_dir(config, accelerator)
    try:
        return _train_in_claimed_dir(config, accelerator, resume_path, restart_selection)
    finally:
        if lock is not None:
            lock.release()


def _train_in_claimed_dir(
    config: TrainingConfig, accelerator: Any, resume_path: Path | None, restart_selection: bool
) -> TrainingResult:
    """`train` once the output folder is locked and prepared by `claim_output_dir`."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from .data import collate_depth_samples

    output_dir = Path(config.output_dir)
    checkpoints_dir = output_dir / CHECKPOINTS_DIR
    model_dir = output_dir / MODEL_DIR

    set_seed(config.seed)
    model = maybe_sync_batchnorm(
        build_model(config), enabled=config.sync_batchnorm, num_processes=accelerator.num_processes,
        device=accelerator.device, is_main_process=accelerator.is_main_process,
    )
    train_dataset, val_dataset = build_datasets(config, accelerator)
    if len(train_dataset) == 0:
        raise ValueError("The training dataset is empty.")
    if val_dataset is not None and config.eval_max_depth is None and getattr(model.config, "max_depth", None) is None:
        raise ValueError(
            "Validation scores depth up to `eval_max_depth`, and the model config has no max_depth to default to: set "
            "`eval_max_depth` (e.g. 10 for NYU, 80 for KITTI)."
        )
    augmentation = getattr(train_dataset, "transform", None) or getattr(
        getattr(train_dataset, "dataset", None), "transform", None
    )
    sampler = EpochShuffleSampler(len(train_dataset), config.seed)
    train_dataloader = DataLoader(
        train_dataset,
        batch_size=config.per_device_train_batch_size,
        sampler=sampler,
        collate_fn=collate_depth_samples,
        num_workers=config.dataloader_num_workers,
        drop_last=config.dataloader_drop_last,
    )
    optimizer = build_optimizer(model, config)

    batches_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes)
    if batches_per_epoch == 0:
        raise ValueError(
            f"No full training batch: {len(train_dataset)} samples, batch size {config.per_device_train_batch_size}, "
            f"drop_last={config.dataloader_drop_last}."
        )
    steps_per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    max_train_steps = config.max_train_steps or config.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    warmup_steps = config.warmup_steps if config.warmup_steps is not None else round(config.warmup_epochs * steps_per_epoch)
    warmup_steps = min(warmup_steps, max_train_steps)
    scheduler = build_scheduler(
        optimizer, warmup_steps, max_train_steps, config.min_lr_ratio, accelerator.num_processes,
        warmup_start_ratio=config.warmup_start_ratio,
    )

    model, optimizer, train_dataloader, scheduler = accelerator.prepare(model, optimizer, train_dataloader, scheduler)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]

    state = {"global_step": 0, "epoch": 0, "batches_in_epoch": 0, "best_metric": None, "best_step": None,
             "best_metrics": None, "train_shortest_edge": None}
    if resume_path is not None:
        state.update(load_checkpoint(accelerator, config, resume_path))
        logger.info("Resumed from %s at step %d (epoch %d)", resume_path, state["global_step"], state["epoch"])
        if restart_selection:
            state.update(best_metric=None, best_step=None, best_metrics=None)
        if state["batches_in_epoch"] >= len(train_dataloader):
            state["epoch"] += 1
            state["batches_in_epoch"] = 0

    if accelerator.trackers:
        accelerator.init_trackers("wedepth", config=_flat_hparams(config.to_public_dict()))
    counts = accelerator.unwrap_model(model).parameter_counts()
    logger.info(
        "Training %s samples, %d steps (%d epochs of %d steps), warm-up %d steps, %.2fM trainable of %.2fM parameters, "
        "%d process(es), batch %d per device x %d accumulation",
        len(train_dataset), max_train_steps, num_epochs, steps_per_epoch, warmup_steps, counts["trainable"] / 1e6,
        counts["total"] / 1e6, accelerator.num_processes, config.per_device_train_batch_size,
        config.gradient_accumulation_steps,
    )

    result = TrainingResult(output_dir=output_dir, model_dir=model_dir, global_step=state["global_step"],
                            dropped_validation_samples=list(getattr(val_dataset, "dropped", [])))
    progress = tqdm(total=max_train_steps, initial=state["global_step"], desc="training",
                    disable=not accelerator.is_local_main_process)

    def evaluate_and_track() -> None:
        metrics = _evaluate(model, val_dataset, config, accelerator)
        model.train()
        step = state["global_step"]
        result.eval_history.append({"step": step, **metrics})
        accelerator.log({f"eval/{key}": value for key, value in metrics.items()}, step=step)
        logger.info("step %d validation: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        value = metrics[config.metric_for_best_model]
        if _is_better(value, state["best_metric"], config.metric_for_best_model):
            state.update(best_metric=value, best_step=step, best_metrics=metrics)
            _save_model(model, accelerator, model_dir, exports_vfm(config, accelerator.unwrap_model(model)), step)
            logger.info("New best validation %s %.4f at step %d -> %s", config.metric_for_best_model, value, step,
                        model_dir)

    last_evaluated_step = None
    last_checkpoint_step = state["global_step"]  # 0, or the step of the checkpoint resumed from
    last_checkpoint = resume_path
    # True while the model, optimiser and schedule are exactly `state`: no step half done, no gradient accumulated and
    # no evaluation running. Only then can an interrupt be saved as a checkpoint of `state`.
    clean = True
    model.train()
    with _InterruptRequest() as interrupt:
        try:
            for epoch in range(state["epoch"], num_epochs):
                if state["global_step"] >= max_train_steps:
                    break
                state["epoch"] = epoch
                train_dataloader.set_epoch(epoch)
                if augmentation is not None and hasattr(augmentation, "set_epoch"):
                    augmentation.set_epoch(epoch)
                epoch_loader = train_dataloader
                if state["batches_in_epoch"] > 0:
                    from accelerate import skip_first_batches

                    epoch_loader = skip_first_batches(train_dataloader, state["batches_in_epoch"])
                accumulated_loss = torch.zeros((), device=accelerator.device)
                accumulated_batches = 0
                for batch in epoch_loader:
                    clean = False
                    if state["train_shortest_edge"] is None:
                        state["train_shortest_edge"] = int(min(batch["pixel_values"].shape[-2:]))
                    # Forward randomness (drop-path) depends only on the position in training: a resume repeats it.
                    position = state["batches_in_epoch"]
                    torch.manual_seed(batch_seed(config.seed, epoch, position, accelerator.process_index))
                    with accelerator.accumulate(model):
                        outputs = model(pixel_values=batch["pixel_values"], labels=batch["labels"])
                        loss = outputs.loss
                        if not torch.isfinite(loss):
                            raise RuntimeError(
                                f"Non-finite training loss ({loss.item()}) at step {state['global_step'] + 1} on "
                                f"{batch['ids']}. Check these samples (depth range, invalid pixels) or lower the "
                                f"learning rate."
                            )
                        accelerator.backward(loss)
                        if accelerator.sync_gradients and config.max_grad_norm is not None and config.max_grad_norm > 0:
                            accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                        optimizer.step()
                        scheduler.step()
                        optimizer.zero_grad()
                    state["batches_in_epoch"] += 1
                    accumulated_loss += loss.detach()
                    accumulated_batches += 1
                    if not accelerator.sync_gradients:
                        continue

                    state["global_step"] += 1
                    step = state["global_step"]
                    step_loss = accelerator.reduce(accumulated_loss / accumulated_batches, reduction="mean").item()
                    accumulated_loss.zero_()
                    accumulated_batches = 0
                    learning_rate = scheduler.get_last_lr()[0]
                    result.history.append({"step": step, "loss": step_loss, "lr": learning_rate})
                    accelerator.log(
                        {"train/loss": step_loss, "train/lr": learning_rate, "train/epoch": epoch}, step=step
                    )
                    progress.update(1)
                    progress.set_postfix(loss=f"{step_loss:.4f}", lr=f"{learning_rate:.2e}")
                    if step % config.logging_steps == 0 or step == 1:
                        logger.info("step %d/%d epoch %d loss %.4f lr %.3e", step, max_train_steps, epoch, step_loss,
                                    learning_rate)
                    if val_dataset is not None and config.eval_steps is not None and step % config.eval_steps == 0:
                        evaluate_and_track()
                        last_evaluated_step = step
                    if config.checkpointing_steps is not None and step % config.checkpointing_steps == 0:
                        last_checkpoint = save_checkpoint(
                            accelerator, checkpoints_dir, dict(state), config.checkpoints_total_limit
                        )
                        last_checkpoint_step = step
                    clean = True
                    if step >= max_train_steps:
                        break
                    if interrupt.agreed(accelerator):
                        raise _StopRequested
                epoch_evaluation = val_dataset is not None and config.eval_steps is None
                if epoch_evaluation and last_evaluated_step != state["global_step"]:
                    clean = False
                    evaluate_and_track()
                    last_evaluated_step = state["global_step"]
                    clean = True
                state["epoch"] = epoch + 1
                state["batches_in_epoch"] = 0
        except (_StopRequested, KeyboardInterrupt) as stop:
            progress.close()
            # Several processes save together only when they all stopped here (`_StopRequested`).
            together = isinstance(stop, _StopRequested) or accelerator.num_processes == 1
            saved = clean and together and last_checkpoint_step != state["global_step"]
            if saved:
                last_checkpoint = save_checkpoint(
                    accelerator, checkpoints_dir, dict(state), config.checkpoints_total_limit
                )
            raise _interruption(
                config, accelerator.num_processes, state["global_step"], last_checkpoint, saved
            ) from None
    progress.close()

    if val_dataset is not None and last_evaluated_step != state["global_step"]:
        evaluate_and_track()
    if config.checkpointing_steps is not None and last_checkpoint_step != state["global_step"]:
        save_checkpoint(accelerator, checkpoints_dir, dict(state), config.checkpoints_total_limit)

    export_model_folder(
        model, accelerator, config, model_dir,
        best_metrics=state["best_metrics"], best_step=state["best_step"], global_step=state["global_step"],
        train_shortest_edge=state["train_shortest_edge"],
        dropped_validation_samples=len(result.dropped_validation_samples),
    )
    result.global_step = state["global_step"]
    result.best_metric = state["best_metric"]
    result.best_step = state["best_step"]
    accelerator.end_training()
    logger.info("Exported %s (%s)", model_dir, "best validation" if state["best_metrics"] else "final weights")

    if config.push_to_hub and accelerator.is_main_process:
        from .hub import push_folder_to_hub

        result.hub_url = push_folder_to_hub(
            model_dir, config.hub_model_id, private=config.hub_private, token=config.hub_token,
            revision=config.hub_revision, commit_message=f"WEDepth trained for {state['global_step']} steps",
        )
    return result


def _interrupted_outside_the_loop(config: TrainingConfig, num_processes: int) -> str:
    """What to do after a Ctrl-C outside the training steps (set-up, final evaluation, export, upload)."""
    latest = find_latest_checkpoint(Path(config.output_dir) / CHECKPOINTS_DIR)
    if latest is None:
        return (
            "Interrupted (Ctrl-C) outside the training steps, with no checkpoint to resume from. Start again with:\n  "
            + launch_command(num_processes, Path(config.output_dir) / CONFIG_FILE, "--overwrite_output_dir", "true")
            + _token_note(config)
        )
    return (
        f"Interrupted (Ctrl-C) outside the training steps (set-up, or the final evaluation, export or upload). The "
        f"latest complete checkpoint is {latest}; resume (and finish) with:\n  "
        f"{resume_command(config, num_processes, latest)}" + _token_note(config)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: parse `--config` and overrides, train, return the exit status.

    0: done; 1: the upload failed, or the output folder or checkpoint cannot be used (the message says what to do);
    130: interrupted by Ctrl-C (the message says where the checkpoint is and the command that resumes).
    """
    from .hub import HubUploadError

    from accelerate.utils import get_int_from_env

    # The launcher's rank, read from the environment: creating accelerate's state here would fix the distributed
    # setup before `train` builds its Accelerator (and, on CPUs, ignore ACCELERATE_USE_CPU).
    rank = get_int_from_env(["RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"], 0)
    level = logging.INFO if rank == 0 else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level)
    config = parse_training_args(argv)
    try:
        train(config)
    except (HubUploadError, OutputDirError, CheckpointError) as error:
        logger.error("%s", error)
        return 1
    except TrainingInterrupted as interrupted:
        if rank == 0:  # every process knows the same checkpoint and command
            logger.error("%s", interrupted)
        return INTERRUPTED_EXIT_STATUS
    except KeyboardInterrupt:
        if rank == 0:
            world = get_int_from_env(["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"], 1)
            logger.error("%s", _interrupted_outside_the_loop(config, world))
        return INTERRUPTED_EXIT_STATUS
    return 0


__all__ = [
    "CheckedSubset",
    "CheckpointError",
    "EpochShuffleSampler",
    "OutputDirError",
    "OutputDirLock",
    "SkippingSubset",
    "TrainingConfig",
    "TrainingInterrupted",
    "TrainingResult",
    "abandon_later_work",
    "build_datasets",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "batch_seed",
    "claim_output_dir",
    "drop_bad_samples",
    "find_latest_checkpoint",
    "launch_command",
    "list_checkpoints",
    "load_checkpoint",
    "load_training_config",
    "lr_factor",
    "main",
    "maybe_sync_batchnorm",
    "no_weight_decay",
    "parse_training_args",
    "read_checkpoint_state",
    "resolve_checkpoint",
    "resume_command",
    "save_checkpoint",
    "train",
]
