"""The exported model folder (`<output_dir>/model`): the weights (the best by validation, or the last), the image
processor at the training resolution, the remote code and the model card.

Weights are written into a fresh temporary sibling swapped in for `model/` when complete (`folders.write_folder`, the
mechanism `wedepth convert-original` writes with), with the step they are from (`EXPORT_STEP_FILE`), so that resuming
from an older checkpoint can tell whether the export belongs to the branch it abandons. The card records the command
and public configuration that reproduce the run, never argv.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from transformers.utils import logging

from ..folders import OutputFolderError, write_folder
from ..hub import render_model_card, vfm_storage_text
from ..image_processing_wedepth import WEDepthImageProcessor
from ..modeling_wedepth import WEDepthForDepthEstimation
from .config import TrainingConfig
from .data import TrainingData
from .run_folder import CONFIG_FILE, EXPORT_STEP_FILE, OutputDirError, TrainingState, launch_command


logger = logging.get_logger(__name__)


def exports_vfm(config: TrainingConfig, model: WEDepthForDepthEstimation) -> bool:
    """Whether the exported folder includes the frozen VFM: with `export_full_model`, or when the model's VFM has no
    recorded source to refer to (a randomly initialised VFM, say)."""
    return config.export_full_model or model.config.vfm_fingerprint is None


def save_model_weights(
    model: torch.nn.Module, accelerator: Accelerator, folder: Path, include_vfm: bool, step: int
) -> None:
    """`save_pretrained` (safetensors, remote code; the frozen VFM only with `include_vfm`) and the step of the
    weights (`EXPORT_STEP_FILE`) into a fresh folder swapped in for `folder` (`write_folder`). An existing `folder` is
    replaced only when it holds an exported model and nothing else, and never when it contains the working directory:
    otherwise an `OutputDirError` says why."""
    if accelerator.is_main_process:

        def write(staging: Path) -> None:
            """Write the weights and their step into the staging folder."""
            accelerator.unwrap_model(model).save_pretrained(
                staging, state_dict=accelerator.get_state_dict(model), include_vfm=include_vfm
            )
            (staging / EXPORT_STEP_FILE).write_text(json.dumps({"global_step": step}), encoding="utf-8")

        try:
            write_folder(folder, write, overwrite=True, extra_files=(EXPORT_STEP_FILE,))
        except OutputFolderError as error:
            raise OutputDirError(f"The exported model cannot be written: {error}") from error
    accelerator.wait_for_everyone()


def export_model_folder(
    model: torch.nn.Module,
    accelerator: Accelerator,
    config: TrainingConfig,
    model_dir: Path,
    state: TrainingState,
    data: TrainingData,
) -> None:
    """Complete the exported folder at the end of a run: weights (when not already the best ones), image processor,
    model card.

    The image processor resizes to the resolution of training (`state.train_shortest_edge`, the shorter side of the
    training batches) and records the training images' camera (`data.camera`). The card says which weights the
    folder holds and records the command and public configuration that reproduce the run, never argv.
    """
    unwrapped = accelerator.unwrap_model(model)
    include_vfm = exports_vfm(config, unwrapped)
    if state.best_metrics is None:
        save_model_weights(model, accelerator, model_dir, include_vfm, state.global_step)
    if not accelerator.is_main_process:
        return
    _save_image_processor(model_dir, state.train_shortest_edge, data.camera)
    selection = _selection_text(config, state, len(data.dropped_validation_samples))
    _write_model_card(unwrapped, config, model_dir, state.best_metrics, selection, accelerator.num_processes)


def _save_image_processor(
    model_dir: Path, train_shortest_edge: int | None, training_camera: dict[str, Any] | None
) -> None:
    """The image processor of the folder: resizing to the training resolution, or the default one when no training
    batch was seen, with the training camera."""
    if train_shortest_edge is None:
        logger.warning("No training batch seen: the exported image processor keeps its default resolution.")
        WEDepthImageProcessor(training_camera=training_camera).save_pretrained(model_dir)
    else:
        size = {"shortest_edge": train_shortest_edge}
        WEDepthImageProcessor(do_resize=True, size=size, training_camera=training_camera).save_pretrained(model_dir)


def _selection_text(config: TrainingConfig, state: TrainingState, dropped_validation_samples: int) -> str:
    """The card's account of which weights the folder holds, and of the validation samples left out."""
    if state.best_metrics is not None:
        selection = (
            f"the weights with the best validation `{config.metric_for_best_model}` "
            f"({state.best_metrics[config.metric_for_best_model]:.4f}, step {state.best_step} of {state.global_step})"
        )
    else:
        selection = f"the weights after the last step ({state.global_step}); no validation split was configured"
    if dropped_validation_samples:
        selection += (
            f"; {dropped_validation_samples} bad validation sample(s) were left out of validation "
            f"(`on_bad_sample: skip`)"
        )
    return selection


