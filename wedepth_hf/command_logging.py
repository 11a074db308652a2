"""Console logging and error reporting for the `wedepth` commands: progress and results from the main process,
warnings from the rest, and one convention for how a command ends.

Exit status: 0 done; 1 a runtime error (a model that does not load, a sample that does not read, an upload that
fails), logged as one line; 2 a usage error (a bad flag value, a missing file named on the command line, a refused
output path), reported by the command's parser with its usage; 130 stopped by Ctrl-C. No traceback is shown unless
`--debug` is given, which re-raises runtime errors and Ctrl-C so that Python shows where they happened.
"""

import argparse
import logging as std_logging
from collections.abc import Callable

from accelerate.utils import get_int_from_env


RANK_VARIABLES = ["RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"]
"""The environment variables in which launchers (torchrun, accelerate, MPI) give a process its rank."""

FAILURE_EXIT_STATUS = 1
"""The exit status of a runtime error."""
USAGE_EXIT_STATUS = 2
"""The exit status of a usage error, as argparse exits with it."""
INTERRUPTED_EXIT_STATUS = 130
"""The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it."""
DEBUG_HELP = "on an error, show Python's traceback instead of the one-line message"
"""The help of `--debug`, the same in every command."""

logger = std_logging.getLogger(__name__)

Explanation = tuple[int, str | None]
"""(exit status, the one line to log, or None to log nothing) for an error a command knows."""


class UsageError(ValueError):
    """A mistake on the command line that the user fixes there (a bad flag value, a missing input, a refused output
    path), found before the work starts; the command reports it through its parser (usage, one line, exit 2)."""


class CommandError(RuntimeError):
    """A runtime error that a command has already put into one line that says what to do (exit 1)."""


def command_parser(prog: str, description: str, debug_help: str = DEBUG_HELP) -> argparse.ArgumentParser:
    """The argument parser of a `wedepth` command, with the options every command shares: no abbreviated option
    names (a prefix could come to mean another option as options are added) and `--debug`."""
    parser = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)
    parser.add_argument("--debug", action="store_true", help=debug_help)
    return parser


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


def one_line(error: BaseException) -> str:
    """The error's message with its line breaks and runs of spaces folded into single spaces."""
    return " ".join(str(error).split())


def explain_command_error(error: Exception) -> Explanation | None:
    """The default `explain` of `run_command`: a `CommandError` is its one line (exit 1); any other error is
    unexpected (None)."""
    return (FAILURE_EXIT_STATUS, one_line(error)) if isinstance(error, CommandError) else None


def _stopped(interrupt: KeyboardInterrupt) -> str | None:
    """The default Ctrl-C message of `run_command`."""
    return "Stopped by Ctrl-C."


def run_command(
    work: Callable[[], int],
    *,
    debug: bool,
    parser: argparse.ArgumentParser | None = None,
    explain: Callable[[Exception], Explanation | None] = explain_command_error,
    interrupted: Callable[[KeyboardInterrupt], str | None] = _stopped,
) -> int:
    """Run a command's `work` and end it by the convention above; returns the exit status.

    A `UsageError` goes to `parser.error` (or, without a parser, is logged with exit 2). Another error is logged as
    `explain(error)` says, or, when `explain` does not know it, as its type and message with a hint to rerun with
    `--debug` (exit 1); Ctrl-C logs `interrupted(...)` and exits 130. With `debug`, both are re-raised.
    """
    try:
        return work()
    except UsageError as error:
        if parser is not None:
            parser.error(one_line(error))
        logger.error("%s", one_line(error))
        return USAGE_EXIT_STATUS
    except KeyboardInterrupt as interrupt:
        if debug:
            raise
        message = interrupted(interrupt)
        if message is not None:
            logger.error("%s", message)
        return INTERRUPTED_EXIT_STATUS
    except Exception as error:
        if debug:
            raise
        status, message = explain(error) or (
            FAILURE_EXIT_STATUS,
            f"{type(error).__name__}: {one_line(error)} (run again with --debug to see the traceback)",
        )
        if message is not None:
            logger.error("%s", message)
        return status


__all__ = [
    "DEBUG_HELP",
    "FAILURE_EXIT_STATUS",
    "INTERRUPTED_EXIT_STATUS",
    "USAGE_EXIT_STATUS",
    "CommandError",
    "Explanation",
    "UsageError",
    "command_parser",
    "configure_command_logging",
    "explain_command_error",
    "one_line",
    "process_rank",
    "run_command",
]
