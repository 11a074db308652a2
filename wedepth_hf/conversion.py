"""Conversion of the authors' WEDepth checkpoints (github book-book24/WEDepth) into `WEDepthForDepthEstimation`.

The authors' `train.py` saves `model.state_dict()` of a DistributedDataParallel-wrapped `WEDepth` (keys prefixed with
`module.`) as a `.pth` file; their `configs/nyu.json` / `kitti.json` describe the model. `convert_original_checkpoint`
maps every official key to this package's parameter names (or names it as one the authors' forward never uses),
derives the decoder and head widths from the tensors' shapes, and returns a model that computes what their code
computes (see `tests/test_parity.py`).

`load_swin_checkpoint` / `convert_swin_state_dict` turn the Swin repository's ImageNet `.pth` (the authors' starting
point for their encoder, e.g. `swin_base_patch4_window7_224.pth`), or timm's version of it, into the weights of
transformers' `SwinBackbone`, which `WEDepthForDepthEstimation.from_pretrained_backbones` then uses as the encoder.
"""

import copy
import json
import math
import re
import reprlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Dinov2Config, SwinBackbone, SwinConfig
from transformers.utils import logging

from .configuration_wedepth import _DINOV2_SIZES, _SWIN_RECIPE, _SWIN_SIZES, NUM_STAGES, WEDepthConfig
from .folders import listed_names, write_folder
from .modeling_wedepth import WEDepthForDepthEstimation


logger = logging.get_logger(__name__)

# The authors' `encoder_name` values (their `module/encoder.py`) and the transformers checkpoints of the same Swin.
_ENCODER_CHECKPOINTS = {
    "swin_tiny": "microsoft/swin-tiny-patch4-window7-224",
    "swin_small": "microsoft/swin-small-patch4-window7-224",
    "swin_base": "microsoft/swin-base-patch4-window7-224",
}
_DEFAULT_VFM = "facebook/dinov2-large"
# The shorter side of the authors' training images (NYU at 480x640, KITTI's 352x1216 crop): the processing
# resolution a converted folder records.
_TRAINING_SHORTER_SIDE = {"NYUDataset": 480, "KITTIDataset": 352}
_AUTHORS_SWIN_EPS = 1e-6
"""Every LayerNorm of the authors' Swin (`norm_layer=partial(nn.LayerNorm, eps=1e-6)` in all their builders)."""

# Official keys that their forward never reads: `SplitFeature` applies `dwconv1` at every scale, and `FuseFuture` only
# uses the last VFM stage's patch tokens (`down_feat_4`).
UNUSED_ORIGINAL_KEYS = re.compile(r"^(sf\.dwconv[234]|partition_enhance\.down_feat_[123]\.[02])\.(weight|bias)$")

_SWIN_BLOCK_PARTS = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.o_proj",
    "attn.relative_position_bias_table": "attention.relative_position_bias.relative_position_bias_table",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_DINOV2_PARTS = {
    "attention.attention.query": "attention.q_proj",
    "attention.attention.key": "attention.k_proj",
    "attention.attention.value": "attention.v_proj",
    "attention.output.dense": "attention.o_proj",
}
_PERCEIVER_PARTS = {
    "layernorm1": "query_norm",
    "layernorm2": "context_norm",
    "query": "query",
    "key": "key",
    "value": "value",
}
_MLP_LINEARS = {"0": "fc1", "2": "fc2"}
"""The linear layers of the authors' two-layer `nn.Sequential` projections, by their index in it."""
_FPN_CONVS = {"lateral_fpn": "lateral", "out": "output", "fpn": "fpn"}
"""The authors' pixel-decoder convolution groups and this package's names for them (`<name>_convs`)."""
_HEAD_PARTS = {"0": "input_norm", "1": "conv1", "2": "upsample", "3": "conv2", "4": "norm", "5": "log_depth"}
_INPUT_ADAPTER_PARTS = {"0": "projection", "1": "norm"}
"""The two modules of the authors' pixel-decoder input adapters (`nn.Sequential`), by their index in it."""
_INJECTION_MLP_PARTS = {"0": "norm", "1": "fc1", "3": "fc2"}
"""The norm and linear layers of the authors' prompt-injection MLPs (`nn.Sequential`), by their index in it."""
_DECODER_LAYER_PARTS = {
    "self_attn": "self_attn",
    "norm1": "self_attn_layer_norm",
    "norm2": "final_layer_norm",
    "linear1": "fc1",
    "linear2": "fc2",
}
# The lookup tables of the renaming rules, by the name of the pattern group whose text is looked up (see `_renamed`).
_GROUP_TABLES: dict[str, Mapping[str, str]] = {
    "swin_block_part": _SWIN_BLOCK_PARTS,
    "dinov2_part": _DINOV2_PARTS,
    "perceiver_part": _PERCEIVER_PARTS,
    "mlp_linear": _MLP_LINEARS,
    "injection_mlp_part": _INJECTION_MLP_PARTS,
    "input_adapter_part": _INPUT_ADAPTER_PARTS,
    "decoder_layer_part": _DECODER_LAYER_PARTS,
    "fpn_conv": _FPN_CONVS,
    "head_part": _HEAD_PARTS,
}


def _index(text: str) -> int:
    """The authors' 1-based module number as this package's 0-based index."""
    return int(text) - 1


def _group_value(name: str, text: str) -> int | str:
    """What the pattern group `name`, which matched `text`, puts into a renaming rule's template."""
    if name.endswith("_index"):
        return _index(text)
    if name.endswith("_number"):
        return int(text) + 1
    return _GROUP_TABLES[name][text] if name in _GROUP_TABLES else text


def _compiled(*rules: tuple[str, str]) -> list[tuple[re.Pattern[str], str]]:
    """Renaming rules (pattern, `str.format` template of the new key) with their patterns compiled."""
    return [(re.compile(pattern), template) for pattern, template in rules]


def _renamed(rules: list[tuple[re.Pattern[str], str]], key: str) -> str | None:
    """`key` renamed by the first of `rules` whose pattern matches it; None if none does."""
    for pattern, template in rules:
        if match := pattern.match(key):
            return template.format(**{name: _group_value(name, text) for name, text in match.groupdict().items()})
    return None


def _numbered(official: str, ours: str) -> tuple[str, str]:
    """The rule for one of the authors' numbered modules, `<official><n>.<rest>` -> `<ours>.<n - 1>.<rest>`."""
    return rf"^{re.escape(official)}(?P<module_index>\d)\.(?P<rest>.+)$", f"{ours}.{{module_index}}.{{rest}}"


# ---- Swin-repository keys -> transformers' SwinBackbone --------------------------------------------------------------
# The module names of the Swin repository (github microsoft/Swin-Transformer: its ImageNet `.pth` files, and its
# detection/segmentation backbone, which the authors' encoder is; that one replaces the classifier's final `norm` by a
# LayerNorm per output stage, `norm0`..`norm3`). timm's Swin differs only in where it keeps the patch merging (see
# `_swin_repository_keys`). Shared by the authors' checkpoint (its `encoder.*` keys) and `convert_swin_state_dict`.

