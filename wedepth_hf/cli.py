"""The `wedepth` command line (also `python -m wedepth_hf`): it parses the arguments and dispatches. `predict` writes
depth PNGs, colour maps and point clouds (`wedepth_hf.predict`); `convert-original` turns a checkpoint of the authors'
code into a WEDepth folder; `train` and `evaluate` run `wedepth_hf.training.main` and `wedepth_hf.evaluation.main`.

Every command follows one convention (`wedepth_hf.command_logging`): options are spelled with underscores (the
hyphen spellings `predict` had are kept as aliases); a usage error is reported by the command's parser (exit 2); a
runtime error is one logged line (exit 1); Ctrl-C exits 130; `--debug`, before or after the sub-command, shows the
traceback instead.
"""

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from transformers import AutoConfig, PreTrainedConfig
from transformers.utils import logging

from .command_logging import (
    DEBUG_HELP,
    FAILURE_EXIT_STATUS,
    Explanation,
    UsageError,
    command_parser,
    configure_command_logging,
    explain_command_error,
    one_line,
    run_command,
)
from .demo import DEFAULT_MAX_FRAMES, run_demo
from .image_processing_wedepth import DEFAULT_MAX_PIXELS
from .inference import MODEL_LOADING_ERRORS
from .onnx_export import run_export_onnx
from .predict import DTYPES, run_predict
from .video import INSTALL_HINT, SAVE_DEPTH_CHOICES, VIDEO_EXTENSIONS, parse_depth_range, parse_fps, parse_frame_list
from .visualization import DEFAULT_HORIZONTAL_FOV_DEGREES


logger = logging.get_logger(__name__)

FORWARDED_COMMANDS = ("evaluate", "train")
"""The sub-commands whose own parsers own every option after the sub-command (`wedepth train --help` shows them)."""


# What `wedepth <command> --help` says of each command (argparse folds the line breaks).
_CONVERT_DESCRIPTION = """
Reads the .pth (weights only) or .safetensors state dict the authors' train.py saves and their config
(configs/nyu.json or kitti.json), checks that every tensor has its place, and writes a folder with safetensors
weights, the remote code, the image processor and a model card, which `pipeline('depth-estimation', model=FOLDER)`
loads. The VFM defaults to DINOv2-L/14 and the encoder to the Swin the config names; use the Python API
(wedepth_hf.conversion) for other architectures. Exit status: 1 a file that does not convert or a failed upload; 2 a
usage error (a missing --checkpoint or --config, an --output folder that is refused), checked before anything is
read.
"""
_DEMO_DESCRIPTION = """
Serve a page on http://HOST:PORT where you upload an image (and optionally its focal length in pixels) and get its
colour depth with a legend in metres, the depth under a click, a table of depth values, an interactive 3D point
cloud and downloads of the 16-bit depth PNG and the PLY; a second tab turns a short clip into a colour depth video.
Nothing reaches the network (no analytics, no share link). Needs pip install "wedepth_hf[demo]". Ctrl-C stops it.
"""
_ONNX_DESCRIPTION = """
Export with torch.onnx.export(dynamo=True): input pixel_values (B, 3, H, W) normalised as the model's image
processor makes it, output predicted_depth (B, H, W) in metres; the batch dynamic, height and width any multiples of
32 of at least 32 x (Swin window + 1) px (256 for the presets). The processor's preprocessor_config.json is written
beside the .onnx file. Needs pip install "wedepth_hf[onnx]". Exit status: 1 a model that does not load or a missing
extra; 2 a usage error (an existing --output, a --height/--width the graph cannot be traced at).
"""

_COMMAND_TEXTS = {
    "convert-original": (
        "convert a checkpoint of the authors' code (github book-book24/WEDepth) into a WEDepth folder",
        _CONVERT_DESCRIPTION,
    ),
    "demo": ("serve the browser demo page (Gradio, the [demo] extra) on this machine", _DEMO_DESCRIPTION),
    "export onnx": (
        "an ONNX graph (opset 18) with dynamic batch, height and width (multiples of 32)",
        _ONNX_DESCRIPTION,
    ),
}
"""(summary, description) of the sub-commands built from constants: their --help texts in one place."""


