"""The settings of a training run: the `TrainingConfig` dataclass and its layering (bundled config or YAML file, then
`--key value` command-line overrides).

`load_training_config` reads a YAML file, or a config bundled with the package by name (`synthetic`, `nyu`,
`kitti`: `wedepth_hf/configs/<name>.yaml`, read with `importlib.resources` so that an installed wheel has them), and
applies overrides; `parse_training_args` adds a typed `--key value` option for every field. Unknown keys are errors
that suggest the closest one, in `model_config` and its `vfm_config` / `encoder_config` too; every value is type- and
range-checked when the config is made, before anything is built or written; an abbreviated option is refused; secrets
(`SECRET_FIELDS`) are never echoed.
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
from transformers.utils import logging

from ..configuration_wedepth import PRESETS, WEDepthConfig
from ..constants import PROTOCOL_METRIC_NAMES, PROTOCOLS
from ..data.datasets import locate_list_file
from ..data.synthetic import SEEDS_PER_DATASET
from ..data.transforms import DEFAULT_NUM_OPS_PROBS, DEFAULT_OP_WEIGHTS, check_num_ops_probs, resolve_op_weights
from ..metrics import CROPS
from .builders import build_augmentation


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


@dataclass
class TrainingConfig:
    """Every setting of a WEDepth training run (the keys of the bundled configs, `wedepth_hf/configs/*.yaml`).

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
    # true: list lines may name files outside `data_root` (or `image_root` / `depth_root`), by `..` or a link
    allow_paths_outside_root: bool = False
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
    # community: BTS/ZoeDepth crops and the KITTI-benchmark SILog; authors: their test-set preparation of `dataset`
    # (crops, masks, depth range, prediction at the ground truth's size) and their metrics, as `wedepth evaluate
    # --protocol authors` scores (the eval_min_depth / eval_max_depth / eval_crop overrides are community only)
    eval_protocol: str = "community"
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
        self._check_types()
        self._check_choices()
        self._check_ranges()
        self._check_hub()
        if self.init_from is None and not self.pretrained_backbones and self.preset is None and not self.model_config:
            raise ValueError(
                "No model to build: set `init_from` (a WEDepth checkpoint), `pretrained_backbones: true` with a "
                "`preset`, or a `model_config` (and/or `preset`) for a randomly initialised model."
            )
        self._check_model_config()
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

    def _check_types(self) -> None:
        """Refuse a value of another type than its field's (a string for a number, say) or a non-finite number."""
        for name, annotation in _field_types().items():
            value = getattr(self, name)
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

    def _check_choices(self) -> None:
        """Refuse a value outside the choices of a setting that names one (dataset, precision, metric...)."""
        if self.dataset not in DATASETS:
            raise ValueError(f"`dataset` must be one of {DATASETS}, got {self.dataset!r}.")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"`preset` must be one of {sorted(PRESETS)} or null, got {self.preset!r}.")
        if self.eval_crop is not None and self.eval_crop not in CROPS:
            raise ValueError(f"`eval_crop` must be one of {CROPS} or null, got {self.eval_crop!r}.")
        _check_log_with(self.log_with)
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"`mixed_precision` must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}.")
        if self.eval_protocol not in PROTOCOLS:
            raise ValueError(f"`eval_protocol` must be one of {PROTOCOLS}, got {self.eval_protocol!r}.")
        metric_names = PROTOCOL_METRIC_NAMES[self.eval_protocol]
        if self.metric_for_best_model not in metric_names:
            raise ValueError(
                f"`metric_for_best_model` must be one of the {self.eval_protocol} protocol's metrics {metric_names}, "
                f"got {self.metric_for_best_model!r}."
            )
        if self.eval_protocol == "authors":
            if self.dataset not in ("nyu", "kitti"):
                raise ValueError(
                    f"`eval_protocol: authors` prepares validation samples as the authors' NYU or KITTI class does; "
                    f"`dataset: {self.dataset}` has no such class. Use `eval_protocol: community`."
                )
            community_only = ("eval_min_depth", "eval_max_depth", "eval_crop")
            overrides = [name for name in community_only if getattr(self, name) is not None]
            if overrides:
                raise ValueError(
                    f"{', '.join(overrides)}: the authors' protocol takes the depth range and crop from their "
                    f"{self.dataset} class; drop these or use `eval_protocol: community`."
                )
        if self.synthetic_source not in ("files", "on_the_fly"):
            raise ValueError(f"`synthetic_source` must be 'files' or 'on_the_fly', got {self.synthetic_source!r}.")
        if self.on_bad_sample not in ("raise", "skip"):
            raise ValueError(f"`on_bad_sample` must be 'raise' or 'skip', got {self.on_bad_sample!r}.")

    def _check_ranges(self) -> None:
        """Refuse a ratio, count, rate or interval outside the range it is meaningful in."""
        if not self.output_dir.strip():
            raise ValueError("`output_dir` is empty; name the folder the run writes to (e.g. runs/wedepth-nyu).")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"`seed` must lie in [0, {MAX_SEED}], got {self.seed}.")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"`val_fraction` must lie in [0, 1), got {self.val_fraction}.")
        self._check_optimisation_ranges()
        self._check_data_ranges()
        for name in ("min_lr_ratio", "warmup_start_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` must lie in [0, 1], got {getattr(self, name)}.")
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "num_train_epochs",
            "logging_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}.")
        for name in ("max_train_steps", "eval_steps", "checkpointing_steps", "checkpoints_total_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be at least 1 or null, got {value}.")

    def _check_optimisation_ranges(self) -> None:
        """Refuse a learning rate, decay, Adam setting, warm-up or clipping norm outside its meaningful range."""
        if self.learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be a positive number, got {self.learning_rate}.")
        for name in ("weight_decay", "warmup_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be 0 or more, got {getattr(self, name)}.")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must lie in [0, 1), got {getattr(self, name)}.")
        if self.adam_epsilon <= 0:
            raise ValueError(f"`adam_epsilon` must be a positive number, got {self.adam_epsilon}.")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"`warmup_steps` must be 0 or more, or null, got {self.warmup_steps}.")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError(
                f"`max_grad_norm` must be a positive number, or null (no clipping), got {self.max_grad_norm}."
            )
        if self.dataloader_num_workers < 0:
            raise ValueError(
                f"`dataloader_num_workers` must be 0 (load in the main process) or more, got "
                f"{self.dataloader_num_workers}."
            )

    def _check_data_ranges(self) -> None:
        """Refuse a synthetic set size, depth scale or evaluation depth range that cannot work."""
        for name in ("synthetic_num_train", "synthetic_num_val", "synthetic_height", "synthetic_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}.")
        if self.synthetic_num_train + self.synthetic_num_val > SEEDS_PER_DATASET:
            raise ValueError(
                f"`synthetic_num_train` + `synthetic_num_val` must be at most {SEEDS_PER_DATASET} (the scenes of one "
                f"seed), got {self.synthetic_num_train + self.synthetic_num_val}."
            )
        if self.hf_depth_scale is not None and self.hf_depth_scale <= 0:
            raise ValueError(
                f"`hf_depth_scale` must be a positive number (raw units per metre), got {self.hf_depth_scale}."
            )
        if self.eval_min_depth is not None and self.eval_min_depth < 0:
            raise ValueError(f"`eval_min_depth` must be 0 or more, got {self.eval_min_depth}.")
        if self.eval_max_depth is not None and self.eval_max_depth <= (self.eval_min_depth or 0.0):
            raise ValueError(
                f"`eval_max_depth` ({self.eval_max_depth}) must be above `eval_min_depth` ({self.eval_min_depth or 0})."
            )

    def _check_hub(self) -> None:
        """Refuse an upload without a repo, or a repo id the Hub would refuse at the end of the run."""
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("`push_to_hub` needs `hub_model_id` (e.g. --hub_model_id your-org/wedepth-nyu).")
        if self.hub_model_id is not None:
            from huggingface_hub.utils import HFValidationError, validate_repo_id

            try:
                validate_repo_id(self.hub_model_id)
            except HFValidationError as error:
                raise ValueError(
                    f"`hub_model_id` {self.hub_model_id!r} is not a Hub repo id (org/name): {error}"
                ) from error

    def _check_model_config(self) -> None:
        """Refuse unknown keys in `model_config` (and its `vfm_config` / `encoder_config`), and a model config that
        `WEDepthConfig` refuses, before anything is built."""
        check_model_config_keys(self.model_config)
        if self.init_from is not None:
            return
        if self.pretrained_backbones and self.preset is None:
            raise ValueError("`pretrained_backbones: true` needs a `preset` (small, base or large).")
        try:
            if self.preset is not None:
                WEDepthConfig.from_preset(self.preset, **self.model_config)
            else:
                WEDepthConfig(**self.model_config)
        except (TypeError, ValueError) as error:
            raise ValueError(f"Invalid `model_config`: {error}") from error

    def _check_validation_split(self) -> None:
        """Refuse a validation split that is the training split (the same list file however it is spelt, a copy of
        it, or the same `datasets` split) or a test list: the best model is chosen on it."""
        if self.dataset == "hf" and self.hf_val_split is not None and self.val_fraction == 0.0:
            if self.hf_val_split == self.hf_train_split:
                raise ValueError(
                    f"`hf_val_split` is the training split ({self.hf_train_split}); hold out part of it with "
                    f"`val_fraction` instead."
                )
        if self.val_split_file is None:
            return
        validation = _list_location(self.val_split_file, self.data_root)
        if self.train_split_file is not None:
            training = _list_location(self.train_split_file, self.data_root)
            if validation == training or _same_list_lines(validation, training):
                how = "the same file" if validation == training else "a copy, with the same lines"
                raise ValueError(
                    f"`val_split_file` {self.val_split_file} is the training list ({self.train_split_file}: {how}); "
                    f"hold out part of it with `val_fraction` instead."
                )
            _warn_about_shared_lines(validation, training)
        if any("test" in name.lower() for name in (Path(self.val_split_file).name, validation.name)):
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


def _check_log_with(log_with: str) -> None:
    """Refuse a `log_with` that names no tracker accelerate knows, or tensorboard when it is not installed."""
    from accelerate.utils import LoggerType

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
    from transformers import CONFIG_MAPPING

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
    parser = argparse.ArgumentParser(
        prog="wedepth train",
        description="Train WEDepth with accelerate. Any setting of the YAML config can be overridden as --key value.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config",
        type=str,
        default=None,
        help=f"YAML file of training settings, or a bundled config by name ({', '.join(bundled_config_names())})",
    )
    for field_info in dataclasses.fields(TrainingConfig):
        base, _ = _base_type(_field_types()[field_info.name])
        options: dict[str, Any] = {"default": argparse.SUPPRESS, "type": str, "metavar": "VALUE"}
        if (get_origin(base) or base) is bool:
            options.update(nargs="?", const="true")
        parser.add_argument(f"--{field_info.name}", **options)
    return parser


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
    try:
        return load_training_config(config, arguments)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
