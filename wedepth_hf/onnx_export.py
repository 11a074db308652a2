"""WEDepth as an ONNX graph, and that graph run by ONNX Runtime (the `[onnx]` extra).

`export_onnx` writes `model.onnx` (input `pixel_values` (B, 3, H, W), normalised as `WEDepthImageProcessor` makes it;
output `predicted_depth` (B, H, W) in metres; batch dynamic, height and width any multiples of 32 from a minimum) with
`torch.onnx.export(dynamo=True)`, and the processor's `preprocessor_config.json` beside it. `WEDepthOnnxModel` runs
such a folder like the torch model.

The model is traced in an export-friendly form of itself (`export_friendly`): the prompts' FFT, which depends on
weights only, computed once and held as a constant; the deformable attention in its `grid_sample` form (ONNX's
GridSample; the same values as the gather); the Swin encoder's attention in transformers' eager form (its SDPA form
does not decompose under symbolic shapes); the Swin windows as the config sets them. Nothing of transformers is
patched, and the model is left as it was (but in float32 and eval mode).
"""

import argparse
import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoImageProcessor
from transformers.modeling_outputs import DepthEstimatorOutput
from transformers.utils import IMAGE_PROCESSOR_NAME, logging

from .command_logging import CommandError, UsageError
from .configuration_wedepth import WEDepthConfig
from .image_processing_wedepth import WEDepthImageProcessor
from .inference import MODEL_LOADING_ERRORS, model_loading_failure
from .modeling_wedepth import WEDepthForDepthEstimation, WEDepthMultiScaleDeformableAttention
from .prediction_inputs import LoadedModel, load_processor


logger = logging.get_logger(__name__)

ONNX_FILE_NAME = "model.onnx"
"""The graph's file name in an exported folder."""
ONNX_OPSET = 18
"""The ONNX opset of the exported graph."""
MISSING_EXTRA_MESSAGE = 'ONNX export and ONNX Runtime need the [onnx] extra: pip install "wedepth_hf[onnx]"'
"""The one line a user gets when onnx, onnxscript or onnxruntime is missing."""
_MINIMUM_SIDE_KEY = "wedepth_minimum_side"
"""The graph's metadata key that records the smallest side it takes."""
SIDE_STEP = 32
"""The graph's height and width are multiples of this, the encoder's coarsest stride: every Swin map then has an
exact size, and the shape expressions the exporter reasons about stay linear (with any side they grow nested floors
and remainders at every stage, which its solver does not get through in useful time)."""