def _load_config(name_or_path: str, model_type: str) -> PreTrainedConfig:
    """A transformers config from a folder, a config.json file or a Hub id, checked to be of `model_type`."""
    path = Path(name_or_path)
    if not path.is_file():
        config = AutoConfig.from_pretrained(name_or_path)
    else:
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a JSON file ({error}); give a {model_type!r} config.json.") from None
        found = values.get("model_type") if isinstance(values, dict) else type(values).__name__
        if found != model_type:
            raise ValueError(f"{path} is not a {model_type!r} config.json (model_type {found!r}).")
        try:
            config = AutoConfig.for_model(**values)
        except MODEL_LOADING_ERRORS as error:
            raise ValueError(f"{path} is not a valid {model_type!r} config ({error}).") from None
    if config.model_type != model_type:
        raise ValueError(f"{name_or_path} is a {config.model_type!r} config; a {model_type!r} config is needed here.")
    return config


def _convert_command(args: argparse.Namespace) -> list[str]:
    """The conversion command for the model card, rebuilt from the parsed arguments (never copied from argv)."""
    command = [
        "wedepth",
        "convert-original",
        "--checkpoint",
        Path(args.checkpoint).name,
        "--config",
        Path(args.config).name,
        "--output",
        Path(args.output).name,
    ]
    for name in ("vfm_config", "encoder_config", "hub_model_id"):
        if getattr(args, name):
            command += [f"--{name}", str(getattr(args, name))]
    return command


def _check_convert_arguments(args: argparse.Namespace) -> list[str]:
    """The usage errors of `convert-original`, found before anything is read; returns the input paths that a replaced
    --output folder must not contain (with the working directory)."""
    from .folders import OutputFolderError, check_output_folder

    if args.push_to_hub and not args.hub_model_id:
        raise UsageError("--push_to_hub needs --hub_model_id (the Hub repo to create or update, e.g. org/wedepth-nyu).")
    for option in ("checkpoint", "config"):
        if not Path(getattr(args, option)).is_file():
            raise UsageError(f"--{option} {getattr(args, option)}: no such file; give the authors' {option} file.")
    inputs = [args.checkpoint, args.config, *(path for path in (args.vfm_config, args.encoder_config) if path)]
    try:
        check_output_folder(args.output, overwrite=args.overwrite, protected=inputs, overwrite_option="--overwrite")
    except OutputFolderError as error:
        raise UsageError(str(error)) from error
    return inputs


def run_convert_original(args: argparse.Namespace) -> int:
    """`wedepth convert-original`: the authors' checkpoint -> a WEDepth folder (and, if asked, a Hub repo); returns 0.

    Raises `UsageError` for a mistake on the command line; a checkpoint or config that does not convert raises
    `OSError` or `ValueError`, and a failed upload `HubUploadError` (`_conversion_failure` puts each in one line).
    """
    from .conversion import convert_original_checkpoint, export_converted_folder
    from .hub import push_folder_to_hub

    inputs = _check_convert_arguments(args)
    architectures = {
        name: _load_config(getattr(args, name), expected) if getattr(args, name) else None
        for name, expected in (("vfm_config", "dinov2"), ("encoder_config", "swin"))
    }
    model = convert_original_checkpoint(args.checkpoint, args.config, **architectures)
    folder = export_converted_folder(
        model,
        args.output,
        original_config=args.config,
        checkpoint_name=Path(args.checkpoint).name,
        command=_convert_command(args),
        repo_id=args.hub_model_id,
        overwrite=args.overwrite,
        protected=inputs,
    )
    logger.info("Wrote the converted model to %s.", folder)
    if args.push_to_hub:
        push_folder_to_hub(
            folder, args.hub_model_id, private=args.private, commit_message="Convert the authors' WEDepth checkpoint"
        )
    return 0