def _card_metadata(config: TrainingConfig, model: WEDepthForDepthEstimation) -> dict[str, Any]:
    """Base models, datasets and dataset types for the model card."""
    base_models: list[str] = []
    if config.init_from is not None and not Path(config.init_from).exists():
        base_models.append(config.init_from)
    elif config.init_from is None and config.pretrained_backbones:
        for source in (model.config.vfm_pretrained_name_or_path, model.config.encoder_pretrained_name_or_path):
            if source and not Path(source).exists():
                base_models.append(source)
    datasets = [config.hf_dataset_name] if config.dataset == "hf" and not Path(config.hf_dataset_name).exists() else []
    display_name = f"{config.dataset} (validation)"
    dataset_types = {display_name: datasets[0] if datasets else config.dataset}
    return {
        "base_models": base_models,
        "datasets": datasets,
        "dataset_types": dataset_types,
        "display_name": display_name,
    }


def _model_description(model: WEDepthForDepthEstimation, include_vfm: bool) -> str:
    """The card's description of the model: parameter counts, the depth range trained on, how the VFM is stored."""
    counts = model.parameter_counts()
    return (
        f"Parameters: {counts['total'] / 1e6:.2f}M in all, {counts['trainable'] / 1e6:.2f}M trained, the frozen VFM "
        f"{counts['vfm'] / 1e6:.2f}M; trained on depths above {model.config.min_depth} m"
        + (f" and below {model.config.max_depth} m." if model.config.max_depth is not None else ".")
        + " "
        + vfm_storage_text(model.config, include_vfm)
    )


def _write_model_card(
    model: WEDepthForDepthEstimation,
    config: TrainingConfig,
    model_dir: Path,
    best_metrics: dict[str, float] | None,
    selection: str,
    num_processes: int,
) -> None:
    """The folder's README.md: results, base models and datasets, the command and public configuration of the run;
    `selection` says which weights the folder holds (`_selection_text`)."""
    metadata = _card_metadata(config, model)
    card = render_model_card(
        model_name=config.model_name or (config.hub_model_id or Path(config.output_dir).name).split("/")[-1],
        repo_id=config.hub_model_id or str(model_dir),
        results={metadata["display_name"]: best_metrics} if best_metrics else None,
        base_models=metadata["base_models"],
        datasets=metadata["datasets"],
        dataset_types=metadata["dataset_types"],
        results_split="validation",
        license=config.license,
        training_command=(
            f"# with the configuration below saved as {CONFIG_FILE} (the run wrote it to its output folder);\n"
            f"# secrets such as the Hub token are never recorded: give them with HF_TOKEN or `hf auth login`\n"
            + launch_command(num_processes, CONFIG_FILE)
        ),
        training_config=config.to_public_dict(),
        model_description=_model_description(model, exports_vfm(config, model)),
        selection_text=selection,
    )
    card.save(model_dir / "README.md")
