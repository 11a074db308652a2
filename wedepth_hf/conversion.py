"""Conversion of the authors' WEDepth checkpoints (github book-book24/WEDepth) into `WEDepthForDepthEstimation`.

The authors' `train.py` saves `model.state_dict()` of a DistributedDataParallel-wrapped `WEDepth` (keys prefixed with
`module.`) as a `.pth` file; their `configs/nyu.json` / `kitti.json` describe the model. `convert_original_checkpoint`
maps every official key to this package's parameter names (or names it as one the authors' forward never uses),
derives the decoder and head widths from the tensors' shapes, and returns a model that computes what their code
computes (see `tests/test_parity.py`).
"""

import json
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import Dinov2Config, SwinConfig
from transformers.utils import logging

from .configuration_wedepth import _DINOV2_SIZES, _SWIN_RECIPE, _SWIN_SIZES, NUM_STAGES, WEDepthConfig
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
_HEAD_PARTS = {"0": "input_norm", "1": "conv1", "2": "upsample", "3": "conv2", "4": "norm", "5": "log_depth"}
_DECODER_LAYER_PARTS = {
    "self_attn": "self_attn",
    "norm1": "self_attn_layer_norm",
    "norm2": "final_layer_norm",
    "linear1": "fc1",
    "linear2": "fc2",
}


def _index(text: str) -> int:
    """The authors' 1-based module number as this package's 0-based index."""
    return int(text) - 1


def _perceiver(prefix: str, part: str, rest: str) -> str:
    return f"{prefix}.{_PERCEIVER_PARTS[part]}.{rest}"


