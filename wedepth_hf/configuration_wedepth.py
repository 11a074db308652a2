"""WEDepth model configuration.

WEDepth (arXiv 2511.08036) predicts metric depth from one image with a trainable hierarchical depth encoder whose
features are enhanced by a frozen vision foundation model (DINOv2). This file describes every size of that model;
it imports only `transformers` (it travels to the Hub as remote code).
"""

import math
import re
from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import logging

from .image_processing_wedepth import check_training_camera


logger = logging.get_logger(__name__)

NUM_STAGES = 4
"""The method works on four scales: encoder strides 4/8/16/32, four VFM stages, four depth heads."""

DEFORMABLE_ATTENTION_IMPLEMENTATIONS = ("gather", "grid_sample")
"""The implementations of the pixel decoder's multi-scale deformable attention (same values and gradients)."""

_ENCODER_OUT_FEATURES = ["stage1", "stage2", "stage3", "stage4"]

# Architecture of the public checkpoints the presets start from. They mirror the `config.json` of each Hub repo so
# that a model built from a preset has exactly the shapes of those weights.
_DINOV2_SIZES: dict[str, dict[str, Any]] = {
    "facebook/dinov2-small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6},
    "facebook/dinov2-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
    "facebook/dinov2-large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16},
}
_SWIN_SIZES: dict[str, dict[str, Any]] = {
    f"microsoft/swin-{size}-patch4-window7-224": {
        "embed_dim": embed_dim,
        "depths": depths,
        "num_heads": num_heads,
        "window_size": 7,
        "image_size": 224,
    }
    for size, embed_dim, depths, num_heads in (
        ("tiny", 96, [2, 2, 6, 2], [3, 6, 12, 24]),
        ("small", 96, [2, 2, 18, 2], [3, 6, 12, 24]),
        ("base", 128, [2, 2, 18, 2], [4, 8, 16, 32]),
    )
}

# The authors' Swin recipe (their `module/encoder.py`): every LayerNorm with eps 1e-6, and stochastic depth 0.2 / 0.3
# / 0.5 for Swin-T / S / B. These are training settings, not properties of the ImageNet checkpoints, so they are
# applied on top of whatever checkpoint the encoder is loaded from.
_SWIN_RECIPE: dict[str, dict[str, Any]] = {
    "microsoft/swin-tiny-patch4-window7-224": {"drop_path_rate": 0.2, "layer_norm_eps": 1e-6},
    "microsoft/swin-small-patch4-window7-224": {"drop_path_rate": 0.3, "layer_norm_eps": 1e-6},
    "microsoft/swin-base-patch4-window7-224": {"drop_path_rate": 0.5, "layer_norm_eps": 1e-6},
}

PRESETS: dict[str, dict[str, Any]] = {
    # DINOv2-S/14 + Swin-T with narrower new modules: the laptop-sized model.
    "small": {
        "vfm_pretrained_name_or_path": "facebook/dinov2-small",
        "encoder_pretrained_name_or_path": "microsoft/swin-tiny-patch4-window7-224",
        "prompt_dim": 192,
        "prompt_attention_heads": 8,
        "decoder_hidden_size": 128,
        "decoder_ffn_dim": 256,
        "head_hidden_size": 64,
    },
    # DINOv2-B/14 + Swin-S.
    "base": {
        "vfm_pretrained_name_or_path": "facebook/dinov2-base",
        "encoder_pretrained_name_or_path": "microsoft/swin-small-patch4-window7-224",
        "prompt_dim": 256,
        "prompt_attention_heads": 8,
        "decoder_hidden_size": 256,
        "decoder_ffn_dim": 512,
        "head_hidden_size": 128,
    },
    # The authors' model (their `configs/nyu.json`): DINOv2-L/14 with NYU stage ends (KITTI: [5, 11, 17, 23]) and
    # Swin-B window 7 / 224.
    "large": {
        "vfm_pretrained_name_or_path": "facebook/dinov2-large",
        "encoder_pretrained_name_or_path": "microsoft/swin-base-patch4-window7-224",
        "vfm_stage_layers": [4, 11, 17, 23],
        "prompt_dim": 384,
        "prompt_attention_heads": 8,
        "decoder_hidden_size": 256,
        "decoder_ffn_dim": 512,
        "head_hidden_size": 128,
    },
}


