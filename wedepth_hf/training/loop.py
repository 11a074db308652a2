"""The training loop: `train` runs a whole training as its `TrainingConfig` says, as a short sequence of named steps
over one `TrainingState`, and Ctrl-C handling (`TrainingInterrupted`).

Claim the output folder; build and prepare the pieces (`TrainingRun`); restore the state of the checkpoint resumed
from; train epoch by epoch (mixed precision, gradient accumulation, clipping, multi-GPU through accelerate), with
validation by `wedepth_hf.evaluation.evaluate_depth_model`, the best model exported as it is found, and atomic
checkpoints; then the last evaluation and checkpoint, the exported folder and the optional Hub upload. Every random
draw of a step depends only on its position in training, so a resumed run repeats the steps it had not saved.

Ctrl-C: the first one stops the run at the next step boundary, where a checkpoint is saved (`InterruptRequest`,
agreed by every process), and the run ends with a `TrainingInterrupted` that says where it can resume and the command
that does it; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from accelerate import Accelerator, skip_first_batches
from accelerate.scheduler import AcceleratedScheduler
from accelerate.utils import ProjectConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers.utils import logging

from ..constants import LOWER_IS_BETTER
from ..data import collate_depth_samples
from ..data.authors import AUTHORS_DATASETS
from ..evaluation import evaluate_depth_model
from ..hub import push_folder_to_hub
from .config import TrainingConfig
from .data import EpochShuffleSampler, TrainingData, build_datasets, check_data_sources
from .export import export_model_folder, exports_vfm, save_model_weights
from .optimization import build_model, build_optimizer, build_scheduler, maybe_sync_batchnorm
from .run_folder import (
    CHECKPOINTS_DIR,
    LOGS_DIR,
    MODEL_DIR,
    OutputDirClaim,
    TrainingState,
    claim_output_dir,
    find_latest_checkpoint,
    load_checkpoint,
    restart_command,
    resume_command,
    save_checkpoint,
    token_note,
)


logger = logging.get_logger(__name__)


@dataclass
class TrainingResult:
    """What a training run produced: the exported model folder, the step reached, the loss and evaluation history."""

    output_dir: Path
    model_dir: Path
    global_step: int
    history: list[dict[str, float]] = field(default_factory=list)
    eval_history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None
    hub_url: str | None = None
    # errors of the validation samples left out as bad (`on_bad_sample: skip`; see `drop_bad_samples`)
    dropped_validation_samples: list[str] = field(default_factory=list)


@dataclass
class TrainingRun:
    """The objects of a run once built and prepared by accelerate, and its `TrainingState`: what the loop's steps
    work with. Not state itself: where the run stands is `state`, and only there."""

    config: TrainingConfig
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: AcceleratedScheduler  # around the `build_scheduler` LambdaLR
    dataloader: DataLoader  # accelerate's prepared DataLoader (sharded, with `set_epoch`)
    data: TrainingData
    trainable: list[torch.nn.Parameter]
    state: TrainingState

    @property
    def output_dir(self) -> Path:
        """The run's output folder."""
        return Path(self.config.output_dir)

    @property
    def model_dir(self) -> Path:
        """The exported model folder."""
        return self.output_dir / MODEL_DIR

    def save_checkpoint(self) -> None:
        """Save a checkpoint of the state (and of the model, optimiser, schedule and random states) and mark it as the
        last one."""
        self.state.last_checkpoint = save_checkpoint(
            self.accelerator, self.output_dir / CHECKPOINTS_DIR, self.state, self.config.checkpoints_total_limit
        )
        self.state.last_checkpoint_step = self.state.global_step


def train(config: TrainingConfig) -> TrainingResult:
    """Run a full training as `config` says; return where the model went and the loss/evaluation history.

    The list files are read and checked first (`TrainingDataError`), before anything is written. One training at a
    time per `output_dir` (an OS lock; `OutputDirError` otherwise), and never over an earlier run's checkpoints or
    exported model, or into a folder of files no training wrote, without `overwrite_output_dir`. Resuming from a
    checkpoint older than others moves the later ones aside (`abandon_later_work`). Ctrl-C saves a checkpoint at the
    next step boundary and raises `TrainingInterrupted` (a `KeyboardInterrupt`) with the command that resumes; a
    damaged checkpoint raises a `CheckpointError`. Raises `wedepth_hf.hub.HubUploadError` when the final upload fails
    (the folder is kept).
    """
    check_data_sources(config)
    accelerator = _make_accelerator(config)
    claim = claim_output_dir(config, accelerator)
    try:
        run = _set_up_run(config, accelerator)
        _restore_state(run, claim)
        _start_tracking(run)
        _train_steps(run)
        _finish_training(run)
        return _export_and_push(run)
    finally:
        claim.release()


