"""The settings of a training run: the `TrainingConfig` dataclass and its layering (bundled config or YAML file, then
`--key value` command-line overrides).

`load_training_config` reads a YAML file, or a config bundled with the package by name (`synthetic`, `nyu`,
`kitti`: `wedepth_hf/configs/<name>.yaml`, read with `importlib.resources` so that an installed wheel has them), and
applies overrides; `parse_training_args` adds a typed `--key value` option for every field, with the field's help
line (its `metadata["help"]`). Unknown keys are errors that suggest the closest one, in `model_config` and its
`vfm_config` / `encoder_config` too; every value is type- and range-checked when the config is made, before anything
is built or written; an abbreviated option is refused; secrets (`SECRET_FIELDS`) are never echoed.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import importlib.util
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml
from accelerate.utils import LoggerType
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import CONFIG_MAPPING
from transformers.utils import logging

from ..command_logging import command_parser
from ..configuration_wedepth import PRESETS, WEDepthConfig
from ..constants import PROTOCOL_METRIC_NAMES, PROTOCOLS
from ..data.datasets import locate_list_file
from ..data.synthetic import SEEDS_PER_DATASET
from ..data.transforms import (
    DEFAULT_NUM_OPS_PROBS,
    DEFAULT_OP_WEIGHTS,
    DepthAugmentation,
    check_num_ops_probs,
    resolve_op_weights,
)
from ..metrics import CROPS


logger = logging.get_logger(__name__)


DATASETS = ("synthetic", "nyu", "kitti", "hf")
# Settings that are secrets: left out of every file, log, tracker and model card.
SECRET_FIELDS = ("hub_token",)
# The largest seed: `accelerate.utils.set_seed` seeds numpy, which takes 32-bit seeds.
MAX_SEED = 2**32 - 1
# `log_with` names besides accelerate's trackers (`accelerate.utils.LoggerType`).
LOG_WITH_KEYWORDS = ("auto", "none")
# The package whose `configs/` folder holds the bundled configs, addressable by name.
BUNDLED_CONFIGS_PACKAGE = "wedepth_hf"
BUNDLED_CONFIGS_DIR = "configs"


def _setting(default: Any, help_text: str, **options: Any) -> Any:
    """A `TrainingConfig` field with a plain `default` and its help line in `metadata["help"]`, which `wedepth train
    --help` shows for its `--option` (as transformers' `field(metadata={"help": ...})` arguments do)."""
    return field(default=default, metadata={"help": help_text}, **options)


@dataclass
class TrainingConfig:
    """Every setting of a WEDepth training run (the keys of the bundled configs, `wedepth_hf/configs/*.yaml`); each
    field's `metadata["help"]` says what it does, its unit and what its default means.

    Model: `init_from` wins; else `pretrained_backbones`; else a random model from `preset` and/or `model_config`.
    Validation: a separate `val_split_file` / `hf_val_split`, or `val_fraction` of the training list held out (seeded).
    A test split is never used here: evaluate on it with `wedepth evaluate`. The defaults of the schedule, of weight
    decay, of the augmentation policy and of `sync_batchnorm` are the authors' train.py; other behaviours are opt-in.
    """

    # output and run
    output_dir: str = _setting("wedepth-output", "Folder the run writes: training_config.yaml, checkpoints/, model/.")
    overwrite_output_dir: bool = _setting(
        False, "Start over in a folder of an earlier run (deletes its checkpoints/ and model/) or of other files."
    )
    seed: int = _setting(42, "Seed of every random draw (init, data order, augmentation, hold-out), 0 to 2**32-1.")
    # model
    preset: str | None = _setting("large", "Model size (small, base, large) under `model_config`; null: no preset.")
    model_config: dict = field(
        default_factory=dict,
        metadata={"help": "WEDepthConfig settings over the preset (YAML mapping; vfm_config / encoder_config nested)."},
    )
    pretrained_backbones: bool = _setting(
        True, "Start from the preset's pretrained DINOv2 (frozen VFM) and Swin (encoder); false: random weights."
    )
    vfm_name_or_path: str | None = _setting(None, "Hub id or folder of the pretrained VFM; null: the preset's DINOv2.")
    encoder_name_or_path: str | None = _setting(None, "Hub id or folder of the pretrained encoder; null: the preset's.")
    init_from: str | None = _setting(None, "WEDepth checkpoint (Hub id or folder) to fine-tune; null: a new model.")
    # data
    dataset: str = _setting("synthetic", "Data: synthetic (built-in scenes), nyu or kitti (list files), hf (datasets).")
    data_root: str | None = _setting(None, "Folder the list files and their paths are in (nyu, kitti).")
    image_root: str | None = _setting(
        None, "Folder of the images when not data_root (KITTI raw data); null: data_root."
    )
    depth_root: str | None = _setting(None, "Folder of the depth maps when not data_root; null: data_root.")
    train_split_file: str | None = _setting(None, "List file of the training samples (nyu, kitti), in data_root.")
    val_split_file: str | None = _setting(
        None, "List file of the validation samples; null: `val_fraction` of the training list, or no validation."
    )
    val_fraction: float = _setting(0.0, "Fraction of the training samples held out for validation, in [0, 1); 0: none.")
    on_bad_sample: str = _setting(
        "raise", "A sample that does not load: raise (stop) or skip (next good one; bad validation samples dropped)."
    )
    allow_paths_outside_root: bool = _setting(
        False, "Let list lines name files outside data_root (or image_root / depth_root), by `..` or a link."
    )
    hf_dataset_name: str | None = _setting(None, "Hub id or local folder of the `datasets` dataset (dataset: hf).")
    hf_train_split: str = _setting("train", "Split of the `datasets` dataset to train on.")
    hf_val_split: str | None = _setting(
        "validation", "Split to validate on; null: `val_fraction` of the training split, or no validation."
    )
    hf_image_column: str = _setting("image", "Column of the `datasets` dataset holding the RGB images.")
    hf_depth_column: str = _setting("depth_map", "Column of the `datasets` dataset holding the depth maps.")
    hf_depth_scale: float | None = _setting(
        None, "Raw depth units per metre of integer depth maps (1000: millimetres); null: depths in metres."
    )
    synthetic_source: str = _setting(
        "files",
        "Synthetic scenes written as NYU-layout files and read back (files), or rendered in memory (on_the_fly).",
    )
    synthetic_data_dir: str | None = _setting(
        None, "Folder the synthetic files are written to; null: <output_dir>/data."
    )
    synthetic_num_train: int = _setting(64, "Number of synthetic training scenes.")
    synthetic_num_val: int = _setting(16, "Number of synthetic validation scenes (never training scenes).")
    synthetic_height: int = _setting(240, "Height of the synthetic scenes, in pixels.")
    synthetic_width: int = _setting(320, "Width of the synthetic scenes, in pixels.")
    kb_crop: bool = _setting(False, "KITTI: train on the KB crop (bottom 352 rows, centred 1216 columns).")
    # augmentation (the authors' policy and values, `wedepth_hf.data.transforms.DepthAugmentation`)
    augment: bool = _setting(True, "Augment training samples: a flip, then 1-4 distinct operations drawn by weight.")
    flip: float = _setting(0.5, "Probability of a horizontal flip of a training sample.")
    rotation: float = _setting(5.0, "Largest rotation, in degrees: an angle drawn from U(-r, r).")
    scale: float = _setting(0.1, "Largest zoom, as a fraction: a factor drawn from U(1, 1 + s) (zoom in only).")
    translation: float = _setting(0.1, "Largest shift, as a fraction of the width / height: drawn from U(-t, t).")
    brightness: float = _setting(0.1, "Brightness change: a factor 10 ** U(-b, b).")
    contrast: float = _setting(0.1, "Contrast change: a factor 10 ** U(-c, c).")
    saturation: float = _setting(0.1, "Saturation change: a factor 10 ** U(-s, s).")
    gamma: float = _setting(0.1, "Gamma change: an exponent drawn from U(1 - g, 1 + g).")
    hue: float = _setting(0.1, "Largest hue shift, in turns: drawn from U(-h, h).")
    augment_op_weights: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_OP_WEIGHTS),
        metadata={"help": "Relative weights of the operations drawn (YAML mapping; named ones replace the defaults)."},
    )
    augment_num_ops_probs: list[float] = field(
        default_factory=lambda: list(DEFAULT_NUM_OPS_PROBS),
        metadata={"help": "Probabilities of drawing 1, 2, 3, ... distinct operations (YAML list summing to 1)."},
    )
    # optimisation
    learning_rate: float = _setting(2e-4, "Peak learning rate of AdamW, reached at the end of the warm-up.")
    weight_decay: float = _setting(
        0.01, "AdamW decoupled weight decay, per step (which parameters: decay_all_trainable_parameters)."
    )
    adam_beta1: float = _setting(0.9, "AdamW beta1: decay of the running mean of the gradients, in [0, 1).")
    adam_beta2: float = _setting(0.999, "AdamW beta2: decay of the running mean of the squared gradients, in [0, 1).")
    adam_epsilon: float = _setting(1e-8, "AdamW epsilon: added to the denominator for numerical stability (> 0).")
    num_train_epochs: int = _setting(20, "Passes over the training set, when max_train_steps is null.")
    max_train_steps: int | None = _setting(None, "Optimizer steps to train for; null: num_train_epochs epochs.")
    warmup_epochs: float = _setting(3.0, "Length of the linear warm-up, in epochs, when warmup_steps is null.")
    warmup_steps: int | None = _setting(None, "Length of the linear warm-up, in optimizer steps; null: warmup_epochs.")
    warmup_start_ratio: float = _setting(
        0.1, "Learning-rate factor at step 0 of the warm-up, in [0, 1] (authors: 0.1)."
    )
    min_lr_ratio: float = _setting(0.1, "Learning-rate factor at the end of the cosine, in [0, 1] (authors: 0.1).")
    decay_all_trainable_parameters: bool = _setting(
        True, "Decay every trainable parameter (authors); false: biases, norms, embeddings and gates exempt."
    )
    per_device_train_batch_size: int = _setting(8, "Training samples per batch, on each device (process).")
    per_device_eval_batch_size: int = _setting(1, "Validation samples per batch, on each device (process).")
    gradient_accumulation_steps: int = _setting(1, "Batches whose gradients add up to one optimizer step.")
    max_grad_norm: float | None = _setting(1.0, "Clip the gradients' total norm to this; null: no clipping.")
    mixed_precision: str = _setting("no", "Precision of training: no (float32), fp16 or bf16; validation is float32.")
    gradient_checkpointing: bool = _setting(False, "Recompute activations in the backward pass: less memory, slower.")
    dataloader_num_workers: int = _setting(0, "Data-loading worker processes; 0: load in the main process.")
    dataloader_drop_last: bool = _setting(False, "Drop the last, incomplete training batch of each epoch.")
    sync_batchnorm: bool = _setting(
        True, "SyncBatchNorm when several GPU processes train (authors); CPU runs keep per-process BatchNorm."
    )
    # evaluation
    eval_steps: int | None = _setting(None, "Validate every this many optimizer steps; null: after every epoch.")
    eval_protocol: str = _setting(
        "community", "Validation: community (BTS/ZoeDepth crops) or authors (their test preparation and metrics)."
    )
    metric_for_best_model: str = _setting("abs_rel", "Validation metric that picks the exported (best) weights.")
    eval_min_depth: float | None = _setting(None, "Smallest depth scored, in metres; null: the model's min_depth.")
    eval_max_depth: float | None = _setting(None, "Largest depth scored, in metres; null: the model's max_depth.")
    eval_crop: str | None = _setting(None, "Crop scored (eigen_nyu, garg, eigen_kitti; community); null: no crop.")
    eval_flip_tta: bool = _setting(False, "Validate the mean of the predictions of the image and of its mirror.")
    # checkpoints and logging
    checkpointing_steps: int | None = _setting(
        500, "Save a checkpoint every this many steps and at the end; null: none."
    )
    checkpoints_total_limit: int | None = _setting(2, "Checkpoints kept (the oldest deleted); null: all.")
    resume_from_checkpoint: str | None = _setting(
        None, "Resume from a checkpoint folder, or latest (the newest of output_dir; none yet: from scratch)."
    )
    logging_steps: int = _setting(10, "Log the loss and learning rate every this many optimizer steps.")
    log_with: str = _setting("auto", "Trackers (comma-separated, accelerate's); auto: tensorboard if installed; none.")
    # model card and Hub
    license: str = _setting("apache-2.0", "License stated in the model card.")
    model_name: str | None = _setting(None, "Name in the model card; null: that of hub_model_id or of output_dir.")
    export_full_model: bool = _setting(
        False, "Export the frozen VFM too; false: only the trained weights, the VFM referred to by its source."
    )
    push_to_hub: bool = _setting(False, "Upload the exported folder to the Hub at the end (needs hub_model_id).")
    hub_model_id: str | None = _setting(None, "Hub repo to upload to (org/name).")
    hub_private: bool = _setting(False, "Create the Hub repo as private.")
    hub_token: str | None = _setting(
        None, "Hub token (a secret, never logged or saved); null: HF_TOKEN or the Hugging Face login.", repr=False
    )
    hub_revision: str | None = _setting(None, "Branch of the Hub repo to upload to; null: its default branch.")

    def __post_init__(self) -> None:
        """Check the values a user can get wrong, before any expensive work starts; complete the augmentation policy
        (named weights replace the defaults) so that training_config.yaml and the model card state the one used."""
        _check_types(self)
        _check_choices(self)
        _check_ranges(self)
        _check_hub(self)
        _check_model_config(self)
        _check_data_source(self)
        _check_validation_split(self)
        _check_augmentation(self)

    def to_public_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict without its secrets (`SECRET_FIELDS`): what `training_config.yaml`, the
        model card and trackers hold. It loads back with `load_training_config`; a push then takes its token from
        `HF_TOKEN` or the Hugging Face login, as the `huggingface_hub` client does."""
        values = dataclasses.asdict(self)
        for name in SECRET_FIELDS:
            values.pop(name)
        return values


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


# ---- the checks of the settings --------------------------------------------------------------------------------------


def _check_data_source(config: TrainingConfig) -> None:
    """Refuse a data source without what it needs to read."""
    if config.dataset in ("nyu", "kitti") and (config.data_root is None or config.train_split_file is None):
        raise ValueError(f"`dataset: {config.dataset}` needs `data_root` and `train_split_file`.")
    if config.dataset == "hf" and not config.hf_dataset_name:
        raise ValueError("`dataset: hf` needs `hf_dataset_name` (a Hub dataset id or a local dataset folder).")


def _check_augmentation(config: TrainingConfig) -> None:
    """Complete and check the augmentation policy (the named weights replace the defaults), and build the
    augmentation once, so that a strength out of its range is an error now, before a model is built."""
    try:
        config.augment_op_weights = resolve_op_weights(config.augment_op_weights)
        config.augment_num_ops_probs = list(
            check_num_ops_probs(config.augment_num_ops_probs, config.augment_op_weights)
        )
    except ValueError as error:
        raise ValueError(f"Invalid `augment_op_weights` / `augment_num_ops_probs`: {error}") from error
    build_augmentation(config)


def _check_types(config: TrainingConfig) -> None:
    """Refuse a value of another type than its field's (a string for a number, say) or a non-finite number."""
    for name, annotation in _field_types().items():
        value = getattr(config, name)
        base, optional = _base_type(annotation)
        if value is None and optional:
            continue
        origin = get_origin(base) or base
        if origin is float:
            fits = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif origin is int:
            fits = isinstance(value, int) and not isinstance(value, bool)
        else:
            fits = isinstance(value, origin)
        if not fits:
            kind = "a finite number" if origin is float else f"a {origin.__name__}"
            kind += " or null" if optional else ""
            shown = "a value that is not shown" if name in SECRET_FIELDS else repr(value)
            raise ValueError(f"`{name}` must be {kind}, got {shown}.")