def require_onnx_extra() -> None:
    """Raise `ImportError` with the install line unless onnx, onnxscript and onnxruntime are importable."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError as error:
            raise ImportError(f"{MISSING_EXTRA_MESSAGE} ({module} is missing).") from error


def minimum_export_side(config: WEDepthConfig) -> int:
    """The smallest side the exported graph takes: the smallest multiple of `SIDE_STEP` whose coarsest Swin map is
    larger than the window.

    On a map no larger than its window, transformers' Swin shrinks the window to the map and drops the shift: another
    computation, which one graph cannot hold beside the general one.
    """
    return SIDE_STEP * (config.encoder_config.window_size + 1)


def _traces_general_path(side: int, config: WEDepthConfig) -> bool:
    """Whether the graph traced at a side holds every size's branches: a multiple of `SIDE_STEP` of at least the
    minimum, each Swin map padded to its window wherever some accepted side needs it (side / 32 one more than a
    multiple of the window) and the VFM input resized (not a multiple of the VFM's patch size)."""
    window, patch = config.encoder_config.window_size, config.vfm_config.patch_size
    return (
        side % SIDE_STEP == 0
        and side >= minimum_export_side(config)
        and (side // SIDE_STEP) % window == 1 % window
        and side % patch != 0
    )


def trace_side(config: WEDepthConfig, at_least: int) -> int:
    """The smallest side of at least `at_least` that `_traces_general_path` accepts."""
    side = max(math.ceil(at_least / SIDE_STEP) * SIDE_STEP, minimum_export_side(config))
    while not _traces_general_path(side, config):
        side += SIDE_STEP
    return side


def check_trace_size(height: int, width: int, config: WEDepthConfig) -> None:
    """Raise `ValueError` (one line) unless the graph can be traced at height x width."""
    minimum = minimum_export_side(config)
    for name, side in (("height", height), ("width", width)):
        if side % SIDE_STEP or side < minimum:
            raise ValueError(
                f"--{name} {side}: the exported graph takes multiples of {SIDE_STEP} of at least {minimum} px (every "
                f"Swin stage's map larger than its {config.encoder_config.window_size}-token window); give "
                f"{trace_side(config, side)}, or leave --{name} out."
            )
        if not _traces_general_path(side, config):
            raise ValueError(
                f"--{name} {side}: a size that skips the Swin padding or the VFM resize traces a graph that fails at "
                f"other sizes; give e.g. {trace_side(config, side)}, or leave --{name} out."
            )
    if height == width:
        raise ValueError(f"--height and --width are both {height}: give two different sides, or leave them out.")


def check_graph_input(height: int, width: int, minimum: int) -> None:
    """Raise `ValueError` (one line) unless an exported graph with smallest side `minimum` takes height x width."""
    if height % SIDE_STEP or width % SIDE_STEP or min(height, width) < minimum:
        raise ValueError(
            f"The ONNX graph takes heights and widths that are multiples of {SIDE_STEP} of at least {minimum} px, got "
            f"{height}x{width}; resize or crop to such a size (e.g. --processing_size 480 for 4:3 photos), or use "
            "--backend torch."
        )


@contextlib.contextmanager
def export_friendly(model: WEDepthForDepthEstimation) -> Iterator[None]:
    """The model in the form the exporter traces (see the module's docstring), restored on exit."""
    stages = model.prompted_vfm
    folded = stages.stage_prompts().detach().clone()
    attentions = [module for module in model.modules() if isinstance(module, WEDepthMultiScaleDeformableAttention)]
    implementations = [module.implementation for module in attentions]
    encoder_config = model.encoder.config
    attention_implementation = encoder_config._attn_implementation
    window = encoder_config.window_size
    windows = []
    for stage in (
        module for module in model.encoder.modules() if isinstance(getattr(module, "blocks", None), nn.ModuleList)
    ):
        for index, block in enumerate(stage.blocks):
            windows.append((block, block.window_size, block.shift_size))
            block.window_size, block.shift_size = window, 0 if index % 2 == 0 else window // 2
    stages.stage_prompts = lambda: folded
    for module in attentions:
        module.implementation = "grid_sample"
    encoder_config._attn_implementation = "eager"
    try:
        yield
    finally:
        del stages.stage_prompts
        for module, implementation in zip(attentions, implementations):
            module.implementation = implementation
        encoder_config._attn_implementation = attention_implementation
        for block, block_window, shift in windows:
            block.window_size, block.shift_size = block_window, shift


class _DepthGraph(nn.Module):
    """What the graph computes: `pixel_values` -> the model's `predicted_depth` at the input's size."""

    def __init__(self, model: WEDepthForDepthEstimation) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values, return_dict=True).predicted_depth


def onnx_path(output: str | Path) -> Path:
    """The .onnx file `output` names: itself when it ends in .onnx, else `model.onnx` inside the folder."""
    path = Path(output)
    return path if path.suffix == ".onnx" else path / ONNX_FILE_NAME


def export_onnx(
    model: WEDepthForDepthEstimation,
    output: str | Path,
    processor: Any | None = None,
    trace_size: tuple[int, int] | None = None,
) -> Path:
    """Export `model` (made float32 and put in eval mode) to the .onnx file `output` names (see `onnx_path`), with
    `processor`'s `preprocessor_config.json` beside it; returns the .onnx path.

    `trace_size`: (height, width) to trace at (checked by `check_trace_size`); by default the smallest sides that take
    every branch the general way. The graph takes any batch, and heights and widths that are multiples of `SIDE_STEP`
    of at least `minimum_export_side(config)` (recorded in its metadata).
    """
    require_onnx_extra()
    import onnx

    config = model.config
    if trace_size is None:
        height = trace_side(config, minimum_export_side(config))
        trace_size = (height, trace_side(config, height + 1))
    check_trace_size(*trace_size, config)
    path = onnx_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    sample = torch.randn(2, 3, *trace_size, device=model.device)
    blocks = config.encoder_config.window_size + 1
    heights, widths = (torch.export.Dim(name, min=blocks) for name in ("height_blocks", "width_blocks"))
    dynamic = {0: torch.export.Dim.DYNAMIC, 2: SIDE_STEP * heights, 3: SIDE_STEP * widths}
    with export_friendly(model):
        program = torch.onnx.export(
            _DepthGraph(model).eval(),
            (sample,),
            dynamo=True,
            opset_version=ONNX_OPSET,
            input_names=["pixel_values"],
            output_names=["predicted_depth"],
            dynamic_shapes={"pixel_values": dynamic},
            external_data=False,
        )
    program.model.metadata_props[_MINIMUM_SIDE_KEY] = str(minimum_export_side(config))
    program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path))
    if processor is not None:
        processor.save_pretrained(str(path.parent))
    return path