# ---- set-up ----------------------------------------------------------------------------------------------------------


def _make_accelerator(config: TrainingConfig) -> Accelerator:
    """The `Accelerator` of the run: precision, gradient accumulation, trackers logging to `<output_dir>/logs`."""
    output_dir = Path(config.output_dir)
    return Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=_resolve_trackers(config.log_with),
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / LOGS_DIR)),
    )


def _resolve_trackers(log_with: str) -> list[str] | None:
    """accelerate `log_with` from the config (checked there): "auto" means tensorboard when installed, else python
    logging only."""
    names = [name.strip() for name in log_with.split(",") if name.strip()]
    if names == ["none"]:
        return None
    if names == ["auto"]:
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") else None
    return names


def _set_up_run(config: TrainingConfig, accelerator: Accelerator) -> TrainingRun:
    """Build the model, data, optimiser and schedule (seeded), plan the steps, and prepare them with accelerate."""
    set_seed(config.seed)
    model = maybe_sync_batchnorm(
        build_model(config),
        enabled=config.sync_batchnorm,
        num_processes=accelerator.num_processes,
        device=accelerator.device,
        is_main_process=accelerator.is_main_process,
    )
    data = build_datasets(config, accelerator)
    _check_data(config, model, data)
    # Recorded in every saved config.json: the camera whose depth the model learns.
    model.config.training_camera = data.camera
    dataloader = DataLoader(
        data.train,
        batch_size=config.per_device_train_batch_size,
        sampler=EpochShuffleSampler(len(data.train), config.seed),
        collate_fn=collate_depth_samples,
        num_workers=config.dataloader_num_workers,
        drop_last=config.dataloader_drop_last,
    )
    optimizer = build_optimizer(model, config)
    state = plan_steps(config, len(dataloader), accelerator.num_processes, len(data.train))
    scheduler = build_scheduler(
        optimizer,
        state.warmup_steps,
        state.max_train_steps,
        config.min_lr_ratio,
        accelerator.num_processes,
        warmup_start_ratio=config.warmup_start_ratio,
    )
    model, optimizer, dataloader, scheduler = accelerator.prepare(model, optimizer, dataloader, scheduler)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    return TrainingRun(config, accelerator, model, optimizer, scheduler, dataloader, data, trainable, state)


def _check_data(config: TrainingConfig, model: torch.nn.Module, data: TrainingData) -> None:
    """Refuse an empty training set, and validation without a depth range to score."""
    if len(data.train) == 0:
        raise ValueError("The training dataset is empty.")
    no_depth_range = config.eval_max_depth is None and getattr(model.config, "max_depth", None) is None
    # The authors' protocol takes the depth range from the dataset's class.
    if data.validation is not None and no_depth_range and config.eval_protocol == "community":
        raise ValueError(
            "Validation scores depth up to `eval_max_depth`, and the model config has no max_depth to default to: set "
            "`eval_max_depth` (e.g. 10 for NYU, 80 for KITTI)."
        )


def plan_steps(config: TrainingConfig, num_batches: int, num_processes: int, num_samples: int) -> TrainingState:
    """The fresh state of a run, with its plan, for a dataloader of `num_batches` batches in all (each process gets
    its share) over `num_samples` training samples: `max_train_steps`, or `num_train_epochs` epochs."""
    batches_per_epoch = math.ceil(num_batches / num_processes)
    if batches_per_epoch == 0:
        raise ValueError(
            f"No full training batch: {num_samples} samples, batch size {config.per_device_train_batch_size}, "
            f"drop_last={config.dataloader_drop_last}."
        )
    steps_per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    max_train_steps = config.max_train_steps or config.num_train_epochs * steps_per_epoch
    warmup_steps = config.warmup_steps
    if warmup_steps is None:
        warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    return TrainingState(
        steps_per_epoch=steps_per_epoch,
        max_train_steps=max_train_steps,
        num_epochs=math.ceil(max_train_steps / steps_per_epoch),
        warmup_steps=min(warmup_steps, max_train_steps),
    )