# (pattern on a Swin-repository key, `str.format` template of the SwinBackbone key); the first match wins. A named
# group ending in `_index` gives the template a 1-based number as the 0-based index, one ending in `_number` a 0-based
# index as the 1-based number, one named in `_GROUP_TABLES` its entry in that table; any other gives its text.
_SWIN_RULES = _compiled(
    (r"^patch_embed\.proj\.(?P<rest>weight|bias)$", "swin.embeddings.patch_embeddings.projection.{rest}"),
    (r"^patch_embed\.norm\.(?P<rest>weight|bias)$", "swin.embeddings.norm.{rest}"),
    (r"^absolute_pos_embed$", "swin.embeddings.position_embeddings"),
    (
        r"^layers\.(?P<layer>\d+)\.blocks\.(?P<block>\d+)\.(?P<swin_block_part>norm1|norm2|attn\.proj|"
        r"attn\.relative_position_bias_table|mlp\.fc1|mlp\.fc2)(?P<rest>\.weight|\.bias|)$",
        "swin.encoder.layers.{layer}.blocks.{block}.{swin_block_part}{rest}",
    ),
    (
        r"^layers\.(?P<layer>\d+)\.downsample\.(?P<rest>(?:reduction|norm)\.(?:weight|bias))$",
        "swin.encoder.layers.{layer}.downsample.{rest}",
    ),
    # The detection backbone's per-stage output norms are SwinBackbone's `hidden_states_norms`.
    (r"^norm(?P<stage_number>\d)\.(?P<rest>weight|bias)$", "hidden_states_norms.stage{stage_number}.{rest}"),
    # The classifier's final norm: SwinModel's `layernorm`, which SwinBackbone keeps but never applies (as a
    # transformers classification checkpoint loaded into SwinBackbone keeps it too).
    (r"^norm\.(?P<rest>weight|bias)$", "swin.layernorm.{rest}"),
)
_SWIN_QKV = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")
_SWIN_POSITION_INDEX = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_index$")
_SWIN_ATTENTION_MASK = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.attn_mask$")
_SWIN_DOWNSAMPLE = re.compile(r"^layers\.(\d+)\.downsample\.(.+)$")


def swin_backbone_tensors(key: str, tensor: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """The SwinBackbone tensors of one Swin-repository weight, by SwinBackbone name; None for any other key.

    The fused `attn.qkv` projection becomes `q_proj`, `k_proj`, `v_proj` (its output rows are query, key, value in
    that order: the repository reshapes them as (3, heads, head_dim)); every other weight keeps its values.
    """
    if match := _SWIN_QKV.match(key):
        block = f"swin.encoder.layers.{match[1]}.blocks.{match[2]}.attention"
        parts = zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3))
        return {f"{block}.{name}.{match[3]}": part for name, part in parts}
    renamed = _renamed(_SWIN_RULES, key)
    return None if renamed is None else {renamed: tensor}


def _swin_position_index_target(key: str) -> str | None:
    """The SwinBackbone buffer a Swin-repository `relative_position_index` stands for; None for other keys."""
    if match := _SWIN_POSITION_INDEX.match(key):
        return (
            f"swin.encoder.layers.{match[1]}.blocks.{match[2]}.attention.relative_position_bias.relative_position_index"
        )
    return None


def _same_position_index(ours: torch.Tensor, theirs: torch.Tensor) -> bool:
    """Whether a saved relative-position index is the one transformers computes (stored flat there, 2-D in Swin)."""
    return ours.numel() == theirs.numel() and torch.equal(ours.flatten().to(theirs.dtype), theirs.flatten())


# ---- the authors' WEDepth checkpoint ---------------------------------------------------------------------------------

# (pattern on the official key, `str.format` template of the new key), tried in order; the first match wins. Named
# groups fill the template as in `_SWIN_RULES` (`*_index`: 1-based number -> 0-based index; a `_GROUP_TABLES` name:
# looked up; others verbatim). Their `encoder.*` keys are Swin keys, converted by `swin_backbone_tensors` first.
_RULES = _compiled(
    _numbered("sf.fc", "stream_split.projections"),
    (r"^sf\.dwconv1\.(?P<rest>.+)$", "stream_split.depthwise.{rest}"),
    (
        r"^partition_enhance\.model_hf\.encoder\.layer\.(?P<layer>\d+)\."
        r"(?P<dinov2_part>attention\.attention\.(?:query|key|value)|attention\.output\.dense)\.(?P<rest>.+)$",
        "vfm.encoder.layer.{layer}.{dinov2_part}.{rest}",
    ),
    (r"^partition_enhance\.model_hf\.(?P<rest>.+)$", "vfm.{rest}"),
    (
        r"^partition_enhance\.extra_pat_(?P<block_index>\d)\.gamma_(?P<layer_index>\d+)$",
        "prompted_vfm.extraction_blocks.{block_index}.layers.{layer_index}.gamma",
    ),
    (
        r"^partition_enhance\.extra_pat_(?P<block_index>\d)\.cross_attn_(?P<layer_index>\d+)\."
        r"(?P<perceiver_part>\w+)\.(?P<rest>.+)$",
        "prompted_vfm.extraction_blocks.{block_index}.layers.{layer_index}.cross_attention.{perceiver_part}.{rest}",
    ),
    (
        r"^partition_enhance\.extra_pat_(?P<block_index>\d)\.self_attn_(?P<layer_index>\d+)\."
        r"(?P<perceiver_part>\w+)\.(?P<rest>.+)$",
        "prompted_vfm.extraction_blocks.{block_index}.layers.{layer_index}.self_attention.{perceiver_part}.{rest}",
    ),
    (
        r"^partition_enhance\.extra_pat_(?P<block_index>\d)\.proj\.(?P<mlp_linear>[02])\.(?P<rest>.+)$",
        "prompted_vfm.extraction_blocks.{block_index}.lift.{mlp_linear}.{rest}",
    ),
    (
        r"^partition_enhance\.down_pat_(?P<stage_index>\d)\.(?P<mlp_linear>[02])\.(?P<rest>.+)$",
        "prompted_vfm.prompt_projections.{stage_index}.{mlp_linear}.{rest}",
    ),
    (
        r"^partition_enhance\.down_feat_4\.(?P<mlp_linear>[02])\.(?P<rest>.+)$",
        "prompted_vfm.patch_projection.{mlp_linear}.{rest}",
    ),
    (
        r"^inject_pt\.head_(?P<head_index>\d)\.self_attn_enc\.(?P<perceiver_part>\w+)\.(?P<rest>.+)$",
        "prompt_injections.{head_index}.prompt_self_attention.{perceiver_part}.{rest}",
    ),
    (
        r"^inject_pt\.head_(?P<head_index>\d)\.cross_attn_enc_(?P<layer_index>\d+)\."
        r"(?P<perceiver_part>\w+)\.(?P<rest>.+)$",
        "prompt_injections.{head_index}.layers.{layer_index}.cross_attention.{perceiver_part}.{rest}",
    ),
    (
        r"^inject_pt\.head_(?P<head_index>\d)\.mlp_attn_enc_(?P<layer_index>\d+)\.mlp\."
        r"(?P<injection_mlp_part>[013])\.(?P<rest>.+)$",
        "prompt_injections.{head_index}.layers.{layer_index}.mlp.{injection_mlp_part}.{rest}",
    ),
    _numbered("inject_it.conv_fuse_", "feature_injection.pixel_convs"),
    _numbered("inject_it.liner_", "feature_injection.vfm_projections"),
    _numbered("inject_it.conv_fuse_v_", "feature_injection.fused_convs"),
    _numbered("inject_it.norm_", "feature_injection.norms"),
    (r"^inject_it\.conv_all\.(?P<rest>.+)$", "feature_injection.output_projection.{rest}"),
    (
        r"^decoder\.input_adapter_(?P<level_index>\d)\.(?P<input_adapter_part>[01])\.(?P<rest>.+)$",
        "pixel_decoder.input_adapters.{level_index}.{input_adapter_part}.{rest}",
    ),
    (r"^decoder\.transformer\.level_embed$", "pixel_decoder.level_embeddings"),
    (
        r"^decoder\.transformer\.encoder\.layer_(?P<layer_index>\d+)\."
        r"(?P<decoder_layer_part>self_attn|norm1|norm2|linear1|linear2)\.(?P<rest>.+)$",
        "pixel_decoder.layers.{layer_index}.{decoder_layer_part}.{rest}",
    ),
    (
        r"^decoder\.(?P<fpn_conv>lateral_fpn|out|fpn)_conv_(?P<level_index>\d)\.weight$",
        "pixel_decoder.{fpn_conv}_convs.{level_index}.conv.weight",
    ),
    (
        r"^decoder\.(?P<fpn_conv>lateral_fpn|out|fpn)_conv_(?P<level_index>\d)\.norm\.(?P<rest>.+)$",
        "pixel_decoder.{fpn_conv}_convs.{level_index}.norm.{rest}",
    ),
    (
        r"^project\.proj_output_(?P<head_index>\d)\.(?P<head_part>\d)\.(?P<rest>.+)$",
        "depth_heads.{head_index}.{head_part}.{rest}",
    ),
)
_PROMPT = re.compile(r"^partition_enhance\.prompt_embeddings_(\d)$")