MAX_PARAMETERS = 4_000_000_000
"""The most parameters a WEDepth config may describe (16 GB in float32), three times DINOv2-g with Swin-L: a config
beyond it holds a mistyped size (say `decoder_hidden_size: 100000`), refused before anything is allocated."""

MAX_ACTIVATION_BYTES = 4 * 2**30
"""The largest float32 activation a WEDepth config may produce on a 480x640 image (the default processing size), about
80 times the large preset's: a config beyond it is refused like one with too many parameters."""

REFERENCE_SIZE = (480, 640)
"""The image size (height, width) the activation estimate is made for."""

# Size fields of the sub-configs, checked before the sub-configs are built: whole numbers >= 1, or lists of them.
_VFM_SIZES = ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size", "image_size", "num_channels")
_ENCODER_SIZES = ("embed_dim", "embedding_size", "patch_size", "window_size", "image_size", "num_channels")
_ENCODER_SIZE_LISTS = ("depths", "num_heads", "hidden_sizes")
_WHOLE_NUMBERS = (
    "prompt_num",
    "prompt_dim",
    "prompt_attention_heads",
    "extraction_depth",
    "injection_depth",
    "decoder_hidden_size",
    "decoder_layers",
    "decoder_attention_heads",
    "decoder_sampling_points",
    "decoder_ffn_dim",
    "head_hidden_size",
)