def _restore_state(run: TrainingRun, claim: OutputDirClaim) -> None:
    """Continue from the checkpoint resumed from, when there is one (its model, optimiser, schedule and random states
    are restored too); an epoch whose batches were all seen continues with the next one."""
    if claim.resume_path is None:
        return
    state = run.state
    state.resume(load_checkpoint(run.accelerator, run.config, claim.resume_path), claim.resume_path)
    logger.info("Resumed from %s at step %d (epoch %d)", claim.resume_path, state.global_step, state.epoch)
    if claim.restart_selection:
        state.forget_best()
    if state.batches_in_epoch >= len(run.dataloader):
        state.epoch += 1
        state.batches_in_epoch = 0


def _start_tracking(run: TrainingRun) -> None:
    """Start the trackers with the public configuration, and log what the run will do."""
    config, accelerator, state = run.config, run.accelerator, run.state
    if accelerator.trackers:
        accelerator.init_trackers("wedepth", config=_flat_hparams(config.to_public_dict()))
    counts = accelerator.unwrap_model(run.model).parameter_counts()
    logger.info(
        "Training %s samples, %d steps (%d epochs of %d steps), warm-up %d steps, %.2fM trainable of %.2fM parameters, "
        "%d process(es), batch %d per device x %d accumulation",
        len(run.data.train),
        state.max_train_steps,
        state.num_epochs,
        state.steps_per_epoch,
        state.warmup_steps,
        counts["trainable"] / 1e6,
        counts["total"] / 1e6,
        accelerator.num_processes,
        config.per_device_train_batch_size,
        config.gradient_accumulation_steps,
    )


def _flat_hparams(values: Mapping[str, Any]) -> dict[str, Any]:
    """Tracker-friendly hyper-parameters: scalars kept, everything else as a string."""
    return {
        key: value if isinstance(value, (int, float, str, bool)) else json.dumps(value) for key, value in values.items()
    }


# ---- the steps -------------------------------------------------------------------------------------------------------


def batch_seed(seed: int, epoch: int, batch_index: int, process_index: int) -> int:
    """The torch seed of one micro-batch: a function of its position in training only (exact resume)."""
    return (seed * 1_000_003 + epoch * 10_007 + batch_index) * 64 + process_index


def _train_steps(run: TrainingRun) -> None:
    """Train up to `max_train_steps`, epoch by epoch. On Ctrl-C, save a checkpoint when the state is whole and
    raise `TrainingInterrupted` saying how to resume."""
    state = run.state
    progress = tqdm(
        total=state.max_train_steps,
        initial=state.global_step,
        desc="training",
        disable=not run.accelerator.is_local_main_process,
    )
    run.model.train()
    with InterruptRequest() as interrupt:
        try:
            for epoch in range(state.epoch, state.num_epochs):
                if state.global_step >= state.max_train_steps:
                    break
                _train_epoch(run, interrupt, progress, epoch)
        except (StopRequested, KeyboardInterrupt) as stop:
            progress.close()
            raise _interrupted(run, stop) from None
    progress.close()


def _interrupted(run: TrainingRun, stop: BaseException) -> TrainingInterrupted:
    """The `TrainingInterrupted` of a stop, after saving a checkpoint of the state when it is whole, not saved yet,
    and every process stopped at this boundary (`StopRequested`; a single process always can)."""
    state, num_processes = run.state, run.accelerator.num_processes
    together = isinstance(stop, StopRequested) or num_processes == 1
    saved = state.clean and together and state.last_checkpoint_step != state.global_step
    if saved:
        run.save_checkpoint()
    return interruption(run.config, num_processes, state.global_step, state.last_checkpoint, saved)


def _train_epoch(run: TrainingRun, interrupt: InterruptRequest, progress: tqdm, epoch: int) -> None:
    """One epoch (from the batch a resumed state stopped at): a step per `gradient_accumulation_steps` batches,
    stopping at `max_train_steps` or at a step boundary after Ctrl-C; then the epoch's evaluation if by epoch."""
    accelerator, state = run.accelerator, run.state
    state.epoch = epoch
    run.dataloader.set_epoch(epoch)
    augmentation = run.data.augmentation
    if augmentation is not None and hasattr(augmentation, "set_epoch"):
        augmentation.set_epoch(epoch)
    epoch_loader = run.dataloader
    if state.batches_in_epoch > 0:
        epoch_loader = skip_first_batches(run.dataloader, state.batches_in_epoch)
    accumulated_loss = torch.zeros((), device=accelerator.device)
    accumulated_batches = 0
    for batch in epoch_loader:
        state.clean = False
        loss = _forward_backward(run, batch, epoch)
        state.batches_in_epoch += 1
        accumulated_loss += loss.detach()
        accumulated_batches += 1
        if not accelerator.sync_gradients:
            continue
        state.global_step += 1
        step_loss = accelerator.reduce(accumulated_loss / accumulated_batches, reduction="mean").item()
        accumulated_loss.zero_()
        accumulated_batches = 0
        _after_step(run, progress, step_loss, epoch)
        state.clean = True
        if state.global_step >= state.max_train_steps:
            break
        if interrupt.agreed(accelerator):
            raise StopRequested
    if run.data.validation is not None and run.config.eval_steps is None:
        _evaluate_once(run)
    state.epoch = epoch + 1
    state.batches_in_epoch = 0