# Sentences of PyTorch's weights-only error that give advice (among it: load with weights_only=False, which runs the
# file's code) rather than say what the file holds.
_TORCH_LOAD_ADVICE = re.compile(
    r"weights.only|trusted|documentation|file an issue|safe_globals|two options|Alternatively", flags=re.IGNORECASE
)


def _unpickling_reason(error: Exception) -> str:
    """What a `torch.load(weights_only=True)` failure found in the file, on one line, without PyTorch's advice
    (which spans many lines and suggests `weights_only=False`, which this package never uses)."""
    reasons = []
    for sentence in (" ".join(part.split()) for part in re.split(r"\n\s*\n|(?<=\.)\s+", str(error))):
        if "WeightsUnpickler error:" in sentence:
            reasons.append(sentence.split("WeightsUnpickler error:", 1)[1].strip())
        elif not _TORCH_LOAD_ADVICE.search(sentence):
            reasons.append(sentence)
    return " ".join(reason for reason in reasons if reason) or type(error).__name__


def read_checkpoint_file(path: str | Path, expected: str) -> Any:
    """What a checkpoint file holds, read without running code: a `.safetensors` file, or any other file through
    `torch.load(map_location="cpu", weights_only=True)`, which refuses pickled objects other than containers and
    tensors. `expected` names the file to give instead, for the one-line error on a file that cannot be read so.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as error:
            raise ValueError(
                f"{path} could not be read as a safetensors file ({type(error).__name__}: "
                f"{' '.join(str(error).split())}). Give {expected} or a .safetensors file."
            ) from error
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{path} could not be read as a weights-only PyTorch checkpoint ({type(error).__name__}: "
            f"{_unpickling_reason(error)}). Give {expected} or a .safetensors file."
        ) from error


def load_original_state_dict(state_dict_or_path: Mapping[str, torch.Tensor] | str | Path) -> dict[str, torch.Tensor]:
    """The official state dict as a flat {key: tensor} without DDP's `module.` prefix.

    Accepts a mapping, a `.pth`/`.pt` file (read with `torch.load(weights_only=True)`: no code is executed) or a
    `.safetensors` file.
    """
    if isinstance(state_dict_or_path, (str, Path)):
        path = Path(state_dict_or_path)
        loaded: Any = read_checkpoint_file(path, "the `.pth` file the authors' train.py writes (a state dict)")
        source = str(path)
    else:
        loaded, source = state_dict_or_path, "the given mapping"
    if not isinstance(loaded, Mapping) or not all(torch.is_tensor(value) for value in loaded.values()):
        keys = list(loaded)[:8] if isinstance(loaded, Mapping) else type(loaded).__name__
        raise ValueError(
            f"{source} is not a flat state dict of tensors (found {keys}). If the weights sit under a key such as "
            f"'model' or 'state_dict', pass that mapping instead."
        )
    not_names = [key for key in loaded if not isinstance(key, str)]
    if not_names:
        raise ValueError(
            f"{source} is not a state dict: its keys {not_names[:8]} are not parameter names. Give the `.pth` file "
            "the authors' train.py writes."
        )
    if loaded and all(key.startswith("module.") for key in loaded):
        return {key[len("module.") :]: value for key, value in loaded.items()}
    return dict(loaded)


# The model section of the authors' config: the integer fields every config has (each at least 1), the optional
# ones, and the list of VFM stage ends.
_REQUIRED_INTEGERS = ("prompt_num", "prompt_dim", "ext_num", "inj_num")
_OPTIONAL_INTEGERS = ("out_dim", "token_dim", "patch_size")
# The layers of the first extraction block and of the first injection head: their count is the config's ext_num and
# inj_num, which are checked against it before a model is built.
_LAYER_COUNTS = {
    "ext_num": (re.compile(r"^partition_enhance\.extra_pat_1\.cross_attn_(\d+)\."), "partition_enhance.extra_pat_1"),
    "inj_num": (re.compile(r"^inject_pt\.head_1\.cross_attn_enc_(\d+)\."), "inject_pt.head_1"),
}


def _read_original_config(original_config: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """The authors' config (their configs/nyu.json or kitti.json) as a dict, from a mapping or a JSON file."""
    if isinstance(original_config, (str, Path)):
        path = Path(original_config)
        try:
            original_config = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{path} is not a JSON file ({error}); give the authors' config (their configs/nyu.json or kitti.json)."
            ) from None
    if not isinstance(original_config, Mapping) or "model" not in original_config:
        found = sorted(map(str, original_config)) if isinstance(original_config, Mapping) else type(original_config)
        raise ValueError(
            f"`original_config` must be the authors' config (the JSON of their configs/nyu.json or kitti.json), with a "
            f"'model' section; got the keys {found}."
        )
    if not isinstance(original_config["model"], Mapping):
        raise ValueError(
            f"The config's 'model' section is a {type(original_config['model']).__name__}; the authors' is a mapping "
            "(prompt_num, layer_idx, ...). Give their configs/nyu.json or kitti.json."
        )
    return dict(original_config)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _model_section(original_config: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """The 'model' section of the authors' config, its fields checked for type and range."""
    model = dict(_read_original_config(original_config)["model"])
    missing = [name for name in (*_REQUIRED_INTEGERS, "layer_idx") if name not in model]
    if missing:
        raise ValueError(
            f"The config's model section lacks {missing}; give the authors' config the checkpoint was trained with."
        )
    for name in (*_REQUIRED_INTEGERS, *(name for name in _OPTIONAL_INTEGERS if name in model)):
        if not _is_integer(model[name]) or model[name] < 1:
            raise ValueError(
                f"The config's {name} is {reprlib.repr(model[name])}; it must be a whole number of at least 1."
            )
    layers = model["layer_idx"]
    if not isinstance(layers, list) or not all(_is_integer(layer) for layer in layers):
        raise ValueError(f"The config's layer_idx is {reprlib.repr(layers)}; it must be a list of VFM layer numbers.")
    dropout = model.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not math.isfinite(dropout):
        raise ValueError(
            f"The config's dropout is {reprlib.repr(dropout)}; it must be a number (0.0 in the authors' configs)."
        )
    return model


def _check_layer_counts(state_dict: Mapping[str, torch.Tensor], model: Mapping[str, Any]) -> None:
    """Refuse a config whose ext_num or inj_num is not the number of layers the checkpoint holds (before a model of
    that size is built)."""
    for name, (pattern, module) in _LAYER_COUNTS.items():
        found = sorted({int(match[1]) for key in state_dict if (match := pattern.match(key))})
        if found != list(range(1, model[name] + 1)):
            raise ValueError(
                f"The config's {name} is {model[name]}, but the checkpoint's {module} has the layers "
                f"{found or 'none'}: give the config it was trained with."
            )


def _width(state_dict: Mapping[str, torch.Tensor], key: str, ndim: int) -> int:
    """The output width (first dimension) of the official weight `key`, which has `ndim` dimensions."""
    if key not in state_dict:
        raise ValueError(f"The checkpoint has no key {key!r}; it does not look like an official WEDepth state dict.")
    shape = tuple(state_dict[key].shape)
    if len(shape) != ndim:
        raise ValueError(
            f"The checkpoint's {key} has shape {shape}; an official WEDepth checkpoint's has {ndim} dimensions."
        )
    return shape[0]


def _architectures(
    model: Mapping[str, Any], vfm_config: Dinov2Config | None, encoder_config: SwinConfig | None
) -> tuple[Dinov2Config, SwinConfig, dict[str, str | None]]:
    """The VFM and encoder configs (the authors' defaults where not given) and the Hub ids they stand for."""
    sources: dict[str, str | None] = {"vfm": None, "encoder": None}
    if vfm_config is None:
        vfm_config = Dinov2Config(image_size=518, patch_size=14, mlp_ratio=4, **_DINOV2_SIZES[_DEFAULT_VFM])
        sources["vfm"] = _DEFAULT_VFM
    if encoder_config is None:
        encoder_name = model.get("encoder_name")
        if encoder_name not in _ENCODER_CHECKPOINTS:
            raise ValueError(
                f"The config's encoder_name {encoder_name!r} has no default here (known: "
                f"{sorted(_ENCODER_CHECKPOINTS)}); pass `encoder_config=` (a transformers SwinConfig)."
            )
        checkpoint = _ENCODER_CHECKPOINTS[encoder_name]
        encoder_config = SwinConfig(patch_size=4, **_SWIN_SIZES[checkpoint], **_SWIN_RECIPE[checkpoint])
        sources["encoder"] = checkpoint
    elif encoder_config.layer_norm_eps != _AUTHORS_SWIN_EPS:
        logger.warning(
            "encoder_config.layer_norm_eps is %g; the authors' Swin uses %g in every norm, so the converted model does "
            "too.",
            encoder_config.layer_norm_eps,
            _AUTHORS_SWIN_EPS,
        )
        encoder_config = SwinConfig.from_dict({**encoder_config.to_dict(), "layer_norm_eps": _AUTHORS_SWIN_EPS})
    return vfm_config, encoder_config, sources


def _check_model_section(model: Mapping[str, Any], vfm_config: Dinov2Config) -> None:
    """Refuse the authors' settings this model cannot take, with what to do."""
    if model.get("dropout", 0.0) != 0.0:
        raise ValueError(
            f"The config's dropout is {model['dropout']}; the authors' configs use 0.0, and this model has no decoder "
            f"dropout. Set it to 0.0 if the checkpoint was trained that way."
        )
    if model.get("out_dim", model["prompt_dim"]) != model["prompt_dim"]:
        raise ValueError("The authors' model needs out_dim == prompt_dim (injection 2 adds the two widths).")
    if model.get("token_dim", vfm_config.hidden_size) != vfm_config.hidden_size:
        raise ValueError(
            f"The config's token_dim ({model['token_dim']}) is not the VFM width ({vfm_config.hidden_size}); pass the "
            f"matching `vfm_config=`."
        )
    if model.get("patch_size", vfm_config.patch_size) != vfm_config.patch_size:
        raise ValueError(f"The config's patch_size ({model['patch_size']}) is not the VFM's ({vfm_config.patch_size}).")


def _wedepth_config(
    state_dict: Mapping[str, torch.Tensor],
    model: Mapping[str, Any],
    vfm_config: Dinov2Config | None,
    encoder_config: SwinConfig | None,
) -> WEDepthConfig:
    """The `WEDepthConfig` of an official checkpoint: its config's model section plus the widths of its tensors."""
    vfm_config, encoder_config, sources = _architectures(model, vfm_config, encoder_config)
    _check_model_section(model, vfm_config)
    decoder_layers = sum(
        1 for key in state_dict if re.fullmatch(r"decoder\.transformer\.encoder\.layer_\d+\.norm1\.weight", key)
    )
    return WEDepthConfig(
        vfm_config=vfm_config.to_dict(),
        encoder_config=encoder_config.to_dict(),
        vfm_pretrained_name_or_path=sources["vfm"],
        encoder_pretrained_name_or_path=sources["encoder"],
        prompt_num=model["prompt_num"],
        prompt_dim=model["prompt_dim"],
        prompt_attention_heads=8,
        vfm_stage_layers=list(model["layer_idx"]),
        extraction_depth=model["ext_num"],
        injection_depth=model["inj_num"],
        injection_mlp_ratio=2.0,
        decoder_hidden_size=_width(state_dict, "decoder.input_adapter_1.0.weight", 4),
        decoder_ffn_dim=_width(state_dict, "decoder.transformer.encoder.layer_1.linear1.weight", 2),
        decoder_layers=decoder_layers,
        decoder_attention_heads=4,
        decoder_sampling_points=4,
        head_hidden_size=_width(state_dict, "project.proj_output_1.1.weight", 4),
    )


def convert_state_dict(
    original: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Official keys -> this package's keys, checked against `reference`, a model's own tensors by name.

    `reference` is the model's state dict, plus its non-persistent buffers where the Swin's relative-position indices
    should be checked (the authors' Swin saves them; transformers' recomputes them). Returns the converted state dict
    and the official keys their forward never uses. Raises on any official key that has no place, on a shape mismatch,
    and on a relative-position index that differs from the model's own.
    """
    converted: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    unknown: list[str] = []
    prompts: dict[int, torch.Tensor] = {}
    for key, tensor in original.items():
        swin_key = key.removeprefix("encoder.") if key.startswith("encoder.") else None
        if UNUSED_ORIGINAL_KEYS.match(key):
            unused.append(key)
        elif swin_key is not None and (swin := swin_backbone_tensors(swin_key, tensor)) is not None:
            converted.update({f"encoder.{name}": value for name, value in swin.items()})
        elif swin_key is not None and (index_key := _swin_position_index_target(swin_key)) is not None:
            ours = reference.get(f"encoder.{index_key}")
            if ours is not None and not _same_position_index(ours, tensor):
                raise ValueError(f"{key} differs from the relative-position index of this model's Swin.")
        elif match := _PROMPT.match(key):
            if tensor.ndim < 2 or any(size != 1 for size in tensor.shape[:-2]):
                raise ValueError(
                    f"The checkpoint's {key} has shape {tuple(tensor.shape)}; prompts are (1, number, width)."
                )
            prompts[_index(match[1])] = tensor.reshape(tensor.shape[-2:])
        elif (renamed := _renamed(_RULES, key)) is not None:
            converted[renamed] = tensor
        else:
            unknown.append(key)
    if prompts:
        converted["prompted_vfm.prompt_embeddings"] = _stacked_prompts(prompts)
    _check_fits_model(converted, unknown, reference)
    return converted, unused


def _stacked_prompts(prompts: Mapping[int, torch.Tensor]) -> torch.Tensor:
    """The authors' per-stage prompt embeddings {stage index: (number, width)} as this model's one
    (stages, number, width) parameter; raises when a stage is missing or the stages differ in shape."""
    if sorted(prompts) != list(range(NUM_STAGES)):
        raise ValueError(f"The checkpoint has prompt embeddings for stages {sorted(p + 1 for p in prompts)} only.")
    if len({prompt.shape for prompt in prompts.values()}) > 1:
        shapes = [tuple(prompts[stage].shape) for stage in range(NUM_STAGES)]
        raise ValueError(f"The checkpoint's prompt embeddings differ in shape between the stages: {shapes}.")
    return torch.stack([prompts[stage] for stage in range(NUM_STAGES)])


def _check_fits_model(
    converted: Mapping[str, torch.Tensor], unknown: list[str], reference: Mapping[str, torch.Tensor]
) -> None:
    """Refuse a converted checkpoint that does not fit the model: official keys without a place, names the model does
    not have, shapes that differ, or integer tensors where the model holds floating-point weights."""
    not_in_model = sorted(key for key in converted if key not in reference)
    if unknown or not_in_model:
        raise ValueError(
            "The checkpoint does not fit this model: unexpected official keys "
            f"{unknown or 'none'}; keys mapped to names this model does not have {not_in_model or 'none'}."
        )
    mismatched = [
        f"{key}: checkpoint {tuple(tensor.shape)} vs model {tuple(reference[key].shape)}"
        for key, tensor in converted.items()
        if tensor.shape != reference[key].shape
    ]
    if mismatched:
        raise ValueError(
            f"{len(mismatched)} shape mismatch(es) (is the config the one this checkpoint was trained with?): "
            + listed_names(mismatched, separator="; ")
        )
    not_floating = [
        f"{key} ({tensor.dtype})"
        for key, tensor in converted.items()
        if reference[key].is_floating_point() and not tensor.is_floating_point()
    ]
    if not_floating:
        raise ValueError(
            f"The checkpoint holds {len(not_floating)} weight(s) that are not floating-point "
            f"({listed_names(not_floating)}); an official checkpoint's weights are float32 (or float16/bfloat16)."
        )


def _refuse_non_finite(original: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse an official state dict with NaN or infinite values in a tensor the model uses, naming a few: such a
    model predicts no depth (a checkpoint saved after training diverged, or a damaged file)."""
    non_finite = [
        key
        for key, tensor in original.items()
        if tensor.is_floating_point() and not UNUSED_ORIGINAL_KEYS.match(key) and not torch.isfinite(tensor).all()
    ]
    if non_finite:
        raise ValueError(
            f"{source} holds NaN or infinite values in {len(non_finite)} of its {len(original)} tensors "
            f"({listed_names(non_finite)}): a model with them predicts no depth. Convert a checkpoint saved before "
            "training diverged."
        )


def _check_fits(
    original: Mapping[str, torch.Tensor], model: WEDepthForDepthEstimation, check_buffers: bool
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """`convert_state_dict` against `model`'s state dict (and, with `check_buffers`, its buffers); refuses a
    checkpoint that lacks a weight of the model (but the Swin's final norm, which a backbone never uses)."""
    weights = model.state_dict()
    buffers = dict(model.named_buffers()) if check_buffers else {}
    converted, unused = convert_state_dict(original, {**buffers, **weights})
    missing = sorted(key for key in weights if key not in converted and not key.startswith("encoder.swin.layernorm."))
    if missing:
        raise ValueError(f"The checkpoint lacks weights this model needs: {missing}.")
    return converted, unused


def convert_original_checkpoint(
    state_dict_or_path: Mapping[str, torch.Tensor] | str | Path,
    original_config: Mapping[str, Any] | str | Path,
    *,
    vfm_config: Dinov2Config | None = None,
    encoder_config: SwinConfig | None = None,
) -> WEDepthForDepthEstimation:
    """A `WEDepthForDepthEstimation` with the weights of an official WEDepth checkpoint.

    Args:
        state_dict_or_path: the official state dict (with or without DDP's `module.` prefix), or a `.pth` file
            (loaded with `weights_only=True`) or a `.safetensors` file holding it.
        original_config: the authors' config (the JSON of their `configs/nyu.json` or `kitti.json`, as a dict or a
            path). Its model section gives the prompts, stage ends, extraction and injection depths.
        vfm_config: the DINOv2 architecture; defaults to DINOv2-L/14 (the authors' `dinov2-large`).
        encoder_config: the Swin architecture; defaults to the Swin named by the config's `encoder_name` with the
            authors' recipe (Swin-B window 7 for their `swin_base`). Its `layer_norm_eps` is set to the authors' 1e-6
            (with a warning if it was different).

    The decoder and head widths come from the tensors' shapes (the authors hard-code 256). Every official key is
    mapped, or is one their forward never uses (`sf.dwconv2..4`, `partition_enhance.down_feat_1..3`); anything else,
    and any weight this model has that the checkpoint lacks (except the Swin's final norm, which a backbone never
    uses), is an error that names the keys. So are a config whose fields have the wrong type or do not fit the
    checkpoint, shapes that do not fit (checked before the model is allocated), weights that are not floating-point
    and NaN or infinite values.
    """
    original = load_original_state_dict(state_dict_or_path)
    source = str(state_dict_or_path) if isinstance(state_dict_or_path, (str, Path)) else "The checkpoint"
    model_section = _model_section(original_config)
    _check_layer_counts(original, model_section)
    config = _wedepth_config(original, model_section, vfm_config, encoder_config)
    # Every key and shape is checked on a model without memory first, so that widths read from a damaged or hostile
    # checkpoint are refused before a model of their size is allocated.
    with torch.device("meta"):
        skeleton = WEDepthForDepthEstimation(config)
    _check_fits(original, skeleton, check_buffers=False)
    _refuse_non_finite(original, source)
    model = WEDepthForDepthEstimation(config)
    converted, unused = _check_fits(original, model, check_buffers=True)
    model.load_state_dict(converted, strict=False)
    model.freeze_vfm()
    logger.info(
        "Converted %d official tensors; %d unused by the authors' forward and left out: %s",
        len(original),
        len(unused),
        ", ".join(unused),
    )
    return model.eval()


# ---- a Swin-repository or timm ImageNet checkpoint as the encoder's starting point -----------------------------------

_SWIN_NAMES = {
    (96, (2, 2, 6, 2)): "Swin-T",
    (96, (2, 2, 18, 2)): "Swin-S",
    (128, (2, 2, 18, 2)): "Swin-B",
    (192, (2, 2, 18, 2)): "Swin-L",
}
_SWIN_ARCHITECTURE_FIELDS = ("embed_dim", "depths", "num_heads", "window_size", "patch_size", "num_channels")
# SwinBackbone weights an ImageNet file need not have, with how they are initialised and why.
_FRESH_SWIN_WEIGHTS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"^hidden_states_norms\.stage\d\.(weight|bias)$"),
        "per-stage output LayerNorm (the authors' `norm{i}`), absent from a classification checkpoint: weight 1, "
        "bias 0 (nn.LayerNorm's and the authors' initialisation)",
    ),
    (
        re.compile(r"^swin\.layernorm\.(weight|bias)$"),
        "SwinModel's final LayerNorm, which SwinBackbone never applies: weight 1, bias 0",
    ),
]
_HEAD_REASON = "the ImageNet classifier; the encoder is a backbone without a head"
_MASK_REASON = "shifted-window attention mask for the pretraining input size; transformers builds it for each input"
_INDEX_REASON = "relative-position index buffer; transformers computes it from window_size (checked to be the same)"