# (pattern on the official key, function of the match giving the new key). Tried in order; the first match wins.
_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"^encoder\.patch_embed\.proj\.(.+)$"),
        lambda m: f"encoder.swin.embeddings.patch_embeddings.projection.{m[1]}",
    ),
    (re.compile(r"^encoder\.patch_embed\.norm\.(.+)$"), lambda m: f"encoder.swin.embeddings.norm.{m[1]}"),
    (
        re.compile(
            r"^encoder\.layers\.(\d+)\.blocks\.(\d+)\.(norm1|norm2|attn\.proj|attn\.relative_position_bias_table|"
            r"mlp\.fc1|mlp\.fc2)(\.weight|\.bias|)$"
        ),
        lambda m: f"encoder.swin.encoder.layers.{m[1]}.blocks.{m[2]}.{_SWIN_BLOCK_PARTS[m[3]]}{m[4]}",
    ),
    (
        re.compile(r"^encoder\.layers\.(\d+)\.downsample\.(reduction|norm)\.(.+)$"),
        lambda m: f"encoder.swin.encoder.layers.{m[1]}.downsample.{m[2]}.{m[3]}",
    ),
    (re.compile(r"^encoder\.norm(\d)\.(.+)$"), lambda m: f"encoder.hidden_states_norms.stage{int(m[1]) + 1}.{m[2]}"),
    (re.compile(r"^sf\.fc(\d)\.(.+)$"), lambda m: f"stream_split.projections.{_index(m[1])}.{m[2]}"),
    (re.compile(r"^sf\.dwconv1\.(.+)$"), lambda m: f"stream_split.depthwise.{m[1]}"),
    (
        re.compile(
            r"^partition_enhance\.model_hf\.encoder\.layer\.(\d+)\.(attention\.attention\.(?:query|key|value)|"
            r"attention\.output\.dense)\.(.+)$"
        ),
        lambda m: f"vfm.encoder.layer.{m[1]}.{_DINOV2_PARTS[m[2]]}.{m[3]}",
    ),
    (re.compile(r"^partition_enhance\.model_hf\.(.+)$"), lambda m: f"vfm.{m[1]}"),
    (
        re.compile(r"^partition_enhance\.extra_pat_(\d)\.gamma_(\d+)$"),
        lambda m: f"prompted_vfm.extraction_blocks.{_index(m[1])}.layers.{_index(m[2])}.gamma",
    ),
    (
        re.compile(r"^partition_enhance\.extra_pat_(\d)\.cross_attn_(\d+)\.(\w+)\.(.+)$"),
        lambda m: _perceiver(
            f"prompted_vfm.extraction_blocks.{_index(m[1])}.layers.{_index(m[2])}.cross_attention", m[3], m[4]
        ),
    ),
    (
        re.compile(r"^partition_enhance\.extra_pat_(\d)\.self_attn_(\d+)\.(\w+)\.(.+)$"),
        lambda m: _perceiver(
            f"prompted_vfm.extraction_blocks.{_index(m[1])}.layers.{_index(m[2])}.self_attention", m[3], m[4]
        ),
    ),
    (
        re.compile(r"^partition_enhance\.extra_pat_(\d)\.proj\.([02])\.(.+)$"),
        lambda m: f"prompted_vfm.extraction_blocks.{_index(m[1])}.lift.{'fc1' if m[2] == '0' else 'fc2'}.{m[3]}",
    ),
    (
        re.compile(r"^partition_enhance\.down_pat_(\d)\.([02])\.(.+)$"),
        lambda m: f"prompted_vfm.prompt_projections.{_index(m[1])}.{'fc1' if m[2] == '0' else 'fc2'}.{m[3]}",
    ),
    (
        re.compile(r"^partition_enhance\.down_feat_4\.([02])\.(.+)$"),
        lambda m: f"prompted_vfm.patch_projection.{'fc1' if m[1] == '0' else 'fc2'}.{m[2]}",
    ),
    (
        re.compile(r"^inject_pt\.head_(\d)\.self_attn_enc\.(\w+)\.(.+)$"),
        lambda m: _perceiver(f"prompt_injections.{_index(m[1])}.prompt_self_attention", m[2], m[3]),
    ),
    (
        re.compile(r"^inject_pt\.head_(\d)\.cross_attn_enc_(\d+)\.(\w+)\.(.+)$"),
        lambda m: _perceiver(f"prompt_injections.{_index(m[1])}.layers.{_index(m[2])}.cross_attention", m[3], m[4]),
    ),
    (
        re.compile(r"^inject_pt\.head_(\d)\.mlp_attn_enc_(\d+)\.mlp\.([013])\.(.+)$"),
        lambda m: (
            f"prompt_injections.{_index(m[1])}.layers.{_index(m[2])}.mlp."
            f"{ {'0': 'norm', '1': 'fc1', '3': 'fc2'}[m[3]] }.{m[4]}"
        ),
    ),
    (
        re.compile(r"^inject_it\.conv_fuse_(\d)\.(.+)$"),
        lambda m: f"feature_injection.pixel_convs.{_index(m[1])}.{m[2]}",
    ),
    (
        re.compile(r"^inject_it\.liner_(\d)\.(.+)$"),
        lambda m: f"feature_injection.vfm_projections.{_index(m[1])}.{m[2]}",
    ),
    (
        re.compile(r"^inject_it\.conv_fuse_v_(\d)\.(.+)$"),
        lambda m: f"feature_injection.fused_convs.{_index(m[1])}.{m[2]}",
    ),
    (re.compile(r"^inject_it\.norm_(\d)\.(.+)$"), lambda m: f"feature_injection.norms.{_index(m[1])}.{m[2]}"),
    (re.compile(r"^inject_it\.conv_all\.(.+)$"), lambda m: f"feature_injection.output_projection.{m[1]}"),
    (
        re.compile(r"^decoder\.input_adapter_(\d)\.([01])\.(.+)$"),
        lambda m: f"pixel_decoder.input_adapters.{_index(m[1])}.{'projection' if m[2] == '0' else 'norm'}.{m[3]}",
    ),
    (re.compile(r"^decoder\.transformer\.level_embed$"), lambda m: "pixel_decoder.level_embeddings"),
    (
        re.compile(r"^decoder\.transformer\.encoder\.layer_(\d+)\.(self_attn|norm1|norm2|linear1|linear2)\.(.+)$"),
        lambda m: f"pixel_decoder.layers.{_index(m[1])}.{_DECODER_LAYER_PARTS[m[2]]}.{m[3]}",
    ),
    (
        re.compile(r"^decoder\.(lateral_fpn|out|fpn)_conv_(\d)\.weight$"),
        lambda m: (
            f"pixel_decoder.{ {'lateral_fpn': 'lateral', 'out': 'output', 'fpn': 'fpn'}[m[1]] }_convs."
            f"{_index(m[2])}.conv.weight"
        ),
    ),
    (
        re.compile(r"^decoder\.(lateral_fpn|out|fpn)_conv_(\d)\.norm\.(.+)$"),
        lambda m: (
            f"pixel_decoder.{ {'lateral_fpn': 'lateral', 'out': 'output', 'fpn': 'fpn'}[m[1]] }_convs."
            f"{_index(m[2])}.norm.{m[3]}"
        ),
    ),
    (
        re.compile(r"^project\.proj_output_(\d)\.(\d)\.(.+)$"),
        lambda m: f"depth_heads.{_index(m[1])}.{_HEAD_PARTS[m[2]]}.{m[3]}",
    ),
]
_SWIN_QKV = re.compile(r"^encoder\.layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")
_SWIN_POSITION_INDEX = re.compile(r"^encoder\.layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_index$")
_PROMPT = re.compile(r"^partition_enhance\.prompt_embeddings_(\d)$")