def _forward_backward(run: TrainingRun, batch: dict[str, Any], epoch: int) -> torch.Tensor:
    """One micro-batch: forward with a seed of its position, backward, and (at the end of an accumulation) the
    clipped optimizer and schedule step; returns the loss. A non-finite loss stops the run naming the samples."""
    config, accelerator, model, state = run.config, run.accelerator, run.model, run.state
    if state.train_shortest_edge is None:
        state.train_shortest_edge = int(min(batch["pixel_values"].shape[-2:]))
    # Forward randomness (drop-path) depends only on the position in training: a resume repeats it.
    torch.manual_seed(batch_seed(config.seed, epoch, state.batches_in_epoch, accelerator.process_index))
    with accelerator.accumulate(model):
        outputs = model(pixel_values=batch["pixel_values"], labels=batch["labels"])
        loss = outputs.loss
        if not torch.isfinite(loss):
            raise RuntimeError(
                f"Non-finite training loss ({loss.item()}) at step {state.global_step + 1} on "
                f"{batch['ids']}. Check these samples (depth range, invalid pixels) or lower the "
                f"learning rate."
            )
        accelerator.backward(loss)
        if accelerator.sync_gradients and config.max_grad_norm is not None and config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(run.trainable, config.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad()
    return loss


def _after_step(run: TrainingRun, progress: tqdm, step_loss: float, epoch: int) -> None:
    """After optimizer step `state.global_step`: record and log its loss and learning rate, then evaluate and save a
    checkpoint when the config's intervals say so."""
    config, state = run.config, run.state
    step = state.global_step
    learning_rate = run.scheduler.get_last_lr()[0]
    state.history.append({"step": step, "loss": step_loss, "lr": learning_rate})
    run.accelerator.log({"train/loss": step_loss, "train/lr": learning_rate, "train/epoch": epoch}, step=step)
    progress.update(1)
    progress.set_postfix(loss=f"{step_loss:.4f}", lr=f"{learning_rate:.2e}")
    if step % config.logging_steps == 0 or step == 1:
        logger.info(
            "step %d/%d epoch %d loss %.4f lr %.3e", step, state.max_train_steps, epoch, step_loss, learning_rate
        )
    if run.data.validation is not None and config.eval_steps is not None and step % config.eval_steps == 0:
        _evaluate_and_track(run)
        state.last_evaluated_step = step
    if config.checkpointing_steps is not None and step % config.checkpointing_steps == 0:
        run.save_checkpoint()


# ---- validation ------------------------------------------------------------------------------------------------------


def _evaluate_once(run: TrainingRun) -> None:
    """Evaluate the current step unless it already was; an interrupt meanwhile saves nothing (the state is not
    whole)."""
    state = run.state
    if state.last_evaluated_step == state.global_step:
        return
    state.clean = False
    _evaluate_and_track(run)
    state.last_evaluated_step = state.global_step
    state.clean = True


def _evaluate_and_track(run: TrainingRun) -> None:
    """Validate the current step, record and log the metrics, and export the weights when they are the best yet."""
    state = run.state
    metrics = _validation_metrics(run)
    run.model.train()
    step = state.global_step
    state.eval_history.append({"step": step, **metrics})
    run.accelerator.log({f"eval/{key}": value for key, value in metrics.items()}, step=step)
    summary = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())
    logger.info("step %d validation: %s", step, summary)
    metric = run.config.metric_for_best_model
    value = metrics[metric]
    if _is_better(value, state.best_metric, metric):
        state.record_best(value, metrics)
        include_vfm = exports_vfm(run.config, run.accelerator.unwrap_model(run.model))
        save_model_weights(run.model, run.accelerator, run.model_dir, include_vfm, step)
        logger.info("New best validation %s %.4f at step %d -> %s", metric, value, step, run.model_dir)