@dataclass
class SwinConversionReport:
    """Where every key went when a Swin state dict became SwinBackbone weights (`convert_swin_state_dict`).

    Attributes:
        layout: "swin" (the Swin repository's: patch merging at the end of stage i, `layers.i.downsample`) or "timm"
            (timm >= 0.9: at the start of stage i + 1, `layers.{i+1}.downsample`).
        mapped: source key -> the SwinBackbone keys it fills (three for a fused `qkv`).
        dropped: source key -> why the encoder does not need it.
        fresh: SwinBackbone key the file does not fill -> how it is initialised and why.
    """

    layout: str
    mapped: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    fresh: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: counts of mapped keys, dropped keys by reason, fresh weights by reason."""
        dropped = Counter(self.dropped.values())
        fresh = Counter(self.fresh.values())
        parts = [f"{len(self.mapped)} tensors mapped ({self.layout} layout)"]
        parts += [f"{count} dropped: {reason}" for reason, count in dropped.items()]
        parts += [f"{count} freshly initialised: {reason}" for reason, count in fresh.items()]
        return "; ".join(parts)


def _describe_swin(architecture: Mapping[str, Any]) -> str:
    """A Swin architecture in words, with its common name where it has one ("Swin-B (embed_dim 128, ...)")."""
    name = _SWIN_NAMES.get((architecture.get("embed_dim"), tuple(architecture.get("depths") or ())), "a Swin")
    return f"{name} ({', '.join(f'{key} {value}' for key, value in architecture.items())})"


def _swin_file_architecture(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """The architecture a Swin-repository state dict's shapes describe; None where keys it reads are missing (the
    key-by-key checks then name them)."""
    try:
        embedding = state_dict["patch_embed.proj.weight"]
        depths: dict[int, int] = {}
        for key in state_dict:
            if match := re.match(r"^layers\.(\d+)\.blocks\.(\d+)\.", key):
                depths[int(match[1])] = max(depths.get(int(match[1]), 0), int(match[2]) + 1)
        stages = sorted(depths)
        tables = [state_dict[f"layers.{stage}.blocks.0.attn.relative_position_bias_table"] for stage in stages]
    except KeyError:
        return None
    if stages != list(range(len(stages))) or embedding.ndim != 4:
        return None
    return {
        "embed_dim": embedding.shape[0],
        "depths": [depths[stage] for stage in stages],
        "num_heads": [table.shape[1] for table in tables],
        "window_size": (round(tables[0].shape[0] ** 0.5) + 1) // 2,
        "patch_size": embedding.shape[-1],
        "num_channels": embedding.shape[1],
    }


def _check_swin_architecture(state_dict: Mapping[str, torch.Tensor], encoder_config: SwinConfig, source: str) -> None:
    """Refuse a file whose Swin is not the config's, naming both (e.g. a Swin-T file for the Swin-B `large`)."""
    found = _swin_file_architecture(state_dict)
    if found is None:
        return
    wanted = {key: getattr(encoder_config, key) for key in _SWIN_ARCHITECTURE_FIELDS}
    wanted["depths"], wanted["num_heads"] = list(wanted["depths"]), list(wanted["num_heads"])
    differing = [key for key in _SWIN_ARCHITECTURE_FIELDS if found[key] != wanted[key]]
    if differing:
        raise ValueError(
            f"{source} holds {_describe_swin(found)}, but the encoder config is {_describe_swin(wanted)}: they differ "
            f"in {', '.join(differing)}. Give the checkpoint of the config's Swin, or a config (preset) of the file's."
        )


