"""Console logging for the `wedepth` commands: progress and results from the main process, warnings from the rest."""

import logging as std_logging

from accelerate.utils import get_int_from_env


RANK_VARIABLES = ["RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"]
"""The environment variables in which launchers (torchrun, accelerate, MPI) give a process its rank."""


def process_rank() -> int:
    """This process's rank under a launcher (0 when run alone), read from the environment: creating accelerate's
    state to ask would fix the distributed setup before a command builds its Accelerator."""
    return get_int_from_env(RANK_VARIABLES, 0)


def configure_command_logging() -> int:
    """Log INFO and above from the main process, WARNING and above from the others, to stderr; returns the rank."""
    rank = process_rank()
    std_logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=std_logging.INFO if rank == 0 else std_logging.WARNING,
    )
    return rank


__all__ = ["configure_command_logging", "process_rank"]
