"""Training WEDepth with accelerate: `wedepth train` (`main`), or `train(load_training_config(...))` from Python.

The public names are what a user needs: the settings (`TrainingConfig`, `load_training_config`,
`parse_training_args`), the run (`train`, its `TrainingResult`), the errors a run reports (`OutputDirError`,
`CheckpointError`, `TrainingDataError`, `TrainingInterrupted`) and the command line (`main`). The modules, one concern
each, hold the rest:

- `config`: `TrainingConfig` (every setting, each with its help line) and its layering: a bundled config by name
  (`synthetic`, `nyu`, `kitti`) or a YAML file, then typed `--key value` overrides.
- `data`: the datasets, augmentation and sampler a run trains and validates on, and the checks of its data lists.
- `optimization`: the model (SyncBatchNorm for multi-GPU runs), AdamW and the learning-rate schedule.
- `run_folder`: the output folder's layout and lock, the run's one state type (`TrainingState`, saved in each
  checkpoint), checkpoints, and the commands that rerun or resume a run.
- `loop`: `train`, the training loop, and Ctrl-C (`TrainingInterrupted`).
- `export`: the exported model folder (weights, image processor, model card).
- `entry_point`: `main`, the command line and its exit statuses.

Safety: secrets (`config.SECRET_FIELDS`, the Hub token) are never logged or written: `training_config.yaml`, trackers
and the model card hold `TrainingConfig.to_public_dict()`, and the card's command is rebuilt from it, never taken from
argv. One training per output folder (an OS lock), never over an earlier run without `overwrite_output_dir`;
resuming from an older checkpoint moves the abandoned branch aside. Ctrl-C saves a checkpoint at the next step
boundary (exit status 130); a damaged checkpoint raises a `CheckpointError` naming the file and the previous one.
"""

from .config import TrainingConfig, load_training_config, parse_training_args
from .data import TrainingDataError
from .entry_point import main
from .loop import TrainingInterrupted, TrainingResult, train
from .run_folder import CheckpointError, OutputDirError


__all__ = [
    "CheckpointError",
    "OutputDirError",
    "TrainingConfig",
    "TrainingDataError",
    "TrainingInterrupted",
    "TrainingResult",
    "load_training_config",
    "main",
    "parse_training_args",
    "train",
]