def _swin_repository_keys(keys: list[str], num_stages: int, source: str) -> tuple[str, dict[str, str]]:
    """The layout of a Swin state dict and the renames that bring it to the Swin repository's.

    The repository keeps stage i's patch merging in `layers.i.downsample` (i < last stage); timm >= 0.9 keeps the same
    module, with the same weights, in `layers.{i+1}.downsample` (i + 1 > 0). Only timm's layout has one in the last
    stage and only the repository's one in the first, so the keys tell them apart.
    """
    stages = {int(match[1]) for key in keys if (match := _SWIN_DOWNSAMPLE.match(key))}
    if num_stages < 2 or num_stages - 1 not in stages:
        return "swin", {}
    if 0 in stages:
        raise ValueError(
            f"{source} has patch-merging weights in both the first and the last of its stages {sorted(stages)}; a "
            f"{num_stages}-stage Swin has them in layers 0..{num_stages - 2} (Swin repository) or in layers "
            f"1..{num_stages - 1} (timm >= 0.9), not both."
        )
    renames = {
        key: f"layers.{int(match[1]) - 1}.downsample.{match[2]}"
        for key in keys
        if (match := _SWIN_DOWNSAMPLE.match(key))
    }
    return "timm", renames


def _relative_position_index(window_size: int) -> torch.Tensor:
    """The relative-position index transformers' Swin computes for a window (flat, as its buffer)."""
    from transformers.models.swin.modeling_swin import SwinRelativePositionBias

    return SwinRelativePositionBias(1, (window_size, window_size)).relative_position_index