class WEDepthOnnxModel:
    """An exported WEDepth graph run by ONNX Runtime, called like the torch model: `model(pixel_values=...)` returns
    a `DepthEstimatorOutput` whose `predicted_depth` is a (B, H, W) float32 tensor on the CPU."""

    main_input_name = "pixel_values"

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None) -> None:
        require_onnx_extra()
        import onnxruntime

        self.path = onnx_path(path)
        if not self.path.is_file():
            raise OSError(f"{self.path}: no such file; give an exported folder or .onnx file (`wedepth export onnx`).")
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(self.path), options, providers=providers or ["CPUExecutionProvider"]
        )
        self.minimum_side = int(self.session.get_modelmeta().custom_metadata_map.get(_MINIMUM_SIDE_KEY, SIDE_STEP))

    @classmethod
    def from_pretrained(
        cls, path: str | Path, providers: list[str] | None = None, threads: int | None = None
    ) -> "WEDepthOnnxModel":
        """The graph in the folder `path` (its `model.onnx`), or the .onnx file `path`; `providers`: ONNX Runtime's
        execution providers (default: the CPU); `threads`: its intra-op threads (default: ONNX Runtime's)."""
        return cls(path, providers, threads)

    def eval(self) -> "WEDepthOnnxModel":
        """No-op, for code written for torch models (the graph is an inference graph)."""
        return self

    def to(self, device: torch.device | str) -> "WEDepthOnnxModel":
        """No-op for the CPU; the graph's device is its execution provider's, chosen when it is loaded."""
        return self

    def forward(self, pixel_values: torch.Tensor) -> DepthEstimatorOutput:
        """Depth (B, H, W) in metres for normalised `pixel_values` (B, 3, H, W)."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(
                f"`pixel_values` must have shape (batch, 3, height, width), got {tuple(pixel_values.shape)}."
            )
        check_graph_input(*pixel_values.shape[-2:], self.minimum_side)
        array = np.ascontiguousarray(pixel_values.detach().to("cpu", torch.float32).numpy())
        (depth,) = self.session.run(["predicted_depth"], {"pixel_values": array})
        return DepthEstimatorOutput(predicted_depth=torch.from_numpy(depth))

    __call__ = forward


def load_onnx_models(names: Sequence[str], device: torch.device) -> list[LoadedModel]:
    """`--backend onnxruntime`: exported graphs (folders or .onnx files, `wedepth export onnx`) run by ONNX Runtime on
    `device` (cpu, or cuda with onnxruntime-gpu), with the processor saved beside each graph."""
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" else None
    loaded: list[LoadedModel] = []
    for name in names:
        try:
            model = WEDepthOnnxModel.from_pretrained(name, providers)
            processor = AutoImageProcessor.from_pretrained(str(onnx_path(name).parent))
        except ImportError as error:
            raise CommandError(str(error)) from error
        except Exception as error:  # noqa: BLE001 - ONNX Runtime raises its own error types
            raise CommandError(model_loading_failure(name, error)) from error
        loaded.append(LoadedModel(name, model, processor))
    return loaded


def _load_for_export(name: str) -> tuple[WEDepthForDepthEstimation, Any]:
    """The WEDepth model `name` (folder or Hub id, VFM-free folders included) and its image processor (a default
    `WEDepthImageProcessor` when it has none), which gets the model's training camera; a model that does not load is a
    `CommandError`."""
    try:
        model = WEDepthForDepthEstimation.from_pretrained(name)
    except MODEL_LOADING_ERRORS as error:
        raise CommandError(model_loading_failure(name, error)) from error
    return model, load_processor(name, model)


def _check_export_arguments(args: argparse.Namespace) -> tuple[Path, tuple[int, int] | None]:
    """The .onnx path and the trace size of `wedepth export onnx`, after the checks made before the model loads."""
    require_onnx_extra()
    path = onnx_path(args.output)
    if path != Path(args.output) and Path(args.output).is_file():
        raise UsageError(
            f"--output {args.output} is a file that is not a .onnx; give a path ending in .onnx or a folder."
        )
    if path.is_dir():
        raise UsageError(
            f"--output {args.output} is a folder whose name ends in .onnx; give the file to write, e.g. "
            f"{path / ONNX_FILE_NAME}."
        )
    # The graph and, beside it, the files the processor's `save_pretrained` writes (and would replace silently).
    processor_files = (IMAGE_PROCESSOR_NAME, f"{WEDepthImageProcessor.__module__.rsplit('.', 1)[-1]}.py")
    existing = [str(file) for file in (path, *(path.parent / name for name in processor_files)) if file.exists()]
    if existing and not args.overwrite:
        raise UsageError(
            f"--output {args.output}: {' and '.join(existing)} exist; give another --output, or --overwrite to replace "
            "them."
        )
    if (args.height is None) != (args.width is None):
        raise UsageError("give both --height and --width, or neither (the trace size is then picked for the model).")
    if args.height is None:
        return path, None
    try:
        config = AutoConfig.from_pretrained(args.model)
    except MODEL_LOADING_ERRORS as error:
        raise CommandError(model_loading_failure(args.model, error)) from error
    if not isinstance(config, WEDepthConfig):
        raise CommandError(f"{args.model} is a {config.model_type!r} model; `wedepth export onnx` exports WEDepth.")
    try:
        check_trace_size(args.height, args.width, config)
    except ValueError as error:
        raise UsageError(str(error)) from error
    return path, (args.height, args.width)


def run_export_onnx(args: argparse.Namespace) -> int:
    """`wedepth export onnx`: a WEDepth folder or Hub id -> an ONNX graph and its processor config; returns 0.

    Raises `UsageError` for a mistake on the command line and `CommandError` for a model that does not load or a
    missing extra (one line each)."""
    try:
        path, trace_size = _check_export_arguments(args)
    except ImportError as error:
        raise CommandError(str(error)) from error
    model, processor = _load_for_export(args.model)
    export_onnx(model, path, processor, trace_size)
    logger.info(
        "Wrote %s and its preprocessor_config.json (inputs of at least %d px a side).",
        path,
        minimum_export_side(model.config),
    )
    return 0


__all__ = [
    "MISSING_EXTRA_MESSAGE",
    "ONNX_FILE_NAME",
    "WEDepthOnnxModel",
    "check_graph_input",
    "check_trace_size",
    "export_friendly",
    "export_onnx",
    "load_onnx_models",
    "minimum_export_side",
    "onnx_path",
    "require_onnx_extra",
    "run_export_onnx",
    "trace_side",
]
