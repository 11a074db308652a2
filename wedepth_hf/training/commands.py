"""The shell commands a run shows to rerun or resume it: in the model card, in the message of a damaged checkpoint
and in that of an interrupted run.

They are rebuilt from the run's saved public configuration (`training_config.yaml`), never taken from argv, so that
they hold no secret, and they use the installed command (`wedepth train`, or `accelerate launch -m wedepth_hf train`
for several processes), so that they work outside a source checkout.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from .config import TrainingConfig
from .layout import CONFIG_FILE


# The command of one training process, and the module `accelerate launch -m` runs in each of several.
TRAIN_COMMAND = ("wedepth", "train")
TRAIN_MODULE = ("wedepth_hf", "train")


def launch_command(num_processes: int, config_path: str | Path, *arguments: str) -> str:
    """The shell command that trains with `--config config_path [arguments]` on `num_processes` processes:
    `wedepth train` for one, `accelerate launch --num_processes N -m wedepth_hf train` for more."""
    if num_processes == 1:
        launcher = list(TRAIN_COMMAND)
    else:
        launcher = ["accelerate", "launch", "--num_processes", str(num_processes), "-m", *TRAIN_MODULE]
    return shlex.join([*launcher, "--config", str(config_path), *arguments])


def resume_command(config: TrainingConfig, num_processes: int, checkpoint: Path) -> str:
    """The command that resumes the run of `config` (its saved public configuration) from `checkpoint`."""
    return launch_command(
        num_processes, Path(config.output_dir) / CONFIG_FILE, "--resume_from_checkpoint", str(checkpoint)
    )


def restart_command(config: TrainingConfig, num_processes: int) -> str:
    """The command that starts the run of `config` again from scratch, replacing what it left in its folder."""
    return launch_command(num_processes, Path(config.output_dir) / CONFIG_FILE, "--overwrite_output_dir", "true")


def token_note(config: TrainingConfig) -> str:
    """A reminder, for a run that pushes with a token given in its settings, that the saved configuration has none."""
    if config.push_to_hub and config.hub_token is not None:
        return "\n(the saved configuration holds no Hub token: add --hub_token again, or set HF_TOKEN)"
    return ""
