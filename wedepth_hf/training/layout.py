"""The layout of a training run's output folder: the names of the files and folders a run writes there.

`<output_dir>/training_config.yaml` (the public configuration), `checkpoints/step_N/` (each with
`training_state.json`, written last), `model/` (the exported folder, with the step of its weights in
`.wedepth-export.json`) and `.wedepth-training.lock` (the lock that keeps a second run out).
"""

from __future__ import annotations


CONFIG_FILE = "training_config.yaml"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step_"
# A checkpoint or export is written under this prefix and renamed when complete.
TEMPORARY_PREFIX = ".tmp-"
STATE_FILE = "training_state.json"
MODEL_DIR = "model"
# Written into the exported folder with its weights: the step they are from (hidden, so never uploaded).
EXPORT_STEP_FILE = ".wedepth-export.json"
# An OS lock on this file in `output_dir` keeps a second training out while one runs.
LOCK_FILE = ".wedepth-training.lock"
# Checkpoints of a branch abandoned by resuming from an older checkpoint go to `checkpoints/abandoned-<time>/`.
ABANDONED_PREFIX = "abandoned-"