def _fresh_reason(key: str) -> str | None:
    """Why a SwinBackbone weight that a Swin-repository file lacks may be initialised here; None if it may not."""
    return next((reason for pattern, reason in _FRESH_SWIN_WEIGHTS if pattern.match(key)), None)


def convert_swin_state_dict(
    state_dict: Mapping[str, torch.Tensor], encoder_config: SwinConfig, *, source: str = "The state dict"
) -> tuple[dict[str, torch.Tensor], SwinConversionReport]:
    """A Swin-repository or timm Swin state dict as the complete state dict of transformers' `SwinBackbone` for
    `encoder_config` (with its four stages as outputs), and a report of where every key went.

    The authors start their encoder from the Swin repository's ImageNet `.pth`; this puts such a file (or timm's
    version of it) into WEDepth's encoder. Every source key is mapped (`swin_backbone_tensors`; timm's patch-merging
    keys moved first) or dropped for a stated reason (the classifier `head.*`; the buffers `attn_mask` and
    `relative_position_index`, which transformers recomputes, the index checked equal). Every SwinBackbone weight is
    filled, or initialised here for a stated reason (the per-stage output norms `hidden_states_norms.*`, and the
    unused final `swin.layernorm.*` if the file has no `norm.*`: weight 1, bias 0). Raises, naming the keys, on a
    file of another architecture, an unknown key, a missing weight or a shape that differs.
    """
    if getattr(encoder_config, "model_type", None) != "swin":
        raise ValueError(
            f"A Swin state dict needs a Swin encoder config; this one is {type(encoder_config).__name__}. Give the "
            "encoder as a transformers checkpoint (Hub id or folder) instead."
        )
    target = _swin_backbone_state(encoder_config)
    _check_swin_architecture(state_dict, encoder_config, source)
    layout, renames = _swin_repository_keys(list(state_dict), len(encoder_config.depths), source)
    report = SwinConversionReport(layout=layout)
    our_index = _relative_position_index(encoder_config.window_size)
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for original_key, tensor in state_dict.items():
        key = renames.get(original_key, original_key)
        if key.startswith("head."):
            report.dropped[original_key] = _HEAD_REASON
        elif _SWIN_ATTENTION_MASK.match(key):
            report.dropped[original_key] = _MASK_REASON
        elif _swin_position_index_target(key) is not None:
            if not _same_position_index(our_index, tensor):
                raise ValueError(
                    f"{source}: {original_key} is not the relative-position index of a window of "
                    f"{encoder_config.window_size} (shape {tuple(tensor.shape)})."
                )
            report.dropped[original_key] = _INDEX_REASON
        elif (tensors := swin_backbone_tensors(key, tensor)) is not None:
            converted.update(tensors)
            report.mapped[original_key] = list(tensors)
        else:
            unknown.append(original_key)
    _check_swin_keys(state_dict, converted, unknown, report, target, source)
    _initialise_fresh_swin_weights(converted, target, report, source)
    return {key: converted[key] for key in target}, report


