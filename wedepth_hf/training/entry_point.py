"""The training command line (`wedepth train`, `python -m wedepth_hf train`, `examples/train.py`): parse the
arguments, train, and turn the outcome into an exit status with a message that says what to do.

Exit status (the convention of every `wedepth` command, `wedepth_hf.command_logging`): 0 done; 1 the upload failed,
the output folder or checkpoint cannot be used, a sample does not load, or an unexpected error (one line each); 2 a
bad command line or configuration (argparse), or data lists that cannot be read (`TrainingDataError`, found before
anything is written); 130 stopped by Ctrl-C (`INTERRUPTED_EXIT_STATUS`), after saving a checkpoint when the state was
whole. `--debug` shows the traceback instead of the one line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from accelerate.utils import get_int_from_env
from transformers.utils import logging

from ..command_logging import (
    FAILURE_EXIT_STATUS,
    INTERRUPTED_EXIT_STATUS,
    USAGE_EXIT_STATUS,
    Explanation,
    configure_command_logging,
    run_command,
)
from ..data.datasets import BadSampleError, bad_sample_message
from ..hub import HubUploadError
from .config import TrainingConfig, parse_training_args
from .data import TrainingDataError
from .loop import TrainingInterrupted, interrupted_outside_the_loop, train
from .run_folder import CheckpointError, OutputDirError


logger = logging.get_logger(__name__)

# The environment variables in which launchers (torchrun, accelerate, MPI) give the number of processes.
WORLD_SIZE_VARIABLES = ["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"]
DEBUG_FLAG = "--debug"
"""Shows the traceback of an error (the training parser accepts it and lists it in --help)."""


def _explain(error: Exception) -> Explanation | None:
    """The exit status and one line of an error that `train` raises (None: an unexpected error)."""
    if isinstance(error, TrainingDataError):
        return USAGE_EXIT_STATUS, str(error)
    if isinstance(error, BadSampleError):
        return FAILURE_EXIT_STATUS, bad_sample_message(error)
    if isinstance(error, (HubUploadError, OutputDirError, CheckpointError)):
        return FAILURE_EXIT_STATUS, str(error)
    return None


def _interrupted(config: TrainingConfig, rank: int, interrupt: KeyboardInterrupt) -> str | None:
    """The Ctrl-C message, from the main process only (every process knows the same checkpoint and command): where
    the checkpoint is and the command that resumes."""
    if rank != 0:
        return None
    if isinstance(interrupt, TrainingInterrupted):
        return str(interrupt)
    return interrupted_outside_the_loop(config, get_int_from_env(WORLD_SIZE_VARIABLES, 1))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: parse `--config` and overrides, train, return the exit status.

    0: done; 1: the upload failed, the output folder or checkpoint cannot be used, or a sample does not load (the
    message says what to do); 2: a bad command line, configuration or data list; 130: interrupted by Ctrl-C (the
    message says where the checkpoint is and the command that resumes). With `--debug` an error shows its traceback.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in arguments
    rank = configure_command_logging()
    config = parse_training_args(arguments)
    return run_command(
        lambda: _trained(config),
        debug=debug,
        explain=_explain,
        interrupted=lambda interrupt: _interrupted(config, rank, interrupt),
    )


def _trained(config: TrainingConfig) -> int:
    """Train with `config`; 0 when done (errors are raised, for `run_command` to report)."""
    train(config)
    return 0


__all__ = ["INTERRUPTED_EXIT_STATUS", "USAGE_EXIT_STATUS", "main"]
