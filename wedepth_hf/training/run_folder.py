"""A run's output folder: its layout, the one run-state type (`TrainingState`, saved in each checkpoint), the
checkpoints, the shell commands that rerun or resume the run, and the claim of the folder by one training at a time.

Layout: `<output_dir>/training_config.yaml` (the public configuration), `checkpoints/step_N/` (each with
`training_state.json`, written last), `model/` (the exported folder, with the step of its weights in
`.wedepth-export.json`), `logs/` and `.wedepth-training.lock` (the lock that keeps a second run out).

Checkpoints: `accelerator.save_state` (model, optimiser, scheduler, random states) plus the saved part of the
`TrainingState` in `training_state.json`, written last into a temporary folder that is then renamed: a folder listed
here is complete. A damaged one raises a `CheckpointError`; resuming from an older one moves the abandoned branch
aside (`abandon_later_work`).

Claim: the main process locks the folder (`OutputDirLock`), refuses an earlier run or a folder of other files
without `overwrite_output_dir`, finds the checkpoint to resume from and writes the public configuration; every
process gets the outcome (`claim_output_dir`), so that the others stop too when the main process cannot go on.
The commands shown are rebuilt from the saved public configuration, never taken from argv: they hold no secret.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from safetensors import safe_open
from transformers.utils import logging

from ..folders import OutputFolderError, check_output_folder, contained_input, listed_names
from .config import TrainingConfig
from .data import SYNTHETIC_DATA_DIR


logger = logging.get_logger(__name__)


# ---- layout ----------------------------------------------------------------------------------------------------------


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
# The folder of accelerate's tracker logs in the output folder.
LOGS_DIR = "logs"
# What a run writes in its output folder: the layout's files, the tracker logs and, by default, the synthetic data.
RUN_ENTRIES = (CONFIG_FILE, CHECKPOINTS_DIR, MODEL_DIR, LOCK_FILE, LOGS_DIR, SYNTHETIC_DATA_DIR)


def read_export_step(model_dir: Path) -> int | None:
    """The step whose weights the exported folder holds (`EXPORT_STEP_FILE`), or None when not recorded."""
    try:
        return int(json.loads((model_dir / EXPORT_STEP_FILE).read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---- commands --------------------------------------------------------------------------------------------------------


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


# ---- the state of a run ----------------------------------------------------------------------------------------------


# The fields of `TrainingState` that a checkpoint saves, in the order of the keys of `training_state.json`: the format
# every checkpoint has had, so that checkpoints written before `TrainingState` existed resume as they are.
SAVED_FIELDS = (
    "global_step",
    "epoch",
    "batches_in_epoch",
    "best_metric",
    "best_step",
    "best_metrics",
    "train_shortest_edge",
)


@dataclass
class TrainingState:
    """Where a run stands, in one place (as transformers' `TrainerState`): what a checkpoint saves (`SAVED_FIELDS`:
    the optimizer steps made, the position in the data, the best validation so far, the training resolution), the
    plan of the run's steps, and what the loop remembers of its own steps and histories (not saved).

    A resumed run reports the steps it made itself: the histories and marks start again with each run.
    """

    # saved in `training_state.json`
    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of `epoch` already seen
    best_metric: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] | None = None
    train_shortest_edge: int | None = None  # the shorter side of the first batch: the exported processor's size
    # the plan: how the optimizer steps fall into epochs, and how many warm the learning rate up
    steps_per_epoch: int = 0
    max_train_steps: int = 0
    num_epochs: int = 0
    warmup_steps: int = 0
    # the loop's marks: the last checkpoint saved or resumed from (and its step), the last step evaluated, and
    # whether no step is half done, no gradient accumulated and no evaluation running (only then can an interrupt
    # be saved as a checkpoint of the state)
    last_checkpoint_step: int = 0
    last_checkpoint: Path | None = None
    last_evaluated_step: int | None = None
    clean: bool = True
    # per optimizer step: {"step", "loss", "lr"}; per evaluation: {"step", <metric>: value}
    history: list[dict[str, float]] = field(default_factory=list)
    eval_history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The saved fields (`SAVED_FIELDS`), as `training_state.json` holds them."""
        return {name: getattr(self, name) for name in SAVED_FIELDS}

    def to_json(self) -> str:
        """The text of `training_state.json`."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingState:
        """The state a checkpoint saved. A saved field that is missing keeps its default (a checkpoint from before
        it was recorded); keys that are not saved fields are ignored."""
        return cls(**{name: values[name] for name in SAVED_FIELDS if name in values})

    @classmethod
    def from_json(cls, text: str) -> TrainingState:
        """The state in the text of a `training_state.json`; a `ValueError` when it is not a JSON object."""
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(f"expected a JSON object of training state, got {type(values).__name__}")
        return cls.from_dict(values)

    def resume(self, saved: TrainingState, checkpoint: Path) -> None:
        """Continue from `checkpoint`, whose saved state is `saved`: take its saved fields (this run keeps its plan
        and histories) and mark it as the last checkpoint."""
        for name in SAVED_FIELDS:
            setattr(self, name, getattr(saved, name))
        self.last_checkpoint, self.last_checkpoint_step = checkpoint, saved.global_step

    def forget_best(self) -> None:
        """Start the best-model selection again (the exported best model was moved aside with an abandoned branch)."""
        self.best_metric, self.best_step, self.best_metrics = None, None, None

    def record_best(self, value: float, metrics: dict[str, float]) -> None:
        """Make the current step, with validation `metrics` (`value` the one that selects), the best one."""
        self.best_metric, self.best_step, self.best_metrics = value, self.global_step, metrics


# ---- checkpoints -----------------------------------------------------------------------------------------------------


class CheckpointError(ValueError):
    """A checkpoint does not load (a damaged or truncated file, say); the message names the file and the previous
    complete checkpoint, with the command that resumes from it."""


# ---- finding checkpoints ---------------------------------------------------------------------------------------------


def checkpoint_step(path: Path) -> int | None:
    """N for a folder named `step_N`, else None."""
    match = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(checkpoints_dir: str | Path) -> list[Path]:
    """Complete checkpoints (`step_N` folders holding the training-state file), oldest first.

    A checkpoint is written under a temporary name and renamed when complete, and the state file is written last, so
    a run killed while saving never leaves a folder listed here.
    """
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    found = [
        path
        for path in checkpoints_dir.iterdir()
        if path.is_dir() and checkpoint_step(path) is not None and (path / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda path: checkpoint_step(path))


def find_latest_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    checkpoints = list_checkpoints(checkpoints_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_checkpoint(value: str, output_dir: str | Path) -> Path | None:
    """The checkpoint folder that `resume_from_checkpoint` names: "latest" (None when there is none yet) or a path."""
    if value == "latest":
        return find_latest_checkpoint(Path(output_dir) / CHECKPOINTS_DIR)
    path = Path(value)
    if not (path / STATE_FILE).is_file():
        raise ValueError(
            f"{path} is not a complete WEDepth training checkpoint (no {STATE_FILE}); pass a "
            f"{CHECKPOINTS_DIR}/{CHECKPOINT_PREFIX}N folder or `latest`."
        )
    return path


# ---- saving and loading ----------------------------------------------------------------------------------------------


def save_checkpoint(
    accelerator: Accelerator, checkpoints_dir: Path, state: TrainingState, total_limit: int | None
) -> Path:
    """`accelerator.save_state` into a temporary folder, then the state JSON, then an atomic rename to `step_N`;
    older checkpoints beyond `total_limit` are deleted."""
    step = state.global_step
    final = checkpoints_dir / f"{CHECKPOINT_PREFIX}{step}"
    temporary = checkpoints_dir / f"{TEMPORARY_PREFIX}{CHECKPOINT_PREFIX}{step}"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
        checkpoints_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (temporary / STATE_FILE).write_text(state.to_json(), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
        if total_limit is not None:
            for old in list_checkpoints(checkpoints_dir)[:-total_limit]:
                shutil.rmtree(old)
        logger.info("Saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def read_checkpoint_state(config: TrainingConfig, num_processes: int, checkpoint: Path) -> TrainingState:
    """The training state (`training_state.json`) of `checkpoint`, or a `CheckpointError` saying what to do."""
    try:
        return TrainingState.from_json((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise _checkpoint_error(config, num_processes, checkpoint, error) from error


def load_checkpoint(accelerator: Accelerator, config: TrainingConfig, checkpoint: Path) -> TrainingState:
    """Restore the model, optimiser, scheduler and random states of `checkpoint`; return its training state.

    A file that does not read back raises a `CheckpointError` naming it and the previous complete checkpoint.
    """
    try:
        accelerator.load_state(str(checkpoint))
    except Exception as error:  # accelerate, safetensors and torch raise many types for a damaged file
        raise _checkpoint_error(config, accelerator.num_processes, checkpoint, error) from error
    return read_checkpoint_state(config, accelerator.num_processes, checkpoint)


# ---- damaged checkpoints ---------------------------------------------------------------------------------------------


def _damaged_file(checkpoint: Path) -> tuple[Path, str] | None:
    """The first file of `checkpoint` that does not read back (truncated or damaged) and why, or None."""
    for path in sorted(file for file in checkpoint.rglob("*") if file.is_file()):
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as handle:
                    for key in handle.keys():
                        handle.get_tensor(key)
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix in (".bin", ".pt", ".pth", ".pkl"):
                torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # any failure to read back is what is looked for
            return path, f"{type(error).__name__}: {error}"
    return None


def _checkpoint_error(
    config: TrainingConfig, num_processes: int, checkpoint: Path, error: Exception
) -> CheckpointError:
    """A `CheckpointError` for `checkpoint`: the file that does not read back, and the previous complete checkpoint."""
    damaged = _damaged_file(checkpoint)
    if damaged is not None:
        message = f"Cannot resume from {checkpoint}: {damaged[0]} is damaged or truncated ({damaged[1]})."
    else:
        message = f"Cannot resume from {checkpoint} ({type(error).__name__}: {error})."
    step = checkpoint_step(checkpoint)
    earlier = [
        path for path in list_checkpoints(checkpoint.parent) if step is not None and checkpoint_step(path) < step
    ]
    if earlier:
        message += (
            f" The previous complete checkpoint is {earlier[-1]}; resume from it with:\n  "
            f"{resume_command(config, num_processes, earlier[-1])}\n(resuming from it moves the later checkpoints, "
            f"this one included, to {checkpoint.parent / (ABANDONED_PREFIX + '<time>')}/)." + token_note(config)
        )
    else:
        message += (
            f" There is no earlier complete checkpoint in {checkpoint.parent}; start over with "
            f"`--overwrite_output_dir true`."
        )
    return CheckpointError(message)


# ---- abandoned branches ----------------------------------------------------------------------------------------------


def abandon_later_work(output_dir: str | Path, step: int) -> bool:
    """Move what a run did after `step` aside, when resuming from the checkpoint of `step` leaves it behind.

    The checkpoints after `step` go to `checkpoints/abandoned-<time>/`, where `latest` does not see them, and so does
    the exported model when it holds weights from after `step`. Each move is logged. Returns whether the exported
    model was moved (the best-model selection then starts again).
    """
    output_dir = Path(output_dir)
    checkpoints_dir, model_dir = output_dir / CHECKPOINTS_DIR, output_dir / MODEL_DIR
    folders = checkpoints_dir.iterdir() if checkpoints_dir.is_dir() else []
    later = sorted((path for path in folders if (checkpoint_step(path) or 0) > step), key=checkpoint_step)
    if not later:
        return False
    export_step = read_export_step(model_dir)
    move_export = export_step is not None and export_step > step
    destination = _abandoned_folder(checkpoints_dir)
    for path in later:
        os.replace(path, destination / path.name)
        logger.warning(
            "Resuming from step %d abandons the later checkpoint %s: moved to %s, where `latest` does not see it "
            "(delete it when you no longer need it).",
            step,
            path,
            destination / path.name,
        )
    if move_export:
        os.replace(model_dir, destination / MODEL_DIR)
        logger.warning(
            "The exported model %s held weights of step %d of the abandoned branch: moved to %s; the best model is "
            "chosen again from the evaluations after step %d.",
            model_dir,
            export_step,
            destination / MODEL_DIR,
            step,
        )
    return move_export


def _abandoned_folder(checkpoints_dir: Path) -> Path:
    """A new, empty `abandoned-<time>` folder (with a numeric suffix when that name is taken)."""
    base = checkpoints_dir / f"{ABANDONED_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}"
    destination, suffix = base, 1
    while destination.exists():
        destination, suffix = base.with_name(f"{base.name}-{suffix}"), suffix + 1
    destination.mkdir()
    return destination


# ---- claiming the folder ---------------------------------------------------------------------------------------------


class OutputDirError(ValueError):
    """The output folder cannot be used as asked: another training holds it, or it holds an earlier run that this
    one would replace. The message says what to do."""


class OutputDirLock:
    """An exclusive OS lock (`fcntl.flock`) on `<output_dir>/.wedepth-training.lock`: one training per folder.

    The kernel releases the lock when its process ends, however it ends (kill -9 included), so a lock file left
    behind never blocks a later run. The file names its holder, for the error a second run gets.
    """

    def __init__(self, output_dir: str | Path) -> None:
        """The lock of `output_dir`, not taken yet."""
        self.path = Path(output_dir) / LOCK_FILE
        self._handle: IO[str] | None = None

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


def claim_output_dir(config: TrainingConfig, accelerator: Accelerator) -> OutputDirClaim:
    """Lock and prepare the output folder on the main process; every process gets the outcome.

    When the main process fails (folder locked, earlier run, damaged checkpoint) it raises the error and the other
    processes raise an `OutputDirError` pointing to it, rather than wait for a main process that stopped.
    """
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
    shown = listed_names(entries)
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
    label = contained_input(checkpoints_dir.resolve(), inputs)
    if label is not None:
        raise OutputDirError(f"{checkpoints_dir} contains {label}, which is never deleted; move it elsewhere.")
    pattern = re.compile(rf"({re.escape(TEMPORARY_PREFIX)})?{CHECKPOINT_PREFIX}\d+|{ABANDONED_PREFIX}.+")
    foreign = sorted(
        entry.name for entry in checkpoints_dir.iterdir() if entry.is_symlink() or not pattern.fullmatch(entry.name)
    )
    if foreign:
        shown = listed_names(foreign)
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