def _validation_metrics(run: TrainingRun) -> dict[str, float]:
    """Validation metrics with `evaluate_depth_model`, the function `wedepth evaluate` scores with: the configured
    protocol, its crop and depth range, in the model's own precision (float32, whatever `mixed_precision` trains in)."""
    config, accelerator = run.config, run.accelerator
    model = accelerator.unwrap_model(run.model)
    common = dict(
        batch_size=config.per_device_eval_batch_size,
        flip_tta=config.eval_flip_tta,
        accelerator=accelerator,
        num_workers=config.dataloader_num_workers,
        progress=False,
    )
    if config.eval_protocol == "authors":
        spec = AUTHORS_DATASETS[config.dataset]
        result = evaluate_depth_model(
            model,
            run.data.validation,
            protocol="authors",
            min_depth=spec.min_depth,
            max_depth=spec.max_depth,
            **common,
        )
    else:
        result = evaluate_depth_model(
            model,
            run.data.validation,
            min_depth=config.eval_min_depth if config.eval_min_depth is not None else model.config.min_depth,
            max_depth=config.eval_max_depth if config.eval_max_depth is not None else model.config.max_depth,
            crop=config.eval_crop,
            kb_crop=config.kb_crop,
            **common,
        )
    return {key: float(value) for key, value in result.metrics.items()}


def _is_better(value: float, best: float | None, metric: str) -> bool:
    """Whether `value` improves on `best` (lower is better for errors, higher for the delta accuracies)."""
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


# ---- the end ---------------------------------------------------------------------------------------------------------


def _finish_training(run: TrainingRun) -> None:
    """Evaluate and save a checkpoint of the last step, when the intervals did not end on it."""
    state = run.state
    if run.data.validation is not None and state.last_evaluated_step != state.global_step:
        _evaluate_and_track(run)
    if run.config.checkpointing_steps is not None and state.last_checkpoint_step != state.global_step:
        run.save_checkpoint()


def _export_and_push(run: TrainingRun) -> TrainingResult:
    """Complete the exported folder, end the trackers, upload the folder when asked; the run's result."""
    config, accelerator, state = run.config, run.accelerator, run.state
    export_model_folder(run.model, accelerator, config, run.model_dir, state, run.data)
    result = TrainingResult(
        output_dir=run.output_dir,
        model_dir=run.model_dir,
        global_step=state.global_step,
        history=state.history,
        eval_history=state.eval_history,
        best_metric=state.best_metric,
        best_step=state.best_step,
        dropped_validation_samples=list(run.data.dropped_validation_samples),
    )
    accelerator.end_training()
    logger.info("Exported %s (%s)", run.model_dir, "best validation" if state.best_metrics else "final weights")
    if config.push_to_hub and accelerator.is_main_process:
        result.hub_url = push_folder_to_hub(
            run.model_dir,
            config.hub_model_id,
            private=config.hub_private,
            token=config.hub_token,
            revision=config.hub_revision,
            commit_message=f"WEDepth trained for {state.global_step} steps",
        )
    return result


# ---- Ctrl-C ----------------------------------------------------------------------------------------------------------


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C. `checkpoint` is where it can resume from (None: nothing to resume) and
    `resume_command` the command that does it; the message says both."""

    def __init__(self, message: str, checkpoint: Path | None, resume_command: str) -> None:
        """The interruption, with the checkpoint to resume from and the command that does it."""
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
        """No request yet; the previous SIGINT handler is kept when entered."""
        self.requested = False
        self._requested_at = 0.0
        self._previous: Callable[[int, FrameType | None], Any] | int | None = None
        self._pid = os.getpid()

    def __enter__(self) -> InterruptRequest:
        """Install the handler (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Put the previous SIGINT handler back."""
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """The SIGINT handler: note the request (first Ctrl-C), or interrupt at once (a later, separate one)."""
        if os.getpid() != self._pid:
            return
        if self.requested:
            if time.monotonic() - self._requested_at < self.REPEAT_AFTER_S:
                return
            raise KeyboardInterrupt
        self.requested, self._requested_at = True, time.monotonic()
        logger.warning("Ctrl-C: stopping after this step and saving a checkpoint (Ctrl-C again to stop at once).")

    def agreed(self, accelerator: Accelerator) -> bool:
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