def _conversion_failure(error: Exception) -> Explanation | None:
    """The one line of a runtime error of `convert-original`: a file that does not read or convert, a folder that
    cannot be written, a failed upload (whose message keeps its line breaks: the retry command is on a line of its
    own)."""
    from .hub import HubUploadError

    if isinstance(error, HubUploadError):
        return FAILURE_EXIT_STATUS, str(error)
    if isinstance(error, (OSError, ValueError)):
        return FAILURE_EXIT_STATUS, one_line(error)
    return None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `wedepth` and its sub-commands."""
    parser = command_parser(
        "wedepth",
        "WEDepth metric monocular depth estimation. Exit status: 0 done; 1 a runtime error (one line); 2 a usage "
        "error; 130 stopped by Ctrl-C.",
        debug_help=f"{DEBUG_HELP} (also accepted after the sub-command, for every one)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_predict_command(commands)
    _add_convert_command(commands)
    _add_demo_command(commands)
    _add_export_command(commands)
    for name in FORWARDED_COMMANDS:
        commands.add_parser(
            name,
            add_help=False,
            help=f"{name} (`wedepth {name} --help` lists its options)",
            description=f"`wedepth {name} --help` lists its options.",
        )
    return parser


def _subcommand(
    commands: argparse._SubParsersAction, name: str, summary: str, description: str
) -> argparse.ArgumentParser:
    """A sub-command's parser: no abbreviated options, and itself as the parser that reports its usage errors."""
    parser = commands.add_parser(name, allow_abbrev=False, help=summary, description=description)
    parser.set_defaults(command_parser=parser)
    return parser


def _add_debug_option(parser: argparse.ArgumentParser) -> None:
    """`--debug` after the sub-command; left unset unless given, so that `wedepth --debug COMMAND` is not undone."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)


def _non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def _int_at_least(text: str, minimum: int) -> int:
    """`text` as an integer of at least `minimum`, or the argparse error that says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def _add_predict_command(commands: argparse._SubParsersAction) -> None:
    """`wedepth predict`: depth maps, colour maps and point clouds for images, folders and glob patterns."""
    fov = DEFAULT_HORIZONTAL_FOV_DEGREES
    predict = _subcommand(
        commands,
        "predict",
        "predict depth for image files, folders or glob patterns, and for videos",
        (
            "For each image write <stem>_depth.png (uint16 millimetres, lossless, the image's size; depths beyond "
            "65.535 m are clipped with a warning), <stem>_depth_color.png (colour map with a legend in metres) and, "
            "with --save_ply, <stem>.ply (binary little-endian, x y z in metres and red green blue, one point per "
            "pixel with a finite depth > 0). The point clouds' camera: --intrinsics; else fx = fy = the focal length "
            "of --focal_length / --fov, or the model's training camera brought to the image's resolution (what "
            f"uncorrected depth assumes), or a {fov:g}-degree horizontal field of view, with the principal point at "
            "the centre, cx = (width - 1) / 2, cy = (height - 1) / 2. Images of the same size are batched together. "
            "Inputs with the same file name from different folders get their parent folder names prefixed (joined "
            "with '__'). An image's outputs are written together: all new, or after an error all as they were. "
            "Unreadable or oversized inputs, and predictions with non-finite depth, are reported and skipped "
            "(nothing is written for them); the exit status is 1 if any input failed, 2 for a usage error (an input "
            "that names nothing, an output folder that cannot be written), checked before any model is loaded. "
            "Options are spelled with underscores; the hyphen spellings (--output-dir, ...) are accepted too. Videos "
            f"({', '.join(VIDEO_EXTENSIONS)}, and folders of frames with --frames_as_video) give "
            "<stem>_depth_color.mp4 (same frame rate, one colour range for the whole clip, legend in metres) and "
            f"per-frame depth (--save_depth); they need {INSTALL_HINT}."
        ),
    )
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders, or glob patterns")
    predict.add_argument(
        "--model",
        required=True,
        action="append",
        help=(
            "a WEDepth checkpoint: local folder or Hub id; give it several times to run several models over the same "
            "images (outputs in a sub-folder per model; models with the same frozen VFM share it in memory)"
        ),
    )
    predict.add_argument(
        "--output_dir", "--output-dir", required=True, help="folder for the outputs (created if missing)"
    )
    _add_predict_compute_options(predict)
    _add_predict_output_options(predict)
    _add_predict_video_options(predict)


