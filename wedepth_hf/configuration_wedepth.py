"""WEDepth model configuration.

WEDepth (arXiv 2511.08036) predicts metric depth from one image with a trainable hierarchical depth encoder whose
features are enhanced by a frozen vision foundation model (DINOv2). This file describes every size of that model;
it imports only `transformers` (it travels to the Hub as remote code).
"""

from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import logging


logger = logging.get_logger(__name__)

NUM_STAGES = 4
"""The method works on four scales: encoder strides 4/8/16/32, four VFM stages, four depth heads."""

_ENCODER_OUT_FEATURES = ["stage1", "stage2", "stage3", "stage4"]

# Architecture of the public checkpoints the presets start from. They mirror the `config.json` of each Hub repo so
# that a model built from a preset has exactly the shapes of those weights.
_DINOV2_SIZES: dict[str, dict[str, Any]] = {
    "facebook/dinov2-small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6},
    "facebook/dinov2-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
    "facebook/dinov2-large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16},
}
_SWIN_SIZES: dict[str, dict[str, Any]] = {
    "microsoft/swin-tiny-patch4-window7-224": {
        "embed_dim": 96,
        "depths": [2, 2, 6, 2],
        "num_heads": [3, 6, 12, 24],
        "window_size": 7,
        "image_size": 224,
    },
    "microsoft/swin-small-patch4-window7-224": {
        "embed_dim": 96,
        "depths": [2, 2, 18, 2],
        "num_heads": [3, 6, 12, 24],
        "window_size": 7,
        "image_size": 224,
    },
    "microsoft/swin-base-patch4-window7-224": {
        "embed_dim": 128,
        "depths": [2, 2, 18, 2],
        "num_heads": [4, 8, 16, 32],
        "window_size": 7,
        "image_size": 224,
    },
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


def default_vfm_stage_layers(num_hidden_layers: int) -> list[int]:
    """Evenly spaced stage ends: [2, 5, 8, 11] for 12 layers, [5, 11, 17, 23] for 24, [9, 19, 29, 39] for 40."""
    return [(stage + 1) * num_hidden_layers // NUM_STAGES - 1 for stage in range(NUM_STAGES)]


class WEDepthConfig(PreTrainedConfig):
    r"""
    Configuration of a [`WEDepthForDepthEstimation`] model.

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
    head_hidden_size: int = 128
    min_depth: float = 0.01
    max_depth: float | None = None
    silog_lambda: float = 0.5
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if getattr(self.vfm_config, "model_type", None) != "dinov2":
            raise ValueError(
                f"`vfm_config` must be a Dinov2Config (model_type 'dinov2'), got "
                f"{type(self.vfm_config).__name__} with model_type {getattr(self.vfm_config, 'model_type', None)!r}."
            )
        self._configure_encoder_stages()
        if self.vfm_stage_layers is None:
            self.vfm_stage_layers = default_vfm_stage_layers(self.vfm_config.num_hidden_layers)
        self.vfm_stage_layers = [int(index) for index in self.vfm_stage_layers]
        self._validate()

    def _configure_encoder_stages(self) -> None:
        """Make the encoder return its four stages, or say why it cannot."""
        stage_names = getattr(self.encoder_config, "stage_names", None)
        if stage_names is None:
            raise ValueError(
                f"`encoder_config` must be a transformers backbone config (one with `stage_names`, e.g. SwinConfig, "
                f"ConvNextConfig, ResNetConfig); got {type(self.encoder_config).__name__}."
            )
        stages = [name for name in stage_names if name != "stem"]
        if len(stages) != NUM_STAGES:
            raise ValueError(
                f"WEDepth needs an encoder with exactly four stages (strides 4/8/16/32); `encoder_config` "
                f"({type(self.encoder_config).__name__}) has {len(stages)}: {stages}. Give it four stages, "
                f"e.g. `depths` of length 4."
            )
        if list(self.encoder_config.out_features) != stages:
            self.encoder_config.out_features = stages

    def _validate(self) -> None:
        num_layers = self.vfm_config.num_hidden_layers
        layers = self.vfm_stage_layers
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
            ("prompt_dim", self.prompt_dim, self.prompt_attention_heads),
            ("decoder_hidden_size", self.decoder_hidden_size, self.decoder_attention_heads),
        ):
            if width % heads != 0:
                raise ValueError(f"`{name}` ({width}) must be divisible by its number of attention heads ({heads}).")
            if width % 4 != 0:
                raise ValueError(f"`{name}` ({width}) must be a multiple of 4 for the 2-D sine position encoding.")
        for name in ("prompt_num", "extraction_depth", "injection_depth", "decoder_layers", "decoder_sampling_points"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}.")
        if not 0 < self.min_depth or (self.max_depth is not None and not self.min_depth < self.max_depth):
            raise ValueError(
                "Need 0 < min_depth (and min_depth < max_depth when max_depth is set), got "
                f"min_depth={self.min_depth}, max_depth={self.max_depth}."
            )
        if not 0.0 <= self.silog_lambda < 1.0:
            raise ValueError(
                f"`silog_lambda` must lie in [0, 1) for the SILog loss to stay real, got {self.silog_lambda}."
            )

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


__all__ = ["WEDepthConfig", "PRESETS", "default_vfm_stage_layers"]