def load_original_state_dict(state_dict_or_path: Mapping[str, torch.Tensor] | str | Path) -> dict[str, torch.Tensor]:
    """The official state dict as a flat {key: tensor} without DDP's `module.` prefix.

    Accepts a mapping, a `.pth`/`.pt` file (read with `torch.load(weights_only=True)`: no code is executed) or a
    `.safetensors` file.
    """
    if isinstance(state_dict_or_path, (str, Path)):
        path = Path(state_dict_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"No checkpoint file at {path}.")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: Any = load_file(str(path))
        else:
            try:
                loaded = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:
                raise ValueError(
                    f"{path} could not be read as a weights-only PyTorch checkpoint ({type(error).__name__}: "
                    f"{error}). Give the `.pth` file the authors' train.py writes (a state dict) or a .safetensors "
                    "file."
                ) from error
        source = str(path)
    else:
        loaded, source = state_dict_or_path, "the given mapping"
    if not isinstance(loaded, Mapping) or not all(torch.is_tensor(value) for value in loaded.values()):
        keys = list(loaded)[:8] if isinstance(loaded, Mapping) else type(loaded).__name__
        raise ValueError(
            f"{source} is not a flat state dict of tensors (found {keys}). If the weights sit under a key such as "
            f"'model' or 'state_dict', pass that mapping instead."
        )
    if loaded and all(key.startswith("module.") for key in loaded):
        return {key[len("module.") :]: value for key, value in loaded.items()}
    return dict(loaded)


