"""Training checkpoints (`<output_dir>/checkpoints/step_N/`): listing, finding and resolving them, saving and loading
them with exact resume, the `CheckpointError` of a damaged one, and moving aside the branch a resume abandons.

A checkpoint is `accelerator.save_state` (model, optimiser, scheduler, random states) plus the `TrainingState` in
`training_state.json`, written last into a temporary folder that is then renamed: a folder listed here is complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging

from .commands import resume_command, token_note
from .config import TrainingConfig
from .export import read_export_step
from .layout import ABANDONED_PREFIX, CHECKPOINT_PREFIX, CHECKPOINTS_DIR, MODEL_DIR, STATE_FILE, TEMPORARY_PREFIX
from .state import TrainingState


logger = logging.get_logger(__name__)


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


def save_checkpoint(accelerator: Any, checkpoints_dir: Path, state: TrainingState, total_limit: int | None) -> Path:
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


def load_checkpoint(accelerator: Any, config: TrainingConfig, checkpoint: Path) -> TrainingState:
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
    from safetensors import safe_open

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
