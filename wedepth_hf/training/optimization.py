"""What a run optimises and how, built from its `TrainingConfig`: the model (with SyncBatchNorm for multi-GPU runs),
AdamW over its trainable parameters and the learning-rate schedule.

- `build_model`: a WEDepth checkpoint (`init_from`), pretrained backbones, or a random init from a config dict.
- `maybe_sync_batchnorm`: SyncBatchNorm for multi-GPU runs, as the authors' train.py.
- `build_optimizer`: AdamW over the trainable parameters (all decayed, as the authors' train.py, or with norms,
  biases, embeddings and gates exempt); `build_scheduler`: a linear warm-up from `warmup_start_ratio` then a cosine to
  `min_lr_ratio` (the authors' `WarmupCosineSchedule` at 0.1 and 0.1).
"""

from __future__ import annotations

import math

import torch
from transformers.utils import logging

from ..configuration_wedepth import WEDepthConfig
from ..modeling_wedepth import WEDepthForDepthEstimation
from .config import TrainingConfig


logger = logging.get_logger(__name__)

# Substrings of a parameter's own name (the part after the last dot) that exempt it from weight decay when
# `decay_all_trainable_parameters` is false: prompts, position / level embeddings, Swin's relative position bias
# tables and gamma gates. Matched on the leaf only, so that e.g. "prompt_block.proj.weight" is still decayed.
NO_DECAY_NAME_PATTERNS = (
    "prompt",
    "position",
    "level_embed",
    "relative_position_bias_table",
    "gamma",
)
# Device types on which PyTorch's SyncBatchNorm runs in a distributed run (it raises a ValueError on CPU tensors).
SYNC_BATCHNORM_DEVICE_TYPES = ("cuda", "xpu", "hpu")


def build_model(config: TrainingConfig) -> WEDepthForDepthEstimation:
    """The model to train: a WEDepth checkpoint (`init_from`), pretrained backbones, or a random init from config."""
    if config.init_from is not None:
        logger.info("Fine-tuning the WEDepth checkpoint %s", config.init_from)
        model = WEDepthForDepthEstimation.from_pretrained(config.init_from)
    elif config.pretrained_backbones:
        model_config = WEDepthConfig.from_preset(config.preset, **config.model_config)
        logger.info("Building WEDepth (%s) from pretrained backbones", config.preset)
        model = WEDepthForDepthEstimation.from_pretrained_backbones(
            model_config, vfm_name_or_path=config.vfm_name_or_path, encoder_name_or_path=config.encoder_name_or_path
        )
    elif config.preset is not None:
        model = WEDepthForDepthEstimation(WEDepthConfig.from_preset(config.preset, **config.model_config))
    else:
        model = WEDepthForDepthEstimation(WEDepthConfig(**config.model_config))
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model


def maybe_sync_batchnorm(
    model: torch.nn.Module, *, enabled: bool, num_processes: int, device: torch.device, is_main_process: bool = True
) -> torch.nn.Module:
    """The model with its BatchNorm layers converted to SyncBatchNorm when `enabled` and several processes train on
    a device type that supports it (the authors' train.py converts before DDP); otherwise the model unchanged.

    SyncBatchNorm keeps the parameters, buffers and state-dict keys of the layers it replaces, so a saved folder
    loads into plain `nn.BatchNorm2d` layers. PyTorch's SyncBatchNorm refuses CPU tensors in a distributed run, so
    CPU runs (e.g. over gloo) keep plain, per-process BatchNorm; that is logged once, by `is_main_process`.
    """
    batch_norms = sum(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules())
    if not enabled or num_processes < 2 or batch_norms == 0:
        return model
    if device.type not in SYNC_BATCHNORM_DEVICE_TYPES:
        if is_main_process:
            logger.warning(
                "sync_batchnorm: PyTorch's SyncBatchNorm does not run on %s tensors in a distributed run; keeping "
                "plain BatchNorm (%d layers), whose batch statistics are computed per process.",
                device.type,
                batch_norms,
            )
        return model
    logger.info("Converting %d BatchNorm layers to SyncBatchNorm across %d processes", batch_norms, num_processes)
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def no_weight_decay(name: str, parameter: torch.nn.Parameter) -> bool:
    """Whether a parameter is exempt from weight decay when exemptions are on: every 1-D parameter (biases, norm
    weights, 1-D gates) and those whose own name (after the last dot) holds a `NO_DECAY_NAME_PATTERNS` entry."""
    leaf = name.rsplit(".", 1)[-1]
    return parameter.ndim <= 1 or any(pattern in leaf for pattern in NO_DECAY_NAME_PATTERNS)


def build_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only (the frozen VFM is left out).

    With `decay_all_trainable_parameters` (the authors' `AdamW(model.parameters(), weight_decay=0.01)`): one group,
    every parameter decayed by `weight_decay`. Without: a decayed group and a group exempt per `no_weight_decay`.
    """
    trainable = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    if not trainable:
        raise ValueError("The model has no trainable parameter.")
    if config.decay_all_trainable_parameters:
        groups = [{"params": [parameter for _, parameter in trainable], "weight_decay": config.weight_decay}]
    else:
        decay = [parameter for name, parameter in trainable if not no_weight_decay(name, parameter)]
        exempt = [parameter for name, parameter in trainable if no_weight_decay(name, parameter)]
        groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": exempt, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        [group for group in groups if group["params"]],
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
    )


def lr_factor(
    step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float, *, warmup_start_ratio: float
) -> float:
    """Learning-rate multiplier for optimizer step `step` (0-based): linear from `warmup_start_ratio` at step 0
    towards 1 over `warmup_steps` steps, then a cosine from 1 down to `min_lr_ratio` at `total_steps` (flat after).

    With both ratios 0.1 this is the authors' `WarmupCosineSchedule`: 0.1 + 0.9 * step / warmup, then
    0.1 + 0.9 * 0.5 * (1 + cos(pi * progress)). A start of 0 begins at 0 (the first step then has learning rate 0).
    """
    if step < warmup_steps:
        return warmup_start_ratio + (1.0 - warmup_start_ratio) * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float,
    num_processes: int = 1,
    *,
    warmup_start_ratio: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    """`lr_factor` as a `LambdaLR` over optimizer steps, stepped once per optimizer step.

    accelerate's prepared scheduler steps once per process at each optimizer step, so the lambda divides its counter
    by `num_processes`: the schedule is the same in optimizer steps whatever the number of GPUs.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda count: lr_factor(
            count // num_processes, warmup_steps, total_steps, min_lr_ratio, warmup_start_ratio=warmup_start_ratio
        ),
    )