def _add_predict_compute_options(predict: argparse.ArgumentParser) -> None:
    """The options of `wedepth predict` that say how the model runs: batch, device, dtype, resolution, pixel budget."""
    predict.add_argument(
        "--batch_size",
        "--batch-size",
        type=_positive_int,
        default=1,
        help="images per forward pass (same-size images only)",
    )
    predict.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    predict.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help=(
            "torch (default), or onnxruntime: --model then names a folder or .onnx file written by `wedepth export "
            'onnx` (float32; needs pip install "wedepth_hf[onnx]")'
        ),
    )
    predict.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default=None,
        help=(
            "compute dtype (default: bfloat16 on a CPU with native bfloat16, i.e. AVX512-BF16, AMX or Arm BF16; "
            "float32 elsewhere); float16/bfloat16 run under autocast, the depth is float32 anyway"
        ),
    )
    predict.add_argument(
        "--processing_size",
        "--processing-size",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help=(
            "the shorter side the model sees: larger images are resized down to it, keeping the aspect ratio, and the "
            "depth is returned at the image's size (default: the checkpoint's processor setting, its training "
            "resolution, or 480); 0 processes images at their own size"
        ),
    )
    predict.add_argument(
        "--max_pixels",
        "--max-pixels",
        type=_non_negative_int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=(
            f"refuse, before decoding, an image of more than N pixels (height x width; default {DEFAULT_MAX_PIXELS:,}, "
            "a guard against decompression bombs; 0: no limit). Pillow itself refuses images of more than "
            f"{2 * Image.MAX_IMAGE_PIXELS:,} pixels whatever N is"
        ),
    )


def _add_predict_output_options(predict: argparse.ArgumentParser) -> None:
    """The options of `wedepth predict` that say what is computed and shown: flip TTA, point clouds, intrinsics."""
    predict.add_argument(
        "--flip_tta", "--flip-tta", action="store_true", help="average with the prediction of the flipped image"
    )
    predict.add_argument(
        "--save_ply", "--save-ply", action="store_true", help="also write a coloured point cloud <stem>.ply"
    )
    predict.add_argument(
        "--drop_flying_pixels",
        "--drop-flying-pixels",
        type=_positive_float,
        nargs="?",
        const=0.05,
        default=None,
        metavar="REL",
        help=(
            "leave out of the point clouds the pixels on depth discontinuities: those whose depth differs from a "
            "neighbour's by more than REL times the smaller (default REL when given alone: 0.05)"
        ),
    )
    _add_predict_camera_options(predict)
    predict.add_argument("--no_progress", "--no-progress", action="store_true", help="hide the progress bar")
    _add_debug_option(predict)


def _focal_length(text: str) -> float | str:
    """An argparse type: `auto` or a focal length in pixels > 0."""
    return "auto" if text == "auto" else _positive_float(text)


def _positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _field_of_view(text: str) -> float:
    """An argparse type: a horizontal field of view in degrees, strictly between 0 and 180."""
    value = _positive_float(text)
    if value >= 180:
        raise argparse.ArgumentTypeError(f"expected degrees between 0 and 180, got {text!r}")
    return value