def _check_choices(config: TrainingConfig) -> None:
    """Refuse a value outside the choices of a setting that names one (dataset, precision, metric...)."""
    if config.dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}, got {config.dataset!r}.")
    if config.preset is not None and config.preset not in PRESETS:
        raise ValueError(f"`preset` must be one of {sorted(PRESETS)} or null, got {config.preset!r}.")
    if config.eval_crop is not None and config.eval_crop not in CROPS:
        raise ValueError(f"`eval_crop` must be one of {CROPS} or null, got {config.eval_crop!r}.")
    _check_log_with(config.log_with)
    if config.mixed_precision not in ("no", "fp16", "bf16"):
        raise ValueError(f"`mixed_precision` must be 'no', 'fp16' or 'bf16', got {config.mixed_precision!r}.")
    if config.eval_protocol not in PROTOCOLS:
        raise ValueError(f"`eval_protocol` must be one of {PROTOCOLS}, got {config.eval_protocol!r}.")
    metric_names = PROTOCOL_METRIC_NAMES[config.eval_protocol]
    if config.metric_for_best_model not in metric_names:
        raise ValueError(
            f"`metric_for_best_model` must be one of the {config.eval_protocol} protocol's metrics {metric_names}, "
            f"got {config.metric_for_best_model!r}."
        )
    if config.eval_protocol == "authors":
        if config.dataset not in ("nyu", "kitti"):
            raise ValueError(
                f"`eval_protocol: authors` prepares validation samples as the authors' NYU or KITTI class does; "
                f"`dataset: {config.dataset}` has no such class. Use `eval_protocol: community`."
            )
        community_only = ("eval_min_depth", "eval_max_depth", "eval_crop")
        overrides = [name for name in community_only if getattr(config, name) is not None]
        if overrides:
            raise ValueError(
                f"{', '.join(overrides)}: the authors' protocol takes the depth range and crop from their "
                f"{config.dataset} class; drop these or use `eval_protocol: community`."
            )
    if config.synthetic_source not in ("files", "on_the_fly"):
        raise ValueError(f"`synthetic_source` must be 'files' or 'on_the_fly', got {config.synthetic_source!r}.")
    if config.on_bad_sample not in ("raise", "skip"):
        raise ValueError(f"`on_bad_sample` must be 'raise' or 'skip', got {config.on_bad_sample!r}.")