def _is_whole(value: Any) -> bool:
    """Whether `value` is an int (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    """Whether `value` is a finite int or float (a bool is not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require_whole(name: str, value: Any) -> None:
    """Raise unless `value` is a whole number >= 1 (the type is named: "32" from a JSON file is a string)."""
    if not _is_whole(value) or value < 1:
        raise ValueError(f"`{name}` must be a whole number >= 1, got {value!r} ({type(value).__name__}).")


def _require_sizes(prefix: str, values: Any, names: tuple[str, ...], lists: tuple[str, ...] = ()) -> None:
    """Raise unless every size field of a sub-config (a dict or a config) that is set is a whole number >= 1 (or a
    pair of them, for image and patch sizes), every listed one a non-empty list of them, and `mlp_ratio` positive."""
    get = values.get if isinstance(values, dict) else lambda key: getattr(values, key, None)
    for name in names:
        value = get(name)
        pair = isinstance(value, (list, tuple)) and len(value) == 2 and name in ("image_size", "patch_size")
        for item in value if pair else [value] if value is not None else []:
            _require_whole(f"{prefix}.{name}", item)
    for name in lists:
        value = get(name)
        if value is not None and (not isinstance(value, (list, tuple)) or not value):
            raise ValueError(f"`{prefix}.{name}` must be a list of whole numbers >= 1, got {value!r}.")
        for item in value or []:
            _require_whole(f"{prefix}.{name}", item)
    ratio = get("mlp_ratio")
    if ratio is not None and (not _is_real(ratio) or ratio <= 0):
        raise ValueError(f"`{prefix}.mlp_ratio` must be a positive number, got {ratio!r}.")


def _refuse_a_huge_vfm(values: dict[str, Any]) -> None:
    """Refuse a VFM dict whose attention weights alone exceed `MAX_PARAMETERS`, before `Dinov2Config` is built from
    it: transformers makes a list entry per layer (stage names), so `num_hidden_layers: 10000000` takes minutes."""
    layers, width = values.get("num_hidden_layers", 12), values.get("hidden_size", 768)
    if layers * 4 * width * width > MAX_PARAMETERS:
        raise ValueError(
            f"This WEDepth config describes more than {_number(layers * 4 * width * width)} parameters in the VFM "
            f"alone (vfm_config hidden_size={width}, num_hidden_layers={layers}), more than the limit of "
            f"{_number(MAX_PARAMETERS)}. Check those sizes."
        )


def _pair(value: Any) -> tuple[int, int]:
    """An image or patch size as (height, width)."""
    return (value[0], value[1]) if isinstance(value, (list, tuple)) else (value, value)


def _number(count: float) -> str:
    """A parameter count in words: "12,345", "35.0 million", "4.8 billion", "1.2e+15"."""
    if count >= 1e12:
        return f"{count:.1e}"
    if count >= 1e9:
        return f"{count / 1e9:,.1f} billion"
    return f"{count / 1e6:,.1f} million" if count >= 1e6 else f"{count:,.0f}"


def _gigabytes(size: float) -> str:
    """A size in bytes as "12.3 GB", or "1.2e+15 bytes" beyond a thousand GB."""
    return f"{size / 1e9:,.1f} GB" if size < 1e12 else f"{size:.1e} bytes"


def default_vfm_stage_layers(num_hidden_layers: int) -> list[int]:
    """Evenly spaced stage ends: [2, 5, 8, 11] for 12 layers, [5, 11, 17, 23] for 24, [9, 19, 29, 39] for 40."""
    return [(stage + 1) * num_hidden_layers // NUM_STAGES - 1 for stage in range(NUM_STAGES)]


def _check_sub_config_dicts(config: "WEDepthConfig") -> None:
    """Check the sizes of sub-configs given as dicts before they are built (and before anything is built from this
    config): a wrong type or an absurd size is one clear ValueError naming the field."""
    if isinstance(config.vfm_config, dict):
        _require_sizes("vfm_config", config.vfm_config, _VFM_SIZES)
        _refuse_a_huge_vfm(config.vfm_config)
    if isinstance(config.encoder_config, dict):
        _require_sizes("encoder_config", config.encoder_config, _ENCODER_SIZES, _ENCODER_SIZE_LISTS)


def _validate_built_config(config: "WEDepthConfig") -> None:
    """Check a config once its sub-configs are built, and complete it (encoder stages, VFM stage ends): every
    field's type and range, their relations and the model's size."""
    if getattr(config.vfm_config, "model_type", None) != "dinov2":
        raise ValueError(
            f"`vfm_config` must be a Dinov2Config (model_type 'dinov2'), got "
            f"{type(config.vfm_config).__name__} with model_type {getattr(config.vfm_config, 'model_type', None)!r}."
        )
    _require_sizes("vfm_config", config.vfm_config, _VFM_SIZES)
    _require_sizes("encoder_config", config.encoder_config, _ENCODER_SIZES, _ENCODER_SIZE_LISTS)
    _configure_encoder_stages(config)
    if config.vfm_stage_layers is None:
        config.vfm_stage_layers = default_vfm_stage_layers(config.vfm_config.num_hidden_layers)
    layers = config.vfm_stage_layers
    if not isinstance(layers, (list, tuple)) or not all(
        _is_whole(index) or (isinstance(index, float) and index.is_integer()) for index in layers
    ):
        raise ValueError(f"`vfm_stage_layers` must be a list of whole numbers, got {layers!r}.")
    config.vfm_stage_layers = [int(index) for index in layers]
    _validate_types(config)
    _validate_relations(config)
    _validate_size(config)


def _validate_types(config: "WEDepthConfig") -> None:
    """Raise unless every WEDepth field has its type and a sane range (JSON files and YAML hold any value)."""
    for name in _WHOLE_NUMBERS:
        _require_whole(name, getattr(config, name))
    for name in ("vfm_pretrained_name_or_path", "encoder_pretrained_name_or_path", "vfm_revision"):
        value = getattr(config, name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"`{name}` must be a string or null, got {value!r} ({type(value).__name__}).")
    fingerprint = config.vfm_fingerprint
    if fingerprint is not None and not (
        isinstance(fingerprint, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", fingerprint)
    ):
        raise ValueError(f'`vfm_fingerprint` must be null or "sha256:" and 64 hex digits, got {fingerprint!r}.')
    check_training_camera(config.training_camera)
    if config.deformable_attention_implementation not in DEFORMABLE_ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"`deformable_attention_implementation` must be one of {DEFORMABLE_ATTENTION_IMPLEMENTATIONS}, got "
            f"{config.deformable_attention_implementation!r}."
        )
    if not isinstance(config.vfm_in_checkpoint, bool):
        raise ValueError(
            f"`vfm_in_checkpoint` must be true or false, got {config.vfm_in_checkpoint!r} "
            f"({type(config.vfm_in_checkpoint).__name__})."
        )
    for name, lowest, open_low in (
        ("injection_mlp_ratio", 0.0, True),
        ("min_depth", 0.0, True),
        ("silog_lambda", 0.0, False),
        ("layer_norm_eps", 0.0, True),
        ("initializer_range", 0.0, False),
    ):
        value = getattr(config, name)
        if not _is_real(value) or value < lowest or (open_low and value == lowest):
            bound = f"> {lowest:g}" if open_low else f">= {lowest:g}"
            raise ValueError(f"`{name}` must be a finite number {bound}, got {value!r} ({type(value).__name__}).")
    if config.max_depth is not None and not _is_real(config.max_depth):
        raise ValueError(f"`max_depth` must be null or a finite number, got {config.max_depth!r}.")
    if int(config.prompt_dim * config.injection_mlp_ratio) < 1:
        raise ValueError(
            f"`injection_mlp_ratio` ({config.injection_mlp_ratio}) times `prompt_dim` ({config.prompt_dim}) must be at "
            "least 1: the injection MLP's width."
        )
    vfm = config.vfm_config
    if vfm.hidden_size % vfm.num_attention_heads != 0:
        raise ValueError(
            f"`vfm_config.hidden_size` ({vfm.hidden_size}) must be divisible by `vfm_config.num_attention_heads` "
            f"({vfm.num_attention_heads})."
        )


def _configure_encoder_stages(config: "WEDepthConfig") -> None:
    """Make the encoder return its four stages, or say why it cannot."""
    stage_names = getattr(config.encoder_config, "stage_names", None)
    if stage_names is None:
        raise ValueError(
            f"`encoder_config` must be a transformers backbone config (one with `stage_names`, e.g. SwinConfig, "
            f"ConvNextConfig, ResNetConfig); got {type(config.encoder_config).__name__}."
        )
    stages = [name for name in stage_names if name != "stem"]
    if len(stages) != NUM_STAGES:
        raise ValueError(
            f"WEDepth needs an encoder with exactly four stages (strides 4/8/16/32); `encoder_config` "
            f"({type(config.encoder_config).__name__}) has {len(stages)}: {stages}. Give it four stages, "
            f"e.g. `depths` of length 4."
        )
    if list(config.encoder_config.out_features) != stages:
        config.encoder_config.out_features = stages


def _validate_relations(config: "WEDepthConfig") -> None:
    """Raise unless the fields fit together: VFM stage ends within the VFM, widths divisible by their heads, the depth
    range and the loss weight."""
    num_layers = config.vfm_config.num_hidden_layers
    layers = config.vfm_stage_layers
    if len(layers) != NUM_STAGES:
        raise ValueError(f"`vfm_stage_layers` needs one entry per stage (4), got {len(layers)}: {layers}.")
    if any(index < 0 or index >= num_layers for index in layers):
        raise ValueError(
            f"`vfm_stage_layers` {layers} out of range: the VFM has {num_layers} layers (indices 0 to "
            f"{num_layers - 1})."
        )
    if any(later <= earlier for earlier, later in zip(layers, layers[1:])):
        raise ValueError(f"`vfm_stage_layers` must be strictly increasing, got {layers}.")
    if layers[-1] != num_layers - 1:
        raise ValueError(
            f"`vfm_stage_layers` must end at the last VFM layer ({num_layers - 1}) so that the whole VFM runs "
            f"unmodified; got {layers}."
        )
    for name, width, heads in (
        ("prompt_dim", config.prompt_dim, config.prompt_attention_heads),
        ("decoder_hidden_size", config.decoder_hidden_size, config.decoder_attention_heads),
    ):
        if width % heads != 0:
            raise ValueError(f"`{name}` ({width}) must be divisible by its number of attention heads ({heads}).")
        if width % 4 != 0:
            raise ValueError(f"`{name}` ({width}) must be a multiple of 4 for the 2-D sine position encoding.")
    if not 0 < config.min_depth or (config.max_depth is not None and not config.min_depth < config.max_depth):
        raise ValueError(
            "Need 0 < min_depth (and min_depth < max_depth when max_depth is set), got "
            f"min_depth={config.min_depth}, max_depth={config.max_depth}."
        )
    if not 0.0 <= config.silog_lambda < 1.0:
        raise ValueError(
            f"`silog_lambda` must lie in [0, 1) for the SILog loss to stay real, got {config.silog_lambda}."
        )


def _encoder_widths(config: "WEDepthConfig") -> list[int]:
    """The channels of the encoder's four stages: Swin doubles `embed_dim` per stage, others list `hidden_sizes`."""
    encoder = config.encoder_config
    if getattr(encoder, "hidden_sizes", None) is not None:
        return [int(width) for width in encoder.hidden_sizes][-NUM_STAGES:]
    return [encoder.embed_dim * 2**stage for stage in range(NUM_STAGES)]


def _estimate_parameters(config: "WEDepthConfig") -> dict[str, int]:
    """The parameter count per part ("vfm", "encoder", "new_modules") of the model `config` describes, from its sizes
    alone; `WEDepthConfig.estimated_parameters` says how exact it is."""
    vfm = config.vfm_config
    width, layers = vfm.hidden_size, vfm.num_hidden_layers
    mlp = int(width * vfm.mlp_ratio)
    patch_height, patch_width = _pair(vfm.patch_size)
    image_height, image_width = _pair(vfm.image_size)
    positions = (image_height // patch_height) * (image_width // patch_width) + 1
    vfm_count = layers * (4 * width * width + 2 * width * mlp + mlp + 11 * width)
    vfm_count += vfm.num_channels * patch_height * patch_width * width + (positions + 4) * width

    encoder = config.encoder_config
    widths = _encoder_widths(config)
    depths = list(encoder.depths)[-NUM_STAGES:]
    if getattr(encoder, "hidden_sizes", None) is None:
        ratio = getattr(encoder, "mlp_ratio", 4.0)
        window = getattr(encoder, "window_size", 7)
        heads = list(getattr(encoder, "num_heads", [1] * NUM_STAGES))
        patch_height, patch_width = _pair(encoder.patch_size)
        encoder_count = encoder.num_channels * patch_height * patch_width * widths[0] + 3 * widths[0]
        for stage, (channels, depth) in enumerate(zip(widths, depths)):
            hidden = int(channels * ratio)
            block = 4 * channels * channels + 2 * channels * hidden + hidden + 8 * channels
            encoder_count += depth * (block + (2 * window - 1) ** 2 * heads[stage]) + 2 * channels
            if stage < NUM_STAGES - 1:
                encoder_count += 8 * channels * channels + 8 * channels
    else:
        encoder_count = sum(depth * channels * channels for channels, depth in zip(widths, depths))

    d, prompts, vfm_width = config.prompt_dim, config.prompt_num, width
    attention = 3 * d * d + 3 * d
    mlp_width = int(d * config.injection_mlp_ratio)
    extraction = config.extraction_depth * (2 * attention + 7 * d) + d * d + d + d * vfm_width + vfm_width
    projection = vfm_width * d + d + d * d + d
    injection = attention + 2 * d + config.injection_depth * (attention + 4 * d + 2 * d * mlp_width + mlp_width + 3 * d)
    new = sum(channels * d + d for channels in widths) + 10 * d
    new += NUM_STAGES * (prompts * d + extraction + projection + injection) + projection
    new += NUM_STAGES * (d * d + 23 * d) + d * d + d
    hidden, ffn = config.decoder_hidden_size, config.decoder_ffn_dim
    samples = config.decoder_attention_heads * NUM_STAGES * config.decoder_sampling_points
    layer = 4 * hidden + 3 * samples * hidden + 3 * samples + 2 * hidden * hidden + 2 * hidden
    layer += 2 * hidden * ffn + ffn + hidden
    new += NUM_STAGES * (d * hidden + 3 * hidden) + NUM_STAGES * hidden + config.decoder_layers * layer
    new += NUM_STAGES * (hidden * hidden + d * hidden + 9 * hidden * hidden + 6 * hidden)
    head = config.head_hidden_size
    new += NUM_STAGES * (2 * hidden + 9 * hidden * head + 13 * head * head + 6 * head + 1)
    return {"vfm": vfm_count, "encoder": encoder_count, "new_modules": new}


def _estimate_activation_bytes(config: "WEDepthConfig") -> int:
    """The largest float32 activation, in bytes, of a forward pass at `REFERENCE_SIZE`;
    `WEDepthConfig.estimated_activation_bytes` says which maps it weighs."""
    height, width = REFERENCE_SIZE
    quarter = (height // 4) * (width // 4)
    levels = sum(quarter // 4**stage for stage in range(NUM_STAGES))
    encoder_ratio = getattr(config.encoder_config, "mlp_ratio", 4.0)
    patch_height, patch_width = _pair(config.vfm_config.patch_size)
    tokens = config.prompt_num + 1 + max(1, height // patch_height) * max(1, width // patch_width)
    largest = max(
        quarter * int(_encoder_widths(config)[0] * encoder_ratio),
        quarter * int(config.prompt_dim * max(1.0, config.injection_mlp_ratio)),
        levels * max(config.decoder_ffn_dim, config.decoder_hidden_size),
        4 * quarter * config.head_hidden_size,
        tokens * int(config.vfm_config.hidden_size * config.vfm_config.mlp_ratio),
    )
    return 4 * largest


def _validate_size(config: "WEDepthConfig") -> None:
    """Refuse a config whose model would be absurdly large (`MAX_PARAMETERS`, `MAX_ACTIVATION_BYTES`) before
    anything is allocated: such a size is a typo, and building it would exhaust the memory first."""
    parts = config.estimated_parameters()
    total = sum(parts.values())
    if total > MAX_PARAMETERS:
        sizes = {
            "vfm": f"vfm_config hidden_size={config.vfm_config.hidden_size}, "
            f"num_hidden_layers={config.vfm_config.num_hidden_layers}",
            "encoder": f"encoder_config widths={_encoder_widths(config)}, depths={list(config.encoder_config.depths)}",
            "new_modules": ", ".join(
                f"{name}={getattr(config, name)}"
                for name in (
                    "prompt_num",
                    "prompt_dim",
                    "decoder_hidden_size",
                    "decoder_ffn_dim",
                    "head_hidden_size",
                )
            ),
        }
        largest = max(parts, key=parts.get)
        raise ValueError(
            f"This WEDepth config describes about {_number(total)} parameters ({_gigabytes(total * 4)} in float32)"
            f", more than the limit of {_number(MAX_PARAMETERS)}; most of them in the "
            f"{largest.replace('_', ' ')} ({_number(parts[largest])}: {sizes[largest]}). Check those sizes."
        )
    activation = config.estimated_activation_bytes()
    if activation > MAX_ACTIVATION_BYTES:
        raise ValueError(
            f"This WEDepth config would need one activation of about {activation / 2**30:,.1f} GiB for a "
            f"{REFERENCE_SIZE[0]}x{REFERENCE_SIZE[1]} image, more than the limit of "
            f"{MAX_ACTIVATION_BYTES / 2**30:g} GiB (prompt_num={config.prompt_num}, prompt_dim={config.prompt_dim}, "
            f"decoder_ffn_dim={config.decoder_ffn_dim}, head_hidden_size={config.head_hidden_size}, "
            f"vfm_config.hidden_size={config.vfm_config.hidden_size}). Check those sizes."
        )


class WEDepthConfig(PreTrainedConfig):
    r"""
    Configuration of a [`WEDepthForDepthEstimation`] model.

    Every value, the sub-configs' sizes included, is type- and range-checked when the config is made (a JSON or YAML
    file holds any value): a wrong type or range is a `ValueError` naming the field, and so is a config whose model
    would have more than `MAX_PARAMETERS` parameters or an activation over `MAX_ACTIVATION_BYTES` on a 480x640 image
    (`estimated_parameters`, `estimated_activation_bytes`), before anything is built.

    Args:
        vfm_config (`dict` or `Dinov2Config`, *optional*):
            The frozen vision foundation model (any DINOv2 size). Defaults to a DINOv2-S/14 architecture.
        encoder_config (`dict` or backbone config, *optional*):
            The trainable depth encoder: a transformers backbone config with four stages at strides 4/8/16/32 (Swin in
            the paper; ConvNeXt or ResNet configs work as well). Defaults to a Swin-T architecture.
        vfm_pretrained_name_or_path (`str`, *optional*):
            Hub id or folder of the pretrained VFM, used by [`WEDepthForDepthEstimation.from_pretrained_backbones`].
        encoder_pretrained_name_or_path (`str`, *optional*):
            Hub id or folder of the pretrained encoder, used likewise.
        vfm_revision (`str`, *optional*):
            The commit of the Hub repo `vfm_pretrained_name_or_path` the VFM's weights were loaded from.
        vfm_fingerprint (`str`, *optional*):
            "sha256:..." over the names, dtypes, shapes and bytes of the VFM's weights, recorded when they were loaded
            from `vfm_pretrained_name_or_path`; None when the VFM's weights have no verified source.
        vfm_in_checkpoint (`bool`, *optional*, defaults to `True`):
            Whether the saved weights include the VFM. A folder saved with `save_pretrained(include_vfm=False)` says
            False, and `from_pretrained` then loads the VFM from its recorded source and checks its fingerprint.
        prompt_num (`int`, *optional*, defaults to 50):
            Learnable prompt tokens per VFM stage.
        prompt_dim (`int`, *optional*, defaults to 384):
            Common width D of the encoder streams, prompts and injections.
        prompt_attention_heads (`int`, *optional*, defaults to 8):
            Heads of the prompt/pixel attention in the extraction blocks and the prompt injection.
        vfm_stage_layers (`list[int]`, *optional*):
            Index of the last VFM layer of each of the four stages, strictly increasing, the last one being the final
            VFM layer. Defaults to evenly spaced stages ([2, 5, 8, 11] for 12 layers).
        extraction_depth (`int`, *optional*, defaults to 2):
            Cross-attention + self-attention iterations of each extraction block.
        injection_depth (`int`, *optional*, defaults to 1):
            Cross-attention + MLP blocks of each prompt injection.
        injection_mlp_ratio (`float`, *optional*, defaults to 2.0):
            Hidden width of the injection MLP, as a multiple of `prompt_dim`.
        decoder_hidden_size (`int`, *optional*, defaults to 256):
            Width of the deformable pixel decoder and its FPN.
        decoder_layers (`int`, *optional*, defaults to 4):
            Deformable-attention encoder layers.
        decoder_attention_heads (`int`, *optional*, defaults to 4):
            Heads of the multi-scale deformable attention.
        decoder_sampling_points (`int`, *optional*, defaults to 4):
            Sampling points per head and level of the deformable attention.
        decoder_ffn_dim (`int`, *optional*, defaults to 512):
            Feed-forward width of the deformable encoder layers.
        deformable_attention_implementation (`str`, *optional*, defaults to `"gather"`):
            How the deformable attention samples its values: `"grid_sample"`, per level with `grid_sample` (the
            readable form, as Mask2Former), or `"gather"`, one weighted `embedding_bag` gather with a backward made
            for it (`gather_deformable_attention.py`). Both compute the same values and gradients up to rounding.
            "gather" is the default: on CPU (small preset, 480x640) its deformable layers run 1.3-1.4x faster than
            grid_sample's, forward and forward + backward (`benchmarks/deformable_attention.py`, results in
            `benchmarks/results/deformable_attention_cpu.json`). Not a property of the weights: choose it when
            loading, `from_pretrained(..., deformable_attention_implementation="grid_sample")`.
        head_hidden_size (`int`, *optional*, defaults to 128):
            Width of the depth heads (half the decoder width in the authors' model).
        min_depth (`float`, *optional*, defaults to 0.01):
            Labels at or below this depth (metres) are invalid and ignored by the loss: the authors' training mask
            (their datasets' `min_depth`, NYU and KITTI alike).
        max_depth (`float`, *optional*):
            If set, labels at or above this depth are ignored by the loss too. The authors' training mask has no upper
            bound, so it defaults to None; evaluation ranges (10 m NYU, 80 m KITTI) are set where metrics are computed.
        silog_lambda (`float`, *optional*, defaults to 0.5):
            Variance weight of the scale-invariant log loss, in [0, 1).
        layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the layer norms of the new modules (PyTorch's default, which the authors' modules use).
        training_camera (`dict`, *optional*):
            The camera of the training images, as the image processor's `training_camera` (written by `wedepth train`
            and `wedepth convert-original`); None where unknown.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Kept for transformers' generic initialisation; WEDepth's own modules are initialised as the authors' code
            initialises them.

    Example:

    ```python
    >>> from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation
    >>> config = WEDepthConfig.from_preset("small")
    >>> model = WEDepthForDepthEstimation(config)  # random weights; see `from_pretrained_backbones`
    ```
    """

    model_type = "wedepth"
    sub_configs_defaults = {
        "vfm_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="dinov2",
            init_kwargs={"image_size": 518, **_DINOV2_SIZES["facebook/dinov2-small"]},
        ),
        "encoder_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="swin",
            init_kwargs={
                "out_features": list(_ENCODER_OUT_FEATURES),
                **_SWIN_SIZES["microsoft/swin-tiny-patch4-window7-224"],
                **_SWIN_RECIPE["microsoft/swin-tiny-patch4-window7-224"],
            },
        ),
    }

    vfm_config: dict | PreTrainedConfig | None = None
    encoder_config: dict | PreTrainedConfig | None = None
    vfm_pretrained_name_or_path: str | None = None
    encoder_pretrained_name_or_path: str | None = None
    vfm_revision: str | None = None
    vfm_fingerprint: str | None = None
    vfm_in_checkpoint: bool = True
    prompt_num: int = 50
    prompt_dim: int = 384
    prompt_attention_heads: int = 8
    vfm_stage_layers: list[int] | None = None
    extraction_depth: int = 2
    injection_depth: int = 1
    injection_mlp_ratio: float = 2.0
    decoder_hidden_size: int = 256
    decoder_layers: int = 4
    decoder_attention_heads: int = 4
    decoder_sampling_points: int = 4
    decoder_ffn_dim: int = 512
    deformable_attention_implementation: str = "gather"
    head_hidden_size: int = 128
    min_depth: float = 0.01
    max_depth: float | None = None
    silog_lambda: float = 0.5
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    training_camera: dict | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        _check_sub_config_dicts(self)
        super().__post_init__(**kwargs)
        _validate_built_config(self)

    def estimated_parameters(self) -> dict[str, int]:
        """The parameter count of the model this config describes, per part ("vfm", "encoder", "new_modules"), from
        its sizes alone (nothing is built): exact for WEDepth's own modules, DINOv2 and Swin up to a few biases and
        norms; for other encoders (ConvNeXt, ResNet) a lower bound of one width x width matrix per block."""
        return _estimate_parameters(self)

    def estimated_activation_bytes(self) -> int:
        """The largest float32 activation (in bytes) of a forward pass over one image of `REFERENCE_SIZE`, from the
        sizes alone: the widest map at stride 4 (stream, injection MLP, encoder MLP), the decoder's feed-forward over
        all levels, the finest head's upsampled map, or the VFM's MLP over prompts and patches."""
        return _estimate_activation_bytes(self)

    def to_dict(self) -> dict[str, Any]:
        """Serialisable dict. Where the model's remote code is recorded (`auto_map`), the image processor's is too.

        The image processor's own `preprocessor_config.json` names no class (see `WEDepthImageProcessor.to_dict`), so
        that `pipeline("depth-estimation", model=folder)` with wedepth_hf imported never asks about remote code.
        """
        output = super().to_dict()
        auto_map = output.get("auto_map")
        model_reference = (auto_map or {}).get("AutoModelForDepthEstimation")
        if model_reference is not None:
            repo_prefix = model_reference.split("--")[0] + "--" if "--" in model_reference else ""
            auto_map.setdefault("AutoImageProcessor", f"{repo_prefix}image_processing_wedepth.WEDepthImageProcessor")
        return output

    @classmethod
    def from_preset(cls, name: str, **kwargs: Any) -> "WEDepthConfig":
        """Config of a named size: "small" (DINOv2-S + Swin-T), "base" (DINOv2-B + Swin-S), "large" (the authors'
        model).

        The VFM and encoder architectures are those of the pretrained checkpoints recorded in
        `vfm_pretrained_name_or_path` / `encoder_pretrained_name_or_path`, with the authors' Swin recipe (LayerNorm
        eps 1e-6, their stochastic depth per Swin size); `kwargs` override any field.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown WEDepth preset {name!r}; choose one of {sorted(PRESETS)}.")
        values: dict[str, Any] = dict(PRESETS[name])
        vfm_id = values["vfm_pretrained_name_or_path"]
        encoder_id = values["encoder_pretrained_name_or_path"]
        values["vfm_config"] = {
            "model_type": "dinov2",
            "image_size": 518,
            "patch_size": 14,
            "mlp_ratio": 4,
            **_DINOV2_SIZES[vfm_id],
        }
        values["encoder_config"] = {
            "model_type": "swin",
            "patch_size": 4,
            "out_features": list(_ENCODER_OUT_FEATURES),
            **_SWIN_SIZES[encoder_id],
            **_SWIN_RECIPE[encoder_id],
        }
        values.update(kwargs)
        return cls(**values)


__all__ = [
    "DEFORMABLE_ATTENTION_IMPLEMENTATIONS",
    "MAX_ACTIVATION_BYTES",
    "MAX_PARAMETERS",
    "PRESETS",
    "WEDepthConfig",
    "default_vfm_stage_layers",
]