def _intrinsics(text: str) -> tuple[float, float, float, float]:
    """An argparse type: `fx,fy,cx,cy` in pixels, the focal lengths > 0."""
    parts = text.split(",")
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(value) for value in values) or min(values[:2]) <= 0:
        raise argparse.ArgumentTypeError(f"expected fx,fy,cx,cy in pixels (fx, fy > 0), got {text!r}")
    return values


def _add_predict_camera_options(predict: argparse.ArgumentParser) -> None:
    """The options of `wedepth predict` that describe the camera: for metric depth and for point clouds."""
    predict.add_argument(
        "--focal_length",
        "--focal-length",
        type=_focal_length,
        default=None,
        metavar="PX|auto",
        help=(
            "the camera's horizontal focal length in pixels at the image's resolution: the depth is rescaled from the "
            "model's training camera to it (the canonical-camera transform). auto: from each photo's EXIF "
            "(FocalLengthIn35mmFilm, or FocalLength with FocalPlaneXResolution), naming the source; a photo without "
            "them is not corrected. Default: no correction, right for images taken like the training images"
        ),
    )
    predict.add_argument(
        "--fov", type=_field_of_view, default=None, metavar="DEG", help="the horizontal field of view, instead"
    )
    predict.add_argument(
        "--intrinsics",
        type=_intrinsics,
        default=None,
        metavar="FX,FY,CX,CY",
        help="the full pinhole camera in pixels: the point clouds use it, and the depth is rescaled to FX",
    )
    for name in ("fx", "fy", "cx", "cy"):
        predict.add_argument(f"--{name}", type=float, default=None, help="--intrinsics, one value at a time")


def _add_predict_video_options(predict: argparse.ArgumentParser) -> None:
    """The options of `wedepth predict` for videos: frame folders, frame rate, colour range, per-frame outputs."""
    predict.add_argument(
        "--frames_as_video",
        "--frames-as-video",
        action="store_true",
        help="read each folder input as the frames of one video (in file-name order), not as separate images",
    )
    predict.add_argument(
        "--fps",
        type=parse_fps,
        default=None,
        help="frame rate of a --frames_as_video folder's depth video (default 10)",
    )
    predict.add_argument(
        "--depth_range",
        "--depth-range",
        type=parse_depth_range,
        default=None,
        metavar="MIN,MAX",
        help="colour range of depth videos in metres (default: from the clip's first second, at most 30 frames)",
    )
    predict.add_argument(
        "--save_depth",
        "--save-depth",
        choices=SAVE_DEPTH_CHOICES,
        default=None,
        help=(
            "per-frame depth of videos: png, <stem>_depth/000000.png ... (uint16 millimetres; the default); npz, one "
            "<stem>_depth.npz holding `depth`, float16 metres (frames, height, width); none"
        ),
    )
    predict.add_argument(
        "--ply_frames",
        "--ply-frames",
        type=parse_frame_list,
        default=None,
        metavar="N,N,...",
        help="also write the point clouds of these video frames (0 is the first), <stem>_frame000010.ply",
    )


def _add_convert_command(commands: argparse._SubParsersAction) -> None:
    """`wedepth convert-original`: a checkpoint of the authors' code into a WEDepth folder."""
    convert = _subcommand(commands, "convert-original", *_COMMAND_TEXTS["convert-original"])
    convert.add_argument("--checkpoint", required=True, help="the authors' checkpoint (.pth or .safetensors)")
    convert.add_argument("--config", required=True, help="the authors' config JSON it was trained with")
    convert.add_argument(
        "--output",
        required=True,
        help=(
            "folder to write: new or empty, or with --overwrite one holding a WEDepth model; never a folder holding "
            "the working directory, the checkpoint or the configs"
        ),
    )
    convert.add_argument(
        "--vfm_config", default=None, help="DINOv2 config (folder, config.json or Hub id); default DINOv2-L/14"
    )
    convert.add_argument(
        "--encoder_config", default=None, help="Swin config (folder, config.json or Hub id); default: the config's"
    )
    convert.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an --output folder that holds a WEDepth model and nothing else (swapped in when complete)",
    )
    convert.add_argument("--push_to_hub", action="store_true", help="also upload the folder in one Hub commit")
    convert.add_argument("--hub_model_id", default=None, help="the Hub repo for --push_to_hub, e.g. org/wedepth-nyu")
    convert.add_argument("--private", action="store_true", help="create the Hub repo as private")
    _add_debug_option(convert)