def _swin_backbone_state(encoder_config: SwinConfig) -> dict[str, torch.Tensor]:
    """The state dict (on the meta device: names, shapes and dtypes only) of transformers' `SwinBackbone` for
    `encoder_config` with its four stages as outputs, as WEDepth's encoder is built."""
    backbone_config = copy.deepcopy(encoder_config)
    backbone_config.out_features = [name for name in backbone_config.stage_names if name != "stem"]
    with torch.device("meta"):
        return SwinBackbone(backbone_config).state_dict()


def _check_swin_keys(
    state_dict: Mapping[str, torch.Tensor],
    converted: Mapping[str, torch.Tensor],
    unknown: list[str],
    report: SwinConversionReport,
    target: Mapping[str, torch.Tensor],
    source: str,
) -> None:
    """Refuse a Swin state dict with keys that are not weights of this encoder, or weights of another shape."""
    outside = sorted(source_key for source_key, keys in report.mapped.items() if any(key not in target for key in keys))
    if unknown or outside:
        hint = (
            " (these look like a transformers checkpoint: give its folder or Hub id instead)"
            if any(key.startswith(("swin.", "embeddings.", "encoder.layers.")) for key in unknown)
            else ""
        )
        raise ValueError(
            f"{source} has keys that are not weights of this Swin encoder: unknown keys {unknown or 'none'}{hint}; "
            f"Swin keys this architecture does not have {outside or 'none'}."
        )
    mismatched = [
        f"{source_key}: file {tuple(state_dict[source_key].shape)} -> {key} {tuple(target[key].shape)}"
        for source_key, keys in report.mapped.items()
        for key in keys
        if converted[key].shape != target[key].shape
    ]
    if mismatched:
        raise ValueError(f"{source} does not fit the encoder config; shape mismatches: " + "; ".join(mismatched))


