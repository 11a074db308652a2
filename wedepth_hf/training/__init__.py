"""Training WEDepth with accelerate, one concern per module:

- `config`: `TrainingConfig` (every setting of a run) and its layering: a bundled config by name (`synthetic`,
  `nyu`, `kitti`) or a YAML file, then typed `--key value` overrides (`load_training_config`, `parse_training_args`).
- `builders`: the model, augmentation, datasets (`TrainingData`), optimiser, schedule and SyncBatchNorm.
- `state`: where a run stands (`TrainingState`, saved in each checkpoint) and what it returns (`TrainingResult`).
- `checkpointing`: listing, finding, resolving, saving and loading checkpoints; `CheckpointError` for a damaged one;
  moving aside the branch a resume from an older checkpoint abandons (`abandon_later_work`).
- `output_dir`: one training per output folder (`OutputDirLock`) and its claim (`claim_output_dir`).
- `interrupts`: Ctrl-C saves a checkpoint at the next step boundary (`TrainingInterrupted`).
- `export`: the exported model folder (weights, image processor, model card).
- `commands`: the commands shown to rerun or resume a run (`wedepth train --config training_config.yaml`).
- `layout`: the names of the files and folders a run writes in its output folder.
- `loop`: `train`, the training loop; `entry_point`: `main`, the command line and its exit statuses.

Safety: secrets (`SECRET_FIELDS`, the Hub token) are never logged or written: `training_config.yaml`, trackers and
the model card hold `TrainingConfig.to_public_dict()`, and the card's command is rebuilt from it, never taken from
argv. One training per output folder (an OS lock), never over an earlier run without `overwrite_output_dir`;
resuming from an older checkpoint moves the abandoned branch aside. Ctrl-C saves a checkpoint at the next step
boundary (exit status 130); a damaged checkpoint raises a `CheckpointError` naming the file and the previous one.
"""

from .builders import (
    CheckedSubset,
    EpochShuffleSampler,
    SkippingSubset,
    TrainingData,
    build_augmentation,
    build_datasets,
    build_model,
    build_optimizer,
    build_scheduler,
    drop_bad_samples,
    lr_factor,
    maybe_sync_batchnorm,
    no_weight_decay,
)
from .checkpointing import (
    CheckpointError,
    abandon_later_work,
    find_latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_checkpoint_state,
    resolve_checkpoint,
    save_checkpoint,
)
from .commands import launch_command, resume_command
from .config import (
    SECRET_FIELDS,
    TrainingConfig,
    bundled_config_names,
    load_training_config,
    parse_training_args,
)
from .entry_point import INTERRUPTED_EXIT_STATUS, main
from .export import export_model_folder
from .interrupts import TrainingInterrupted
from .layout import CHECKPOINTS_DIR, CONFIG_FILE, MODEL_DIR, STATE_FILE
from .loop import batch_seed, train
from .output_dir import OutputDirClaim, OutputDirError, OutputDirLock, claim_output_dir
from .state import TrainingResult, TrainingState


__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "INTERRUPTED_EXIT_STATUS",
    "MODEL_DIR",
    "SECRET_FIELDS",
    "STATE_FILE",
    "CheckedSubset",
    "CheckpointError",
    "EpochShuffleSampler",
    "OutputDirClaim",
    "OutputDirError",
    "OutputDirLock",
    "SkippingSubset",
    "TrainingConfig",
    "TrainingData",
    "TrainingInterrupted",
    "TrainingResult",
    "TrainingState",
    "abandon_later_work",
    "batch_seed",
    "build_augmentation",
    "build_datasets",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "bundled_config_names",
    "claim_output_dir",
    "drop_bad_samples",
    "export_model_folder",
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
