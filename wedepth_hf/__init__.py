"""wedepth_hf: WEDepth (arXiv 2511.08036) as a Hugging Face transformers model.

Importing the package registers `WEDepthConfig`, `WEDepthForDepthEstimation` and `WEDepthImageProcessor` with
`AutoConfig`, `AutoModelForDepthEstimation` and `AutoImageProcessor`, so `pipeline("depth-estimation", model=...)`
works on WEDepth checkpoints, and marks them for remote code so that `save_pretrained` writes the files that let a
process without this package load the checkpoint with `trust_remote_code=True`.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModelForDepthEstimation

from .configuration_wedepth import PRESETS, WEDepthConfig
from .image_processing_wedepth import WEDepthImageProcessor
from .modeling_wedepth import WEDepthForDepthEstimation, WEDepthPreTrainedModel


__version__ = "0.1.0"

AutoConfig.register(WEDepthConfig.model_type, WEDepthConfig, exist_ok=True)
AutoModelForDepthEstimation.register(WEDepthConfig, WEDepthForDepthEstimation, exist_ok=True)
AutoImageProcessor.register(WEDepthConfig, image_processor_classes={"pil": WEDepthImageProcessor}, exist_ok=True)

WEDepthConfig.register_for_auto_class()
WEDepthForDepthEstimation.register_for_auto_class("AutoModelForDepthEstimation")
WEDepthImageProcessor.register_for_auto_class("AutoImageProcessor")


def __getattr__(name: str) -> object:
    """`WEDepthOnnxModel`, imported on first use (its runtime, ONNX Runtime, is the optional `[onnx]` extra)."""
    if name == "WEDepthOnnxModel":
        from .onnx_export import WEDepthOnnxModel

        return WEDepthOnnxModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "WEDepthConfig",
    "WEDepthForDepthEstimation",
    "WEDepthImageProcessor",
    "WEDepthOnnxModel",
    "WEDepthPreTrainedModel",
]