def _model_section(original_config: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(original_config, (str, Path)):
        original_config = json.loads(Path(original_config).read_text(encoding="utf-8"))
    if "model" not in original_config:
        raise ValueError(
            f"`original_config` must be the authors' config (the JSON of their configs/nyu.json or kitti.json), with a "
            f"'model' section; got the keys {sorted(original_config)}."
        )
    return dict(original_config["model"])


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise ValueError(f"The checkpoint has no key {key!r}; it does not look like an official WEDepth state dict.")
    return tuple(state_dict[key].shape)


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
        decoder_hidden_size=_shape(state_dict, "decoder.input_adapter_1.0.weight")[0],
        decoder_ffn_dim=_shape(state_dict, "decoder.transformer.encoder.layer_1.linear1.weight")[0],
        decoder_layers=decoder_layers,
        decoder_attention_heads=4,
        decoder_sampling_points=4,
        head_hidden_size=_shape(state_dict, "project.proj_output_1.1.weight")[0],
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
        if UNUSED_ORIGINAL_KEYS.match(key):
            unused.append(key)
        elif match := _SWIN_QKV.match(key):
            block = f"encoder.swin.encoder.layers.{match[1]}.blocks.{match[2]}.attention"
            for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
                converted[f"{block}.{name}.{match[3]}"] = part
        elif match := _SWIN_POSITION_INDEX.match(key):
            ours = reference.get(
                f"encoder.swin.encoder.layers.{match[1]}.blocks.{match[2]}.attention."
                f"relative_position_bias.relative_position_index"
            )
            if ours is not None and not torch.equal(ours.flatten().to(tensor.dtype), tensor.flatten()):
                raise ValueError(f"{key} differs from the relative-position index of this model's Swin.")
        elif match := _PROMPT.match(key):
            prompts[_index(match[1])] = tensor.reshape(tensor.shape[-2:])
        else:
            for pattern, rename in _RULES:
                if match := pattern.match(key):
                    converted[rename(match)] = tensor
                    break
            else:
                unknown.append(key)
    if prompts:
        if sorted(prompts) != list(range(NUM_STAGES)):
            raise ValueError(f"The checkpoint has prompt embeddings for stages {sorted(p + 1 for p in prompts)} only.")
        converted["prompted_vfm.prompt_embeddings"] = torch.stack([prompts[stage] for stage in range(NUM_STAGES)])
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
            "Shape mismatches (is the config the one this checkpoint was trained with?): " + "; ".join(mismatched)
        )
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
    uses), is an error that names the keys.
    """
    original = load_original_state_dict(state_dict_or_path)
    config = _wedepth_config(original, _model_section(original_config), vfm_config, encoder_config)
    model = WEDepthForDepthEstimation(config)
    reference = model.state_dict()
    converted, unused = convert_state_dict(original, {**dict(model.named_buffers()), **reference})
    missing = sorted(key for key in reference if key not in converted and not key.startswith("encoder.swin.layernorm."))
    if missing:
        raise ValueError(f"The checkpoint lacks weights this model needs: {missing}.")
    model.load_state_dict(converted, strict=False)
    model.freeze_vfm()
    logger.info(
        "Converted %d official tensors; %d unused by the authors' forward and left out: %s",
        len(original),
        len(unused),
        ", ".join(unused),
    )
    return model.eval()


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
) -> Path:
    """Write a converted model as a folder that `from_pretrained` and `pipeline("depth-estimation")` load.

    The folder holds safetensors weights, the config with remote code, the image processor (processing the shorter
    side at the authors' training resolution: 480 for NYU, 352 for KITTI) and a model card that names the authors'
    checkpoint and configuration. It is written to a temporary sibling first and renamed at the
    end, so an interrupted export never leaves a half-written folder under `output_dir`. An existing non-empty
    `output_dir` is replaced only with `overwrite=True`.
    """
    from .image_processing_wedepth import DEFAULT_PROCESSING_SIZE, WEDepthImageProcessor

    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} is a file; give a folder for the converted model.")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{output_dir} is not empty; choose another folder or pass overwrite=True (--overwrite).")
    if isinstance(original_config, (str, Path)):
        original_config = json.loads(Path(original_config).read_text(encoding="utf-8"))
    temporary = output_dir.parent / f".{output_dir.name}.converting"
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(temporary)
    training_set = original_config.get("data", {}).get("train_dataset", {}).get("name")
    shorter_side = _TRAINING_SHORTER_SIDE.get(training_set, DEFAULT_PROCESSING_SIZE)
    WEDepthImageProcessor(size={"shortest_edge": shorter_side}).save_pretrained(temporary)
    card = _converted_card(model, original_config, checkpoint_name, command, repo_id or str(output_dir), license)
    card.save(temporary / "README.md")
    if output_dir.exists():
        shutil.rmtree(output_dir)
    temporary.rename(output_dir)
    return output_dir


__all__ = [
    "UNUSED_ORIGINAL_KEYS",
    "convert_original_checkpoint",
    "convert_state_dict",
    "export_converted_folder",
    "load_original_state_dict",
]
