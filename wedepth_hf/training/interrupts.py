"""Ctrl-C during training: the first one stops the run at the next step boundary, where a checkpoint is saved
(`InterruptRequest`, agreed by every process), and the run ends with a `TrainingInterrupted` that says where it
can resume and the command that does it; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging

from .checkpointing import find_latest_checkpoint
from .commands import restart_command, resume_command, token_note
from .config import TrainingConfig
from .layout import CHECKPOINTS_DIR


logger = logging.get_logger(__name__)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C. `checkpoint` is where it can resume from (None: nothing to resume) and
    `resume_command` the command that does it; the message says both."""

    def __init__(self, message: str, checkpoint: Path | None, resume_command: str) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.resume_command = resume_command


class StopRequested(Exception):
    """Every process agreed to stop at this step boundary (a Ctrl-C reached at least one of them)."""


class InterruptRequest:
    """While active, the first Ctrl-C (SIGINT) asks training to stop at the next step boundary, where a checkpoint is
    saved; a second Ctrl-C interrupts at once. Only the main thread can install it; elsewhere Ctrl-C is unchanged.

    Data-loader worker processes forked meanwhile inherit the handler and ignore Ctrl-C: the terminal sends it to
    them too, and a worker that quit would break the batches still to come before the step boundary. A second SIGINT
    within `REPEAT_AFTER_S` of the first is the same Ctrl-C (torchrun and accelerate forward the terminal's to the
    processes that already got it) and is ignored.
    """

    REPEAT_AFTER_S = 1.0

    def __init__(self) -> None:
        self.requested = False
        self._requested_at = 0.0
        self._previous: Any = None
        self._pid = os.getpid()

    def __enter__(self) -> InterruptRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        """The SIGINT handler: note the request (first Ctrl-C), or interrupt at once (a later, separate one)."""
        if os.getpid() != self._pid:
            return
        if self.requested:
            if time.monotonic() - self._requested_at < self.REPEAT_AFTER_S:
                return
            raise KeyboardInterrupt
        self.requested, self._requested_at = True, time.monotonic()
        logger.warning("Ctrl-C: stopping after this step and saving a checkpoint (Ctrl-C again to stop at once).")

    def agreed(self, accelerator: Any) -> bool:
        """Whether any process was asked to stop; every process gets the same answer (one all-reduce per step)."""
        if accelerator.num_processes == 1:
            return self.requested
        flag = torch.tensor([float(self.requested)], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)


def interruption(
    config: TrainingConfig, num_processes: int, step: int, checkpoint: Path | None, saved: bool
) -> TrainingInterrupted:
    """The `TrainingInterrupted` of a run stopped at `step`, saying where and how to resume."""
    if checkpoint is None:
        command = restart_command(config, num_processes)
        message = (
            f"Training interrupted (Ctrl-C) after step {step}, with no checkpoint to resume from. Start again with:\n"
            f"  {command}"
        )
    else:
        command = resume_command(config, num_processes, checkpoint)
        where = f"saved the checkpoint {checkpoint}" if saved else f"the latest complete checkpoint is {checkpoint}"
        message = f"Training interrupted (Ctrl-C) after step {step}; {where}. Resume with:\n  {command}"
    return TrainingInterrupted(message + token_note(config), checkpoint, command)


def interrupted_outside_the_loop(config: TrainingConfig, num_processes: int) -> str:
    """What to do after a Ctrl-C outside the training steps (set-up, final evaluation, export, upload)."""
    latest = find_latest_checkpoint(Path(config.output_dir) / CHECKPOINTS_DIR)
    if latest is None:
        return (
            "Interrupted (Ctrl-C) outside the training steps, with no checkpoint to resume from. Start again with:\n  "
            + restart_command(config, num_processes)
            + token_note(config)
        )
    return (
        f"Interrupted (Ctrl-C) outside the training steps (set-up, or the final evaluation, export or upload). The "
        f"latest complete checkpoint is {latest}; resume (and finish) with:\n  "
        f"{resume_command(config, num_processes, latest)}" + token_note(config)
    )
