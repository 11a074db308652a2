"""Claiming the output folder for a run: one training per folder (`OutputDirLock`, an OS lock), never over an
earlier run or into a folder of other files without `overwrite_output_dir`, the checkpoint to resume from, and the
public configuration written.

The main process does the work under the lock; every process gets the outcome (`claim_output_dir`), so that when
the main process cannot use the folder the others stop too instead of waiting for it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from transformers.utils import logging

from ..folders import OutputFolderError, check_output_folder
from .builders import SYNTHETIC_DATA_DIR
from .checkpointing import abandon_later_work, list_checkpoints, read_checkpoint_state, resolve_checkpoint
from .config import TrainingConfig
from .export import read_export_step
from .layout import (
    ABANDONED_PREFIX,
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EXPORT_STEP_FILE,
    LOCK_FILE,
    MODEL_DIR,
    TEMPORARY_PREFIX,
)


logger = logging.get_logger(__name__)

# The folder of accelerate's tracker logs in the output folder.
LOGS_DIR = "logs"
# What a run writes in its output folder: the layout's files, the tracker logs and, by default, the synthetic data.
RUN_ENTRIES = (CONFIG_FILE, CHECKPOINTS_DIR, MODEL_DIR, LOCK_FILE, LOGS_DIR, SYNTHETIC_DATA_DIR)


class OutputDirError(ValueError):
    """The output folder cannot be used as asked: another training holds it, or it holds an earlier run that this
    one would replace. The message says what to do."""


class OutputDirLock:
    """An exclusive OS lock (`fcntl.flock`) on `<output_dir>/.wedepth-training.lock`: one training per folder.

    The kernel releases the lock when its process ends, however it ends (kill -9 included), so a lock file left
    behind never blocks a later run. The file names its holder, for the error a second run gets.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / LOCK_FILE
        self._handle: Any = None

    def acquire(self) -> None:
        """Take the lock, or raise an `OutputDirError` naming the process that holds it."""
        try:
            import fcntl
        except ImportError:  # Windows has no flock
            logger.warning("No file lock on this platform: nothing keeps another training out of %s.", self.path.parent)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputDirError(
                f"Another training is using {self.path.parent} ({holder} holds {self.path}). Wait for it to end, or "
                f"give this run another --output_dir. The lock ends with its process: a killed run leaves nothing to "
                f"clean up."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"training process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@dataclass
class OutputDirClaim:
    """A run's hold on its output folder: the lock (held by the main process only), the checkpoint to resume from
    (None: start from scratch) and whether the best-model selection starts again (its export was abandoned)."""

    lock: OutputDirLock | None
    resume_path: Path | None
    restart_selection: bool

    def release(self) -> None:
        """Give the folder up at the end of the run, however it ends."""
        if self.lock is not None:
            self.lock.release()


def claim_output_dir(config: TrainingConfig, accelerator: Any) -> OutputDirClaim:
    """Lock and prepare the output folder on the main process; every process gets the outcome.

    When the main process fails (folder locked, earlier run, damaged checkpoint) it raises the error and the other
    processes raise an `OutputDirError` pointing to it, rather than wait for a main process that stopped.
    """
    from accelerate.utils import broadcast_object_list

    lock = None
    outcome: list[Any] = [None]
    if accelerator.is_main_process:
        lock = OutputDirLock(config.output_dir)
        try:
            check_output_dir(config)
            lock.acquire()
            outcome = [("ok", *_prepare_output_dir(config, accelerator.num_processes))]
        except Exception as error:
            lock.release()
            outcome = [("error", f"{type(error).__name__}: {error}")]
            broadcast_object_list(outcome, from_process=0)
            raise
    broadcast_object_list(outcome, from_process=0)
    if outcome[0][0] == "error":
        raise OutputDirError(f"The main process could not set up {config.output_dir}: {outcome[0][1]}")
    _, resume_path, restart_selection = outcome[0]
    return OutputDirClaim(lock=lock, resume_path=resume_path, restart_selection=restart_selection)


def check_output_dir(config: TrainingConfig) -> None:
    """Before the lock file is made: refuse (`OutputDirError`) a `resume_from_checkpoint` path that is not a complete
    checkpoint, an output folder that is a file, or an existing folder of files no WEDepth training wrote (see
    `_holds_a_run`) unless `overwrite_output_dir`: the run would write its configuration, data, logs, checkpoints and
    model over the user's files of those names. A folder of an earlier run is for `_clear_or_refuse_earlier_run` and
    resuming to judge."""
    output_dir = Path(config.output_dir)
    if config.resume_from_checkpoint not in (None, "latest"):
        _resolve_resume_path(config)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputDirError(f"--output_dir {output_dir} is a file; give a folder (new, or of an earlier run).")
    if not output_dir.is_dir() or _holds_a_run(output_dir):
        return
    entries = sorted(entry.name for entry in output_dir.iterdir())
    if not entries:
        return
    shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    replaced = ", ".join(sorted(set(entries) & set(RUN_ENTRIES))) or "none of them"
    if config.overwrite_output_dir:
        logger.warning(
            "%s holds files no WEDepth training wrote (%s); --overwrite_output_dir: training there anyway, replacing "
            "those the run writes (%s).",
            output_dir,
            shown,
            replaced,
        )
        return
    raise OutputDirError(
        f"{output_dir} holds files that no WEDepth training wrote ({shown}): a run writes "
        f"{', '.join(RUN_ENTRIES)} there, replacing files of those names ({replaced}). Give a new or empty "
        f"--output_dir, or pass `--overwrite_output_dir true` to train there anyway."
    )


def _holds_a_run(output_dir: Path) -> bool:
    """Whether a WEDepth training wrote into `output_dir`: it holds the lock file every run leaves, a complete
    checkpoint, or an export that records its step (a run's checkpoints copied to another machine count)."""
    return (
        (output_dir / LOCK_FILE).exists()
        or bool(list_checkpoints(output_dir / CHECKPOINTS_DIR))
        or read_export_step(output_dir / MODEL_DIR) is not None
    )


def _prepare_output_dir(config: TrainingConfig, num_processes: int) -> tuple[Path | None, bool]:
    """On the main process, under the lock: (the checkpoint to resume from or None, whether the best-model selection
    starts again). Refuses to replace an earlier run without `overwrite_output_dir`, moves an abandoned branch aside,
    and writes the public configuration (`training_config.yaml`)."""
    output_dir = Path(config.output_dir)
    checkpoints_dir = output_dir / CHECKPOINTS_DIR
    resume_path = None
    if config.resume_from_checkpoint is not None:
        resume_path = _resolve_resume_path(config)
        if resume_path is None:
            logger.info("No checkpoint in %s yet: starting from scratch", checkpoints_dir)
    restart_selection = False
    if resume_path is not None:
        step = read_checkpoint_state(config, num_processes, resume_path).global_step
        restart_selection = abandon_later_work(output_dir, step)
    else:
        _clear_or_refuse_earlier_run(config)
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in checkpoints_dir.glob(f"{TEMPORARY_PREFIX}*") if checkpoints_dir.is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)
    (output_dir / CONFIG_FILE).write_text(yaml.safe_dump(config.to_public_dict(), sort_keys=False), encoding="utf-8")
    return resume_path, restart_selection