def _check_ranges(config: TrainingConfig) -> None:
    """Refuse a ratio, count, rate or interval outside the range it is meaningful in."""
    if not config.output_dir.strip():
        raise ValueError("`output_dir` is empty; name the folder the run writes to (e.g. runs/wedepth-nyu).")
    if not 0 <= config.seed <= MAX_SEED:
        raise ValueError(f"`seed` must lie in [0, {MAX_SEED}], got {config.seed}.")
    if not 0.0 <= config.val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must lie in [0, 1), got {config.val_fraction}.")
    _check_optimisation_ranges(config)
    _check_data_ranges(config)
    for name in ("min_lr_ratio", "warmup_start_ratio"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise ValueError(f"`{name}` must lie in [0, 1], got {getattr(config, name)}.")
    for name in (
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "gradient_accumulation_steps",
        "num_train_epochs",
        "logging_steps",
    ):
        if getattr(config, name) < 1:
            raise ValueError(f"`{name}` must be at least 1, got {getattr(config, name)}.")
    for name in ("max_train_steps", "eval_steps", "checkpointing_steps", "checkpoints_total_limit"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"`{name}` must be at least 1 or null, got {value}.")


def _check_optimisation_ranges(config: TrainingConfig) -> None:
    """Refuse a learning rate, decay, Adam setting, warm-up or clipping norm outside its meaningful range."""
    if config.learning_rate <= 0:
        raise ValueError(f"`learning_rate` must be a positive number, got {config.learning_rate}.")
    for name in ("weight_decay", "warmup_epochs"):
        if getattr(config, name) < 0:
            raise ValueError(f"`{name}` must be 0 or more, got {getattr(config, name)}.")
    for name in ("adam_beta1", "adam_beta2"):
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ValueError(f"`{name}` must lie in [0, 1), got {getattr(config, name)}.")
    if config.adam_epsilon <= 0:
        raise ValueError(f"`adam_epsilon` must be a positive number, got {config.adam_epsilon}.")
    if config.warmup_steps is not None and config.warmup_steps < 0:
        raise ValueError(f"`warmup_steps` must be 0 or more, or null, got {config.warmup_steps}.")
    if config.max_grad_norm is not None and config.max_grad_norm <= 0:
        raise ValueError(
            f"`max_grad_norm` must be a positive number, or null (no clipping), got {config.max_grad_norm}."
        )
    if config.dataloader_num_workers < 0:
        raise ValueError(
            f"`dataloader_num_workers` must be 0 (load in the main process) or more, got "
            f"{config.dataloader_num_workers}."
        )


def _check_data_ranges(config: TrainingConfig) -> None:
    """Refuse a synthetic set size, depth scale or evaluation depth range that cannot work."""
    for name in ("synthetic_num_train", "synthetic_num_val", "synthetic_height", "synthetic_width"):
        if getattr(config, name) < 1:
            raise ValueError(f"`{name}` must be at least 1, got {getattr(config, name)}.")
    if config.synthetic_num_train + config.synthetic_num_val > SEEDS_PER_DATASET:
        raise ValueError(
            f"`synthetic_num_train` + `synthetic_num_val` must be at most {SEEDS_PER_DATASET} (the scenes of one "
            f"seed), got {config.synthetic_num_train + config.synthetic_num_val}."
        )
    if config.hf_depth_scale is not None and config.hf_depth_scale <= 0:
        raise ValueError(
            f"`hf_depth_scale` must be a positive number (raw units per metre), got {config.hf_depth_scale}."
        )
    if config.eval_min_depth is not None and config.eval_min_depth < 0:
        raise ValueError(f"`eval_min_depth` must be 0 or more, got {config.eval_min_depth}.")
    if config.eval_max_depth is not None and config.eval_max_depth <= (config.eval_min_depth or 0.0):
        raise ValueError(
            f"`eval_max_depth` ({config.eval_max_depth}) must be above `eval_min_depth` ({config.eval_min_depth or 0})."
        )


def _check_hub(config: TrainingConfig) -> None:
    """Refuse an upload without a repo, or a repo id the Hub would refuse at the end of the run."""
    if config.push_to_hub and not config.hub_model_id:
        raise ValueError("`push_to_hub` needs `hub_model_id` (e.g. --hub_model_id your-org/wedepth-nyu).")
    if config.hub_model_id is not None:
        try:
            validate_repo_id(config.hub_model_id)
        except HFValidationError as error:
            raise ValueError(
                f"`hub_model_id` {config.hub_model_id!r} is not a Hub repo id (org/name): {error}"
            ) from error


def _check_model_config(config: TrainingConfig) -> None:
    """Refuse unknown keys in `model_config` (and its `vfm_config` / `encoder_config`), and a model config that
    `WEDepthConfig` refuses, and a run with no model to build, before anything is built."""
    if (
        config.init_from is None
        and not config.pretrained_backbones
        and config.preset is None
        and not config.model_config
    ):
        raise ValueError(
            "No model to build: set `init_from` (a WEDepth checkpoint), `pretrained_backbones: true` with a "
            "`preset`, or a `model_config` (and/or `preset`) for a randomly initialised model."
        )
    check_model_config_keys(config.model_config)
    if config.init_from is not None:
        return
    if config.pretrained_backbones and config.preset is None:
        raise ValueError("`pretrained_backbones: true` needs a `preset` (small, base or large).")
    try:
        if config.preset is not None:
            WEDepthConfig.from_preset(config.preset, **config.model_config)
        else:
            WEDepthConfig(**config.model_config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Invalid `model_config`: {error}") from error


def _check_validation_split(config: TrainingConfig) -> None:
    """Refuse a validation split that is the training split (the same list file however it is spelt, a copy of
    it, or the same `datasets` split) or a test list: the best model is chosen on it."""
    if config.dataset == "hf" and config.hf_val_split is not None and config.val_fraction == 0.0:
        if config.hf_val_split == config.hf_train_split:
            raise ValueError(
                f"`hf_val_split` is the training split ({config.hf_train_split}); hold out part of it with "
                f"`val_fraction` instead."
            )
    if config.val_split_file is None:
        return
    validation = _list_location(config.val_split_file, config.data_root)
    if config.train_split_file is not None:
        training = _list_location(config.train_split_file, config.data_root)
        if validation == training or _same_list_lines(validation, training):
            how = "the same file" if validation == training else "a copy, with the same lines"
            raise ValueError(
                f"`val_split_file` {config.val_split_file} is the training list ({config.train_split_file}: {how}); "
                f"hold out part of it with `val_fraction` instead."
            )
        _warn_about_shared_lines(validation, training)
    if any("test" in name.lower() for name in (Path(config.val_split_file).name, validation.name)):
        raise ValueError(
            f"`val_split_file` {config.val_split_file} looks like a test list: the best checkpoint is chosen on the "
            f"validation split, so a test list there reports tuned-on-test numbers. Hold out part of the training "
            f"list with `val_fraction` (and evaluate the test list with examples/evaluate.py), or give a "
            f"validation list whose name does not contain 'test'."
        )


def _check_log_with(log_with: str) -> None:
    """Refuse a `log_with` that names no tracker accelerate knows, or tensorboard when it is not installed."""
    names = [name.strip() for name in log_with.split(",") if name.strip()]
    known = [*LOG_WITH_KEYWORDS, *(tracker.value for tracker in LoggerType)]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"`log_with` must be a comma-separated list of {known}, got {log_with!r}.")
    if "tensorboard" in names and importlib.util.find_spec("tensorboard") is None:
        raise ValueError("`log_with: tensorboard` needs tensorboard: `pip install tensorboard` (or `log_with: none`).")


def _list_location(split_file: str, data_root: str | None) -> Path:
    """The absolute path of the list file the readers open for `split_file` (the path as given when it is a file,
    else inside `data_root`; `NYUDepthDataset` and `KITTIDepthDataset` look it up so), links followed."""
    located = locate_list_file(split_file, data_root)
    if located is None:
        located = Path(data_root or ".") / split_file
    return located.resolve()


def _list_lines(path: Path) -> list[tuple[str, ...]]:
    """The non-empty lines of a list file as their fields (a leading "/" of a path dropped, as the readers drop
    it), sorted; empty when the file cannot be read (the readers report that)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return []
    return sorted(tuple(field.lstrip("/") for field in line.split()) for line in text.splitlines() if line.split())


def _same_list_lines(first: Path, second: Path) -> bool:
    """Whether two list files list the same samples (the same non-empty lines, in any order)."""
    lines = _list_lines(first)
    return bool(lines) and lines == _list_lines(second)


def _warn_about_shared_lines(validation: Path, training: Path) -> None:
    """Log a warning when some validation samples are training samples too: they score as seen."""
    validation_lines = set(_list_lines(validation))
    shared = validation_lines & set(_list_lines(training))
    if shared:
        logger.warning(
            "%d of the %d samples of the validation list %s are in the training list %s too: the validation metrics "
            "of those samples are measured on training data.",
            len(shared),
            len(validation_lines),
            validation,
            training,
        )


@functools.cache
def _known_config_keys(config_class: type) -> frozenset[str]:
    """The keys a transformers config class takes: its fields and the keys of its default instance's dict."""
    fields = {field_info.name.lstrip("_") for field_info in dataclasses.fields(config_class)}
    return frozenset(fields | set(config_class().to_dict()) | {"model_type"})


def _check_known_keys(values: Mapping[str, Any], config_class: type, where: str) -> None:
    """Raise on a key of `values` that `config_class` does not take, suggesting the closest one."""
    known = _known_config_keys(config_class)
    for key in values:
        if not isinstance(key, str) or key not in known:
            suggestion = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" Did you mean `{suggestion[0]}`?" if suggestion else ""
            raise ValueError(
                f"Unknown key `{key}` in `{where}` (a {config_class.__name__}).{hint} A misspelt key would be ignored "
                f"by the model."
            )


def check_model_config_keys(model_config: Mapping[str, Any]) -> None:
    """Refuse a key of `model_config` that `WEDepthConfig` does not take, and a key of its `vfm_config` /
    `encoder_config` that the config class of their `model_type` (DINOv2 and Swin by default) does not take."""
    _check_known_keys(model_config, WEDepthConfig, "model_config")
    for name, default_type in (("vfm_config", "dinov2"), ("encoder_config", "swin")):
        values = model_config.get(name)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ValueError(f"`model_config.{name}` must be a mapping of settings, got {values!r}.")
        model_type = values.get("model_type", default_type)
        if model_type not in CONFIG_MAPPING:
            raise ValueError(f"`model_config.{name}.model_type` {model_type!r} is not a transformers model type.")
        _check_known_keys(values, CONFIG_MAPPING[model_type], f"model_config.{name}")


# ---- YAML values and their types -------------------------------------------------------------------------------------


class _ConfigLoader(yaml.SafeLoader):
    """YAML loader that also reads exponent floats without a dot (`2e-4`, `1e-06`) as floats, as YAML 1.2 does, and
    refuses a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping of `node`, or a `ConstructorError` at the second occurrence of a key."""
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key_node.value!r} is given twice", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _load_yaml(text: str) -> Any:
    """Parse YAML text with `_ConfigLoader` (safe: plain data only)."""
    return yaml.load(text, Loader=_ConfigLoader)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line that says what is wrong in a YAML text, and where: PyYAML's own messages span several lines."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    if "python/" in problem:
        problem += ": tags that make Python objects are not read; give plain values"
    return f"{problem}{where}"


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
        if isinstance(value, (bool, dict, list)):
            raise ValueError(f"expected {'text' if origin is str else 'a number'}, got a {type(value).__name__}")
        if origin is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if origin is float:
            return float(value)
        return str(value)
    except yaml.YAMLError as error:
        raise ValueError(f"Invalid value for `{name}`: {_yaml_problem(error)}") from error
    except (TypeError, ValueError) as error:
        raise ValueError(f"Invalid value for `{name}`: {error}") from error