def _initialise_fresh_swin_weights(
    converted: dict[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    report: SwinConversionReport,
    source: str,
) -> None:
    """Fill the SwinBackbone weights the file lacks that may start fresh (norms: weight 1, bias 0), noting why in
    `report`; raise on any other missing weight."""
    missing = []
    for key, reference in target.items():
        if key in converted:
            continue
        if (reason := _fresh_reason(key)) is None:
            missing.append(key)
            continue
        fill = torch.ones if key.endswith(".weight") else torch.zeros
        converted[key] = fill(reference.shape, dtype=reference.dtype)
        report.fresh[key] = reason
    if missing:
        raise ValueError(f"{source} lacks weights the Swin encoder needs: {missing}.")


def load_swin_checkpoint(
    path: str | Path, encoder_config: SwinConfig
) -> tuple[dict[str, torch.Tensor], SwinConversionReport]:
    """SwinBackbone weights for `encoder_config` from a Swin checkpoint file, and the report of every key.

    The file is a `.pth`/`.pt`/`.bin` (read with `torch.load(weights_only=True)`: no code runs) or `.safetensors`
    file holding a state dict in the Swin repository's layout (e.g. its `swin_base_patch4_window7_224.pth`, from which
    the authors start their encoder) or timm's, possibly under a 'model' or 'state_dict' key and with DDP's `module.`
    prefix. See `convert_swin_state_dict` for what is mapped, dropped and initialised.
    """
    expected = "a Swin state dict (the Swin repository's or timm's .pth)"
    loaded = read_checkpoint_file(path, expected)
    if isinstance(loaded, Mapping):
        for wrapper in ("model", "state_dict"):
            if isinstance(loaded.get(wrapper), Mapping):
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise ValueError(f"{path} is not a state dict: it holds {type(loaded).__name__}. Give {expected}.")
    not_tensors = [key for key, value in loaded.items() if not torch.is_tensor(value)]
    if not_tensors:
        raise ValueError(
            f"{path} is not a state dict of tensors: {not_tensors[:8]} hold other values. Give {expected}, or a "
            "checkpoint with it under 'model' or 'state_dict'."
        )
    state_dict = dict(loaded)
    if all(key.startswith("module.") for key in state_dict):
        state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
    converted, report = convert_swin_state_dict(state_dict, encoder_config, source=str(path))
    logger.info("Swin encoder weights from %s: %s", path, report.summary())
    return converted, report


def _converted_card(
    model: WEDepthForDepthEstimation,
    original_config: Mapping[str, Any],
    checkpoint_name: str,
    command: list[str] | str | None,
    repo_id: str,
    license: str,
) -> Any:
    """The model card of a converted checkpoint: the authors' checkpoint and configuration, and the VFM it holds."""
    from .hub import render_model_card, vfm_storage_text

    config = model.config
    counts = model.parameter_counts()
    base_models = [
        source
        for source in (config.vfm_pretrained_name_or_path, config.encoder_pretrained_name_or_path)
        if source and not Path(source).exists()
    ]
    return render_model_card(
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        base_models=base_models,
        results_split=None,
        license=license,
        training_command=command,
        training_config=dict(original_config),
        model_description=(
            f"Converted with `wedepth convert-original` from the authors' released checkpoint `{checkpoint_name}` "
            f"(github.com/book-book24/WEDepth); the weights are theirs, computed tensor for tensor as their code "
            f"computes them. Parameters: {counts['total'] / 1e6:.2f}M in all, the frozen VFM "
            f"{counts['vfm'] / 1e6:.2f}M; VFM stage ends {config.vfm_stage_layers}. {vfm_storage_text(config, True)}"
        ),
        selection_text="the authors' checkpoint, unchanged (their training; see their configuration below)",
    )


def _training_set(original_config: Mapping[str, Any]) -> Any:
    """The name of the config's training set (their "NYUDataset", "KITTIDataset", ...)."""
    data = original_config.get("data", {})
    train_dataset = data.get("train_dataset", {}) if isinstance(data, Mapping) else None
    if not isinstance(train_dataset, Mapping):
        raise ValueError(
            "The config's data section is not the authors' (a 'data' mapping with a 'train_dataset' mapping); give "
            "their configs/nyu.json or kitti.json."
        )
    return train_dataset.get("name")


def _training_shorter_side(original_config: Mapping[str, Any]) -> int:
    """The shorter side of the authors' training images for the config's training set (their NYU 480, KITTI 352), or
    the package's default processing size for another set or a config without one."""
    from .image_processing_wedepth import DEFAULT_PROCESSING_SIZE

    return _TRAINING_SHORTER_SIDE.get(_training_set(original_config), DEFAULT_PROCESSING_SIZE)


def training_camera_of(original_config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The camera of the config's training set (NYU-Depth v2's or KITTI's), or None for a set without a known one."""
    from .camera import KITTI_TRAINING_CAMERA, NYU_TRAINING_CAMERA

    cameras = {"NYUDataset": NYU_TRAINING_CAMERA, "KITTIDataset": KITTI_TRAINING_CAMERA}
    camera = cameras.get(_training_set(original_config))
    return dict(camera) if camera is not None else None


def export_converted_folder(
    model: WEDepthForDepthEstimation,
    output_dir: str | Path,
    *,
    original_config: Mapping[str, Any] | str | Path,
    checkpoint_name: str,
    command: list[str] | str | None = None,
    repo_id: str | None = None,
    license: str = "apache-2.0",
    overwrite: bool = False,
    protected: Iterable[str | Path] = (),
) -> Path:
    """Write a converted model as a folder that `from_pretrained` and `pipeline("depth-estimation")` load.

    The folder holds safetensors weights, the config with remote code, the image processor (processing the shorter
    side at the authors' training resolution: 480 for NYU, 352 for KITTI) and a model card that names the authors'
    checkpoint and configuration. It is written into a fresh temporary sibling and swapped in when complete
    (`folders.write_folder`): an interrupted export leaves `output_dir` as it was. `output_dir` may be new or empty;
    with `overwrite=True` it may also be a folder holding a WEDepth model and nothing else. A folder that is or
    contains the working directory, the config file or one of the `protected` paths (the checkpoint, say) is never
    replaced.
    """
    from .image_processing_wedepth import WEDepthImageProcessor

    paths = [*protected, *([original_config] if isinstance(original_config, (str, Path)) else [])]
    original_config = _read_original_config(original_config)
    shorter_side = _training_shorter_side(original_config)
    camera = training_camera_of(original_config)
    model.config.training_camera = camera
    card = _converted_card(model, original_config, checkpoint_name, command, repo_id or str(output_dir), license)

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        WEDepthImageProcessor(size={"shortest_edge": shorter_side}, training_camera=camera).save_pretrained(folder)
        card.save(folder / "README.md")

    return write_folder(
        output_dir, write, overwrite=overwrite, protected=paths, overwrite_option="overwrite=True (--overwrite)"
    )


__all__ = [
    "UNUSED_ORIGINAL_KEYS",
    "SwinConversionReport",
    "convert_original_checkpoint",
    "convert_state_dict",
    "convert_swin_state_dict",
    "export_converted_folder",
    "load_original_state_dict",
    "load_swin_checkpoint",
    "read_checkpoint_file",
    "swin_backbone_tensors",
]
