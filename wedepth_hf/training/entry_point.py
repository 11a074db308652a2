"""The training command line (`wedepth train`, `python -m wedepth_hf train`, `examples/train.py`): parse the
arguments, train, and turn the outcome into an exit status with a message that says what to do.

Exit status: 0 done; 1 the upload failed, the output folder or checkpoint cannot be used, or a sample does not load;
2 a bad command line or configuration (argparse), or data lists that cannot be read (`TrainingDataError`, found before
anything is written); 130 stopped by Ctrl-C (`INTERRUPTED_EXIT_STATUS`), after saving a checkpoint when the state was
whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers.utils import logging

from ..command_logging import configure_command_logging
from ..data.datasets import BadSampleError, bad_sample_message
from .config import parse_training_args
from .data import TrainingDataError
from .loop import TrainingInterrupted, interrupted_outside_the_loop, train
from .run_folder import CheckpointError, OutputDirError


logger = logging.get_logger(__name__)

# The exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED_EXIT_STATUS = 130
# The exit status of a usage error, as argparse exits with it.
USAGE_EXIT_STATUS = 2
# The environment variables in which launchers (torchrun, accelerate, MPI) give the number of processes.
WORLD_SIZE_VARIABLES = ["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: parse `--config` and overrides, train, return the exit status.

    0: done; 1: the upload failed, the output folder or checkpoint cannot be used, or a sample does not load (the
    message says what to do); 2: a bad command line, configuration or data list; 130: interrupted by Ctrl-C (the
    message says where the checkpoint is and the command that resumes).
    """
    from accelerate.utils import get_int_from_env

    from ..hub import HubUploadError

    rank = configure_command_logging()
    config = parse_training_args(argv)
    try:
        train(config)
    except TrainingDataError as error:
        logger.error("%s", error)
        return USAGE_EXIT_STATUS
    except BadSampleError as error:
        logger.error("%s", bad_sample_message(error))
        return 1
    except (HubUploadError, OutputDirError, CheckpointError) as error:
        logger.error("%s", error)
        return 1
    except TrainingInterrupted as interrupted:
        if rank == 0:  # every process knows the same checkpoint and command
            logger.error("%s", interrupted)
        return INTERRUPTED_EXIT_STATUS
    except KeyboardInterrupt:
        if rank == 0:
            world = get_int_from_env(WORLD_SIZE_VARIABLES, 1)
            logger.error("%s", interrupted_outside_the_loop(config, world))
        return INTERRUPTED_EXIT_STATUS
    return 0