def _resolve_resume_path(config: TrainingConfig) -> Path | None:
    """The checkpoint `resume_from_checkpoint` names (None: `latest` and none yet), or an `OutputDirError`."""
    try:
        return resolve_checkpoint(config.resume_from_checkpoint, config.output_dir)
    except ValueError as error:
        raise OutputDirError(str(error)) from error


def _clear_or_refuse_earlier_run(config: TrainingConfig) -> None:
    """For a run that starts from scratch: delete an earlier run's checkpoints and export with
    `overwrite_output_dir`, else refuse (`OutputDirError`) to replace them."""
    output_dir = Path(config.output_dir)
    checkpoints_dir, model_dir = output_dir / CHECKPOINTS_DIR, output_dir / MODEL_DIR
    if config.overwrite_output_dir:
        _delete_earlier_checkpoints(checkpoints_dir, _run_inputs(config))
        _delete_earlier_export(model_dir, _run_inputs(config))
    elif list_checkpoints(checkpoints_dir):
        raise OutputDirError(
            f"{output_dir} already holds training checkpoints. Continue that run with "
            f"`--resume_from_checkpoint latest`, or start over with `--overwrite_output_dir true` (deletes "
            f"{checkpoints_dir} and {model_dir})."
        )
    elif model_dir.exists():
        raise OutputDirError(
            f"{output_dir} already holds an exported model ({model_dir}) and no checkpoint to resume from: this run "
            f"would replace it. Start over with `--overwrite_output_dir true` (deletes it), or give this run another "
            f"--output_dir."
        )


def _run_inputs(config: TrainingConfig) -> list[Path]:
    """The paths a run reads from (data folders and lists, the checkpoint to resume or start from): never deleted."""
    values = (
        config.data_root,
        config.image_root,
        config.depth_root,
        config.train_split_file,
        config.val_split_file,
        config.init_from,
        config.vfm_name_or_path,
        config.encoder_name_or_path,
    )
    return [Path(value) for value in values if value and os.path.lexists(value)]


def _delete_earlier_checkpoints(checkpoints_dir: Path, inputs: list[Path]) -> None:
    """With `overwrite_output_dir`: delete an earlier run's `checkpoints/`, but only when it holds nothing but
    checkpoints (complete, temporary or abandoned) and contains neither the working directory nor an input;
    otherwise an `OutputDirError` says why and nothing is deleted."""
    if not os.path.lexists(checkpoints_dir):
        return
    if checkpoints_dir.is_symlink() or not checkpoints_dir.is_dir():
        raise OutputDirError(
            f"{checkpoints_dir} is not a folder of checkpoints (a file or a link); move it away to start over there."
        )
    resolved = checkpoints_dir.resolve()
    for label, path in [("the working directory", Path.cwd()), *[(f"the input {path}", path) for path in inputs]]:
        if path.resolve() == resolved or resolved in path.resolve().parents:
            raise OutputDirError(f"{checkpoints_dir} contains {label}, which is never deleted; move it elsewhere.")
    pattern = re.compile(rf"({re.escape(TEMPORARY_PREFIX)})?{CHECKPOINT_PREFIX}\d+|{ABANDONED_PREFIX}.+")
    foreign = sorted(
        entry.name for entry in checkpoints_dir.iterdir() if entry.is_symlink() or not pattern.fullmatch(entry.name)
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputDirError(
            f"{checkpoints_dir} holds files that are not checkpoints of a WEDepth training ({shown}); "
            "--overwrite_output_dir deletes only checkpoints. Move them away, or give another --output_dir."
        )
    shutil.rmtree(checkpoints_dir)


def _delete_earlier_export(model_dir: Path, inputs: list[Path]) -> None:
    """With `overwrite_output_dir`: delete an earlier run's exported `model/`, but only a folder holding a WEDepth
    model and nothing else, containing neither the working directory nor an input (`check_output_folder`)."""
    if not os.path.lexists(model_dir):
        return
    try:
        check_output_folder(model_dir, overwrite=True, protected=inputs, extra_files=(EXPORT_STEP_FILE,))
    except OutputFolderError as error:
        raise OutputDirError(f"--overwrite_output_dir cannot start over: {error}") from error
    if model_dir.is_dir():
        shutil.rmtree(model_dir)