def _check_keys(keys: Sequence[Any], source: str) -> None:
    """Raise on a key that is not a `TrainingConfig` field, suggesting the closest one."""
    valid = set(_field_types())
    for key in keys:
        if not isinstance(key, str) or key not in valid:
            suggestion = difflib.get_close_matches(str(key), sorted(valid), n=1)
            hint = f" Did you mean `{suggestion[0]}`?" if suggestion else ""
            raise ValueError(f"Unknown training setting `{key}` in {source}.{hint} Valid keys: {sorted(valid)}.")


# ---- config files: a path or a bundled name --------------------------------------------------------------------------


def _bundled_configs() -> Traversable:
    """The folder of the bundled configs, inside the installed package (a source checkout or a wheel alike)."""
    return resources.files(BUNDLED_CONFIGS_PACKAGE).joinpath(BUNDLED_CONFIGS_DIR)


def bundled_config_names() -> list[str]:
    """The names of the configs shipped with the package (`wedepth_hf/configs/<name>.yaml`), for `--config <name>`."""
    return sorted(
        entry.name.removesuffix(".yaml") for entry in _bundled_configs().iterdir() if entry.name.endswith(".yaml")
    )


def _read_config(config: str | Path) -> tuple[str, str]:
    """(the YAML text of `config`, where it came from): the file at that path when there is one (a path wins), else
    the bundled config of that name; anything else is a `FileNotFoundError` listing the bundled names."""
    path = Path(config)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise ValueError(f"Cannot read the training config {path}: {reason}.") from error
    names = bundled_config_names()
    if str(config) in names:
        text = _bundled_configs().joinpath(f"{config}.yaml").read_text(encoding="utf-8")
        return text, f"the bundled config {config!r}"
    raise FileNotFoundError(
        f"Training config {config} not found: it is neither a file nor the name of a bundled config "
        f"({', '.join(names)})."
    )


