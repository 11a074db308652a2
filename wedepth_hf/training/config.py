"""The settings of a training run: the `TrainingConfig` dataclass and its layering (bundled config or YAML file, then
`--key value` command-line overrides).

`load_training_config` reads a YAML file, or a config bundled with the package by name (`synthetic`, `nyu`,
`kitti`: `wedepth_hf/configs/<name>.yaml`, read with `importlib.resources` so that an installed wheel has them), and
applies overrides; `parse_training_args` adds a typed `--key value` option for every field. Unknown keys are errors
that suggest the closest one; an abbreviated option is refused; secrets (`SECRET_FIELDS`) are never echoed.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from ..constants import PROTOCOL_METRIC_NAMES, PROTOCOLS
from ..data.transforms import DEFAULT_NUM_OPS_PROBS, DEFAULT_OP_WEIGHTS, check_num_ops_probs, resolve_op_weights
from .builders import build_augmentation


DATASETS = ("synthetic", "nyu", "kitti", "hf")
# Settings that are secrets: left out of every file, log, tracker and model card.
SECRET_FIELDS = ("hub_token",)
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
        self._check_choices()
        self._check_ranges()
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

    def _check_choices(self) -> None:
        """Refuse a value outside the choices of a setting that names one (dataset, precision, metric...)."""
        if self.dataset not in DATASETS:
            raise ValueError(f"`dataset` must be one of {DATASETS}, got {self.dataset!r}.")
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
        """Refuse a ratio, count or interval outside the range it is meaningful in."""
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"`val_fraction` must lie in [0, 1), got {self.val_fraction}.")
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


# ---- YAML values and their types -------------------------------------------------------------------------------------


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
        return path.read_text(encoding="utf-8"), str(path)
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
    keys are errors."""
    values: dict[str, Any] = {}
    if config is not None:
        text, source = _read_config(config)
        loaded = _load_yaml(text) or {}
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