def _port(text: str) -> int:
    """An argparse type: a TCP port number, 1 to 65535."""
    port = _positive_int(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {port}")
    return port


def _add_demo_command(commands: argparse._SubParsersAction) -> None:
    """`wedepth demo`: the browser demo page (`wedepth_hf.demo`, needs the `[demo]` extra)."""
    demo = _subcommand(commands, "demo", *_COMMAND_TEXTS["demo"])
    demo.add_argument("--model", required=True, help="a WEDepth checkpoint: local folder or Hub id")
    demo.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; 0.0.0.0 opens it to the network)"
    )
    demo.add_argument("--port", type=_port, default=7860, help="port to serve on (default 7860)")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    demo.add_argument(
        "--dtype", choices=sorted(DTYPES), default=None, help="compute dtype (default: as `wedepth predict`)"
    )
    demo.add_argument(
        "--max_frames",
        "--max-frames",
        type=_positive_int,
        default=DEFAULT_MAX_FRAMES,
        help=f"the most frames of an uploaded clip the video tab predicts (default {DEFAULT_MAX_FRAMES})",
    )
    _add_debug_option(demo)


def _add_export_command(commands: argparse._SubParsersAction) -> None:
    """`wedepth export onnx`: a WEDepth model as an ONNX graph for ONNX Runtime (`wedepth_hf.onnx_export`)."""
    export = commands.add_parser(
        "export", allow_abbrev=False, help="export a WEDepth model for another runtime (onnx: ONNX Runtime)"
    )
    formats = export.add_subparsers(dest="format", required=True)
    onnx = _subcommand(formats, "onnx", *_COMMAND_TEXTS["export onnx"])
    onnx.add_argument("--model", required=True, help="a WEDepth checkpoint: local folder (VFM-free too) or Hub id")
    onnx.add_argument("--output", required=True, help="the .onnx file to write, or a folder (then FOLDER/model.onnx)")
    onnx.add_argument("--height", type=_positive_int, default=None, help="trace height (default: picked for the model)")
    onnx.add_argument("--width", type=_positive_int, default=None, help="trace width (default: picked for the model)")
    onnx.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing .onnx file and the processor files beside it (preprocessor_config.json, its code)",
    )
    _add_debug_option(onnx)


def _run_forwarded_command(name: str, argv: list[str], debug: bool) -> int:
    """`wedepth train` / `wedepth evaluate`: the package's own command with every argument after the sub-command
    (and `--debug` when it was given before it)."""
    if name == "train":
        from .training import main as command
    else:
        from .evaluation import main as command
    return command([*argv, "--debug"] if debug else argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `wedepth` command; returns the exit status (see the module's docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = argv[:1] == ["--debug"]
    after_debug = argv[1:] if debug else argv
    if after_debug and after_debug[0] in FORWARDED_COMMANDS:
        return _run_forwarded_command(after_debug[0], after_debug[1:], debug)
    args = build_parser().parse_args(argv)
    configure_command_logging()
    if args.command == "convert-original":
        work, explain = run_convert_original, _conversion_failure
    elif args.command == "demo":
        work, explain = run_demo, explain_command_error
    elif args.command == "export":
        work, explain = run_export_onnx, explain_command_error
    else:
        work, explain = run_predict, explain_command_error
    return run_command(lambda: work(args), debug=args.debug, parser=args.command_parser, explain=explain)


if __name__ == "__main__":
    sys.exit(main())