def load_training_config(
    config: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainingConfig:
    """A `TrainingConfig` from a YAML file or bundled config name (optional) with `overrides` applied on top; unknown
    keys, YAML that is not plain data (a `!!python/object` tag, say) and an empty file are errors."""
    values: dict[str, Any] = {}
    if config is not None:
        text, source = _read_config(config)
        try:
            loaded = _load_yaml(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{source} is not a YAML file of training settings: {_yaml_problem(error)}.") from error
        if loaded is None:
            raise ValueError(
                f"{source} is empty: it holds no training settings. Write the settings there (see the bundled "
                f"configs: {', '.join(bundled_config_names())}), or leave --config out to train with the defaults."
            )
        if not isinstance(loaded, dict):
            raise ValueError(f"{source} must hold a mapping of training settings, got {type(loaded).__name__}.")
        _check_keys(list(loaded), source)
        values.update({key: _convert(key, value) for key, value in loaded.items()})
    if overrides:
        _check_keys(list(overrides), "the overrides")
        values.update({key: _convert(key, value) for key, value in overrides.items()})
    return TrainingConfig(**values)


# ---- the command line ------------------------------------------------------------------------------------------------


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


def _training_parser() -> argparse.ArgumentParser:
    """The parser of `--config` and of one typed `--<field> VALUE` option per `TrainingConfig` field."""
    parser = command_parser(
        "wedepth train",
        "Train WEDepth with accelerate. Any setting of the YAML config can be overridden as --key value: booleans "
        "take true/false (or no value for true), lists and mappings take YAML, optional settings take null.",
        debug_help="show the traceback of an error instead of its one-line message (read by the command, not a "
        "setting)",
    )
    parser.add_argument(
        "--config",
        type=str,
        default=None,
        help=f"YAML file of training settings, or a bundled config by name ({', '.join(bundled_config_names())})",
    )
    for field_info in dataclasses.fields(TrainingConfig):
        base, _ = _base_type(_field_types()[field_info.name])
        options: dict[str, Any] = {
            "default": argparse.SUPPRESS,
            "type": str,
            "metavar": "VALUE",
            "help": _option_help(field_info),
        }
        if (get_origin(base) or base) is bool:
            options.update(nargs="?", const="true")
        parser.add_argument(f"--{field_info.name}", **options)
    return parser


def _option_help(field_info: dataclasses.Field) -> str:
    """The `--help` line of a `TrainingConfig` field: its `metadata["help"]` and its default (as YAML writes it),
    escaped for argparse's %-formatting."""
    if field_info.default_factory is not dataclasses.MISSING:
        default = field_info.default_factory()
    else:
        default = field_info.default
    shown = yaml.safe_dump(default, default_flow_style=True, width=math.inf).strip().removesuffix("...").strip()
    return f"{field_info.metadata['help']} (default: {shown})".replace("%", "%%")


def parse_training_args(argv: Sequence[str] | None = None) -> TrainingConfig:
    """Parse `--config FILE.yaml|NAME [--key value ...]`: every `TrainingConfig` field can be overridden, typed.

    Booleans take true/false or no value (`--push_to_hub`); lists and dicts take YAML (`--model_config '{...}'`);
    optional fields take `null`. Options must be spelled in full: an abbreviation (`--hub_tok`) is an error, not the
    option it would abbreviate, and the error names unknown options without echoing their values.
    """
    parser = _training_parser()
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        options = ["--config", *(f"--{field_info.name}" for field_info in dataclasses.fields(TrainingConfig))]
        parser.error(_unknown_arguments_message(unknown, options))
    arguments = vars(namespace)
    config = arguments.pop("config")
    arguments.pop("debug")
    try:
        return load_training_config(config, arguments)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
